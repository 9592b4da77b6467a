//! `platform::kafka::murmur2_partition` against the real broker and librdkafka:
//! keyed records produced as the gateway produces them (`murmur2_random`, the
//! video id's 16 bytes as the key) land where the function says. The query
//! service finds a video's owner with it (issue 15); a disagreement would send
//! every fresh read to the wrong aggregator.
//!
//! Needs the Kafka `scripts/stack` starts (`VCOUNT_KAFKA_BROKERS`, else
//! 127.0.0.1:19092): it fails, never skips, without it.

use std::time::Duration;

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use uuid::Uuid;

const PARTITIONS: i32 = 12;
const KEYS: usize = 200;

fn brokers() -> String {
    std::env::var("VCOUNT_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into())
}

#[tokio::test]
async fn murmur2_partition_agrees_with_librdkafka_on_the_real_broker() -> anyhow::Result<()> {
    let topic = format!("t_murmur2_{}", Uuid::new_v4().simple());
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers()).create().context("admin client")?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let created = admin
        .create_topics(&[NewTopic::new(&topic, PARTITIONS, TopicReplication::Fixed(1))], &opts)
        .await
        .context("creating the topic (is Kafka up?)")?;
    for r in created {
        r.map_err(|(t, code)| anyhow::anyhow!("creating {t}: {code}"))?;
    }

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("partitioner", "murmur2_random")
        .set("message.timeout.ms", "30000")
        .create()
        .context("producer")?;
    let videos: Vec<Uuid> = (0..KEYS).map(|_| Uuid::new_v4()).collect();
    let sends = videos.iter().map(|v| {
        let producer = &producer;
        let topic = &topic;
        async move {
            let rec = FutureRecord::to(topic).key(v.as_bytes().as_slice()).payload(&b"x"[..]);
            producer.send(rec, Duration::from_secs(30)).await.map_err(|(e, _)| e)
        }
    });
    let delivered = futures::future::join_all(sends).await;

    let mut used = std::collections::BTreeSet::new();
    for (video, d) in videos.iter().zip(delivered) {
        let d = d.with_context(|| format!("producing {video}"))?;
        assert_eq!(
            platform::kafka::murmur2_partition(video.as_bytes(), PARTITIONS),
            d.partition,
            "video {video}: librdkafka put it in partition {}",
            d.partition
        );
        used.insert(d.partition);
    }
    // 200 random keys over 12 partitions miss one with probability ~12·(11/12)^200 ≈ 3e-7:
    // the comparison covered every partition, not a degenerate few.
    assert_eq!(used.len(), PARTITIONS as usize, "partitions hit: {used:?}");

    admin.delete_topics(&[&topic], &opts).await.context("deleting the topic")?;
    Ok(())
}
