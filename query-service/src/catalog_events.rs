//! Publishing catalog changes (seed 002): after a user, video or comment is stored,
//! a `CatalogEvent` goes onto the catalog topic, keyed by the entity's id.
//!
//! Publishing happens after the answer is decided and never fails the request:
//! the change is already stored, and a registration must not fail because Kafka is
//! slow. The producer retries (idempotent, acks=all) for `delivery_timeout_ms`; an
//! event still undelivered then is logged and counted in
//! `query_catalog_events_failed_total`. So delivery is at-least-once while Kafka
//! comes back within the timeout, and can lose an event beyond it; a transactional
//! outbox would close that gap (README, known limits).

use std::time::Duration;

use anyhow::Context;
use platform::kafka::KafkaConfig;
use prost::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::catalog::{CatalogEvent, catalog_event::Change};
use uuid::Uuid;

use crate::metrics::{CATALOG_EVENT_KINDS, CATALOG_EVENTS_FAILED, CATALOG_EVENTS_PUBLISHED};

#[derive(Clone)]
pub struct CatalogEvents {
    producer: FutureProducer,
    topic: String,
}

impl CatalogEvents {
    pub fn new(kafka: &KafkaConfig, delivery_timeout_ms: u64) -> anyhow::Result<Self> {
        let producer = kafka
            .client_config()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", delivery_timeout_ms.to_string())
            .set("partitioner", "murmur2_random")
            .create()
            .context("creating the catalog events producer")?;
        Ok(Self { producer, topic: kafka.catalog_topic() })
    }

    /// Publishes `change` about the entity `key` in the background.
    pub fn publish(&self, key: Uuid, change: Change) {
        let [user_created, video_added, comment_added] = CATALOG_EVENT_KINDS;
        let kind = match &change {
            Change::UserCreated(_) => user_created,
            Change::VideoAdded(_) => video_added,
            Change::CommentAdded(_) => comment_added,
        };
        let event = CatalogEvent {
            event_id: Uuid::now_v7().as_bytes().to_vec(),
            at_ms: chrono::Utc::now().timestamp_millis(),
            change: Some(change),
        };
        let (producer, topic) = (self.producer.clone(), self.topic.clone());
        tokio::spawn(async move {
            let payload = event.encode_to_vec();
            let record = FutureRecord::to(&topic).key(key.as_bytes().as_slice()).payload(&payload);
            match producer.send(record, Duration::from_secs(5)).await {
                Ok(_) => CATALOG_EVENTS_PUBLISHED.counter_with(&[("kind", kind)]).increment(1),
                Err((e, _)) => {
                    CATALOG_EVENTS_FAILED.counter_with(&[("kind", kind)]).increment(1);
                    tracing::error!(error = %e, kind, %key, "a catalog event was not delivered");
                }
            }
        });
    }
}

/// Raw bytes of an id, as the schemas carry them.
pub fn id_bytes(id: Uuid) -> Vec<u8> {
    id.as_bytes().to_vec()
}
