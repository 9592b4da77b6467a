use platform::apikeys::ApiKeyConfig;
use platform::auth::AuthConfig;
use platform::kafka::KafkaConfig;
use platform::ratelimit::Rate;
use platform::server::{AdminConfig, ServerConfig};
use platform::telemetry::LogConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// The public port and its limits (timeouts, connections, body size, CORS).
    pub http: ServerConfig,
    /// `/metrics`, `/readyz` (with the reason) and `/healthz`: keep it private.
    pub admin: AdminConfig,
    pub kafka: KafkaConfig,
    pub producer: ProducerConfig,
    pub events: EventRules,
    /// Event types accepted besides the five built-ins (`counting::kind`: names
    /// matching `^[a-z][a-z0-9_]{0,31}$`, at most 27 more). Every aggregator must
    /// list a type before a gateway accepts it (else its events are dead-lettered).
    /// Without `watch_seconds`, KillrVideo's watch-time route answers 404.
    pub event_types: Vec<String>,
    /// Producer API keys (hashed), for events with a value and for batches.
    pub producers: ProducersConfig,
    /// Rate limits per client IP and per signed-in user.
    pub limits: LimitsConfig,
    /// Refuse views and ratings of videos the catalog has not announced.
    pub strict: StrictConfig,
    /// The query service's token secret: ratings need a signed-in user.
    pub auth: AuthConfig,
    pub log: LogConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            http: ServerConfig::on("127.0.0.1:18080"),
            admin: AdminConfig::on("127.0.0.1:18083"),
            kafka: Default::default(),
            producer: Default::default(),
            events: Default::default(),
            event_types: counting::kind::default_extra(),
            producers: Default::default(),
            limits: Default::default(),
            strict: Default::default(),
            auth: Default::default(),
            log: Default::default(),
        }
    }
}

/// Who may send what (the policy is in `crate::policy`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProducersConfig {
    /// `[{ name, sha256, per_second, burst }]`; `vcount-admin api-key` makes one.
    pub keys: Vec<ApiKeyConfig>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Requests without credentials, per client IP (IPv6: per /64), in events.
    pub anonymous: Rate,
    /// Signed-in users, per user, in units of `value` (a view costs 1).
    pub user: Rate,
    /// Watch time (KillrVideo's `watch-time`), in seconds, per client IP without
    /// credentials and per signed-in user: a client cannot claim watching faster
    /// than about `per_second` viewers at once could (after a `burst` of at least
    /// `events.max_watch_seconds`, one maximal report). Each report also costs 1 of
    /// `anonymous` or `user`.
    pub watch_seconds: Rate,
    /// Peers whose `X-Forwarded-For` names the client (the load balancer's
    /// addresses or CIDR blocks). Empty: the peer address is the client.
    pub trusted_proxies: Vec<String>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            anonymous: Rate::new(20, 40),
            user: Rate::new(20, 100),
            watch_seconds: Rate::new(10, 86_400),
            trusted_proxies: Vec::new(),
        }
    }
}

/// KillrVideo's strict mode: views, events and ratings of unknown videos get 404.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StrictConfig {
    /// Off by default: the gateway then accepts any well-formed video id.
    pub enabled: bool,
    /// Most videos remembered (about 40 bytes each); past it, new videos are not
    /// learned (and counted in `gateway_strict_videos_dropped_total`).
    pub max_videos: usize,
}

impl Default for StrictConfig {
    fn default() -> Self {
        Self { enabled: false, max_videos: 10_000_000 }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProducerConfig {
    /// librdkafka `linger.ms`: how long to wait to fill a batch. 20 ms (not
    /// librdkafka's 5) since 2026-11-30: at 12,000 single views/s it took Kafka's
    /// CPU per view to 0.59× and the gateway's to 0.76× for about 5 ms more on a
    /// request's p50 (README, Measured).
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
    /// Produce a batch request's events that fall in one partition as one message
    /// (a pack, `Event.packed`) rather than one message each. Aggregators from
    /// before packs dead-letter them: upgrade the aggregators first.
    pub pack_batches: bool,
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
            linger_ms: 20,
            compression: "lz4".into(),
            delivery_timeout_ms: 10_000,
            queue_max_messages: 200_000,
            enqueue_timeout_ms: 100,
            sink: Sink::Kafka,
            pack_batches: true,
        }
    }
}

/// What makes an event acceptable.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventRules {
    /// Oldest `occurredAt` accepted, in seconds before now. An event older than a
    /// granularity's retention is still counted exactly: rows expire a fixed time
    /// after their bucket, so it lands in the coarser rows that are kept.
    pub max_age_secs: i64,
    /// How far in the future `occurredAt` may be (client clock skew), in seconds.
    pub max_future_secs: i64,
    /// Largest `value` one event may add (with an API key; see `crate::policy`).
    pub max_value: i64,
    /// Most events in one batch request (422 above), checked before decoding them.
    pub max_batch_events: usize,
    /// With a value above 0, a signed-in user's `/view`s of one video count once per
    /// window of this many seconds (fixed windows from the Unix epoch: with 3600,
    /// once per clock hour). Off (0) by default. Decided by the aggregator's dedup
    /// window, which must be at least this long (`crate::idempotency`).
    pub view_once_per_user_secs: u64,
    /// Largest `watch_duration_seconds` of one KillrVideo watch-time report (a day).
    pub max_watch_seconds: i64,
}

impl EventRules {
    /// Within what the whole pipeline accepts (`schemas::limits`): the aggregator
    /// dead-letters events outside it, so a looser gateway would lose them.
    pub fn check(&self) -> anyhow::Result<()> {
        use schemas::limits::{MAX_EVENT_AGE_MS, MAX_EVENT_FUTURE_MS, MAX_EVENT_VALUE};
        anyhow::ensure!(
            (1..=MAX_EVENT_VALUE).contains(&self.max_value),
            "events.max_value must be 1 to {MAX_EVENT_VALUE} (the aggregator refuses more)"
        );
        anyhow::ensure!(
            (0..=MAX_EVENT_AGE_MS / 1000).contains(&self.max_age_secs),
            "events.max_age_secs must be 0 to {} (the aggregator refuses older events)",
            MAX_EVENT_AGE_MS / 1000
        );
        anyhow::ensure!(
            (0..=MAX_EVENT_FUTURE_MS / 1000).contains(&self.max_future_secs),
            "events.max_future_secs must be 0 to {} (the aggregator refuses events further ahead)",
            MAX_EVENT_FUTURE_MS / 1000
        );
        anyhow::ensure!(
            (1..=self.max_value).contains(&self.max_watch_seconds),
            "events.max_watch_seconds must be 1 to events.max_value ({})",
            self.max_value
        );
        Ok(())
    }
}

impl Default for EventRules {
    fn default() -> Self {
        Self {
            max_age_secs: 7 * 24 * 3600,
            max_future_secs: 300,
            max_value: 1_000_000,
            max_batch_events: 1000,
            view_once_per_user_secs: 0,
            max_watch_seconds: 86_400,
        }
    }
}

#[cfg(test)]
// figment::Jail's closures must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_limits_load_from_the_environment_as_scripts_write_them() {
        figment::Jail::expect_with(|jail| {
            let sha = "ab".repeat(32);
            jail.set_env(
                "GATEWAY__PRODUCERS__KEYS",
                format!(r#"[{{name="dev",sha256="{sha}",per_second=0,burst=0}}]"#),
            );
            jail.set_env("GATEWAY__LIMITS__TRUSTED_PROXIES", r#"["10.0.0.0/8","172.16.0.0/12"]"#);
            jail.set_env("GATEWAY__LIMITS__ANONYMOUS__PER_SECOND", "5");
            jail.set_env("GATEWAY__HTTP__MAX_IN_FLIGHT", "7");
            jail.set_env("GATEWAY__ADMIN__LISTEN", "0.0.0.0:18083");
            // Unquoted, as deploy/vcount.env (no quotes there) writes it.
            jail.set_env("GATEWAY__EVENT_TYPES", "[watch_seconds,ad_clicks]");
            let c: GatewayConfig = platform::config::load("GATEWAY", None).map_err(|e| e.to_string())?;
            assert_eq!(c.producers.keys.len(), 1);
            assert_eq!((c.producers.keys[0].name.as_str(), c.producers.keys[0].sha256.as_str()), ("dev", sha.as_str()));
            assert_eq!(c.limits.trusted_proxies.len(), 2);
            assert_eq!(c.limits.anonymous, Rate::new(5, 40), "the burst keeps its default");
            assert_eq!((c.http.max_in_flight, c.admin.listen.as_str()), (7, "0.0.0.0:18083"));
            assert_eq!(c.event_types, ["watch_seconds", "ad_clicks"]);
            Ok(())
        });
    }
}
