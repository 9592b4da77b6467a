//! Taking a partition over: protocol steps P1–P3 (see `counting::protocol`).
//!
//! A new owner claims the partition by bumping its epoch in `partition_state`
//! with a lightweight transaction (P1, the fencing token: from then on any older
//! owner's `mark_attempted` fails, so it can no longer start a flush), reads
//! `attempted` linearizably (P2) and fences its buffer there: at most one flush
//! can be in doubt, `committed..=attempted`, and the new owner will flush exactly
//! at its end. It then decides where to start reading (P3a, `start`) and re-reads
//! the dedup window before that offset (P3, `priming`). Only then does it fold
//! messages of the partition.
//!
//! The events topic writes in rounds (`counting::rounds`): there, `attempted` is
//! the end of a replay region that may span many rounds, and the same log read
//! that primes the dedup window goes on to `attempted` for the census (R1, R2,
//! `census`); the first round is then the fenced one at exactly `attempted` (R4).
//!
//! Anything that makes a safe start impossible halts the partition instead
//! (P11, `halt`): a halt recorded by an earlier owner, a partition count that
//! changed, an offset outside the log, a dedup window that cannot be re-read
//! whole, an epoch outside the write timestamp's domain.

use counting::{DedupWindow, PartitionBuffer, PartitionCounts, RowCache};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

use crate::halt::{Halt, Reason};
use crate::metrics::{DEDUP_PRIMING_ERRORS, HALTED_PARTITIONS, op};
use crate::owner::{Family, Shared};
use crate::priming::{PrimeError, Primed, Primer};
use crate::start::{self, Seen, Start};

/// What an owner does with a partition it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlotState {
    Active,
    /// Folds nothing more (a dead letter was cut short by shutdown: its offset
    /// must not be skipped); what is buffered may still flush.
    Stopped,
    /// A newer owner claimed the partition (P5 failed): write nothing more.
    Fenced,
    /// Halted (P11): paused, buffer dropped, waiting for an operator.
    Halted(Reason),
    /// A flush or round was abandoned at shutdown: what it took is neither written
    /// nor pending, so nothing more may be written or committed for the partition.
    Abandoned,
}

/// What an owner holds for one partition it owns.
pub(crate) struct Slot {
    /// This owner's epoch: every write and `mark_attempted` carries it.
    pub epoch: i64,
    /// Ratings: one buffer flushed whole (P4–P9).
    pub buffer: PartitionBuffer,
    /// Counts: pending series written in rounds (R3–R7).
    pub counts: PartitionCounts,
    /// The offset last committed (or found committed), so an idle partition's
    /// commit moves only when there is something to move.
    pub committed: Option<i64>,
    /// What this owner knows of its rows, so steady-state flushes write without
    /// reading. Only the owner writes them, so it stays true while the partition
    /// is ours; it is dropped with the partition.
    pub cache: RowCache,
    /// Written but not yet committed (the commit failed): commit before flushing
    /// again, or the in-doubt range would span two flushes (P9).
    pub pending_commit: Option<i64>,
    pub state: SlotState,
    /// Client-chosen event ids seen lately, to drop repeats.
    pub dedup: DedupWindow,
    /// The next offset to fold: where the owner started, then one past the last
    /// message handled.
    pub next: i64,
    /// The round being written beside the poll loop (at most one per partition,
    /// R4): the slot's `cache` is with it until the poll thread settles it.
    pub round: Option<crate::flush::InFlight>,
}

impl Slot {
    pub fn may_fold(&self) -> bool {
        self.state == SlotState::Active
    }

    pub fn may_flush(&self) -> bool {
        matches!(self.state, SlotState::Active | SlotState::Stopped)
    }

    pub fn halted(&self) -> Option<Reason> {
        match self.state {
            SlotState::Halted(r) => Some(r),
            _ => None,
        }
    }

    fn halted_at(epoch: i64, reason: Reason) -> Slot {
        Slot {
            epoch,
            buffer: PartitionBuffer::default(),
            counts: PartitionCounts::default(),
            committed: None,
            cache: RowCache::default(),
            pending_commit: None,
            state: SlotState::Halted(reason),
            dedup: DedupWindow::new(0),
            next: -1,
            round: None,
        }
    }
}

/// What the owner learned once for all the partitions of one assignment.
pub(crate) struct Assignment {
    /// The group's committed offsets (`None`: none for that partition).
    pub committed: std::collections::HashMap<i32, Option<i64>>,
    /// `Some`: the topic's partition count is not the one it was counted with.
    pub count_changed: Option<Halt>,
}

/// A partition taken over: its slot, and where to start reading it (`None`:
/// halted, so paused wherever it is).
pub(crate) struct TakenOver {
    pub slot: Slot,
    pub start: Option<Start>,
    /// The start came from an operator's `resume_from`: clear it once committed.
    pub resumed_from: bool,
}

/// [`take_over`] for each of `parts`, up to `threads` at once, in `parts` order.
/// Each partition's takeover reads and writes only that partition's state (its
/// epoch, halt and `attempted`, its log), so they do not depend on each other. A
/// takeover is an LWT, reads of Cassandra and a re-read of the log's dedup window:
/// at 30,000 events/s on two cores, 12 partitions took 9.2 s six at a time against
/// 22.6 s one after another (README, Measured).
pub(crate) fn take_over_all<C: ConsumerContext>(
    shared: &Shared,
    primer: &Primer,
    consumer: &BaseConsumer<C>,
    parts: &[i32],
    assignment: &Assignment,
    threads: usize,
) -> Vec<Option<TakenOver>> {
    at_once(threads, parts, |&p| take_over(shared, primer, consumer, p, assignment))
}

/// `f` of every item, on up to `threads` threads at once, each taking the next
/// item not started; the results in `items` order.
fn at_once<T: Sync, R: Send>(threads: usize, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done: Vec<std::sync::Mutex<Option<R>>> = items.iter().map(|_| Default::default()).collect();
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    *done[i].lock().expect("no task panicked") = Some(r);
                }
            });
        }
    });
    done.into_iter().map(|r| r.into_inner().expect("no task panicked").expect("every item was taken")).collect()
}

/// Takes partition `p` over: claims it (P1), fences its buffer at `attempted`
/// (P2), decides where to start (P3a) and primes its dedup window (P3). Kafka
/// and Cassandra requests are retried until they succeed; `None`: shutdown came
/// first, and the partition is not taken.
pub(crate) fn take_over<C: ConsumerContext>(
    shared: &Shared,
    primer: &Primer,
    consumer: &BaseConsumer<C>,
    p: i32,
    assignment: &Assignment,
) -> Option<TakenOver> {
    let (store, topic) = (&shared.store, shared.topic.as_str());
    // P1 and P2: bump the epoch, then read `attempted`.
    let claim = shared.rt.block_on(shared.retry.cassandra(op::CLAIM, || store.claim(topic, p)))?;
    tracing::info!(topic, partition = p, epoch = claim.epoch, attempted = ?claim.attempted, "claimed partition");
    let halted = |halt: Halt| {
        crate::halt::record(shared, p, claim.epoch, &halt);
        Some(TakenOver { slot: Slot::halted_at(claim.epoch, halt.reason), start: None, resumed_from: false })
    };
    // A halt recorded by this or an earlier owner stands until an operator clears it.
    let record = shared.rt.block_on(shared.retry.cassandra(op::HALT, || store.read_halt(topic, p)))?;
    let record = record.unwrap_or_default();
    if let Some(reason) = record.reason.as_deref() {
        let reason = Reason::parse(reason).unwrap_or(Reason::Overlap);
        HALTED_PARTITIONS
            .counter_with(&[("topic", topic.to_owned()), ("reason", reason.as_str().to_owned())])
            .increment(1);
        tracing::error!(
            topic,
            partition = p,
            %reason,
            detail = record.detail.as_deref().unwrap_or(""),
            resume = %crate::halt::resume_command(shared, p),
            "partition found halted: nothing is counted from it until an operator resumes it"
        );
        return Some(TakenOver { slot: Slot::halted_at(claim.epoch, reason), start: None, resumed_from: false });
    }
    if let Err(e) = counting::timestamp::check_domain(claim.epoch, 0) {
        return halted(Halt::new(Reason::TimestampDomain, e.to_string(), None));
    }
    if let Some(h) = &assignment.count_changed {
        return halted(h.clone());
    }
    // Where readers reach this owner (only a hint: without it they read the rows
    // alone, less fresh and as exact, so a failure is not retried). Not before the
    // epoch is known to fit the write timestamps, nor for a halted partition.
    if let Some(address) = &shared.advertise
        && let Err(e) = shared.rt.block_on(store.record_owner(topic, p, claim.epoch, address))
    {
        tracing::warn!(topic, partition = p, error = %e, "could not record where readers reach this owner");
    }
    // P3a: where to start, from what the log, the group and the state say.
    let mut attempt = 0;
    let (low, high) = loop {
        match consumer.fetch_watermarks(topic, p, std::time::Duration::from_secs(10)) {
            Ok(w) => break w,
            Err(e) if !shared.retry.shutting_down() => {
                tracing::warn!(partition = p, error = %e, attempt, "reading the log's watermarks failed, retrying");
                std::thread::sleep(shared.retry.pause(attempt));
                attempt += 1;
            }
            Err(_) => return None,
        }
    };
    let seen = Seen {
        committed: assignment.committed.get(&p).copied().flatten(),
        low,
        high,
        attempted: claim.attempted,
        resume_from: record.resume_from,
    };
    let start = match start::decide(seen, shared.new_partitions) {
        Ok(s) => s,
        Err(h) => return halted(h),
    };
    // P3 (and R2's log read). An incomplete window could decide a replayed repeat
    // differently from the owner that first wrote it. The window is fixed by the
    // log, so retrying a failed read re-reads the same one.
    let census_through = claim.attempted.filter(|&a| shared.family == Family::Counts && a >= start.offset);
    let mut attempt = 0;
    let mut reader = primer.clone();
    let Primed { window: dedup, series } = loop {
        match reader.read(topic, p, start.offset, low, census_through) {
            Ok(primed) => break primed,
            Err(PrimeError::Incomplete(why)) if record.resume_from.is_some() && reader.enabled() => {
                // The operator chose where to resume and accepted what that costs;
                // the census is still read.
                tracing::warn!(partition = p, why, "resuming where the operator said, without a whole dedup window");
                reader.window_ms = 0;
            }
            Err(PrimeError::Incomplete(why)) => {
                DEDUP_PRIMING_ERRORS.counter().increment(1);
                return halted(Halt::new(Reason::DedupWindow, why, Some(start.offset)));
            }
            Err(e) if !shared.retry.shutting_down() => {
                DEDUP_PRIMING_ERRORS.counter().increment(1);
                tracing::warn!(partition = p, error = %e, attempt, "dedup priming failed, retrying");
                std::thread::sleep(shared.retry.pause(attempt));
                attempt += 1;
            }
            Err(_) => return None,
        }
    };
    let dedup = if reader.enabled() { dedup } else { DedupWindow::new(primer.window_ms) };
    // R2: the floors of the region's series.
    let (census, cache) = match (series, census_through) {
        (Some(series), Some(through)) => match crate::census::take(shared, p, series, start.offset, through)? {
            Ok((census, cache)) => (Some(census), cache),
            Err(h) => return halted(h),
        },
        _ => (None, RowCache::default()),
    };
    tracing::info!(topic, partition = p, start = start.offset, low, high, "starting partition");
    let slot = Slot {
        epoch: claim.epoch,
        // P2: the fence.
        buffer: PartitionBuffer::new(claim.attempted),
        // R4: the first round at exactly `attempted`, when the region is not empty.
        counts: PartitionCounts::new(census),
        committed: Some(start.offset),
        cache,
        pending_commit: None,
        state: SlotState::Active,
        dedup,
        next: start.offset,
        round: None,
    };
    Some(TakenOver { slot, start: Some(start), resumed_from: record.resume_from.is_some() })
}

/// The committed offsets of `parts` (retried until Kafka answers, `None` at shutdown).
pub(crate) fn committed<C: ConsumerContext>(
    shared: &Shared,
    consumer: &BaseConsumer<C>,
    parts: &[i32],
) -> Option<std::collections::HashMap<i32, Option<i64>>> {
    let mut tpl = rdkafka::TopicPartitionList::new();
    for &p in parts {
        tpl.add_partition(&shared.topic, p);
    }
    let mut attempt = 0;
    loop {
        match consumer.committed_offsets(tpl.clone(), std::time::Duration::from_secs(10)) {
            Ok(got) => {
                return Some(
                    parts
                        .iter()
                        .map(|&p| {
                            let offset = got.find_partition(&shared.topic, p).and_then(|e| e.offset().to_raw());
                            (p, offset.filter(|&o| o >= 0))
                        })
                        .collect(),
                );
            }
            Err(e) if !shared.retry.shutting_down() => {
                tracing::warn!(error = %e, attempt, "reading committed offsets failed, retrying");
                std::thread::sleep(shared.retry.pause(attempt));
                attempt += 1;
            }
            Err(_) => return None,
        }
    }
}

/// Whether the topic still has the partition count it was first counted with
/// (recorded in `topic_state`, P1): `Some(halt)` when it does not.
pub(crate) fn count_changed<C: ConsumerContext>(shared: &Shared, consumer: &BaseConsumer<C>) -> Option<Halt> {
    let topic = shared.topic.as_str();
    let seen = loop {
        match consumer.fetch_metadata(Some(topic), std::time::Duration::from_secs(10)) {
            Ok(md) => break md.topics().first().map(|t| t.partitions().len() as i32).unwrap_or(0),
            Err(e) if !shared.retry.shutting_down() => {
                tracing::warn!(error = %e, "reading topic metadata failed, retrying");
                std::thread::sleep(shared.retry.pause(3));
            }
            Err(_) => return None,
        }
    };
    let store = &shared.store;
    let recorded = shared.rt.block_on(shared.retry.cassandra(op::CLAIM, || store.recorded_partitions(topic, seen)))?;
    (recorded != seen).then(|| {
        Halt::new(
            Reason::PartitionCount,
            format!(
                "topic {topic} has {seen} partitions but was counted with {recorded}: videos moved between \
                 partitions (see the README's repartitioning procedure)"
            ),
            None,
        )
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::time::{Duration, Instant};

    use super::at_once;

    /// Takeovers overlap: with `threads` 3, three run at the same moment (each of
    /// the first three waits, up to 10 s, until all three have started), never
    /// more, and every result comes back in its partition's place.
    #[test]
    fn takeovers_run_up_to_the_thread_count_at_once() {
        for threads in [1, 3] {
            let (running, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
            let parts: Vec<i32> = (0..9).collect();
            let out = at_once(threads, &parts, |&p| {
                let now = running.fetch_add(1, SeqCst) + 1;
                most.fetch_max(now, SeqCst);
                let start = Instant::now();
                while (p as usize) < threads
                    && running.load(SeqCst) < threads
                    && start.elapsed() < Duration::from_secs(10)
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                std::thread::sleep(Duration::from_millis(5));
                running.fetch_sub(1, SeqCst);
                p * 10
            });
            assert_eq!(out, parts.iter().map(|p| p * 10).collect::<Vec<_>>());
            assert_eq!(most.load(SeqCst), threads, "{threads} threads");
        }
    }
}
