use platform::auth::AuthConfig;
use platform::kafka::KafkaConfig;
use platform::telemetry::LogConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    pub http: HttpConfig,
    pub kafka: KafkaConfig,
    pub producer: ProducerConfig,
    pub events: EventRules,
    /// The query service's token secret: ratings need a signed-in user.
    pub auth: AuthConfig,
    pub log: LogConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: String,
    /// Largest request body accepted, in bytes (413 above).
    pub max_body_bytes: usize,
    /// Most events in one batch request (422 above).
    pub max_batch_events: usize,
    /// Allowed browser origins: empty (no CORS headers), `*`, or a comma-separated
    /// list of exact origins.
    pub cors_origins: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:18080".into(),
            max_body_bytes: 1 << 20,
            max_batch_events: 1000,
            cors_origins: String::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProducerConfig {
    /// librdkafka `linger.ms`: how long to wait to fill a batch.
    pub linger_ms: u64,
    /// `lz4`, `zstd`, `snappy`, `gzip` or `none`.
    pub compression: String,
    /// librdkafka `message.timeout.ms`: give up on a delivery (the client gets 503).
    pub delivery_timeout_ms: u64,
    /// librdkafka `queue.buffering.max.messages`: the in-flight ceiling.
    pub queue_max_messages: u64,
    /// How long a request may wait for room in a full queue before 503.
    pub enqueue_timeout_ms: u64,
    /// `kafka` (the default), or `null`: validate and encode every event as usual,
    /// then discard it and answer as if it were durable. Only for measuring the
    /// HTTP side alone (`scripts/bench`); it is logged loudly at start-up.
    pub sink: Sink,
}

/// Where accepted events go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sink {
    #[default]
    Kafka,
    Null,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            linger_ms: 5,
            compression: "lz4".into(),
            delivery_timeout_ms: 10_000,
            queue_max_messages: 200_000,
            enqueue_timeout_ms: 100,
            sink: Sink::Kafka,
        }
    }
}

/// What makes an event acceptable.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventRules {
    /// Oldest `occurredAt` accepted, in seconds before now. Keep it below the
    /// aggregator's minute-row retention, or old minutes are counted into rows
    /// that are about to expire.
    pub max_age_secs: i64,
    /// How far in the future `occurredAt` may be (client clock skew), in seconds.
    pub max_future_secs: i64,
    /// Largest `value` one event may add.
    pub max_value: i64,
}

impl Default for EventRules {
    fn default() -> Self {
        Self { max_age_secs: 7 * 24 * 3600, max_future_secs: 300, max_value: 1_000_000 }
    }
}
