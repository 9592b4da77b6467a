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
//! - **P3 Prime.** If deduplication is on, re-read the log from a dedup window
//!   before now up to the committed offset into a [`DedupWindow`]
//!   (`aggregator/src/priming.rs`), so replayed messages are kept or dropped exactly
//!   as the previous owner decided. A partial window is never used: priming is
//!   retried until it is whole.
//!
//! Consuming (`aggregator/src/owner.rs`, `Owner::handle`):
//!
//! - **P4 Fold.** Each message, in offset order, into the partition's
//!   [`PartitionBuffer`]: counts per (video, type, minute), each user's latest
//!   rating per video, signed-in views for activity feeds. An undecodable or invalid
//!   message goes to the dead-letter topic, acknowledged before its offset can be
//!   committed, and still consumes its offset (`aggregator/src/decode.rs`,
//!   `dead_letter.rs`); a repeat of a client-chosen event id within the window is
//!   dropped ([`DedupWindow::observe`]). When the buffer reaches its fence
//!   ([`Folded::FlushNow`]) it is flushed at once.
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
//!   rather than guess. Ratings follow the same rule per user row and per video's
//!   totals ([`ratings::resolve_video`](crate::ratings::resolve_video)).
//! - **P8 Write.** Every row with `last_offset = through` at the Cassandra timestamp
//!   [`write_timestamp`]`(epoch, through)`, so a stale owner's late write loses
//!   whatever the order of arrival; then the hour and day copies keyed by bucket
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
//! ## The proof: property tests in this crate
//!
//! - `rollup::tests::crashes_and_zombies_never_lose_or_double_count`: the whole
//!   protocol simulated (P1, P2, P4, P5, P7–P9) against a last-write-wins store:
//!   owners crash after writing any number of a flush's rows, stale owners'
//!   ("zombies'") writes land after a newer owner's flush. After every single
//!   write, every row equals the ledger up to its `last_offset`; at the end, every
//!   row equals the ledger of the whole log.
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
//! `a_flush_plans_minute_hour_day_and_total_rows`,
//! `signed_in_views_become_one_activity_per_user_video_and_minute`;
//! `ratings::tests::re_rating_replaces_and_the_buffer_keeps_the_latest`;
//! `dedup::tests::repeats_inside_the_window_are_dropped`. In the aggregator:
//! `decode::tests` (P4: what is poison, and why).
//!
//! System tests (`e2e/tests/`, the real Kafka and Cassandra, the aggregator as a
//! child process, every count compared with a ledger of what was sent):
//!
//! - `crash.rs`: `sigkill_mid_stream_twice_still_exact` (P1, P2: SIGKILL while
//!   events flow), `dies_halfway_through_a_flush_and_the_successor_completes_it`
//!   (P2, P7, P8: an abort after 300 row writes; the successor flushes at the fence
//!   and skips rows already written).
//! - `rebalance.rs`: `rebalances_while_events_flow_stay_exact` (P10: a member
//!   leaves with SIGTERM, another joins).
//! - `cassandra_outage.rs`: `cassandra_killed_and_restarted_mid_flush_stays_exact`
//!   (P8, P9: retried writes, nothing committed past what is written).
//! - `dedup.rs`: `retried_event_ids_count_once_across_owners` (P3, P4).
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
//! - **R6 Write** = P8, one series at a time, its all-time row last (the floor).
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
//! [`RowCache`]: crate::RowCache
//! [`DedupWindow`]: crate::DedupWindow
//! [`DedupWindow::observe`]: crate::DedupWindow::observe

#[cfg(test)]
mod fencing;
