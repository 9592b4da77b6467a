//! The dead-letter path. A message that cannot be counted goes to the dead-letter
//! topic with headers saying why and where it came from; its offset is then
//! consumed like any other. The send is retried until Kafka acknowledges it,
//! because that offset will be committed: a dead letter must not vanish, and a
//! poison message must never stop its partition. After a crash a dead letter may
//! be sent twice (at-least-once); counts are unaffected.

use std::time::Duration;

use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::runtime::Handle;

use crate::metrics::DEAD_LETTERS;
use crate::retry::backoff;

/// Where an owner sends what it cannot count.
#[derive(Clone)]
pub struct DeadLetters {
    /// acks=all and idempotent, like the gateway's.
    pub producer: FutureProducer,
    pub topic: String,
}

impl DeadLetters {
    /// Sends `msg` of `source_topic` with `reason`, blocking (on `rt`) until it is
    /// durable on the dead-letter topic.
    pub fn send(&self, rt: &Handle, source_topic: &str, msg: &BorrowedMessage<'_>, reason: &str) {
        tracing::warn!(partition = msg.partition(), offset = msg.offset(), reason, "dead-lettering message");
        let partition = msg.partition().to_string();
        let offset = msg.offset().to_string();
        let mut attempt = 0;
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
            match rt.block_on(self.producer.send(record, Duration::from_secs(5))) {
                Ok(_) => {
                    DEAD_LETTERS.counter().increment(1);
                    return;
                }
                Err((e, _)) => {
                    tracing::warn!(error = %e, attempt, "dead-letter produce failed, retrying");
                    std::thread::sleep(backoff(attempt, Duration::from_millis(100), Duration::from_secs(5)));
                    attempt += 1;
                }
            }
        }
    }
}
