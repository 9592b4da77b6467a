use counting::Retention;
use platform::auth::AuthConfig;
use platform::cassandra::CassandraConfig;
use platform::http::ListenConfig;
use platform::kafka::KafkaConfig;
use platform::telemetry::LogConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    pub http: ListenConfig,
    pub cassandra: CassandraConfig,
    /// Where catalog events go (the catalog topic; created at start-up if missing).
    pub kafka: KafkaConfig,
    pub catalog_events: CatalogEventsConfig,
    /// The rollups' TTLs, the aggregator's own section: answers use only rows
    /// these still keep (`counting::Retention`).
    pub retention: Retention,
    pub auth: AuthConfig,
    pub web: WebConfig,
    pub moderation: ModerationConfig,
    pub log: LogConfig,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            http: ListenConfig::on("127.0.0.1:18081"),
            cassandra: Default::default(),
            kafka: Default::default(),
            catalog_events: Default::default(),
            retention: Default::default(),
            auth: Default::default(),
            web: Default::default(),
            moderation: Default::default(),
            log: Default::default(),
        }
    }
}

/// What browsers need: CORS, and one origin for the whole API.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Allowed browser origins: empty (no CORS headers), `*`, or a comma-separated
    /// list of exact origins.
    pub cors_origins: String,
    /// The ingest gateway's base URL (`http://127.0.0.1:18080`). When set, this
    /// service also forwards the gateway's routes there, so browsers need one origin.
    pub gateway_url: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogEventsConfig {
    /// How long the producer keeps retrying an event before it is counted as failed.
    pub delivery_timeout_ms: u64,
}

impl Default for CatalogEventsConfig {
    fn default() -> Self {
        Self { delivery_timeout_ms: 30_000 }
    }
}

/// How the first moderator comes to be: accounts with these emails get the
/// `moderator` role when they register or log in (`QUERY__MODERATION__MODERATORS=
/// '["ann@example.org"]'`). Moderators can then assign the role to others. Removing
/// an email here does not revoke the role it already granted (use the revoke route).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModerationConfig {
    pub moderators: Vec<String>,
}
