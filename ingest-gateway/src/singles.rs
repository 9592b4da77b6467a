//! Single events of concurrent requests, produced together
//! (`producer.pack_singles_ms`). A view or one `POST /api/v1/events` is one event,
//! and one Kafka message each costs the gateway a delivery to wait for and the
//! broker a record, per event. Here each waits up to the window in a queue; then
//! everything queued goes out as a batch request's events do, one message per
//! partition (a pack, or the event itself if alone), and each request is answered
//! by its own message's delivery: a 2xx still means durable in Kafka.
//!
//! The queue is bounded by `producer.pack_singles_max` per window and by the
//! channel (`QUEUE`): a request that finds it full waits up to
//! `producer.enqueue_timeout_ms`, then is answered 503 like a full producer queue.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use schemas::events::Event;
use tokio::sync::{mpsc, oneshot};

use crate::producer::{EventProducer, ProduceError};

/// Requests waiting in the channel at most, across windows.
const QUEUE: usize = 65_536;

/// One request's event, and where its answer goes.
pub struct Waiting {
    pub event: Event,
    pub done: oneshot::Sender<Result<(), ProduceError>>,
}

/// The way into the collector; cloned with the producer.
#[derive(Clone)]
pub struct Singles {
    tx: mpsc::Sender<Waiting>,
    enqueue_timeout: Duration,
}

impl Singles {
    /// Starts the collector on the current runtime. `producer` sends each window
    /// (it must not collect singles itself).
    pub fn spawn(producer: EventProducer, window: Duration, max: usize, enqueue_timeout: Duration) -> Self {
        let (tx, mut rx) = mpsc::channel::<Waiting>(QUEUE);
        let max = max.max(1);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let until = tokio::time::Instant::now() + window;
                let mut waiting = vec![first];
                while waiting.len() < max {
                    match tokio::time::timeout_at(until, rx.recv()).await {
                        Ok(Some(w)) => waiting.push(w),
                        Ok(None) | Err(_) => break,
                    }
                }
                let producer = producer.clone();
                tokio::spawn(async move { producer.send_waiting(waiting).await });
            }
        });
        Self { tx, enqueue_timeout }
    }

    /// Queues `event` and waits until its message is durable (or failed).
    pub async fn send(&self, event: Event) -> Result<(), ProduceError> {
        let (done, answer) = oneshot::channel();
        let full = || ProduceError::new(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull));
        match tokio::time::timeout(self.enqueue_timeout, self.tx.send(Waiting { event, done })).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(ProduceError::new(KafkaError::Canceled)),
            Err(_) => return Err(full()),
        }
        answer.await.unwrap_or_else(|_| Err(ProduceError::new(KafkaError::Canceled)))
    }
}
