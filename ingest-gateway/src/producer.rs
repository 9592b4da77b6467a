//! The Kafka side of the gateway: a 2xx is only answered once every event of the
//! request is acknowledged by all in-sync replicas (acks=all, idempotent producer).
//! It returns its own errors; `routes` turns them into the 503 answer.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::task::AtomicWaker;
use platform::kafka::KafkaConfig;
use prost::Message;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use schemas::events::{Event, Rating};
use tokio::sync::Notify;

use crate::config::{ProducerConfig, Sink};
use crate::metrics::handles::{EVENTS_DISCARDED, EVENTS_PRODUCED, PRODUCER_IN_FLIGHT};
use crate::metrics::{PRODUCE_ERROR_KINDS, PRODUCE_ERRORS};

/// Kafka did not acknowledge an event of the request, so none of it may be
/// answered as accepted.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// The producer's queue is full: backpressure, the client should slow down.
    #[error("the producer queue is full: {0}")]
    QueueFull(KafkaError),
    /// Not acknowledged within `producer.delivery_timeout_ms`.
    #[error("not acknowledged in time: {0}")]
    TimedOut(KafkaError),
    #[error("{0}")]
    Other(KafkaError),
}

impl ProduceError {
    fn new(err: KafkaError) -> Self {
        match &err {
            KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => Self::QueueFull(err),
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut) => Self::TimedOut(err),
            _ => Self::Other(err),
        }
    }

    /// The `kind` label of `gateway_produce_errors_total`.
    pub fn kind(&self) -> &'static str {
        let [queue_full, timed_out, other] = PRODUCE_ERROR_KINDS;
        match self {
            Self::QueueFull(_) => queue_full,
            Self::TimedOut(_) => timed_out,
            Self::Other(_) => other,
        }
    }
}

/// Why the gateway is not ready to accept events.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("kafka: {0}")]
    Metadata(#[from] KafkaError),
    #[error("kafka: topic {0} is missing")]
    TopicMissing(String),
}

/// Creating the producer failed.
#[derive(Debug, thiserror::Error)]
#[error("creating kafka producer")]
pub struct CreateError(#[source] KafkaError);

/// The deliveries one request waits for: how many of its messages are not yet
/// reported, the first failure, and the request's task to wake at the last.
struct Deliveries {
    remaining: AtomicUsize,
    failed: Mutex<Option<KafkaError>>,
    waker: AtomicWaker,
}

impl Deliveries {
    fn new(messages: usize) -> Arc<Self> {
        Arc::new(Self { remaining: AtomicUsize::new(messages), failed: Mutex::new(None), waker: AtomicWaker::new() })
    }

    /// One message is settled (delivered, failed, or never enqueued).
    fn settle(&self, result: Result<(), KafkaError>) {
        if let Err(e) = result {
            self.failed.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.waker.wake();
        }
    }
}

/// Resolves once every message of a request is settled, to its first failure.
struct Settled(Arc<Deliveries>);

impl Future for Settled {
    type Output = Option<KafkaError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let d = &self.0;
        if d.remaining.load(Ordering::Acquire) > 0 {
            d.waker.register(cx.waker());
            if d.remaining.load(Ordering::Acquire) > 0 {
                return Poll::Pending;
            }
        }
        Poll::Ready(d.failed.lock().unwrap_or_else(|p| p.into_inner()).take())
    }
}

/// librdkafka's delivery reports, served on the runtime by [`poll_reports`]: a
/// report wakes its request from a worker thread, where rdkafka's
/// `FutureProducer` woke it from a polling thread of its own (a cross-thread
/// wake and a oneshot channel per message).
#[derive(Default)]
struct Reports {
    served: AtomicU64,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Arc<Deliveries>;

    fn delivery(&self, result: &DeliveryResult<'_>, deliveries: Arc<Deliveries>) {
        self.served.fetch_add(1, Ordering::Relaxed);
        deliveries.settle(result.as_ref().map(|_| ()).map_err(|(e, _)| e.clone()));
    }
}

/// The Kafka producer and the signal that wakes its report poller.
struct Kafka {
    producer: BaseProducer<Reports>,
    sent: Notify,
}

/// Serves delivery reports while a message is in flight, every millisecond;
/// sleeps on `sent` (or 100 ms, for librdkafka's error events) when none is.
/// Ends when the last [`EventProducer`] is dropped.
async fn poll_reports(kafka: Weak<Kafka>) {
    loop {
        let Some(k) = kafka.upgrade() else { return };
        // One event per poll (a produce response's reports); serve all that are ready.
        loop {
            let before = k.producer.context().served.load(Ordering::Relaxed);
            k.producer.poll(Duration::ZERO);
            if k.producer.context().served.load(Ordering::Relaxed) == before {
                break;
            }
        }
        if k.producer.in_flight_count() > 0 {
            drop(k);
            tokio::time::sleep(Duration::from_millis(1)).await;
        } else {
            let _ = tokio::time::timeout(Duration::from_millis(100), k.sent.notified()).await;
        }
    }
}

#[derive(Clone)]
pub struct EventProducer {
    /// `None`: the null sink (`producer.sink = "null"`), which discards events.
    producer: Option<Arc<Kafka>>,
    topic: String,
    ratings_topic: String,
    enqueue_timeout: Duration,
    /// `producer.pack_batches`.
    pack: bool,
    /// The events topic's partition count as last read (0: not yet known, so
    /// nothing is packed); packs are grouped by it.
    partitions: Arc<AtomicI32>,
}

impl EventProducer {
    /// Spawns the delivery-report poller on the current Tokio runtime.
    pub fn new(kafka: &KafkaConfig, cfg: &ProducerConfig) -> Result<Self, CreateError> {
        let enqueue_timeout = Duration::from_millis(cfg.enqueue_timeout_ms);
        if cfg.sink == Sink::Null {
            tracing::warn!("null sink: events are discarded (producer.sink = \"null\"; for benchmarks only)");
            let (topic, ratings_topic) = (kafka.events_topic(), kafka.ratings_topic());
            let partitions = Arc::default();
            return Ok(Self { producer: None, topic, ratings_topic, enqueue_timeout, pack: false, partitions });
        }
        let producer: BaseProducer<Reports> = kafka
            .client_config()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("compression.type", &cfg.compression)
            .set("linger.ms", cfg.linger_ms.to_string())
            .set("message.timeout.ms", cfg.delivery_timeout_ms.to_string())
            .set("queue.buffering.max.messages", cfg.queue_max_messages.to_string())
            // Same partition for a key as the Java client, so other producers agree.
            .set("partitioner", "murmur2_random")
            .create_with_context(Reports::default())
            .map_err(CreateError)?;
        let producer = Arc::new(Kafka { producer, sent: Notify::new() });
        tokio::spawn(poll_reports(Arc::downgrade(&producer)));
        let (topic, ratings_topic) = (kafka.events_topic(), kafka.ratings_topic());
        let (pack, partitions) = (cfg.pack_batches, Arc::default());
        Ok(Self { producer: Some(producer), topic, ratings_topic, enqueue_timeout, pack, partitions })
    }

    /// Produces every event, keyed by its video id, and waits until all are durable.
    /// Fails if any one is not (answered 503 with `Retry-After`): the client retries
    /// the request, and the event ids make that safe to count once downstream.
    ///
    /// With `producer.pack_batches`, the events that fall in one partition travel
    /// as one message, a *pack* (`Event.packed`, keyed by its first event's video
    /// id, so the partitioner puts it where every event of it belongs): one
    /// delivery to wait for, one record for the broker, instead of one per event.
    pub async fn send_all(&self, events: &[Event]) -> Result<(), ProduceError> {
        self.produce(&self.topic, &self.messages(events), events.len()).await
    }

    /// The messages for `events`: a pack per partition with more than one event of
    /// them, a plain event otherwise.
    fn messages<'a>(&self, events: &'a [Event]) -> Vec<(&'a [u8], Vec<u8>)> {
        let partitions = self.partitions.load(Ordering::Relaxed);
        if !self.pack || partitions <= 0 || events.len() < 2 {
            return events.iter().map(|e| (e.video_id.as_slice(), e.encode_to_vec())).collect();
        }
        let mut groups: Vec<Vec<&Event>> = vec![Vec::new(); partitions as usize];
        for e in events {
            groups[platform::kafka::murmur2_partition(&e.video_id, partitions) as usize].push(e);
        }
        groups
            .into_iter()
            .filter_map(|group| match group.as_slice() {
                [] => None,
                [one] => Some((one.video_id.as_slice(), one.encode_to_vec())),
                [first, ..] => Some((first.video_id.as_slice(), pack(&group))),
            })
            .collect()
    }

    /// Produces one rating onto the ratings topic, keyed by its video id, and waits
    /// until it is durable.
    pub async fn send_rating(&self, rating: &Rating) -> Result<(), ProduceError> {
        self.produce(&self.ratings_topic, &[(rating.video_id.as_slice(), rating.encode_to_vec())], 1).await
    }

    /// Produces the messages (`events` events in all) and waits for every delivery.
    async fn produce(&self, topic: &str, keyed: &[(&[u8], Vec<u8>)], events: usize) -> Result<(), ProduceError> {
        let Some(kafka) = &self.producer else {
            // Encoded like every other event, so the null sink costs what the HTTP side costs.
            std::hint::black_box(keyed);
            EVENTS_DISCARDED.get().increment(events as u64);
            return Ok(());
        };
        let deliveries = Deliveries::new(keyed.len());
        for (key, payload) in keyed {
            let mut record =
                BaseRecord::with_opaque_to(topic, deliveries.clone()).key(*key).payload(payload.as_slice());
            let started = Instant::now();
            loop {
                match kafka.producer.send(record) {
                    Ok(()) => break,
                    // As rdkafka's FutureProducer: retry a full queue every 100 ms
                    // until `producer.enqueue_timeout_ms`.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                        if started.elapsed() < self.enqueue_timeout =>
                    {
                        record = r;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err((e, _)) => {
                        deliveries.settle(Err(e));
                        break;
                    }
                }
            }
        }
        kafka.sent.notify_one();
        let failed = Settled(deliveries).await;
        self.sample_queue();
        match failed {
            None => {
                EVENTS_PRODUCED.get().increment(events as u64);
                Ok(())
            }
            Some(err) => {
                let err = ProduceError::new(err);
                PRODUCE_ERRORS.counter_with(&[("kind", err.kind())]).increment(1);
                Err(err)
            }
        }
    }

    /// Sets the queue-depth gauge. Called after every send and once a second, so the
    /// gauge also falls back when traffic stops.
    pub fn sample_queue(&self) {
        let depth = self.producer.as_ref().map_or(0, |k| k.producer.in_flight_count());
        PRODUCER_IN_FLIGHT.get().set(depth as f64);
    }

    /// Waits for everything queued to be delivered (graceful shutdown).
    pub fn flush(&self, timeout: Duration) {
        let Some(kafka) = &self.producer else { return };
        if let Err(e) = kafka.producer.flush(timeout) {
            tracing::error!(error = %e, "producer flush at shutdown failed");
        }
    }

    /// Kafka knows the events topic; the null sink is always ready. Learns the
    /// topic's partition count for the packs on the way (blocking).
    pub fn ping(&self, timeout: Duration) -> Result<(), NotReady> {
        let Some(kafka) = &self.producer else { return Ok(()) };
        let md = kafka.producer.client().fetch_metadata(Some(&self.topic), timeout)?;
        match md.topics().first() {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                let n = i32::try_from(t.partitions().len()).unwrap_or(0);
                if self.partitions.swap(n, Ordering::Relaxed) != n {
                    tracing::info!(topic = %self.topic, partitions = n, pack = self.pack, "events topic partitions");
                }
                Ok(())
            }
            _ => Err(NotReady::TopicMissing(self.topic.clone())),
        }
    }

    /// Whether the partition count is known (or not needed: the null sink).
    pub fn knows_partitions(&self) -> bool {
        self.producer.is_none() || self.partitions.load(Ordering::Relaxed) > 0
    }
}

/// A pack of `events`: an `Event` with only `packed` set, written field by field
/// (the same bytes as `Event { packed: events, ..Default }`, without the copies).
fn pack(events: &[&Event]) -> Vec<u8> {
    const PACKED: u32 = Event::PACKED_FIELD;
    let len: usize = events.iter().map(|e| prost::encoding::message::encoded_len(PACKED, *e)).sum();
    let mut buf = Vec::with_capacity(len);
    for e in events {
        prost::encoding::message::encode(PACKED, *e, &mut buf);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_waits_for_its_last_report_and_keeps_the_first_failure() {
        // Nothing to send: settled at once.
        assert!(Settled(Deliveries::new(0)).await.is_none());
        // Three messages settled from another thread, the second and third failing.
        let d = Deliveries::new(3);
        let mut waiting = tokio::spawn(Settled(d.clone()));
        d.settle(Ok(()));
        let timed_out = || KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        let (go, last) = std::sync::mpsc::channel::<()>();
        let reporter = {
            let d = d.clone();
            std::thread::spawn(move || {
                d.settle(Err(timed_out()));
                last.recv().unwrap();
                d.settle(Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)));
            })
        };
        assert!(tokio::time::timeout(Duration::from_millis(50), &mut waiting).await.is_err(), "one is still out");
        go.send(()).unwrap();
        reporter.join().unwrap();
        assert_eq!(waiting.await.unwrap(), Some(timed_out()));
    }

    #[test]
    fn a_pack_is_the_event_with_only_packed_set() {
        let events: Vec<Event> = (0..3u8)
            .map(|i| Event { video_id: vec![i; 16], value: i64::from(i) + 1, occurred_at_ms: 7, ..Default::default() })
            .collect();
        let bytes = pack(&events.iter().collect::<Vec<_>>());
        assert_eq!(bytes, Event { packed: events.clone(), ..Default::default() }.encode_to_vec());
        assert_eq!(Event::decode(bytes.as_slice()).unwrap().packed, events);
    }
}
