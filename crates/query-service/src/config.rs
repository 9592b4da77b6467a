use platform::cassandra::CassandraConfig;
use platform::telemetry::LogConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    pub http: HttpConfig,
    pub cassandra: CassandraConfig,
    pub retention: Retention,
    pub log: LogConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { listen: "127.0.0.1:18081".into() }
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
