//! # The exactly-once protocol
//!
//! How the aggregator turns a Kafka partition into rollup rows (and ratings, and
//! activity entries) in Cassandra with no event lost and none counted twice,
//! through crashes, restarts, rebalances, stale owners and Cassandra outages. This
//! is the one numbered description: the aggregator's code marks the places that
//! perform each step (`// P5: …`), and the README's design section cites the same
//! numbers. The decisions live in this crate, free of I/O; the aggregator
//! (`aggregator/src/`) is the adapter that talks to Kafka and Cassandra.
//!
//! ## State
//!
//! Per Kafka partition, one owner at a time (the consumer group's assignment), and
//! in Cassandra's `partition_state`: `epoch`, the owner's fencing token, and
//! `attempted`, the last offset of the newest flush any owner started. Every rollup
//! row carries `last_offset`, the offset it is complete up to. Events are keyed by
//! video id, so every row has exactly one writer: the owner of its partition.
//!
//! ## Steps
//!
//! Taking a partition over (`aggregator/src/ownership.rs`, called on assignment):
//!
//! - **P1 Claim.** Bump `epoch` with a lightweight transaction (`IF epoch = <read>`).
//!   From then on every older owner's P5 fails, so it can start no new flush.
//!   (`store/partition_state.rs`, `RollupStore::claim`.)
//! - **P2 Fence.** Read `attempted` linearizably (SERIAL). At most one flush is in
//!   doubt: offsets `committed..=attempted`, each of whose rows holds all of it
//!   (`last_offset = attempted`) or none of it (`last_offset < committed`). The new
//!   buffer is fenced there, [`PartitionBuffer::new`]`(attempted)`: it flushes
//!   exactly at `attempted`, never before ([`PartitionBuffer::take`] refuses while
//!   fenced), so step P7 never sees a partial overlap.
//! - **P3a Start.** Decide where to read from, explicitly
//!   (`aggregator/src/start.rs`): the committed offset, when it lies inside the
//!   log. Kafka's `auto.offset.reset` is `error`, never `earliest`: a committed
//!   offset before the log's start (lag beyond retention), past its end or below
//!   `attempted` (a recreated topic), or missing while `attempted` says the
//!   partition was flushed before (expired group offsets) halts the partition
//!   (P11). Only a partition with no state at all (no committed offset, no flush
//!   ever attempted) starts by itself, at the configured end of the log, and that
//!   start is committed at once. The topic's partition count must be the one it
//!   was first counted with (`topic_state`, checked at start-up and on every
//!   assignment): a grown topic moves videos between partitions.
//! - **P3 Prime.** If deduplication is on, re-read the dedup window before the
//!   start offset into a [`DedupWindow`] (`aggregator/src/priming.rs`), so
//!   replayed messages are kept or dropped exactly as the previous owner decided.
//!   The window is measured in log time: from `window` before the broker
//!   timestamp of the message just before the start (the topic is
//!   `LogAppendTime`, checked at start-up), never from the wall clock, so an owner
//!   that starts long after its predecessor stopped reads the same window, and a
//!   retry reads the same range again. Transient read errors are retried; a window
//!   that is no longer whole in the log halts the partition (P11).
//!
//! Consuming (`aggregator/src/owner.rs`, `Owner::handle`):
//!
//! - **P4 Fold.** Each message, in offset order, into the partition's
//!   [`PartitionBuffer`]: counts per (video, type, minute), each user's latest
//!   rating per video, signed-in views for activity feeds. An undecodable or invalid
//!   message goes to the dead-letter topic, acknowledged before its offset can be
//!   committed, and still consumes its offset (`aggregator/src/decode.rs`,
//!   `dead_letter.rs`); the send is retried for `dead_letter.timeout_ms`, then the
//!   partition halts at that message (P11) instead of stalling the consumer. A
//!   well-formed event of a type this aggregator does not know (a newer producer)
//!   is not poison: the partition halts at it (P11). A repeat of a client-chosen
//!   event id within the window is dropped ([`DedupWindow::observe`]). When the
//!   buffer reaches its fence ([`Folded::FlushNow`]) it is flushed at once.
//!
//! One flush, of offsets `first..=through` ([`FlushPlan`];
//! `aggregator/src/flush.rs`):
//!
//! - **P5 Mark.** Record `attempted = through` with a lightweight transaction
//!   `IF epoch = <mine>`. Not applied: a newer owner exists; this one stops writing
//!   for the partition.
//! - **P6 Read.** Learn the stored `(value, last_offset)` of every row the plan
//!   touches that the owner's [`RowCache`] does not know: one range read per
//!   Cassandra partition, which makes absent rows known too.
//! - **P7 Resolve.** The `last_offset` rule ([`FlushPlan::resolve`]): a row with
//!   `last_offset ≥ through` already holds the flush and is skipped; a row with
//!   `last_offset < first` (or none) gets `old + delta`; anything else is an
//!   [`Overlap`] (committed offsets rewound by hand), and the partition halts
//!   rather than guess (P11). So does a row another Kafka partition wrote
//!   (`rollups.kafka_partition`): two writers for one video, which only a grown
//!   topic makes. Ratings follow the same rule per user row and per video's
//!   totals ([`ratings::resolve_video`](crate::ratings::resolve_video)).
//! - **P8 Write.** Every row with `last_offset = through` at the Cassandra timestamp
//!   [`write_timestamp`]`(epoch, through)`, so a stale owner's late write loses
//!   whatever the order of arrival (the epoch and offset are checked against the
//!   timestamp's domain at run time, [`timestamp::check_domain`], and a partition
//!   outside it halts, P11); then the hour and day copies keyed by bucket
//!   (rewritten even for skipped rows: a crash may have come between a row and its
//!   copy), the ratings (user rows first, each video's totals last) and the
//!   activity entries (keyed by the events' own ids). Rows of one Cassandra
//!   partition go out as one unlogged batch; every request is retried until it
//!   lands.
//! - **P9 Commit.** Only after every write of P8 landed, commit offset
//!   `through + 1` ([`FlushPlan::commit_offset`]). If the commit fails, it is
//!   retried before the partition's next flush, so the in-doubt range never spans
//!   two flushes.
//!
//! Giving a partition up (`aggregator/src/consumer.rs`):
//!
//! - **P10 Revoke.** In the revoke callback, flush (P5–P9) exactly the revoked
//!   partitions, then drop their state. A buffer still short of its fence is dropped
//!   uncommitted; the next owner replays it. Shutdown is a revoke of everything.
//!
//! When counting on would mean guessing (`aggregator/src/halt.rs`):
//!
//! - **P11 Halt.** Pause the partition in the consumer, drop its buffer (nothing
//!   of it was committed), and record why in `partition_halts`, with a metric and
//!   a log line naming the operator's command. The record outlives the process:
//!   every later owner finds it at its claim (after P1, so any older owner is
//!   fenced) and stays halted. Only an operator clears it (`vcount-admin
//!   partitions resume`), optionally with an offset to resume from, never before
//!   the committed one; the owner then takes the partition over again from P1,
//!   so a cause still there halts it again. Reasons: an overlap (P7), an offset
//!   outside the log or a missing committed offset (P3a), a changed partition
//!   count (P3a), a dedup window no longer whole (P3), a dead letter that cannot
//!   be sent or an event type this aggregator does not know (P4), a timestamp
//!   outside its domain (P8).
//!
//! ## Why it is exact
//!
//! A row's value always equals the events of its key up to its `last_offset`: P7
//! adds a delta only to a row complete up to just before the flush, and P8 writes
//! the sum with `last_offset = through`. After a crash the new owner replays from
//! the committed offset `c`; only `c..=attempted` can be in doubt (P9 commits before
//! the next P5), the fence (P2) makes the new owner's first flush cover exactly
//! that range, and P7 then skips the rows that were written and completes the
//! rest. A stale owner cannot start a flush after P1 (P5 fails), and the writes of
//! one it had started carry a smaller timestamp than any of the new owner's (P8).
//! Ratings: after a crash between the user rows and the totals, each user row is
//! either untouched (`last_offset < first`: the old rating is `rating`) or written
//! by this very flush (`last_offset = through`: the old rating is `prev_rating`),
//! so the totals come out exactly once.
//!
//! Which fence does what. P5's condition is what stops a replaced owner: without
//! it, an owner that keeps running after its successor's claim goes on flushing,
//! and the fencing simulation finds rows holding part of a flush. The epoch in
//! P8's timestamp is defence in depth: while P5 holds, a replaced owner's late
//! writes carry offsets up to its last `attempted`, which is exactly its
//! successor's fence, and at that offset both write the same values; so the
//! offset half of the timestamp already orders them, and the simulation stays
//! exact without the epoch (checked by mutation). The epoch makes the store
//! itself say which owner won (`WRITETIME`), which the R7 system test checks,
//! and keeps a late write losing should any other path ever let an older owner
//! write a higher offset.
//!
//! ## The proof: property tests in this crate
//!
//! - `rollup::tests::crashes_and_zombies_never_lose_or_double_count`: the whole
//!   protocol simulated (P1, P2, P4, P5, P7–P9) against a last-write-wins store:
//!   owners crash after writing any number of a flush's rows, stale owners'
//!   ("zombies'") writes land after a newer owner's flush. After every single
//!   write, every row equals the ledger up to its `last_offset`; at the end, every
//!   row equals the ledger of the whole log.
//! - `protocol::fencing::replaced_owners_that_keep_running_never_lose_or_double_count`
//!   (P1, P2, P5, P8, P9): owners are replaced between any two steps and are not
//!   told; they keep folding, flushing and writing, interleaved step by step with
//!   their successors, until P5 or a refused commit stops them; the store's
//!   `mark_attempted` keeps its `IF epoch = ?`. Same checks as above, and no flush
//!   may find a partial overlap. Dropping P5's condition makes it fail.
//! - `ratings::tests::crashes_mid_flush_never_count_twice`: flushes of ratings and
//!   re-ratings cut after any number of user rows and replayed: each video's sum and
//!   count equal "each user's last rating".
//! - `cache::tests::the_cache_never_lies` (P6): through reads, writes, sweeps and a
//!   tiny per-partition cap, the cache never claims a row, or a row's absence, that
//!   the store contradicts.
//! - `dedup::tests::matches_the_rule_and_replays_identically` (P3, P4): the window
//!   drops exactly what the rule says, and a window primed from the log decides a
//!   replay exactly as the first pass did.
//! - `rollup::tests::rollup_rows_agree_with_each_other`: a plan's minute, hour,
//!   day and all-time deltas sum to the same totals.
//!
//! ## Tests
//!
//! Unit tests here: `rollup::tests::a_fenced_buffer_flushes_exactly_at_the_fence`
//! (P2), `the_last_offset_rule_adds_skips_or_refuses` (P7),
//! `timestamps_order_by_epoch_then_offset` (P8),
//! `timestamp::tests::the_domain_is_where_timestamps_order_by_epoch_then_offset`
//! (P8), `protocol::fencing::an_owner_paused_between_flushes_is_refused_at_its_next_mark`
//! and `an_owner_paused_mid_flush_writes_late_and_loses` (P5, P8),
//! `a_flush_plans_minute_hour_day_and_total_rows`,
//! `signed_in_views_become_one_activity_per_user_video_and_minute`;
//! `ratings::tests::re_rating_replaces_and_the_buffer_keeps_the_latest`;
//! `dedup::tests::repeats_inside_the_window_are_dropped`. In the aggregator:
//! `decode::tests` (P4: what is poison, and why; a newer type is not),
//! `start::tests` (P3a: every way an offset can fall outside the log).
//!
//! System tests (`e2e/tests/`, the real Kafka and Cassandra, the aggregator as a
//! child process, every count compared with a ledger of what was sent):
//!
//! - `crash.rs`: `sigkill_mid_stream_twice_still_exact` (P1, P2, P7: SIGKILL in
//!   the middle of a flush, twice, while events flow; each successor completes the
//!   flush in doubt at its fence and skips rows already written),
//!   `dies_halfway_through_a_flush_and_the_successor_completes_it` (P2, P7, P8: an
//!   abort after 300 row writes).
//! - `rebalance.rs`: `rebalances_while_events_flow_stay_exact` (P10: a member
//!   leaves with SIGTERM, another joins; nothing is left in doubt),
//!   `a_member_killed_mid_flush_hands_its_partitions_over_exactly` (P1, P2, P7).
//! - `zombie.rs` (R7): `a_paused_owner_woken_after_its_successor_took_over_is_refused_at_p5`
//!   (P5: SIGSTOP before the mark, SIGCONT after the successor's claim),
//!   `a_paused_owner_woken_mid_flush_writes_late_and_loses` (P8: SIGSTOP after the
//!   first write of a flush; the late writes carry the old epoch and lose).
//! - `halts.rs` (P3a, P4, P7, P8, P11): an unknown event type, an unwritable
//!   dead-letter topic, records deleted before they were counted, a recreated
//!   topic, a grown topic, a row from another partition, an epoch past the
//!   timestamp domain; each halts only its partition, and resuming ends exact.
//! - `cassandra_outage.rs`: `cassandra_killed_and_restarted_mid_flush_stays_exact`
//!   (P8, P9: retried writes, nothing committed past what is written).
//! - `dedup.rs`: `retried_event_ids_count_once_across_owners` (P3, P4),
//!   `a_retry_after_a_long_outage_still_counts_once` (P3: the window in log time).
//! - `ratings.rs`: `dies_halfway_through_a_ratings_flush_and_ends_exact` (P7, P8
//!   for ratings), `re_rating_replaces_and_every_shape_agrees`.
//! - `end_to_end.rs`: `counts_equal_the_ledger_for_every_range` (every step, and
//!   P4's dead letters).
//!
//! ## Next: per-series rounds, R1–R7 (issue 15; [`rounds`](crate::rounds))
//!
//! P4–P9 write every row a flush touched, so under a long tail a flush costs about
//! one row per event. `counting::rounds` lets each series (a video and an event
//! type) be written on its own cadence instead; it is built and property-tested
//! here and not yet used by the aggregator. What changes, step by step:
//!
//! - **R1 Claim** = P1 and P2's read of `attempted = A`; the committed offset `c` now
//!   trails the oldest pending series, so `c..=A` may span many rounds.
//! - **R2 Census** (new, beside P3): read the log `c..=A` for its series and each
//!   series' floor, its all-time row's `last_offset` (the priming read can go on to
//!   `A` and collect them).
//! - **R3 Fold** = P4, skipping an event at or below its series' floor.
//! - **R4 Round** replaces P2's fence and P5: the first round after a claim is at
//!   exactly `A` and takes every pending series; later rounds take the due series at
//!   the last offset folded. Each records `attempted` `IF epoch = <mine>`, as P5.
//! - **R5 Resolve** = P7 per series, `first` being the series' first pending offset.
//! - **R6 Write** = P8, one series at a time, its all-time row last (the floor),
//!   in the series' last single-partition batch (atomic in Cassandra).
//! - **R7 Commit**: the first offset still pending in any series, not `through + 1`.
//!   A failed commit needs no retry before the next round: the census covers any
//!   number of complete rounds.
//!
//! Why it is exact, and the simulation that checks it
//! (`rounds::tests::rounds_on_any_schedule_never_lose_or_double_count`), are in
//! [`rounds`](crate::rounds)'s module doc.
//!
//! [`PartitionBuffer`]: crate::PartitionBuffer
//! [`PartitionBuffer::new`]: crate::PartitionBuffer::new
//! [`PartitionBuffer::take`]: crate::PartitionBuffer::take
//! [`Folded::FlushNow`]: crate::Folded::FlushNow
//! [`FlushPlan`]: crate::FlushPlan
//! [`FlushPlan::resolve`]: crate::FlushPlan::resolve
//! [`FlushPlan::commit_offset`]: crate::FlushPlan::commit_offset
//! [`Overlap`]: crate::Overlap
//! [`write_timestamp`]: crate::write_timestamp
//! [`timestamp::check_domain`]: crate::timestamp::check_domain
//! [`RowCache`]: crate::RowCache
//! [`DedupWindow`]: crate::DedupWindow
//! [`DedupWindow::observe`]: crate::DedupWindow::observe

#[cfg(test)]
mod fencing;
