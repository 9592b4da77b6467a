//! The Kafka side of the gateway: a 2xx is only answered once every event of the
//! request is acknowledged by all in-sync replicas (acks=all, idempotent producer).

use std::time::Duration;

use anyhow::Context;
use futures::future::join_all;
use platform::http::Problem;
use platform::kafka::KafkaConfig;
use prost::Message;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use schemas::events::{Event, Rating};

use crate::config::{ProducerConfig, Sink};

#[derive(Clone)]
pub struct EventProducer {
    /// `None`: the null sink (`producer.sink = "null"`), which discards events.
    producer: Option<FutureProducer>,
    topic: String,
    ratings_topic: String,
    enqueue_timeout: Duration,
}

impl EventProducer {
    pub fn new(kafka: &KafkaConfig, cfg: &ProducerConfig) -> anyhow::Result<Self> {
        let enqueue_timeout = Duration::from_millis(cfg.enqueue_timeout_ms);
        if cfg.sink == Sink::Null {
            tracing::warn!("null sink: events are discarded (producer.sink = \"null\"; for benchmarks only)");
            let (topic, ratings_topic) = (kafka.events_topic(), kafka.ratings_topic());
            return Ok(Self { producer: None, topic, ratings_topic, enqueue_timeout });
        }
        let producer: FutureProducer = kafka
            .client_config()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("compression.type", &cfg.compression)
            .set("linger.ms", cfg.linger_ms.to_string())
            .set("message.timeout.ms", cfg.delivery_timeout_ms.to_string())
            .set("queue.buffering.max.messages", cfg.queue_max_messages.to_string())
            // Same partition for a key as the Java client, so other producers agree.
            .set("partitioner", "murmur2_random")
            .create()
            .context("creating kafka producer")?;
        let (topic, ratings_topic) = (kafka.events_topic(), kafka.ratings_topic());
        Ok(Self { producer: Some(producer), topic, ratings_topic, enqueue_timeout })
    }

    /// Produces every event, keyed by its video id, and waits until all are durable.
    /// Fails with 503 (and `Retry-After`) if any one is not: the client retries the
    /// request, and the event ids make that safe to count once downstream.
    pub async fn send_all(&self, events: &[Event]) -> Result<(), Problem> {
        let keyed: Vec<(&[u8], Vec<u8>)> = events.iter().map(|e| (e.video_id.as_slice(), e.encode_to_vec())).collect();
        self.produce(&self.topic, &keyed).await
    }

    /// Produces one rating onto the ratings topic, keyed by its video id, and waits
    /// until it is durable.
    pub async fn send_rating(&self, rating: &Rating) -> Result<(), Problem> {
        self.produce(&self.ratings_topic, &[(rating.video_id.as_slice(), rating.encode_to_vec())]).await
    }

    async fn produce(&self, topic: &str, keyed: &[(&[u8], Vec<u8>)]) -> Result<(), Problem> {
        let Some(producer) = &self.producer else {
            // Encoded like every other event, so the null sink costs what the HTTP side costs.
            std::hint::black_box(keyed);
            metrics::counter!("gateway_events_discarded_total").increment(keyed.len() as u64);
            return Ok(());
        };
        let sends = keyed.iter().map(|(key, payload)| {
            let record = FutureRecord::to(topic).key(*key).payload(payload.as_slice());
            producer.send(record, self.enqueue_timeout)
        });
        let mut failed = None;
        for result in join_all(sends).await {
            if let Err((err, _)) = result {
                failed.get_or_insert(err);
            }
        }
        self.sample_queue();
        match failed {
            None => {
                metrics::counter!("gateway_events_produced_total").increment(keyed.len() as u64);
                Ok(())
            }
            Some(err) => {
                let [queue_full, timed_out, other] = crate::telemetry::PRODUCE_ERROR_KINDS;
                let kind = match &err {
                    KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => queue_full,
                    KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut) => timed_out,
                    _ => other,
                };
                metrics::counter!("gateway_produce_errors_total", "kind" => kind).increment(1);
                tracing::warn!(error = %err, kind, "produce failed, answering 503");
                Err(Problem::unavailable("the event log is not accepting events right now; retry later", 1))
            }
        }
    }

    /// Sets the queue-depth gauge. Called after every send and once a second, so the
    /// gauge also falls back when traffic stops.
    pub fn sample_queue(&self) {
        let depth = self.producer.as_ref().map_or(0, |p| p.in_flight_count());
        metrics::gauge!("kafka_producer_in_flight_messages").set(depth as f64);
    }

    /// Waits for everything queued to be delivered (graceful shutdown).
    pub fn flush(&self, timeout: Duration) {
        let Some(producer) = &self.producer else { return };
        if let Err(e) = producer.flush(timeout) {
            tracing::error!(error = %e, "producer flush at shutdown failed");
        }
    }

    /// Kafka knows the events topic; the null sink is always ready.
    pub fn ping(&self, timeout: Duration) -> Result<(), String> {
        let Some(producer) = &self.producer else { return Ok(()) };
        let md = producer.client().fetch_metadata(Some(&self.topic), timeout).map_err(|e| format!("kafka: {e}"))?;
        match md.topics().first() {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(()),
            _ => Err(format!("kafka: topic {} is missing", self.topic)),
        }
    }
}
