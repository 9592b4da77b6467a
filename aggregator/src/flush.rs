//! Writing what the owner folded, then committing: flush rounds of count series
//! for the events topic (steps R4–R7 of `counting::rounds`), and whole flushes of
//! ratings (P5–P9 of `counting::protocol`).
//!
//! **Where they run.** The poll loop's rounds of due series (`start_rounds`) run
//! beside it, one task per partition's round, while the poll thread goes on
//! polling and folding every partition, that one included: a round under load
//! takes seconds, and a poll loop that waited for it stopped folding meanwhile
//! (freshness and drain time suffered). R4 still holds per partition: at most one
//! round of a partition is in flight, and the next is taken only after the poll
//! thread settled the previous one (`complete`: its row cache back in the slot,
//! its outcome applied, its offset committed; rdkafka's consumer stays on that
//! thread). What must finish before the owner goes on runs on the poll thread
//! (`flush`): the fenced round after a claim, a revoke (nothing is committed for a
//! partition after its revoke returns), a halt, shutdown, memory pressure, and
//! ratings; each first waits for the partition's round in flight (`drain`).
//! `flush.concurrency` bounds the Cassandra requests of all of them together (one
//! semaphore in `Shared`).
//!
//! A **round** of one partition writes the series that are due at `b`, the last
//! offset folded (or, first after a claim, every pending series at exactly
//! `attempted`, R4). It records `attempted = b` with `IF epoch = <mine>` (R4, as
//! P5), reads the rows its cache does not know (the all-time rows first: a series
//! without one has no rows, so nothing else of it is read; then one range read per
//! granularity of a series), applies the `last_offset` rule per series (R5), and
//! writes (R6) in two waves, the second only after the first was acknowledged: the
//! hour and day copies for trending, the activity entries and viewer sketches, and
//! the leading batches of the rare series whose rows do not fit one batch; then
//! each series' last batch, which holds its all-time row, whose `last_offset` is
//! the series' floor for a later census. The `counts` table keeps a series in one
//! Cassandra partition, which applies a batch atomically, so nearly every series
//! is one mutation; up to `flush.series_per_request` series (on the same
//! replicas) share one request, and so do the all-time reads of new series (an
//! `IN` read). Only then does it commit the first offset still pending in any
//! series (R7). A failed commit needs no retry of its own: the next round's commit
//! covers it, and a census covers any number of complete rounds.
//!
//! A **ratings flush** of offsets `first..=through` marks `attempted` (P5), reads
//! and resolves each video's totals and users (P7), writes user rows then totals
//! and the activity entries (P8), and only then commits `through + 1` (P9).
//!
//! Every Cassandra request is retried until it lands; a round or flush ends early
//! only when a newer owner fenced it, when a row holds part of it or was written
//! from another Kafka partition (offsets rewound, or the topic grew: the
//! partition halts rather than guess, P11), or when shutdown ran out of patience
//! (nothing more is committed for that partition; it is replayed).

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use counting::ratings::{RatingChange, RatingOverlap, resolve_video};
use counting::rounds::SeriesWrites;
use counting::{Activity, FlushPlan, Granularity, Overlap, RangeRead, Round, RowCache, RowKey, RowWrite};
use futures::StreamExt;
use futures::future::join_all;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::config::FlushConfig;
use crate::fault;
use crate::halt::{self, Halt, Reason};
use crate::metrics::{
    COMMIT_ERRORS, EVENTS_FLUSHED, FENCED_OUT, FLUSH_DURATION, RATED_VIDEOS, ROUNDS, ROW_READS, ROWS_SKIPPED,
    ROWS_WRITTEN, SERIES_UNREAD, SERIES_WRITTEN, WRITE_REQUESTS, op,
};
use crate::owner::{Family, Shared};
use crate::ownership::{Slot, SlotState};
use crate::store::rollups::{ForeignRow, RangeRows};

/// Rows per write request of the smaller tables (the by-bucket copies, activity
/// entries, who viewed): a single-partition unlogged batch. Their rows carry fewer
/// cells than a `counts` row, and the stack's Cassandra logged no batch-size
/// warning through the 2026-11-30 benchmark runs, which write them 50 at a time.
const MAX_BATCH_ROWS: usize = 50;

/// Rows of `counts` per request, whether one series' batch or several series in
/// one request (`flush.series_per_request`). Cassandra counts a `counts` row at
/// about 190 bytes (value, offset and tally cells, each with its timestamp and
/// TTL): eight series of four rows measured 6.0 to 6.9 KiB and logged a warning
/// per batch. 24 rows stay under the 5 KiB `batch_size_warn_threshold`: six such
/// series, or one long series' batch (until 2026-11-30 a series was split at 50
/// rows, about 9.5 KiB: a warning per batch for late events over many minutes).
const MAX_REQUEST_ROWS: usize = 24;

/// A stored row holds some but not all of a flush (committed offsets moved back
/// by hand), or another Kafka partition wrote it (the topic grew).
#[derive(Debug, thiserror::Error)]
pub enum Conflict {
    #[error(transparent)]
    Rows(#[from] Overlap),
    #[error(transparent)]
    Ratings(#[from] RatingOverlap),
    #[error(transparent)]
    Foreign(#[from] ForeignRow),
}

/// What became of one partition's round or flush.
enum Outcome {
    Written {
        commit: i64,
        rows: usize,
        skipped: usize,
        series: usize,
        events: u64,
    },
    /// Another owner claimed the partition (P5, R4 failed).
    Fenced,
    /// Going on would mean guessing (P11): halt the partition.
    Halt(Halt),
    /// Shutdown ran out of patience while retrying; nothing was committed.
    Abandoned,
}

enum Work {
    Round(Round),
    Ratings(FlushPlan),
}

/// One partition's share of a call.
struct Job {
    partition: i32,
    epoch: i64,
    work: Work,
    cache: RowCache,
}

/// A round written beside the poll loop (`start_rounds`). Its task hands back the
/// slot's row cache and the outcome; only the poll thread applies them (`settle`).
pub(crate) struct InFlight {
    task: JoinHandle<(RowCache, Outcome)>,
    started: Instant,
    /// The round itself, shared with its task: readers look their series up in
    /// it until it is settled (`counting::fresh`, `Round::held_part`), so taking
    /// a round builds nothing more while the poll loop holds the owner.
    pub round: Arc<Round>,
}

/// Writes everything `parts` hold and commits their offsets, blocking the poll
/// thread until it is done: a round of every pending series (R4–R7: the fenced
/// round after a claim, on revoke, at shutdown, before a halt, under memory
/// pressure), or a ratings flush of the whole buffer (P5–P9). A partition's round
/// in flight is settled first: R4 takes the next round only after it.
pub(crate) fn flush<C: ConsumerContext>(
    shared: &Shared,
    consumer: &BaseConsumer<C>,
    slots: &mut HashMap<i32, Slot>,
    parts: &[i32],
) {
    drain(shared, consumer, slots, parts);
    let start = Instant::now();
    let topic = shared.topic.as_str();
    let mut jobs = Vec::new();
    let mut to_commit = Vec::new();
    for &p in parts {
        let Some(slot) = slots.get_mut(&p).filter(|s| s.may_flush()) else { continue };
        match shared.family {
            Family::Counts => match slot.counts.take_all() {
                None => {}
                // Nothing to write: the commit may still move (R7).
                Some(r) if r.is_empty() && Some(r.commit) > slot.committed => to_commit.push((p, r.commit)),
                Some(r) if r.is_empty() => {}
                Some(r) => jobs.push(Job {
                    partition: p,
                    epoch: slot.epoch,
                    work: Work::Round(r),
                    cache: std::mem::take(&mut slot.cache),
                }),
            },
            Family::Ratings => {
                // P9: an earlier flush's commit failed; it must land before another
                // flush, or the in-doubt range would span two flushes.
                if let Some(offset) = slot.pending_commit {
                    if commit(consumer, topic, &[(p, offset)]).is_err() {
                        continue;
                    }
                    slot.pending_commit = None;
                    slot.committed = Some(offset);
                }
                // `None` while the buffer is short of its fence (P2): flush exactly there.
                if let Some(plan) = slot.buffer.take() {
                    jobs.push(Job {
                        partition: p,
                        epoch: slot.epoch,
                        work: Work::Ratings(plan),
                        cache: RowCache::default(),
                    });
                }
            }
        }
    }
    if jobs.is_empty() && to_commit.is_empty() {
        return;
    }
    if !jobs.is_empty() {
        shared.fault_paused.store(false, Ordering::SeqCst);
    }
    let results = shared.rt.block_on(write_jobs(shared, jobs));
    for (p, cache, outcome) in results {
        let Some(slot) = slots.get_mut(&p) else { continue };
        if let Some(offset) = settle(shared, consumer, p, slot, cache, outcome) {
            to_commit.push((p, offset));
        }
    }
    commit_settled(consumer, topic, slots, &to_commit);
    FLUSH_DURATION.histogram().record(start.elapsed().as_secs_f64());
}

/// The poll loop's rounds (R4–R7), written beside it: settles the rounds that
/// completed, then, in each partition of `parts` with no round in flight, takes
/// the series due at `now_ms` and spawns their round on the runtime. The poll
/// thread goes on folding every partition meanwhile (new events of a series in
/// flight start a new pending entry past the round's `through`). With
/// `idle_commit`, a partition with nothing due still commits when its first
/// pending offset moved.
pub(crate) fn start_rounds<C: ConsumerContext>(
    shared: &Arc<Shared>,
    consumer: &BaseConsumer<C>,
    slots: &mut HashMap<i32, Slot>,
    parts: &[i32],
    now_ms: i64,
    idle_commit: bool,
) {
    debug_assert_eq!(shared.family, Family::Counts, "ratings flush whole, on the poll thread");
    complete(shared, consumer, slots);
    let mut to_commit = Vec::new();
    // Fault injection: `mid_write` and `mid_viewers` pause once per flush. Here a
    // flush is the rounds started while none was in flight, with those started
    // before they all settled: as often as the flushes that held the poll loop
    // paused (a pause per tick's rounds would hold the one permit of the fault
    // tests' `flush.concurrency = 1` back to back); `fault::rearm` says when else.
    let mut fresh = slots.values().all(|s| s.round.is_none());
    for &p in parts {
        // R4: one round at a time per partition; the next one waits for its settling.
        let Some(slot) = slots.get_mut(&p).filter(|s| s.may_flush() && s.round.is_none()) else { continue };
        let moved = idle_commit && slot.counts.commit_offset() > slot.committed;
        if !moved && !slot.counts.is_due(now_ms, &shared.cadence) {
            continue;
        }
        match slot.counts.take_due(now_ms, &shared.cadence) {
            None => {}
            // Nothing to write and nothing in flight: the commit may still move (R7).
            Some(r) if r.is_empty() && Some(r.commit) > slot.committed => to_commit.push((p, r.commit)),
            Some(r) if r.is_empty() => {}
            Some(round) => {
                fault::rearm(&shared.cfg, &shared.fault_paused, fresh);
                fresh = false;
                let (task_shared, epoch, mut cache) = (Arc::clone(shared), slot.epoch, std::mem::take(&mut slot.cache));
                let round = Arc::new(round);
                let task_round = Arc::clone(&round);
                // Driven by `block_on` on a thread of the runtime's blocking pool,
                // not `spawn`: the round's future holds borrowing iterators and
                // closures across awaits, which rustc cannot prove `Send` (its
                // higher-ranked lifetimes). Its requests still run on the runtime.
                let task = shared.rt.spawn_blocking(move || {
                    let shared = &*task_shared;
                    shared.rt.block_on(async {
                        fault::pause_before_mark(&shared.cfg).await;
                        let outcome = write_round(shared, &shared.permits, p, epoch, &mut cache, &task_round).await;
                        (cache, outcome)
                    })
                });
                slot.round = Some(InFlight { task, started: Instant::now(), round });
            }
        }
    }
    commit_settled(consumer, &shared.topic, slots, &to_commit);
}

/// Settles every round that completed (the poll loop calls it every turn): the
/// cache goes back to its slot, the outcome is applied, the offset committed (R7).
pub(crate) fn complete<C: ConsumerContext>(
    shared: &Shared,
    consumer: &BaseConsumer<C>,
    slots: &mut HashMap<i32, Slot>,
) {
    let done: Vec<i32> =
        slots.iter().filter(|(_, s)| s.round.as_ref().is_some_and(|r| r.task.is_finished())).map(|(p, _)| *p).collect();
    settle_rounds(shared, consumer, slots, &done);
}

/// Waits for the rounds in flight of `parts` and settles them: before anything
/// else is taken or decided for those partitions (a revoke, a fence, a halt,
/// shutdown, memory pressure, a new claim).
pub(crate) fn drain<C: ConsumerContext>(
    shared: &Shared,
    consumer: &BaseConsumer<C>,
    slots: &mut HashMap<i32, Slot>,
    parts: &[i32],
) {
    let busy: Vec<i32> = parts.iter().copied().filter(|p| slots.get(p).is_some_and(|s| s.round.is_some())).collect();
    settle_rounds(shared, consumer, slots, &busy);
}

/// Waits for the rounds in flight of `parts` and drops what became of them: the
/// partitions are let go without a revoke's flush (a rebalance error), so nothing
/// more is committed for them. A round that completed is skipped by the next
/// owner's census (R2); one cut short is its round in doubt (R4).
pub(crate) fn forget(shared: &Shared, slots: &mut HashMap<i32, Slot>, parts: &[i32]) {
    for p in parts {
        if let Some(InFlight { task, .. }) = slots.get_mut(p).and_then(|s| s.round.take())
            && let Err(e) = shared.rt.block_on(task)
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

fn settle_rounds<C: ConsumerContext>(
    shared: &Shared,
    consumer: &BaseConsumer<C>,
    slots: &mut HashMap<i32, Slot>,
    parts: &[i32],
) {
    let mut to_commit = Vec::new();
    for &p in parts {
        let Some(slot) = slots.get_mut(&p) else { continue };
        let Some(InFlight { task, started, .. }) = slot.round.take() else { continue };
        // The task is never aborted: an error is its panic, which the old blocking
        // flush would have raised on this thread too.
        let (cache, outcome) = shared.rt.block_on(task).unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        FLUSH_DURATION.histogram().record(started.elapsed().as_secs_f64());
        if let Some(offset) = settle(shared, consumer, p, slot, cache, outcome) {
            to_commit.push((p, offset));
        }
    }
    commit_settled(consumer, &shared.topic, slots, &to_commit);
}

/// Applies what became of partition `p`'s round or flush, on the poll thread,
/// and says what it lets the owner commit.
fn settle<C: ConsumerContext>(
    shared: &Shared,
    consumer: &BaseConsumer<C>,
    p: i32,
    slot: &mut Slot,
    cache: RowCache,
    outcome: Outcome,
) -> Option<i64> {
    let topic = shared.topic.as_str();
    slot.cache = cache;
    match outcome {
        Outcome::Written { commit, rows, skipped, series, events } => {
            ROWS_WRITTEN.counter().increment(rows as u64);
            ROWS_SKIPPED.counter().increment(skipped as u64);
            SERIES_WRITTEN.counter().increment(series as u64);
            EVENTS_FLUSHED.counter().increment(events);
            if shared.family == Family::Ratings {
                slot.pending_commit = Some(commit);
            } else {
                ROUNDS.counter().increment(1);
            }
            return Some(commit);
        }
        Outcome::Fenced => {
            FENCED_OUT.counter_with(&[("topic", topic.to_owned())]).increment(1);
            tracing::warn!(partition = p, epoch = slot.epoch, "a newer owner claimed this partition; stopping it here");
            slot.state = SlotState::Fenced;
            halt::pause(consumer, topic, p);
        }
        Outcome::Halt(h) => {
            halt::pause(consumer, topic, p);
            slot.state = SlotState::Halted(h.reason);
            slot.buffer = counting::PartitionBuffer::default();
            slot.counts = counting::PartitionCounts::default();
            halt::record(shared, p, slot.epoch, &h);
        }
        Outcome::Abandoned => {
            // What it took is neither written nor pending any more: committing
            // anything later for this partition could skip it.
            slot.state = SlotState::Abandoned;
            tracing::warn!(partition = p, "flush abandoned at shutdown; will be replayed");
        }
    }
    None
}

/// P9, R7: commits what settled rounds and flushes made durable.
fn commit_settled<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    slots: &mut HashMap<i32, Slot>,
    to_commit: &[(i32, i64)],
) {
    if !to_commit.is_empty() && commit(consumer, topic, to_commit).is_ok() {
        for (p, offset) in to_commit {
            if let Some(slot) = slots.get_mut(p) {
                slot.pending_commit = None;
                slot.committed = Some(*offset);
            }
        }
    }
}

/// Commits `offsets` of `topic` (P9, R7). A failure is counted and logged; a
/// ratings flush keeps the offset pending and commits it before its next flush.
fn commit<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    offsets: &[(i32, i64)],
) -> Result<(), KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for &(p, offset) in offsets {
        tpl.add_partition_offset(topic, p, Offset::Offset(offset)).expect("valid offset");
    }
    consumer.commit(&tpl, CommitMode::Sync).inspect_err(|e| {
        COMMIT_ERRORS.counter().increment(1);
        tracing::warn!(error = %e, ?offsets, "offset commit failed; will retry with the next flush");
    })
}

/// Row writes so far, for `flush.fail_after_writes`.
static WRITES: AtomicU64 = AtomicU64::new(0);

/// Fault injection (`flush.fail_after_writes`): counts `rows` written and aborts the
/// process, in the middle of a flush, once the configured number is reached.
fn maybe_abort(cfg: &FlushConfig, rows: usize) {
    let n = rows as u64;
    if cfg.fail_after_writes > 0 && WRITES.fetch_add(n, Ordering::SeqCst) + n >= cfg.fail_after_writes {
        tracing::error!("fault injection: aborting in the middle of a flush");
        std::process::abort();
    }
}

/// Writes every job concurrently, within `flush.concurrency` requests in flight
/// (shared with the rounds running beside the poll loop).
async fn write_jobs(shared: &Shared, jobs: Vec<Job>) -> Vec<(i32, RowCache, Outcome)> {
    fault::pause_before_mark(&shared.cfg).await;
    let permits = &shared.permits;
    join_all(jobs.into_iter().map(|job| async move {
        let Job { partition, epoch, work, mut cache } = job;
        let outcome = match work {
            Work::Round(round) => write_round(shared, permits, partition, epoch, &mut cache, &round).await,
            Work::Ratings(plan) => write_ratings_flush(shared, permits, partition, epoch, &plan).await,
        };
        (partition, cache, outcome)
    }))
    .await
}

/// R4: records `attempted = through` if this owner still holds the epoch.
async fn mark(shared: &Shared, p: i32, epoch: i64, through: i64) -> Option<Outcome> {
    let (store, topic) = (&*shared.store, shared.topic.as_str());
    let marked = shared.retry.cassandra(op::MARK_ATTEMPTED, || store.mark_attempted(topic, p, epoch, through)).await;
    match marked {
        None => Some(Outcome::Abandoned),
        Some(false) => Some(Outcome::Fenced),
        Some(true) => None,
    }
}

/// R4–R6 for one partition's round.
async fn write_round(
    shared: &Shared,
    permits: &Semaphore,
    p: i32,
    epoch: i64,
    cache: &mut RowCache,
    round: &Round,
) -> Outcome {
    let (store, cfg) = (&*shared.store, &shared.cfg);
    let through = round.through;
    if let Err(e) = counting::timestamp::check_domain(epoch, through) {
        return Outcome::Halt(Halt::new(Reason::TimestampDomain, e.to_string(), Some(round.commit)));
    }
    // R4: say what is about to be written; fails if we are no longer the owner.
    if let Some(out) = mark(shared, p, epoch, through).await {
        return out;
    }
    // R5: learn the rows we do not know yet: first the all-time rows (a series
    // without one has no rows at all, outside the fenced round: no more reads for
    // it), then one range read per remaining series and granularity.
    if let Err(out) = read_ranges(shared, permits, p, cache, round.total_reads(cache), round.commit).await {
        return out;
    }
    SERIES_UNREAD.counter().increment(round.learn_absent_series(cache) as u64);
    let reads = cache.missing(round.series.iter().flat_map(|s| s.rows.iter().map(|(k, _)| k)));
    if let Err(out) = read_ranges(shared, permits, p, cache, reads, round.commit).await {
        return out;
    }
    // R5: the last_offset rule, per series.
    let mut resolved: Vec<SeriesWrites> = Vec::with_capacity(round.series.len());
    for s in &round.series {
        match s.resolve(through, |k| cache.lookup(k).expect("every row is known after the reads")) {
            Ok(w) => resolved.push(w),
            Err(e) => return overlap(e.into(), round.commit),
        }
    }
    // R6, first wave: the leading batches of series too big for one batch (few:
    // late events spread over many minutes), and beside them the hour and day
    // copies keyed by bucket for trending (of every such row of the round,
    // skipped ones too: a crash may have come between a row and its copy), the
    // activity entries, and the viewer sketches and who viewed. All before the
    // all-time rows, so a floor at this round means these landed too, and a
    // replay that the floor skips finds them written.
    let split: Vec<_> = resolved.iter().map(|w| w.batches(MAX_REQUEST_ROWS)).collect();
    let written: HashMap<RowKey, &RowWrite> = resolved.iter().flat_map(|r| &r.writes).map(|w| (w.key, w)).collect();
    let copies: Vec<(RowKey, i64, i64)> = round
        .series
        .iter()
        .flat_map(|s| &s.rows)
        .filter(|(k, _)| matches!(k.granularity, Granularity::Hour | Granularity::Day))
        .filter_map(|(k, _)| match written.get(k) {
            Some(w) => Some((*k, w.value, w.last_offset)),
            None => cache.lookup(k).flatten().map(|row| (*k, row.value, row.last_offset)),
        })
        .collect();
    let write = |series| async move {
        store.write_series(series, p, epoch).await?;
        maybe_abort(cfg, series.iter().map(|rows| rows.len()).sum());
        fault::pause_after_write(cfg, &shared.fault_paused).await;
        Ok::<_, platform::cassandra::CassandraError>(())
    };
    // Several series to a request, each request's on the same replicas.
    let cluster = store.session().get_cluster_state();
    let replicas = |rows: &&[RowWrite]| {
        rows.first().map_or(0, |w| store.replicas_of(&cluster, w.key.video_id, w.key.kind.as_str()))
    };
    // A series too big for one batch goes alone: its leading batches one by one.
    let leading: Vec<Vec<&[RowWrite]>> =
        split.iter().flat_map(|(leading, _)| leading.clone()).map(|rows| vec![rows]).collect();
    let (landed, copied, active, viewed) = futures::join!(
        send_batches(shared, permits, op::WRITE, leading.iter().map(Vec::as_slice), write),
        write_copies(shared, permits, copies, epoch),
        write_activities(shared, permits, &round.activities, through, epoch),
        crate::viewers::write_viewers(shared, permits, &round.views, through, epoch)
    );
    if !(landed && copied && active && viewed) {
        // Some rows may hold this round and others not: forget them all.
        *cache = RowCache::default();
        return Outcome::Abandoned;
    }
    // R6, last wave: each series' last batch, with its all-time row (the series'
    // floor), one mutation for most series.
    let last: Vec<&[RowWrite]> = split.iter().map(|(_, last)| *last).filter(|rows| !rows.is_empty()).collect();
    let last = requests(last, cfg.series_per_request, MAX_REQUEST_ROWS, |rows| rows.len(), replicas);
    if !send_batches(shared, permits, op::WRITE, last.iter().map(Vec::as_slice), write).await {
        *cache = RowCache::default();
        return Outcome::Abandoned;
    }
    for w in resolved.iter().flat_map(|r| &r.writes) {
        cache.put(w.key, w.stored());
    }
    Outcome::Written {
        commit: round.commit,
        rows: resolved.iter().map(|r| r.writes.len()).sum(),
        skipped: resolved.iter().map(|r| r.skipped).sum(),
        series: round.series.len(),
        events: round.events,
    }
}

/// Reads `reads` (within the flush's permits) into the cache, up to
/// `flush.series_per_request` series of one shape and the same replicas to a
/// request. `Err`: abandoned at shutdown, or a row another Kafka partition wrote
/// (halt, at `commit`).
async fn read_ranges(
    shared: &Shared,
    permits: &Semaphore,
    p: i32,
    cache: &mut RowCache,
    reads: Vec<RangeRead>,
    commit: i64,
) -> Result<(), Outcome> {
    let (store, retry) = (&*shared.store, &shared.retry);
    ROW_READS.counter().increment(reads.len() as u64);
    let cluster = store.session().get_cluster_state();
    let key = |r: &RangeRead| (r.shape(), store.replicas_of(&cluster, r.part.video_id, r.part.kind.as_str()));
    let requests = requests(reads, shared.cfg.series_per_request, usize::MAX, |_| 1, key);
    type Answer<'r> = Option<(&'r [RangeRead], Vec<RangeRows>)>;
    let read: Vec<Answer<'_>> = futures::stream::iter(requests.iter().map(Vec::as_slice))
        .map(|rs| async move {
            let _permit = permits.acquire().await.expect("semaphore open");
            retry.cassandra(op::READ, || store.read_ranges(rs, p)).await.map(|rows| (rs, rows))
        })
        .buffer_unordered(shared.cfg.concurrency.max(1))
        .collect()
        .await;
    for r in read {
        let Some((ranges, answers)) = r else { return Err(Outcome::Abandoned) };
        for (range, (rows, foreign)) in ranges.iter().zip(answers) {
            if let Some(f) = foreign {
                return Err(overlap(Conflict::from(f), commit));
            }
            cache.learn(range, rows);
        }
    }
    Ok(())
}

/// P5–P8 for one partition's ratings.
async fn write_ratings_flush(shared: &Shared, permits: &Semaphore, p: i32, epoch: i64, plan: &FlushPlan) -> Outcome {
    let through = plan.through_offset;
    debug_assert!(plan.deltas.is_empty(), "counts are written in rounds");
    if let Err(e) = counting::timestamp::check_domain(epoch, through) {
        return Outcome::Halt(Halt::new(Reason::TimestampDomain, e.to_string(), Some(plan.first_offset)));
    }
    // P5: say what is about to be written; fails if we are no longer the owner.
    if let Some(out) = mark(shared, p, epoch, through).await {
        return out;
    }
    // P8, ratings: user rows, then each video's totals.
    let (rated, rated_skipped) = match write_ratings(shared, permits, plan, epoch).await {
        Ok(Some(n)) => n,
        Ok(None) => return Outcome::Abandoned,
        Err(e) => return overlap(e.into(), plan.first_offset),
    };
    // P8, activity feed entries (ratings): keyed by their events, so a replay
    // rewrites the same rows.
    if !write_activities(shared, permits, &plan.activities, through, epoch).await {
        return Outcome::Abandoned;
    }
    Outcome::Written {
        commit: plan.commit_offset(),
        rows: rated,
        skipped: rated_skipped,
        series: 0,
        events: plan.events,
    }
}

fn overlap(c: Conflict, at: i64) -> Outcome {
    Outcome::Halt(Halt::new(Reason::Overlap, c.to_string(), Some(at)))
}

/// Writes the by-bucket copies, a batch per `rollups_by_bucket` partition. `false`:
/// abandoned at shutdown.
async fn write_copies(shared: &Shared, permits: &Semaphore, mut copies: Vec<(RowKey, i64, i64)>, epoch: i64) -> bool {
    let store = &*shared.store;
    let part = |k: &RowKey| (k.kind, k.granularity, k.bucket_ms);
    copies.sort_unstable_by_key(|(k, _, _)| (part(k), k.video_id));
    let batches = copies.chunk_by(|a, b| part(&a.0) == part(&b.0)).flat_map(|c| c.chunks(MAX_BATCH_ROWS));
    send_batches(shared, permits, op::WRITE_COPY, batches, |rows| store.write_copies(rows, epoch)).await
}

/// Writes activity entries (sorted by user), a batch per user. `false`: abandoned.
async fn write_activities(
    shared: &Shared,
    permits: &Semaphore,
    activities: &[Activity],
    through: i64,
    epoch: i64,
) -> bool {
    let store = &*shared.store;
    let batches = activities.chunk_by(|a, b| a.user_id == b.user_id).flat_map(|c| c.chunks(MAX_BATCH_ROWS));
    let write = |rows| store.write_activities(rows, through, epoch);
    send_batches(shared, permits, op::WRITE_ACTIVITY, batches, write).await
}

/// Sends `batches` concurrently (within the flush's permits), each retried until it
/// lands. `false`: some batch was abandoned at shutdown.
async fn send_batches<'a, T: 'a, E, F, Fut>(
    shared: &Shared,
    permits: &Semaphore,
    op: &'static str,
    batches: impl Iterator<Item = &'a [T]>,
    write: F,
) -> bool
where
    E: Display,
    F: Fn(&'a [T]) -> Fut + Copy,
    Fut: Future<Output = Result<(), E>>,
{
    let results: Vec<bool> = futures::stream::iter(batches)
        .map(|rows| async move {
            let _permit = permits.acquire().await.expect("semaphore open");
            WRITE_REQUESTS.counter().increment(1);
            shared.retry.cassandra(op, || write(rows)).await.is_some()
        })
        .buffer_unordered(shared.cfg.concurrency.max(1))
        .collect()
        .await;
    results.into_iter().all(|ok| ok)
}

/// `items` as Cassandra requests: at most `per_request` items (at least one) and
/// `max_weight` of weight each (an item heavier than that alone), every item of
/// a request with the same `key` (e.g. the same replicas).
fn requests<T, K: Ord>(
    items: Vec<T>,
    per_request: usize,
    max_weight: usize,
    weight: impl Fn(&T) -> usize,
    key: impl Fn(&T) -> K,
) -> Vec<Vec<T>> {
    let mut keyed: Vec<(K, T)> = items.into_iter().map(|t| (key(&t), t)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(K, usize, Vec<T>)> = Vec::new();
    for (k, t) in keyed {
        let w = weight(&t);
        match out.last_mut() {
            Some((last, sum, group)) if *last == k && group.len() < per_request && *sum + w <= max_weight => {
                *sum += w;
                group.push(t);
            }
            _ => out.push((k, w, vec![t])),
        }
    }
    out.into_iter().map(|(_, _, group)| group).collect()
}

/// Applies the flush's ratings, video by video: read the totals and the users'
/// rows, resolve (see `counting::ratings`), write the user rows, then the totals.
/// `Ok(None)`: abandoned at shutdown. Counts (user rows written, videos already
/// holding the flush).
async fn write_ratings(
    shared: &Shared,
    permits: &Semaphore,
    plan: &FlushPlan,
    epoch: i64,
) -> Result<Option<(usize, usize)>, RatingOverlap> {
    let (store, cfg, retry) = (&*shared.store, &shared.cfg, &shared.retry);
    let (first, through) = (plan.first_offset, plan.through_offset);
    let videos = plan.ratings.chunk_by(|a, b| a.video_id == b.video_id);
    let results: Vec<Result<Option<usize>, RatingOverlap>> = futures::stream::iter(videos)
        .map(|changes: &[RatingChange]| async move {
            let _permit = permits.acquire().await.expect("semaphore open");
            let video = changes[0].video_id;
            let users: Vec<_> = changes.iter().map(|c| c.user_id).collect();
            let Some((totals, stored)) = retry.cassandra(op::READ_RATINGS, || store.read_ratings(video, &users)).await
            else {
                return Ok(None);
            };
            let Some(w) = resolve_video(first, through, changes, totals, &stored)? else {
                return Ok(Some(0));
            };
            for chunk in w.users.chunks(MAX_BATCH_ROWS) {
                let write = || store.write_user_ratings(video, chunk, through, epoch);
                if retry.cassandra(op::WRITE_RATINGS, write).await.is_none() {
                    return Ok(None);
                }
                WRITE_REQUESTS.counter().increment(1);
                maybe_abort(cfg, chunk.len());
            }
            if retry.cassandra(op::WRITE_TOTALS, || store.write_totals(video, w.totals, epoch)).await.is_none() {
                return Ok(None);
            }
            RATED_VIDEOS.counter().increment(1);
            Ok(Some(w.users.len()))
        })
        .buffer_unordered(cfg.concurrency.max(1))
        .collect()
        .await;
    let (mut written, mut skipped) = (0, 0);
    for r in results {
        match r? {
            None => return Ok(None),
            Some(0) => skipped += 1,
            Some(n) => written += n,
        }
    }
    Ok(Some((written, skipped)))
}

#[cfg(test)]
mod tests {
    use super::requests;

    #[test]
    fn requests_keep_one_key_and_respect_both_caps() {
        // (key, weight): keys are replica sets; weights are rows.
        let items = vec![(2, 4), (1, 4), (2, 4), (1, 40), (1, 4), (2, 4), (1, 4), (3, 60)];
        let out = requests(items.clone(), 2, 50, |&(_, w)| w, |&(k, _)| k);
        for group in &out {
            assert!(group.iter().all(|(k, _)| *k == group[0].0), "one key per request: {out:?}");
            assert!(group.len() <= 2);
            assert!(group.len() == 1 || group.iter().map(|(_, w)| w).sum::<usize>() <= 50, "{out:?}");
        }
        // Nothing lost or repeated.
        let mut all: Vec<_> = out.iter().flatten().copied().collect();
        let mut sent = items;
        all.sort_unstable();
        sent.sort_unstable();
        assert_eq!(all, sent);
        // Key 1: (4, 40) fits 50 but (4, 40, 4) is three; key 3's 60 rows go alone.
        assert_eq!(out.len(), 5, "{out:?}");
        // One to a request, the layout before grouping.
        assert_eq!(requests(vec![(1, 4), (1, 4)], 1, 50, |&(_, w)| w, |&(k, _)| k).len(), 2);
        assert_eq!(requests(vec![(1, 4), (1, 4)], 0, 50, |&(_, w)| w, |&(k, _)| k).len(), 2);
    }
}
