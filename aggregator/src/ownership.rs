//! Taking a partition over: protocol steps P1–P3 (see `counting::protocol`).
//!
//! A new owner claims the partition by bumping its epoch in `partition_state`
//! with a lightweight transaction (P1, the fencing token: from then on any older
//! owner's `mark_attempted` fails, so it can no longer start a flush), reads
//! `attempted` linearizably (P2) and fences its buffer there: at most one flush
//! can be in doubt, `committed..=attempted`, and the new owner will flush exactly
//! at its end. Then it re-reads the dedup window (P3, `priming`). Only then does
//! it fold messages of the partition.

use counting::{DedupWindow, PartitionBuffer, RowCache};
use rdkafka::consumer::{BaseConsumer, ConsumerContext};

use crate::metrics::{DEDUP_PRIMING_ERRORS, op};
use crate::owner::Shared;
use crate::priming::Primer;

/// What an owner holds for one partition it owns.
pub(crate) struct Slot {
    /// This owner's epoch: every write and `mark_attempted` carries it.
    pub epoch: i64,
    pub buffer: PartitionBuffer,
    /// What this owner knows of its rows, so steady-state flushes write without
    /// reading. Only the owner writes them, so it stays true while the partition
    /// is ours; it is dropped with the partition.
    pub cache: RowCache,
    /// Written but not yet committed (the commit failed): commit before flushing
    /// again, or the in-doubt range would span two flushes (P9).
    pub pending_commit: Option<i64>,
    /// Stopped: fenced by a newer owner, or an overlap that needs a human.
    pub halted: bool,
    /// Client-chosen event ids seen lately, to drop repeats.
    pub dedup: DedupWindow,
}

/// Takes partition `p` over: claims it (P1), fences its buffer at `attempted`
/// (P2) and primes its dedup window (P3), retrying each until it succeeds.
/// `None`: shutdown came first, and the partition is not taken.
pub(crate) fn take_over<C: ConsumerContext>(
    shared: &Shared,
    primer: &Primer,
    consumer: &BaseConsumer<C>,
    p: i32,
) -> Option<Slot> {
    let (store, topic) = (&shared.store, shared.topic.as_str());
    // P1 and P2: bump the epoch, then read `attempted`.
    let claim = shared.rt.block_on(shared.retry.cassandra(op::CLAIM, || store.claim(topic, p)))?;
    tracing::info!(topic, partition = p, epoch = claim.epoch, attempted = ?claim.attempted, "claimed partition");
    // P3. An incomplete window could decide a replayed repeat differently from the
    // owner that first wrote it: retry until the window is whole.
    let mut attempt = 0;
    let dedup = loop {
        match primer.prime(consumer, topic, p) {
            Ok(window) => break window,
            Err(e) if !shared.retry.shutting_down() => {
                DEDUP_PRIMING_ERRORS.counter().increment(1);
                tracing::warn!(partition = p, error = %e, attempt, "dedup priming failed, retrying");
                std::thread::sleep(shared.retry.pause(attempt));
                attempt += 1;
            }
            Err(_) => return None,
        }
    };
    Some(Slot {
        epoch: claim.epoch,
        // P2: the fence.
        buffer: PartitionBuffer::new(claim.attempted),
        cache: RowCache::default(),
        pending_commit: None,
        halted: false,
        dedup,
    })
}
