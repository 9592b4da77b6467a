use platform::auth::AuthConfig;
use platform::cassandra::CassandraConfig;
use platform::http::ListenConfig;
use platform::telemetry::LogConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    pub http: ListenConfig,
    pub cassandra: CassandraConfig,
    pub retention: Retention,
    pub auth: AuthConfig,
    pub moderation: ModerationConfig,
    pub log: LogConfig,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            http: ListenConfig::on("127.0.0.1:18081"),
            cassandra: Default::default(),
            retention: Default::default(),
            auth: Default::default(),
            moderation: Default::default(),
            log: Default::default(),
        }
    }
}

/// Must match the aggregator's `retention.minute_secs`: a range whose ragged edge
/// needs minute rows older than this is refused rather than answered short.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    pub minute_secs: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self { minute_secs: 8 * 24 * 3600 }
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
