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
