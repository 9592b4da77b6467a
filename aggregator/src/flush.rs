//! One flush: protocol steps P5–P9 (see `counting::protocol`) for every partition
//! with buffered events, concurrently, then one commit of their offsets.
//!
//! Per partition, a flush of offsets `first..=through` marks `attempted` (P5,
//! fenced by the owner's epoch), reads the rows its cache does not know (P6),
//! applies the `last_offset` rule (P7), writes the rows, their by-bucket copies,
//! the ratings and the activity entries at the fenced timestamp (P8), and only
//! then commits `through + 1` (P9). Every Cassandra request is retried until it
//! lands; a flush ends early only when a newer owner fenced it, when a row holds
//! part of it or was written from another Kafka partition (offsets rewound, or the
//! topic grew: the partition halts rather than guess, P11), or when shutdown ran
//! out of patience (nothing is committed; it is replayed).

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use counting::ratings::{RatingChange, RatingOverlap, resolve_video};
use counting::{FlushPlan, Granularity, Overlap, RangeRead, RowCache, RowKey, StoredRow};
use futures::StreamExt;
use futures::future::join_all;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Semaphore;

use crate::config::FlushConfig;
use crate::fault;
use crate::halt::{self, Halt, Reason};
use crate::metrics::{
    COMMIT_ERRORS, EVENTS_FLUSHED, FENCED_OUT, FLUSH_DURATION, RATED_VIDEOS, ROW_READS, ROWS_SKIPPED, ROWS_WRITTEN,
    WRITE_REQUESTS, op,
};
use crate::owner::Shared;
use crate::ownership::{Slot, SlotState};
use crate::store::rollups::ForeignRow;

/// Rows per write request: a single-partition unlogged batch, kept well under
/// Cassandra's `batch_size_warn_threshold` (5 KiB; a row is about 80 bytes).
const MAX_BATCH_ROWS: usize = 50;

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

/// What became of one partition's flush.
enum Outcome {
    Written {
        commit: i64,
        rows: usize,
        skipped: usize,
    },
    /// Another owner claimed the partition (P5 failed).
    Fenced,
    /// Going on would mean guessing (P11): halt the partition.
    Halt(Halt),
    /// Shutdown ran out of patience while retrying; nothing was committed.
    Abandoned,
}

/// One partition's share of a flush.
struct Job {
    partition: i32,
    epoch: i64,
    plan: FlushPlan,
    cache: RowCache,
}

/// Flushes the buffered events of `parts` and commits their offsets.
pub(crate) fn flush<C: ConsumerContext>(
    shared: &Shared,
    consumer: &BaseConsumer<C>,
    slots: &mut HashMap<i32, Slot>,
    parts: &[i32],
) {
    let start = Instant::now();
    let topic = shared.topic.as_str();
    let mut jobs = Vec::new();
    for &p in parts {
        let Some(slot) = slots.get_mut(&p).filter(|s| s.may_flush()) else { continue };
        // P9: an earlier flush's commit failed; it must land before another flush,
        // or the in-doubt range would span two flushes.
        if let Some(offset) = slot.pending_commit {
            if commit(consumer, topic, &[(p, offset)]).is_err() {
                continue;
            }
            slot.pending_commit = None;
        }
        // `None` while the buffer is short of its fence (P2): flush exactly there.
        if let Some(plan) = slot.buffer.take() {
            jobs.push(Job { partition: p, epoch: slot.epoch, plan, cache: std::mem::take(&mut slot.cache) });
        }
    }
    if jobs.is_empty() {
        return;
    }
    let events: u64 = jobs.iter().map(|j| j.plan.events).sum();
    fault::pause_before_mark(&shared.cfg);
    shared.fault_paused.store(false, Ordering::SeqCst);
    let results = shared.rt.block_on(write_jobs(shared, jobs));
    let mut to_commit = Vec::new();
    for (p, cache, outcome) in results {
        let Some(slot) = slots.get_mut(&p) else { continue };
        slot.cache = cache;
        match outcome {
            Outcome::Written { commit, rows, skipped } => {
                ROWS_WRITTEN.counter().increment(rows as u64);
                ROWS_SKIPPED.counter().increment(skipped as u64);
                slot.cache.sweep(shared.cfg.cache_idle_flushes);
                slot.pending_commit = Some(commit);
                to_commit.push((p, commit));
            }
            Outcome::Fenced => {
                FENCED_OUT.counter_with(&[("topic", topic.to_owned())]).increment(1);
                tracing::warn!(
                    partition = p,
                    epoch = slot.epoch,
                    "a newer owner claimed this partition; stopping it here"
                );
                slot.state = SlotState::Fenced;
                halt::pause(consumer, topic, p);
            }
            Outcome::Halt(h) => {
                halt::pause(consumer, topic, p);
                slot.state = SlotState::Halted(h.reason);
                slot.buffer = counting::PartitionBuffer::default();
                halt::record(shared, p, slot.epoch, &h);
            }
            Outcome::Abandoned => tracing::warn!(partition = p, "flush abandoned at shutdown; will be replayed"),
        }
    }
    // P9: commit only what every write of P8 made durable.
    if !to_commit.is_empty() && commit(consumer, topic, &to_commit).is_ok() {
        for (p, _) in &to_commit {
            if let Some(slot) = slots.get_mut(p) {
                slot.pending_commit = None;
            }
        }
    }
    EVENTS_FLUSHED.counter().increment(events);
    FLUSH_DURATION.histogram().record(start.elapsed().as_secs_f64());
}

/// Commits `offsets` of `topic` (P9). A failure is counted and logged; the caller
/// keeps the offset pending and commits it before the partition's next flush.
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
        tracing::warn!(error = %e, ?offsets, "offset commit failed; will retry before the next flush");
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

/// Writes every job concurrently, within `flush.concurrency` requests in flight.
async fn write_jobs(shared: &Shared, jobs: Vec<Job>) -> Vec<(i32, RowCache, Outcome)> {
    let permits = Semaphore::new(shared.cfg.concurrency.max(1));
    let permits = &permits;
    join_all(jobs.into_iter().map(|mut job| async move {
        let outcome = write_job(shared, permits, &mut job).await;
        (job.partition, job.cache, outcome)
    }))
    .await
}

/// P5–P8 for one partition.
async fn write_job(shared: &Shared, permits: &Semaphore, job: &mut Job) -> Outcome {
    let (store, topic, cfg, retry) = (&*shared.store, shared.topic.as_str(), &shared.cfg, &shared.retry);
    let (p, epoch, through) = (job.partition, job.epoch, job.plan.through_offset);
    if let Err(e) = counting::timestamp::check_domain(epoch, through) {
        return Outcome::Halt(Halt::new(Reason::TimestampDomain, e.to_string(), Some(job.plan.first_offset)));
    }
    // P5: say what is about to be written; fails if we are no longer the owner.
    let marked = retry.cassandra(op::MARK_ATTEMPTED, || store.mark_attempted(topic, p, epoch, through)).await;
    match marked {
        None => return Outcome::Abandoned,
        Some(false) => return Outcome::Fenced,
        Some(true) => {}
    }
    // P6: learn the rows we do not know yet, one range read per Cassandra partition.
    let reads = job.cache.missing(job.plan.deltas.iter().map(|(k, _)| k));
    ROW_READS.counter().increment(reads.len() as u64);
    type Answer = Option<(RangeRead, (Vec<(i64, StoredRow)>, Option<ForeignRow>))>;
    let read: Vec<Answer> = futures::stream::iter(reads)
        .map(|r| async move {
            let _permit = permits.acquire().await.expect("semaphore open");
            retry.cassandra(op::READ, || store.read_range(&r, p)).await.map(|rows| (r, rows))
        })
        .buffer_unordered(cfg.concurrency.max(1))
        .collect()
        .await;
    for r in read {
        let Some((range, (rows, foreign))) = r else { return Outcome::Abandoned };
        if let Some(f) = foreign {
            return overlap(Conflict::from(f), job);
        }
        job.cache.learn(&range, rows);
    }
    // P7: the last_offset rule.
    let resolved = match job.plan.resolve(|k| job.cache.lookup(k).expect("every row is known after the reads")) {
        Ok(r) => r,
        Err(e) => return overlap(e.into(), job),
    };
    // P8: write every row at the fenced timestamp, retrying each batch until it
    // lands. Writes are sorted by key, so the rows of one Cassandra partition are
    // adjacent. Fault injection counts a batch once it landed.
    let batches = resolved.writes.chunk_by(|a, b| a.key.part() == b.key.part()).flat_map(|c| c.chunks(MAX_BATCH_ROWS));
    let landed = send_batches(shared, permits, op::WRITE, batches, |rows| async move {
        store.write_batch(rows, p, epoch).await?;
        maybe_abort(cfg, rows.len());
        fault::pause_after_write(cfg, &shared.fault_paused).await;
        Ok::<_, platform::cassandra::CassandraError>(())
    })
    .await;
    if !landed {
        // Some rows may hold this flush and others not: forget them all.
        job.cache = RowCache::default();
        return Outcome::Abandoned;
    }
    // Remember what the rows hold now.
    for w in &resolved.writes {
        job.cache.put(w.key, StoredRow { value: w.value, last_offset: w.last_offset });
    }
    // P8, by-bucket copies: hour and day rows again, keyed by bucket, for trending.
    // Skipped rows too: a crash may have come between a row and its copy.
    let copies: Vec<(RowKey, i64, i64)> = job
        .plan
        .deltas
        .iter()
        .filter(|(k, _)| matches!(k.granularity, Granularity::Hour | Granularity::Day))
        .filter_map(|(k, _)| job.cache.lookup(k).flatten().map(|row| (*k, row.value, row.last_offset)))
        .collect();
    if !write_copies(shared, permits, copies, epoch).await {
        return Outcome::Abandoned;
    }
    // P8, ratings: user rows, then each video's totals.
    let (rated, rated_skipped) = match write_ratings(shared, permits, &job.plan, epoch).await {
        Ok(Some(n)) => n,
        Ok(None) => return Outcome::Abandoned,
        Err(e) => return overlap(e.into(), job),
    };
    // P8, activity feed entries (signed-in views, ratings): keyed by their events,
    // so a replay rewrites the same rows.
    if !write_activities(shared, permits, &job.plan, epoch).await {
        return Outcome::Abandoned;
    }
    // P8, viewer sketches and who viewed, from the same signed-in views.
    if !crate::viewers::write_viewers(shared, permits, &job.plan.views, job.plan.through_offset, epoch).await {
        return Outcome::Abandoned;
    }
    Outcome::Written {
        commit: job.plan.commit_offset(),
        rows: resolved.writes.len() + rated,
        skipped: resolved.skipped + rated_skipped,
    }
}

fn overlap(c: Conflict, job: &Job) -> Outcome {
    Outcome::Halt(Halt::new(Reason::Overlap, c.to_string(), Some(job.plan.first_offset)))
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

/// Writes the flush's activity entries, a batch per user. `false`: abandoned.
async fn write_activities(shared: &Shared, permits: &Semaphore, plan: &FlushPlan, epoch: i64) -> bool {
    let store = &*shared.store;
    let through = plan.through_offset;
    let batches = plan.activities.chunk_by(|a, b| a.user_id == b.user_id).flat_map(|c| c.chunks(MAX_BATCH_ROWS));
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
