//! The dead-letter path. A message that cannot be counted goes to the dead-letter
//! topic with headers saying why and where it came from; its offset is then
//! consumed like any other. A dead letter must not vanish, because that offset
//! will be committed; and a poison message must never stop its partition. The
//! send is retried, but only for `dead_letter.timeout_ms` and never past
//! shutdown: it runs on the consumer's thread, so retrying forever would stall
//! every partition of the consumer and make SIGTERM hang. When time runs out the
//! owner halts that one partition at the message (P4, P11): it stays in Kafka,
//! uncommitted, until an operator resumes the partition. After a crash a dead
//! letter may be sent twice (at-least-once); counts are unaffected.

use std::time::Duration;

use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::metrics::{DEAD_LETTER_ERRORS, DEAD_LETTERS};
use crate::retry::backoff;

/// Why a dead letter was not sent.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("the dead-letter topic did not acknowledge within {} ms: {last}", timeout.as_millis())]
    TimedOut { timeout: Duration, last: String },
    #[error("shutting down")]
    Shutdown,
}

/// Where an owner sends what it cannot count.
#[derive(Clone)]
pub struct DeadLetters {
    /// acks=all and idempotent, like the gateway's.
    pub producer: FutureProducer,
    pub topic: String,
    /// How long one dead letter may be retried.
    pub timeout: Duration,
    pub shutdown: CancellationToken,
}

impl DeadLetters {
    /// Sends `msg` of `source_topic` with `reason`, blocking (on `rt`) until it is
    /// durable on the dead-letter topic, the timeout passes, or shutdown.
    pub fn send(
        &self,
        rt: &Handle,
        source_topic: &str,
        msg: &BorrowedMessage<'_>,
        reason: &str,
    ) -> Result<(), DeadLetterError> {
        tracing::warn!(partition = msg.partition(), offset = msg.offset(), reason, "dead-lettering message");
        let partition = msg.partition().to_string();
        let offset = msg.offset().to_string();
        let mut attempt = 0;
        let give_up = std::time::Instant::now() + self.timeout;
        loop {
            let mut headers = OwnedHeaders::new()
                .insert(Header { key: "dlq.reason", value: Some(reason) })
                .insert(Header { key: "dlq.source.topic", value: Some(source_topic) })
                .insert(Header { key: "dlq.source.partition", value: Some(partition.as_str()) })
                .insert(Header { key: "dlq.source.offset", value: Some(offset.as_str()) });
            if let Some(h) = msg.headers() {
                for header in h.iter() {
                    headers = headers.insert(header);
                }
            }
            let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic).headers(headers);
            if let Some(k) = msg.key() {
                record = record.key(k);
            }
            if let Some(v) = msg.payload() {
                record = record.payload(v);
            }
            let left = give_up.saturating_duration_since(std::time::Instant::now());
            let sent = rt.block_on(async {
                tokio::select! {
                    r = self.producer.send(record, left) => Some(r),
                    () = self.shutdown.cancelled() => None,
                }
            });
            let e = match sent {
                None => return Err(DeadLetterError::Shutdown),
                Some(Ok(_)) => {
                    DEAD_LETTERS.counter().increment(1);
                    return Ok(());
                }
                Some(Err((e, _))) => e,
            };
            DEAD_LETTER_ERRORS.counter().increment(1);
            let pause = backoff(attempt, Duration::from_millis(100), Duration::from_secs(5));
            if std::time::Instant::now() + pause >= give_up {
                return Err(DeadLetterError::TimedOut { timeout: self.timeout, last: e.to_string() });
            }
            tracing::warn!(error = %e, attempt, "dead-letter produce failed, retrying");
            let stopped = rt.block_on(async {
                tokio::select! {
                    () = tokio::time::sleep(pause) => false,
                    () = self.shutdown.cancelled() => true,
                }
            });
            if stopped {
                return Err(DeadLetterError::Shutdown);
            }
            attempt += 1;
        }
    }
}
