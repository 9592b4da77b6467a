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
    pub log: LogConfig,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            http: ListenConfig::on("127.0.0.1:18081"),
            cassandra: Default::default(),
            retention: Default::default(),
            auth: Default::default(),
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

/// Sign-in tokens: HS256 JWTs with `sub` (the user id), `roles` and `exp`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// At least 32 bytes, shared by every instance. Empty (the default): a random
    /// secret per process, logged as a warning, so tokens die with the process and
    /// work on one instance only. There is never a fixed default secret.
    pub jwt_secret: String,
    pub token_ttl_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { jwt_secret: String::new(), token_ttl_secs: 30 * 60 }
    }
}
