//! Kafka settings shared by producers and consumers, topic names and creation.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};

/// What can go wrong setting up topics or reading their metadata.
#[derive(Debug, thiserror::Error)]
pub enum KafkaAdminError {
    #[error("creating kafka {what} client")]
    Client {
        what: &'static str,
        #[source]
        source: KafkaError,
    },
    #[error("creating kafka topics")]
    CreateTopics(#[source] KafkaError),
    #[error("creating topic {topic}: {code}")]
    Topic { topic: String, code: RDKafkaErrorCode },
    #[error("fetching kafka metadata")]
    Metadata(#[source] KafkaError),
    #[error("no metadata for topic {0}")]
    NoMetadata(String),
    #[error("topic {topic}: {code:?}")]
    TopicMetadata { topic: String, code: rdkafka::types::RDKafkaRespErr },
    #[error("describing the configuration of topic {topic}")]
    DescribeConfigs {
        topic: String,
        #[source]
        source: KafkaError,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated.
    pub brokers: String,
    /// Prepended to every topic name (tests use a prefix each).
    pub topic_prefix: String,
    /// Partitions of the events and ratings topics when they are created. Fixed for the topic's
    /// life: the aggregator's `last_offset` rule is per partition.
    pub partitions: i32,
    pub replication_factor: i32,
    /// Create missing topics at start-up.
    pub create_topics: bool,
    /// `retention.ms` of the events and ratings topics when they are created. It
    /// bounds how long the aggregator may be down (or behind) before messages are
    /// deleted unread, and how far back a recount from the log can go.
    pub retention_ms: i64,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:19092".into(),
            topic_prefix: String::new(),
            partitions: 12,
            replication_factor: 1,
            create_topics: true,
            retention_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

impl KafkaConfig {
    pub fn events_topic(&self) -> String {
        format!("{}video-events", self.topic_prefix)
    }

    /// Ratings, keyed by video id like events, with the same partition count.
    pub fn ratings_topic(&self) -> String {
        format!("{}video-ratings", self.topic_prefix)
    }

    /// Catalog changes (users, videos, comments), keyed by the entity's id.
    pub fn catalog_topic(&self) -> String {
        format!("{}catalog-events", self.topic_prefix)
    }

    pub fn dead_letter_topic(&self) -> String {
        format!("{}video-events.dlq", self.topic_prefix)
    }

    /// A client config with the brokers set; callers add their own keys.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        c
    }
}

/// Creates the events, ratings and catalog topics and the dead-letter topic if missing. An existing
/// topic is left as it is (its partition count is never changed here).
pub async fn ensure_topics(cfg: &KafkaConfig) -> Result<(), KafkaAdminError> {
    let admin: AdminClient<DefaultClientContext> =
        cfg.client_config().create().map_err(|source| KafkaAdminError::Client { what: "admin", source })?;
    let min_isr = cfg.replication_factor.min(2).to_string();
    let events = cfg.events_topic();
    let dlq = cfg.dead_letter_topic();
    let ratings = cfg.ratings_topic();
    let catalog = cfg.catalog_topic();
    let retention = cfg.retention_ms.to_string();
    let topics = [
        // Broker append time never decreases along a partition: the aggregator's
        // duplicate rule depends on that to decide the same way on every replay.
        // Retention is explicit, not the broker's default: it is how long the
        // aggregator may lag before messages are deleted unread.
        NewTopic::new(&events, cfg.partitions, TopicReplication::Fixed(cfg.replication_factor))
            .set("min.insync.replicas", &min_isr)
            .set("message.timestamp.type", "LogAppendTime")
            .set("retention.ms", &retention),
        NewTopic::new(&ratings, cfg.partitions, TopicReplication::Fixed(cfg.replication_factor))
            .set("min.insync.replicas", &min_isr)
            .set("retention.ms", &retention),
        NewTopic::new(&catalog, cfg.partitions, TopicReplication::Fixed(cfg.replication_factor))
            .set("min.insync.replicas", &min_isr),
        NewTopic::new(&dlq, 1, TopicReplication::Fixed(cfg.replication_factor))
            .set("min.insync.replicas", &min_isr)
            .set("retention.ms", "2592000000"),
    ];
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics(&topics, &opts).await.map_err(KafkaAdminError::CreateTopics)?;
    for r in results {
        match r {
            Ok(name) => tracing::info!(topic = %name, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(KafkaAdminError::Topic { topic, code }),
        }
    }
    Ok(())
}

/// Partition count of `topic`, from broker metadata (blocking, use off the runtime).
pub fn partition_count(cfg: &KafkaConfig, topic: &str, timeout: Duration) -> Result<usize, KafkaAdminError> {
    let consumer: BaseConsumer =
        cfg.client_config().create().map_err(|source| KafkaAdminError::Client { what: "metadata", source })?;
    let md = consumer.fetch_metadata(Some(topic), timeout).map_err(KafkaAdminError::Metadata)?;
    let t = md.topics().first().ok_or_else(|| KafkaAdminError::NoMetadata(topic.to_owned()))?;
    if let Some(code) = t.error() {
        return Err(KafkaAdminError::TopicMetadata { topic: topic.to_owned(), code });
    }
    Ok(t.partitions().len())
}

/// The value of `key` in the configuration of `topic` (its own or the broker's default).
pub async fn topic_config(cfg: &KafkaConfig, topic: &str, key: &str) -> Result<Option<String>, KafkaAdminError> {
    use rdkafka::admin::ResourceSpecifier;
    let admin: AdminClient<DefaultClientContext> =
        cfg.client_config().create().map_err(|source| KafkaAdminError::Client { what: "admin", source })?;
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let describe = |source: KafkaError| KafkaAdminError::DescribeConfigs { topic: topic.to_owned(), source };
    let results = admin.describe_configs([&ResourceSpecifier::Topic(topic)], &opts).await.map_err(describe)?;
    let resource = results.into_iter().next().ok_or_else(|| KafkaAdminError::NoMetadata(topic.to_owned()))?;
    let resource = resource.map_err(|code| describe(KafkaError::AdminOp(code)))?;
    Ok(resource.get(key).and_then(|e| e.value.clone()))
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`, librdkafka's
/// `rd_murmur2`): the hash both default partitioners apply to a record's key.
/// The query service needs it to find a video's partition without producing
/// (its owner holds what is not written yet, issue 15), so it must agree with
/// the producers bit for bit: 32-bit wrapping arithmetic, little-endian words,
/// the tail folded in as Java's `switch` falls through.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Kafka keys are at most a message long; the length enters as Java's int would.
    let mut h = SEED ^ (data.len() as u32);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        let mut k = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = words.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition a record keyed `key` goes to under the Java client's default
/// partitioner and librdkafka's `murmur2_random` (non-null keys):
/// `(murmur2(key) & 0x7fffffff) % partitions`. The gateway keys events by the
/// video id's 16 bytes. `partitions` must be positive.
pub fn murmur2_partition(key: &[u8], partitions: i32) -> i32 {
    debug_assert!(partitions > 0, "a topic has at least one partition");
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod murmur2_tests {
    use super::*;

    /// The vectors of Kafka's own `UtilsTest.testMurmur2` (apache/kafka,
    /// clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java): the
    /// hash as the Java client computes it, before the partitioner's mask.
    #[test]
    fn agrees_with_the_java_clients_vectors() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (b"abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), want, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn the_partition_is_the_masked_hash_modulo_the_count() {
        // -973932308 & 0x7fffffff = 1173551340.
        assert_eq!(murmur2_partition(b"21", 12), 1_173_551_340 % 12);
        assert_eq!(murmur2_partition(b"abc", 7), 479_470_107 % 7);
        for p in [1, 3, 12, 64] {
            let got = murmur2_partition(b"foobar", p);
            assert!((0..p).contains(&got), "{got} of {p}");
        }
    }
}
