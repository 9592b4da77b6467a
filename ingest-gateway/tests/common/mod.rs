//! What the gateway tests share: reading back what reached Kafka.

use std::time::{Duration, Instant};

use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use schemas::events::Event;

/// Every event on `topic` (each of a pack's): every message of every partition up
/// to its end as it stands now. A 2xx means the events are in Kafka, so once the
/// requests are answered this is all they produced, extras included, with no
/// waiting for stragglers.
pub fn events_on(brokers: &str, topic: &str) -> Vec<Event> {
    let timeout = Duration::from_secs(10);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-read-back"))
        .create()
        .unwrap();
    let metadata = consumer.fetch_metadata(Some(topic), timeout).expect("topic metadata (is Kafka up?)");
    let partitions = metadata.topics().first().map_or(0, |t| t.partitions().len() as i32);
    assert!(partitions > 0, "{topic} has no partitions");
    let mut assign = TopicPartitionList::new();
    let mut left = 0;
    for p in 0..partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, timeout).unwrap();
        assign.add_partition_offset(topic, p, Offset::Offset(low)).unwrap();
        left += high - low;
    }
    consumer.assign(&assign).unwrap();
    let (mut events, deadline) = (Vec::new(), Instant::now() + Duration::from_secs(30));
    while left > 0 {
        assert!(Instant::now() < deadline, "{left} messages of {topic} never read");
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            events.extend(Event::decode(m.payload().unwrap_or_default()).unwrap().into_events());
            left -= 1;
        }
    }
    events
}

/// Where the tests' Kafka is (`scripts/stack env`), the stack's default otherwise.
pub fn brokers() -> String {
    std::env::var("VCOUNT_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into())
}
