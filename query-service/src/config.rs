use counting::Retention;
use platform::auth::AuthConfig;
use platform::cassandra::CassandraConfig;
use platform::kafka::KafkaConfig;
use platform::ratelimit::Rate;
use platform::server::{AdminConfig, ServerConfig};
use platform::telemetry::LogConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// The public port: the API, the dashboard and a bare `/healthz`.
    pub http: ServerConfig,
    /// `/metrics`, `/readyz` with the reason, `/healthz`: keep it off the public network.
    pub admin: AdminConfig,
    pub cassandra: CassandraConfig,
    /// Where the aggregator's tables are read from (switching readers to a rebuilt keyspace).
    pub counts: CountsConfig,
    /// Where catalog events go (the catalog topic; created at start-up if missing).
    pub kafka: KafkaConfig,
    pub catalog_events: CatalogEventsConfig,
    /// The rollups' TTLs, the aggregator's own section: answers use only rows
    /// these still keep (`counting::Retention`).
    pub retention: Retention,
    /// Event types answered besides the five built-ins: the aggregators' list
    /// (`counting::kind`); any other type is a 422 naming `eventType`.
    pub event_types: Vec<String>,
    pub auth: AuthConfig,
    pub web: WebConfig,
    pub moderation: ModerationConfig,
    pub passwords: PasswordConfig,
    pub limits: Limits,
    pub log: LogConfig,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            http: ServerConfig::on("127.0.0.1:18081"),
            admin: AdminConfig::on("127.0.0.1:18084"),
            cassandra: Default::default(),
            counts: Default::default(),
            kafka: Default::default(),
            catalog_events: Default::default(),
            retention: Default::default(),
            event_types: counting::kind::default_extra(),
            auth: Default::default(),
            web: Default::default(),
            moderation: Default::default(),
            passwords: Default::default(),
            limits: Default::default(),
            log: Default::default(),
        }
    }
}

/// The keyspace of what the aggregator writes: counts, trending copies, viewer
/// sketches and who viewed, ratings. Empty: `cassandra.keyspace`, where the
/// catalog lives too. Set it to the keyspace `vcount-admin rebuild --into` made to
/// move readers onto the rebuilt counts (README, "Rebuilding the counts"); the
/// catalog (users, videos, comments, flags, activity feeds) stays where it is.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CountsConfig {
    pub keyspace: String,
    /// Ask the owner of a video's partition what it holds and has not written
    /// yet, and add it to the rows by the `last_offset` rule (`counting::fresh`):
    /// counts as fresh as the aggregator has consumed, whatever `flush.max_age_ms`.
    /// Off: the rows alone, up to a round late.
    pub owner_reads: bool,
    /// How long a read waits for the owner's answer before it answers from the
    /// rows alone.
    pub owner_timeout_ms: u64,
    /// How long a partition's owner (its `partition_owners` row) is cached; an
    /// owner that fails or is found replaced is read again at once.
    pub owner_cache_ms: u64,
    /// How long an owner that failed (timeout, refused, 404, a bad answer) is not
    /// asked again while its `partition_owners` row is unchanged.
    pub owner_backoff_ms: u64,
    /// How many rows counts keep in memory to read again while a series' all-time
    /// row is unchanged (`store::rows_cache`): a read of a kept range then costs
    /// one single-row read instead of one range read per span. 0: off. A row kept
    /// costs about 40 bytes.
    pub rows_cache_rows: u64,
    /// The longest a kept read answers, however unchanged its series.
    pub rows_cache_ms: u64,
}

impl Default for CountsConfig {
    fn default() -> Self {
        Self {
            keyspace: String::new(),
            owner_reads: true,
            owner_timeout_ms: 100,
            owner_cache_ms: 1000,
            owner_backoff_ms: 1000,
            rows_cache_rows: 1_000_000,
            rows_cache_ms: 60_000,
        }
    }
}

impl CountsConfig {
    /// The keyspace to read counts from, given the catalog's.
    pub fn keyspace_or<'a>(&'a self, catalog: &'a str) -> Result<&'a str, platform::cassandra::CassandraError> {
        if self.keyspace.is_empty() {
            return Ok(catalog);
        }
        platform::cassandra::check_keyspace(&self.keyspace)?;
        Ok(&self.keyspace)
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

/// Moderators used to be granted here, by email, at sign-up and login. Emails are
/// never verified, so whoever registered a listed address first became a
/// moderator. Now the role is granted by user id with `vcount-admin moderators
/// grant --user-id ID` (audited), and a non-empty list stops the service at
/// start-up, saying so, rather than being silently ignored. Roles it granted
/// before stay: they are in the users' rows.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModerationConfig {
    /// No longer supported: must be empty.
    pub moderators: Vec<String>,
}

impl ModerationConfig {
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.moderators.is_empty(),
            "moderation.moderators is no longer supported (emails are not verified, so it let whoever \
             registered a listed address first become a moderator): remove it, and grant the role by user id \
             with `vcount-admin moderators grant --user-id ID`; roles it granted before are kept"
        );
        Ok(())
    }
}

/// Password hashing (argon2id, 19 MiB and about 20-50 ms of one core per hash) on a
/// bounded pool: at most `hash_workers` at once, at most `hash_queue` more waiting,
/// the rest refused at once with 503 and `Retry-After`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    /// Hashes computed at once; 0: one per core.
    pub hash_workers: usize,
    /// Hashes waiting for a worker; more are refused (503).
    pub hash_queue: usize,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self { hash_workers: 0, hash_queue: 8 }
    }
}

/// Rate limits on sign-in and sign-up (429 with `Retry-After`), per client address
/// and per account (the email), and the reads an anonymous request may cost.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Logins per client IP (IPv6: per /64).
    pub login_per_ip: Rate,
    /// Logins per email, whoever sends them: slows guessing one account's password.
    pub login_per_account: Rate,
    /// Registrations per client IP.
    pub register_per_ip: Rate,
    /// Registrations per email.
    pub register_per_account: Rate,
    /// Addresses or CIDR blocks of the proxies in front (the load balancer): only
    /// their `X-Forwarded-For` names the client. Empty: the peer is the client.
    pub trusted_proxies: Vec<String>,
    /// Rows one trending request reads, over all the buckets of its window.
    pub trending_rows: usize,
    /// Rows one search reads per query word (the newest videos holding it).
    pub search_rows_per_word: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            login_per_ip: Rate::per_minute(30, 10),
            login_per_account: Rate::per_minute(10, 5),
            register_per_ip: Rate::per_minute(10, 5),
            register_per_account: Rate::per_minute(3, 3),
            trusted_proxies: Vec::new(),
            trending_rows: 100_000,
            search_rows_per_word: 10_000,
        }
    }
}
