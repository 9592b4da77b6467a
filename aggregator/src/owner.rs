//! The owner of one consumer's assigned partitions: everything the poll loop and
//! the rebalance callbacks share. It takes partitions over (`ownership`), folds
//! each message into its partition's state (P4/R3, below: pending series for the
//! events topic, a buffer for ratings), writes them (`flush`: rounds of the
//! series that are due every `flush.tick_ms`, ratings every `flush.interval_ms`), halts
//! partitions and takes them up again when an operator resumes them (P11,
//! `halt`), and lets partitions go. Protocol steps are numbered in
//! `counting::protocol`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::{Duration, Instant};

use counting::fresh::Held;
use counting::{Cadence, CountedEvent, Folded, PartitionBuffer, PartitionCounts, RatedEvent, SeriesKey};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::FlushConfig;
use crate::dead_letter::{DeadLetterError, DeadLetters};
use crate::decode::DecodeError;
use crate::halt::{Halt, Reason};
use crate::metrics::{
    ASSIGNED_PARTITIONS, BUFFERED_KEYS, CONSUMER_LAG, DUPLICATES_DROPPED, EVENTS, FENCED_FLUSHES, FENCED_OUT,
    HALTED_PARTITIONS, MESSAGES, PARTITIONS_HALTED, REPLAYED_SKIPPED, RESUMED_PARTITIONS, UNCOMMITTED, op,
};
use crate::ownership::{self, Assignment, Slot, SlotState, TakenOver};
use crate::priming::Primer;
use crate::retry::Retry;
use crate::start::{NewPartitions, Start};
use crate::store::RollupStore;
use crate::{decode, flush, halt};

/// What a consumer's topic carries, and so how its messages fold and flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Counting events (`Event`): rollup rows and their by-bucket copies.
    Counts,
    /// Ratings (`Rating`): each user's latest rating and a video's sum and count.
    Ratings,
}

/// What an owner is made of: one per consumer.
pub struct OwnerParts {
    pub family: Family,
    /// The topic it consumes.
    pub topic: String,
    pub store: Arc<RollupStore>,
    pub flush: FlushConfig,
    pub dead_letters: DeadLetters,
    /// The dedup window (`window_ms` 0 for none) and how to re-read it.
    pub primer: Primer,
    /// Cancelled at shutdown: retries give up after the grace period.
    pub shutdown: CancellationToken,
    /// Where a partition with no state at all starts.
    pub new_partitions: NewPartitions,
    /// Readers' address for `partition_owners`, if this owner answers them
    /// (`held.enabled`, counts only).
    pub advertise: Option<String>,
    /// Partitions of one assignment taken over at once (`consumer.claim_threads`).
    pub claim_threads: usize,
}

/// What the work on every owned partition shares: claims and flushes.
pub(crate) struct Shared {
    pub family: Family,
    pub topic: String,
    pub store: Arc<RollupStore>,
    pub cfg: FlushConfig,
    /// When a pending series is due (counts).
    pub cadence: Cadence,
    pub retry: Retry,
    /// The consumer runs on a blocking thread; Cassandra calls enter the runtime.
    pub rt: Handle,
    pub new_partitions: NewPartitions,
    /// Fault injection: this flush has paused already (`fault`).
    pub fault_paused: std::sync::atomic::AtomicBool,
    /// `flush.concurrency`: the Cassandra requests in flight across every
    /// partition's round or flush, the blocking ones and those beside the poll loop.
    pub permits: tokio::sync::Semaphore,
    /// Recorded at each claim in `partition_owners`; `None` (`held.enabled` off,
    /// or ratings): readers are not answered (`Owner::held`, `counting::fresh`).
    pub advertise: Option<String>,
}

/// One decoded message.
enum Item {
    /// The counted events of a message (one, or a pack's), and the verified viewer
    /// (user, event id) of each signed-in view, by index.
    Count(Vec<CountedEvent>, Vec<Option<(Uuid, Uuid)>>),
    Rate(RatedEvent),
    /// Dead-lettered or a dropped duplicate: consumes its offset, changes nothing.
    Nothing,
}

pub struct Owner {
    family: Family,
    /// Shared with the rounds running beside the poll loop (`flush::start_rounds`).
    shared: Arc<Shared>,
    dead_letters: DeadLetters,
    primer: Primer,
    claim_threads: usize,
    slots: HashMap<i32, Slot>,
    /// Milliseconds since the epoch of the loop's last turn, for /readyz.
    pub heartbeat: Arc<AtomicI64>,
    /// Starts the group does not know yet, to commit right after the assignment
    /// (partition, start, whether it was an operator's `resume_from`).
    to_commit: Vec<(i32, Start, bool)>,
    /// The wall clock for the rounds' cadence, read by the poll loop every few
    /// hundred messages rather than once per message.
    pub now_ms: i64,
    /// When ratings were last flushed, and the slower chores last done.
    last_interval: Instant,
    /// Registered once: looking a metric up by name costs more than folding an event.
    messages: metrics::Counter,
    events: metrics::Counter,
    replayed: metrics::Counter,
    duplicates: metrics::Counter,
    assigned: metrics::Gauge,
    buffered: metrics::Gauge,
    halted: metrics::Gauge,
}

impl Owner {
    /// Must be called on the runtime: flushes enter it from the consumer's thread.
    pub fn new(parts: OwnerParts) -> Self {
        // Handles registered before the recorder exists would count into the void.
        let _ = platform::telemetry::metrics_handle();
        let OwnerParts {
            family,
            topic,
            store,
            flush,
            dead_letters,
            primer,
            shutdown,
            new_partitions,
            advertise,
            claim_threads,
        } = parts;
        let labels = [("topic", topic.clone())];
        // Zero, not absent, until the first one: `increase()` sees the first.
        for reason in Reason::ALL {
            HALTED_PARTITIONS
                .counter_with(&[("topic", topic.clone()), ("reason", reason.as_str().to_owned())])
                .increment(0);
        }
        FENCED_OUT.counter_with(&labels).increment(0);
        RESUMED_PARTITIONS.counter_with(&labels).increment(0);
        let halted = PARTITIONS_HALTED.gauge_with(&labels);
        halted.set(0.0);
        Self {
            family,
            dead_letters,
            primer,
            claim_threads: claim_threads.max(1),
            slots: HashMap::new(),
            to_commit: Vec::new(),
            heartbeat: Arc::new(AtomicI64::new(0)),
            now_ms: chrono::Utc::now().timestamp_millis(),
            last_interval: Instant::now(),
            messages: MESSAGES.counter(),
            events: EVENTS.counter(),
            replayed: REPLAYED_SKIPPED.counter(),
            duplicates: DUPLICATES_DROPPED.counter(),
            assigned: ASSIGNED_PARTITIONS.gauge_with(&labels),
            buffered: BUFFERED_KEYS.gauge_with(&labels),
            halted,
            shared: Arc::new(Shared {
                family,
                topic,
                cadence: flush.cadence(),
                store,
                retry: Retry::new(&flush, shutdown),
                permits: tokio::sync::Semaphore::new(flush.concurrency.max(1)),
                cfg: flush,
                rt: Handle::current(),
                new_partitions,
                fault_paused: Default::default(),
                advertise: advertise.filter(|_| family == Family::Counts),
            }),
        }
    }

    pub fn topic(&self) -> &str {
        &self.shared.topic
    }

    /// What this owner holds of `key` in partition `p` and has not written, for a
    /// reader (`counting::fresh`): `None` unless the partition is ours and counting.
    /// The poll loop holds the owner while it folds, so the answer is the state
    /// between two messages; a round taken by the blocking `flush` is taken and
    /// written under the same hold, so no reader sees it half-way.
    pub fn held(&self, p: i32, key: &SeriesKey) -> Option<Held> {
        self.shared.advertise.as_ref()?;
        let slot = self.slots.get(&p).filter(|s| s.may_fold())?;
        let round = slot.round.as_ref();
        Some(Held {
            ready: slot.counts.serves_held() && !round.is_some_and(|r| r.round.fenced),
            epoch: slot.epoch,
            consumed: slot.counts.consumed().unwrap_or(-1),
            pending: slot.counts.held(key),
            in_flight: round.and_then(|r| r.round.held_part(key)),
        })
    }

    /// Takes `parts` over (P1–P3) before they are assigned in the consumer, and
    /// says where each starts: `None` for a partition that is halted (or not taken
    /// because shutdown came first), which is assigned but paused at once.
    pub fn assign<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, parts: &[i32]) -> Vec<(i32, Option<i64>)> {
        let mut starts: Vec<(i32, Option<i64>)> = parts.iter().map(|&p| (p, None)).collect();
        let Some(committed) = ownership::committed(&self.shared, consumer, parts) else { return starts };
        let count_changed = ownership::count_changed(&self.shared, consumer);
        let assignment = Assignment { committed, count_changed };
        // A partition assigned while still held (no revoke came between): its
        // round in flight settles before the claim decides anything.
        flush::drain(&self.shared, consumer, &mut self.slots, parts);
        let taken =
            ownership::take_over_all(&self.shared, &self.primer, consumer, parts, &assignment, self.claim_threads);
        for ((p, start), taken) in starts.iter_mut().zip(taken) {
            // `None`: shutdown came first; this partition and the rest stay untaken
            // (a claim without a slot is a crash after P1: the next claim fences it).
            let Some(TakenOver { slot, start: s, resumed_from }) = taken else {
                break;
            };
            if let Some(s) = s {
                *start = Some(s.offset);
                if s.commit_first {
                    self.to_commit.push((*p, s, resumed_from));
                }
            }
            self.slots.insert(*p, slot);
        }
        self.assigned.set(self.slots.len() as f64);
        self.count_halted();
        starts
    }

    /// After the consumer took the assignment: pauses what must not be read,
    /// resumes the rest, and commits the starts the group does not know yet.
    ///
    /// The resume is not redundant: librdkafka keeps a partition's pause across an
    /// unassign and a new assign of the same partition. A member fenced out of a
    /// partition (or that had halted it) pauses it; when a later rebalance gives it
    /// the same partition back, it would take it over and then never read it: a
    /// wedge that R7 of the fault suite (a woken owner, then a rebalance) found.
    pub fn after_assign<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, parts: &[i32]) {
        for &p in parts {
            if self.slots.get(&p).is_none_or(|s| !s.may_fold()) {
                halt::pause(consumer, &self.shared.topic, p);
            } else {
                halt::resume(consumer, &self.shared.topic, p);
            }
        }
        for (p, start, resumed_from) in std::mem::take(&mut self.to_commit) {
            self.commit_start(consumer, p, start, resumed_from);
        }
    }

    /// Commits a start the group does not know (a new partition, an operator's
    /// `resume_from`), so that a crash before the first flush starts there again.
    fn commit_start<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        p: i32,
        start: Start,
        resumed_from: bool,
    ) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.shared.topic, p, Offset::Offset(start.offset)).expect("valid offset");
        if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
            // Harmless: the next owner decides again from what it sees.
            tracing::warn!(partition = p, error = %e, "committing the start offset failed");
            return;
        }
        if resumed_from {
            let (store, topic) = (&self.shared.store, self.shared.topic.as_str());
            let clear = || store.clear_resume_from(topic, p);
            let _ = self.shared.rt.block_on(self.shared.retry.cassandra(op::HALT, clear));
        }
    }

    /// Halts partition `p` (P11): flushes what it holds if it can (so the
    /// committed offset says where it stopped), drops the rest, pauses it and
    /// records why. Stays halted until an operator resumes it.
    pub fn halt<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, p: i32, halt: Halt) {
        flush::drain(&self.shared, consumer, &mut self.slots, &[p]);
        if self.slots.get(&p).is_some_and(|s| s.may_flush()) {
            self.flush(consumer, &[p]);
        }
        let Some(slot) = self.slots.get_mut(&p) else { return };
        halt::pause(consumer, &self.shared.topic, p);
        slot.state = SlotState::Halted(halt.reason);
        slot.buffer = PartitionBuffer::default();
        slot.counts = PartitionCounts::default();
        let epoch = slot.epoch;
        halt::record(&self.shared, p, epoch, &halt);
        self.count_halted();
    }

    fn count_halted(&self) {
        self.halted.set(self.slots.values().filter(|s| s.halted().is_some()).count() as f64);
    }

    /// Takes up again every halted partition whose halt an operator cleared: a
    /// fresh takeover (P1–P3, which may halt it again), then a seek to its start.
    /// Called from the poll loop every flush interval.
    pub fn check_halts<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        let halted: Vec<i32> = self.slots.iter().filter(|(_, s)| s.halted().is_some()).map(|(p, _)| *p).collect();
        for p in halted {
            let (store, topic) = (&self.shared.store, self.shared.topic.as_str());
            let read = || store.read_halt(topic, p);
            let Some(record) = self.shared.rt.block_on(self.shared.retry.cassandra(op::HALT, read)) else { return };
            if record.is_some_and(|r| r.reason.is_some()) {
                continue;
            }
            let Some(committed) = ownership::committed(&self.shared, consumer, &[p]) else { return };
            let count_changed = ownership::count_changed(&self.shared, consumer);
            let assignment = Assignment { committed, count_changed };
            flush::drain(&self.shared, consumer, &mut self.slots, &[p]); // none: halted
            let Some(TakenOver { slot, start, resumed_from }) =
                ownership::take_over(&self.shared, &self.primer, consumer, p, &assignment)
            else {
                return;
            };
            self.slots.insert(p, slot);
            let Some(start) = start else { continue }; // halted again
            let sought = consumer.seek(&self.shared.topic, p, Offset::Offset(start.offset), Duration::from_secs(10));
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&self.shared.topic, p);
            if let Err(e) = sought.and_then(|()| consumer.resume(&tpl)) {
                // Try again at the next check: the halt is cleared, so it will.
                tracing::warn!(partition = p, error = %e, "could not seek and resume the partition");
                if let Some(s) = self.slots.get_mut(&p) {
                    s.state = SlotState::Halted(Reason::Overlap);
                }
                continue;
            }
            if start.commit_first {
                self.commit_start(consumer, p, start, resumed_from);
            }
            RESUMED_PARTITIONS.counter_with(&[("topic", self.shared.topic.clone())]).increment(1);
            tracing::warn!(topic = %self.shared.topic, partition = p, start = start.offset, "halted partition resumed by an operator");
        }
        self.count_halted();
    }

    /// After the consumer reported an offset out of range (`auto.offset.reset` is
    /// `error`): halts each partition whose next offset fell out of the log.
    pub fn check_offsets<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        let active: Vec<(i32, i64)> =
            self.slots.iter().filter(|(_, s)| s.may_fold()).map(|(p, s)| (*p, s.next)).collect();
        for (p, next) in active {
            let Ok((low, high)) = consumer.fetch_watermarks(&self.shared.topic, p, Duration::from_secs(10)) else {
                continue;
            };
            let halt = if next < low {
                Halt::new(
                    Reason::OffsetOutOfRange,
                    format!("offset {next} was deleted before it was read (the log starts at {low})"),
                    Some(next),
                )
            } else if next > high {
                Halt::new(Reason::OffsetBeyondLog, format!("offset {next} is past the log end {high}"), Some(next))
            } else {
                continue;
            };
            self.halt(consumer, p, halt);
        }
    }

    /// Forgets `parts` (P10, after their last flush). A fenced buffer is dropped
    /// with them: none of it was committed, so the next owner replays it. A round
    /// still in flight (no flush came first: a rebalance error) is waited for and
    /// nothing of it committed: no write of this owner lands after the release.
    pub fn release(&mut self, parts: &[i32]) {
        flush::forget(&self.shared, &mut self.slots, parts);
        for p in parts {
            self.slots.remove(p);
            // The new owner reports this partition's lag from now on.
            let labels = [("topic", self.shared.topic.clone()), ("partition", p.to_string())];
            CONSUMER_LAG.gauge_with(&labels).set(0.0);
            UNCOMMITTED.gauge_with(&labels).set(0.0);
        }
        self.assigned.set(self.slots.len() as f64);
        self.count_halted();
    }

    pub fn buffered_keys(&self) -> usize {
        self.slots.values().map(|s| s.buffer.buffered_keys() + s.counts.buffered_keys()).sum()
    }

    /// The gauge the poll loop keeps at [`buffered_keys`](Self::buffered_keys).
    pub fn buffered_gauge(&self) -> metrics::Gauge {
        self.buffered.clone()
    }

    /// P4: folds one message into its partition's buffer. An undecodable one is
    /// dead-lettered and a client id's repeat dropped; both still consume their
    /// offset. At the fence the partition is flushed exactly there.
    pub fn handle<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, msg: &BorrowedMessage<'_>) {
        let (p, offset) = (msg.partition(), msg.offset());
        let Some(slot) = self.slots.get_mut(&p).filter(|s| s.may_fold()) else { return };
        if offset < slot.next {
            return; // fetched before a seek back to an earlier start: seen again later
        }
        let decoded = match self.family {
            Family::Counts => decode::events(msg.payload(), &self.primer.types).map(|all| {
                self.events.increment(all.len() as u64);
                let at = msg.timestamp().to_millis().unwrap_or(0);
                let (mut events, mut viewers) = (Vec::with_capacity(all.len()), Vec::with_capacity(all.len()));
                for d in all {
                    match d.client_id {
                        Some(id) if self.primer.enabled() && slot.dedup.observe(id, at) => self.duplicates.increment(1),
                        _ => {
                            events.push(d.event);
                            viewers.push(d.viewer);
                        }
                    }
                }
                if events.is_empty() { Item::Nothing } else { Item::Count(events, viewers) }
            }),
            // A repeated rating needs no dedup: the latest per user replaces.
            Family::Ratings => decode::rating(msg.payload()).map(Item::Rate),
        };
        let item = match decoded {
            Ok(item) => item,
            // P4: a newer producer's type is not poison; P11: halt at it.
            Err(DecodeError::NewerEventType(t)) => {
                let detail = format!("event type {t} at offset {offset} is not known to this aggregator");
                self.halt(consumer, p, Halt::new(Reason::UnknownEventType, detail, Some(offset)));
                return;
            }
            Err(reason) => {
                match self.dead_letters.send(&self.shared.rt, &self.shared.topic, msg, &reason.to_string()) {
                    Ok(()) => Item::Nothing,
                    Err(DeadLetterError::Shutdown) => {
                        // Not sent and not consumed: fold nothing more, flush what came before.
                        if let Some(slot) = self.slots.get_mut(&p) {
                            slot.state = SlotState::Stopped;
                        }
                        return;
                    }
                    Err(e) => {
                        self.halt(consumer, p, Halt::new(Reason::DeadLetter, e.to_string(), Some(offset)));
                        return;
                    }
                }
            }
        };
        let now_ms = self.now_ms;
        loop {
            let Some(slot) = self.slots.get_mut(&p).filter(|s| s.may_fold()) else { return };
            let folded = match &item {
                // R3: an event at or below its series' floor is in the store already.
                Item::Count(events, viewers) => {
                    let replayed = slot.counts.replayed();
                    let folded = match slot.counts.fold_all(offset, events, now_ms) {
                        Ok(f) => f,
                        Err(missing) => {
                            let detail = format!("{missing}: the log changed under the census");
                            self.halt(consumer, p, Halt::new(Reason::Overlap, detail, Some(offset)));
                            return;
                        }
                    };
                    self.replayed.increment(slot.counts.replayed() - replayed);
                    if folded != Folded::FlushFirst {
                        for (e, viewer) in events.iter().zip(viewers) {
                            if let Some((user, event_id)) = viewer {
                                slot.counts.note_viewer(*user, e.video_id, e.occurred_at_ms, *event_id);
                            }
                        }
                    }
                    folded
                }
                Item::Rate(r) => slot.buffer.fold_rating(offset, Some(r)),
                Item::Nothing if self.family == Family::Counts => {
                    slot.counts.fold(offset, None, now_ms).expect("a message that counts nothing needs no floor")
                }
                Item::Nothing => slot.buffer.fold(offset, None),
            };
            if folded != Folded::FlushFirst {
                slot.next = offset + 1;
            }
            match folded {
                Folded::Folded => {
                    self.messages.increment(1);
                    return;
                }
                Folded::FlushNow => {
                    self.messages.increment(1);
                    FENCED_FLUSHES.counter().increment(1);
                    tracing::info!(partition = p, offset, "replayed up to the in-doubt flush; flushing exactly there");
                    self.flush(consumer, &[p]);
                    return;
                }
                Folded::FlushFirst => {
                    FENCED_FLUSHES.counter().increment(1);
                    self.flush(consumer, &[p]);
                }
            }
        }
    }

    /// The poll loop's timer (every `flush.tick_ms`, or at once under memory
    /// pressure): a round of the due series of each events partition (R4), or of
    /// every pending series when `pressure`; ratings, halts, the row cache and idle
    /// commits every `flush.interval_ms`.
    pub fn tick<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, pressure: bool) {
        let interval = self.last_interval.elapsed() >= Duration::from_millis(self.shared.cfg.interval_ms);
        let parts: Vec<i32> = self.slots.keys().copied().collect();
        match self.family {
            // Under memory pressure every pending series, on the poll thread.
            Family::Counts if pressure => flush::flush(&self.shared, consumer, &mut self.slots, &parts),
            Family::Counts => {
                flush::start_rounds(&self.shared, consumer, &mut self.slots, &parts, self.now_ms, interval);
            }
            // Ratings keep the whole flush on the poll thread (P5–P9): their consumer
            // has a poll loop of its own, which only ratings wait for.
            Family::Ratings if interval || pressure => flush::flush(&self.shared, consumer, &mut self.slots, &parts),
            Family::Ratings => {}
        }
        if interval {
            if self.family == Family::Counts {
                for slot in self.slots.values_mut() {
                    slot.cache.sweep(self.shared.cfg.cache_idle_flushes);
                }
            }
            self.check_halts(consumer);
            self.last_interval = Instant::now();
        }
        self.count_halted();
    }

    pub fn flush_all<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        let parts: Vec<i32> = self.slots.keys().copied().collect();
        self.flush(consumer, &parts);
    }

    /// Writes everything `parts` hold and commits their offsets (P5–P9, or a round
    /// of every pending series, R4–R7): at a fence, on revoke, at shutdown, before
    /// a halt.
    pub fn flush<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, parts: &[i32]) {
        flush::flush(&self.shared, consumer, &mut self.slots, parts);
        self.count_halted();
    }

    /// Settles the rounds that completed beside the poll loop (R7: their commits).
    /// Called by the poll loop every turn.
    pub fn complete<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        flush::complete(&self.shared, consumer, &mut self.slots);
        self.count_halted();
    }
}
