//! What an operator (or a disaster) does to the log, for the fault tests: delete
//! records as retention would, delete and recreate a topic, grow a topic, change
//! a topic's configuration. On the shared Kafka, only ever to a test's own topics.

use std::time::{Duration, Instant};

use rdkafka::TopicPartitionList;
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, NewPartitions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::brokers;

fn admin() -> AdminClient<DefaultClientContext> {
    rdkafka::ClientConfig::new().set("bootstrap.servers", brokers()).create().expect("admin client")
}

fn opts() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)))
}

/// Deletes every message of `partition` before `offset`, as retention would.
pub async fn delete_records(topic: &str, partition: i32, offset: i64) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, rdkafka::Offset::Offset(offset)).unwrap();
    let got = admin().delete_records(&tpl, &opts()).await.expect("delete records");
    let low = got.find_partition(topic, partition).and_then(|e| e.offset().to_raw());
    assert_eq!(low, Some(offset), "the log of {topic}/{partition} now starts at {offset}");
}

/// Deletes `topic` and creates it again, empty, with `partitions` partitions and
/// the settings the services give it.
pub async fn recreate_topic(cfg: &platform::kafka::KafkaConfig, topic: &str) {
    let results = admin().delete_topics(&[topic], &opts()).await.expect("delete topic");
    for r in results {
        r.expect("topic deleted");
    }
    // Deletion finishes in the background: creating too soon says it still exists.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match platform::kafka::ensure_topics(cfg).await {
            Ok(()) if platform::kafka::partition_count(cfg, topic, Duration::from_secs(5)).is_ok_and(|n| n > 0) => {
                break;
            }
            _ => {}
        }
        assert!(Instant::now() < deadline, "topic {topic} was not recreated");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Wait until its partitions have leaders and the log is empty.
    let consumer: rdkafka::consumer::BaseConsumer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", brokers()).create().unwrap();
    use rdkafka::consumer::Consumer;
    while consumer.fetch_watermarks(topic, 0, Duration::from_secs(5)) != Ok((0, 0)) {
        assert!(Instant::now() < deadline, "recreated topic {topic} never became readable");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Grows `topic` to `partitions` partitions.
pub async fn grow_topic(topic: &str, partitions: usize) {
    let results = admin().create_partitions([&NewPartitions::new(topic, partitions)], &opts()).await.unwrap();
    for r in results {
        r.expect("partitions created");
    }
}

/// Sets `key` of `topic`'s configuration. (Incremental alter is not in the
/// client; the legacy call replaces the topic's overrides, so pass them all.)
pub async fn set_topic_config(topic: &str, entries: &[(&str, &str)]) {
    let mut change = AlterConfig::new(ResourceSpecifier::Topic(topic));
    for (k, v) in entries {
        change = change.set(k, v);
    }
    let results = admin().alter_configs([&change], &opts()).await.expect("alter configs");
    for r in results {
        if let Err((_, code)) = r {
            assert_eq!(code, RDKafkaErrorCode::NoError, "altering {topic}");
        }
    }
}
