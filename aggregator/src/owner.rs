//! The owner of one consumer's assigned partitions: everything the poll loop and
//! the rebalance callbacks share. It takes partitions over (`ownership`), folds
//! each message into its partition's buffer (P4, below), flushes (`flush`) and
//! lets partitions go. Protocol steps are numbered in `counting::protocol`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use counting::{CountedEvent, Folded, RatedEvent};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::message::BorrowedMessage;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::FlushConfig;
use crate::dead_letter::DeadLetters;
use crate::metrics::{ASSIGNED_PARTITIONS, BUFFERED_KEYS, CONSUMER_LAG, DUPLICATES_DROPPED, FENCED_FLUSHES, MESSAGES};
use crate::ownership::{self, Slot};
use crate::priming::Primer;
use crate::retry::Retry;
use crate::store::RollupStore;
use crate::{decode, flush};

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
}

/// What the work on every owned partition shares: claims and flushes.
pub(crate) struct Shared {
    pub topic: String,
    pub store: Arc<RollupStore>,
    pub cfg: FlushConfig,
    pub retry: Retry,
    /// The consumer runs on a blocking thread; Cassandra calls enter the runtime.
    pub rt: Handle,
}

/// One decoded message.
enum Item {
    /// A counted event, and the verified viewer (user, event id) of a signed-in view.
    Count(CountedEvent, Option<(Uuid, Uuid)>),
    Rate(RatedEvent),
    /// Dead-lettered or a dropped duplicate: consumes its offset, changes nothing.
    Nothing,
}

pub struct Owner {
    family: Family,
    shared: Shared,
    dead_letters: DeadLetters,
    primer: Primer,
    slots: HashMap<i32, Slot>,
    /// Milliseconds since the epoch of the loop's last turn, for /readyz.
    pub heartbeat: Arc<AtomicI64>,
    /// Registered once: looking a metric up by name costs more than folding an event.
    messages: metrics::Counter,
    duplicates: metrics::Counter,
    assigned: metrics::Gauge,
    buffered: metrics::Gauge,
}

impl Owner {
    /// Must be called on the runtime: flushes enter it from the consumer's thread.
    pub fn new(parts: OwnerParts) -> Self {
        // Handles registered before the recorder exists would count into the void.
        let _ = platform::telemetry::metrics_handle();
        let OwnerParts { family, topic, store, flush, dead_letters, primer, shutdown } = parts;
        let labels = [("topic", topic.clone())];
        Self {
            family,
            dead_letters,
            primer,
            slots: HashMap::new(),
            heartbeat: Arc::new(AtomicI64::new(0)),
            messages: MESSAGES.counter(),
            duplicates: DUPLICATES_DROPPED.counter(),
            assigned: ASSIGNED_PARTITIONS.gauge_with(&labels),
            buffered: BUFFERED_KEYS.gauge_with(&labels),
            shared: Shared { topic, store, retry: Retry::new(&flush, shutdown), cfg: flush, rt: Handle::current() },
        }
    }

    /// Takes `parts` over (P1–P3). Stops at shutdown.
    pub fn assign<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, parts: &[i32]) {
        for &p in parts {
            let Some(slot) = ownership::take_over(&self.shared, &self.primer, consumer, p) else { return };
            self.slots.insert(p, slot);
        }
        self.assigned.set(self.slots.len() as f64);
    }

    /// Forgets `parts` (P10, after their last flush). A fenced buffer is dropped
    /// with them: none of it was committed, so the next owner replays it.
    pub fn release(&mut self, parts: &[i32]) {
        for p in parts {
            self.slots.remove(p);
            // The new owner reports this partition's lag from now on.
            let labels = [("topic", self.shared.topic.clone()), ("partition", p.to_string())];
            CONSUMER_LAG.gauge_with(&labels).set(0.0);
        }
        self.assigned.set(self.slots.len() as f64);
    }

    pub fn buffered_keys(&self) -> usize {
        self.slots.values().map(|s| s.buffer.buffered_keys()).sum()
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
        let Some(slot) = self.slots.get_mut(&p).filter(|s| !s.halted) else { return };
        let item = match self.family {
            Family::Counts => match decode::event(msg.payload()) {
                Ok(d) => match d.client_id {
                    Some(id)
                        if self.primer.enabled()
                            && slot.dedup.observe(id, msg.timestamp().to_millis().unwrap_or(0)) =>
                    {
                        self.duplicates.increment(1);
                        Item::Nothing
                    }
                    _ => Item::Count(d.event, d.viewer),
                },
                Err(reason) => {
                    self.dead_letters.send(&self.shared.rt, &self.shared.topic, msg, &reason.to_string());
                    Item::Nothing
                }
            },
            // A repeated rating needs no dedup: the latest per user replaces.
            Family::Ratings => match decode::rating(msg.payload()) {
                Ok(r) => Item::Rate(r),
                Err(reason) => {
                    self.dead_letters.send(&self.shared.rt, &self.shared.topic, msg, &reason.to_string());
                    Item::Nothing
                }
            },
        };
        loop {
            let Some(slot) = self.slots.get_mut(&p).filter(|s| !s.halted) else { return };
            let folded = match &item {
                Item::Count(e, viewer) => {
                    let folded = slot.buffer.fold(offset, Some(e));
                    if let (Some((user, event_id)), Folded::Folded | Folded::FlushNow) = (viewer, folded) {
                        slot.buffer.note_viewer(*user, e.video_id, e.occurred_at_ms, *event_id);
                    }
                    folded
                }
                Item::Rate(r) => slot.buffer.fold_rating(offset, Some(r)),
                Item::Nothing => slot.buffer.fold(offset, None),
            };
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
                Folded::FlushFirst => self.flush(consumer, &[p]),
            }
        }
    }

    pub fn flush_all<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        let parts: Vec<i32> = self.slots.keys().copied().collect();
        self.flush(consumer, &parts);
    }

    /// Writes the buffered rows of `parts` and commits their offsets (P5–P9).
    pub fn flush<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, parts: &[i32]) {
        flush::flush(&self.shared, consumer, &mut self.slots, parts);
    }
}
