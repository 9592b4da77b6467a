use counting::Retention;
use platform::cassandra::CassandraConfig;
use platform::http::ListenConfig;
use platform::kafka::KafkaConfig;
use platform::telemetry::LogConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregatorConfig {
    pub http: ListenConfig,
    pub kafka: KafkaConfig,
    pub consumer: ConsumerConfig,
    pub flush: FlushConfig,
    pub dedup: DedupConfig,
    pub dead_letter: DeadLetterConfig,
    /// The rollups' TTLs, shared with the query service (which reads only rows
    /// these keep): `counting::Retention`.
    pub retention: Retention,
    /// The who-viewed list (the viewer sketches follow `retention`).
    pub viewers: ViewersConfig,
    /// Answering readers what this owner holds and has not written (`/owner/held`).
    pub held: HeldConfig,
    /// Event types counted besides the five built-ins (`counting::kind`: names
    /// matching `^[a-z][a-z0-9_]{0,31}$`, at most 27). An event of a type not listed
    /// is dead-lettered; list a new type here before the gateway accepts it.
    pub event_types: Vec<String>,
    pub cassandra: CassandraConfig,
    pub feed: FeedConfig,
    pub log: LogConfig,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        Self {
            // /metrics, /healthz and /readyz.
            http: ListenConfig::on("127.0.0.1:18082"),
            kafka: Default::default(),
            consumer: Default::default(),
            flush: Default::default(),
            dedup: Default::default(),
            dead_letter: Default::default(),
            retention: Default::default(),
            viewers: Default::default(),
            held: Default::default(),
            event_types: counting::kind::default_extra(),
            cassandra: Default::default(),
            feed: Default::default(),
            log: Default::default(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerConfig {
    pub group_id: String,
    /// How long the group waits for a silent member before reassigning its
    /// partitions (a crashed aggregator's partitions stall this long).
    pub session_timeout_ms: u64,
    /// Longest gap between polls, e.g. while retrying a flush against a down
    /// Cassandra, before this member is considered stuck and leaves the group.
    pub max_poll_interval_ms: u64,
    /// Where a partition with no state at all starts (no committed offset, no
    /// flush ever attempted): `earliest` counts everything, `latest` only what comes
    /// next. Any other missing or out-of-range offset halts the partition (P3a).
    pub auto_offset_reset: String,
    /// librdkafka `fetch.min.bytes` and `fetch.wait.max.ms`: the broker answers a
    /// fetch once this much is there or this long has passed. librdkafka's
    /// defaults (1 byte, 500 ms) answer as soon as anything is there, so under a
    /// steady load every few messages cost a fetch round trip and wake-ups on both
    /// sides (a third of the aggregator's CPU was its broker thread); bigger
    /// fetches cost at most `fetch_wait_max_ms` of freshness.
    pub fetch_min_bytes: u64,
    pub fetch_wait_max_ms: u64,
    /// Partitions of one assignment taken over at once (claim, start, dedup
    /// priming and census, each on a thread of its own): a takeover of 12
    /// partitions one after another took 22 to 25 s at 30,000 events/s, mostly
    /// re-reading each partition's log. 1: one after another.
    pub claim_threads: usize,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            group_id: "vcount-aggregator".into(),
            session_timeout_ms: 10_000,
            max_poll_interval_ms: 300_000,
            auto_offset_reset: "earliest".into(),
            fetch_min_bytes: 65_536,
            fetch_wait_max_ms: 100,
            claim_threads: 6,
        }
    }
}

/// How the aggregator writes what it folded. Counts (the events topic) go out in
/// flush *rounds* (`counting::rounds`): every `tick_ms` each partition writes the
/// (video, event type) series that are due, each on its own cadence: a series with
/// `hot_events` pending once its oldest pending event is `min_age_ms` old, every
/// other one at `max_age_ms`, any series touching `max_rows` rows at once. Ratings
/// keep one flush of everything every `interval_ms`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlushConfig {
    /// Ratings are flushed (and committed) this often; halted partitions are
    /// checked, the row cache swept and an idle partition's commit moved as often.
    pub interval_ms: u64,
    /// How often each events partition looks for series that are due.
    pub tick_ms: u64,
    /// A series with at least `hot_events` pending is written once its oldest
    /// pending event is `min_age_ms` old (popular videos stay fresh in the store).
    pub min_age_ms: u64,
    pub hot_events: u64,
    /// Every other series is written once its oldest pending event is this old: a
    /// tail video costs a write per `max_age_ms`, and a crash replays up to this
    /// much of the log (the commit trails the oldest pending series).
    pub max_age_ms: u64,
    /// A series whose pending events touch this many rows is written at once.
    pub max_rows: usize,
    /// Write everything early when this many (video, type, minute) keys are buffered.
    pub max_buffered_keys: usize,
    /// Concurrent Cassandra requests during a flush.
    pub concurrency: usize,
    /// Series per Cassandra request: a round's all-time reads and its series'
    /// last batches go out this many series to a request (`video_id IN`, and
    /// unlogged batches over as many partitions), each request's series on the
    /// same replicas. 1 sends every series alone.
    pub series_per_request: usize,
    /// First and longest pause between retries of a failed write.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// After a shutdown request, how long a flush may keep retrying before it is
    /// abandoned (nothing is lost: uncommitted events are replayed).
    pub shutdown_grace_ms: u64,
    /// Rows kept in the owner's cache are evicted (and read back from Cassandra if
    /// touched again) after this many `interval_ms` without a touch. Keep
    /// `interval_ms × cache_idle_flushes` above `max_age_ms`, or a tail series pays
    /// its reads again at every write.
    pub cache_idle_flushes: u64,
    /// Fault injection for crash tests: abort the process after this many row
    /// writes, in the middle of a flush (0, the default, never does).
    pub fail_after_writes: u64,
    /// Fault injection for kill and pause tests: where every flush sleeps for
    /// `fault_pause_ms`: `before_mark` (plans taken, before P5), `mid_write`
    /// (after the first write request of the flush landed), `mid_viewers` (a
    /// viewer sketch read, not yet written) or `after_viewers` (a round's
    /// viewer writes landed, before its all-time rows and the commit); empty: never.
    pub fault_pause_at: String,
    pub fault_pause_ms: u64,
}

impl Default for FlushConfig {
    fn default() -> Self {
        Self {
            interval_ms: 5_000,
            tick_ms: 1_000,
            // A tail series is written every 4 minutes, a popular one every 5 s.
            // Readers do not wait for either: the owner answers what it holds
            // (`held`, freshness from the owner). Against a minute's tail, 4
            // minutes cost 0.62× Cassandra's CPU per single view at 20,000/s
            // (and kept up where a minute's did not) and 0.65× per batched event
            // at 160,000/s (README, Measured, "Four minutes' tail"); a crash
            // replays up to max_age of the log, inside the dedup window's 10
            // minutes.
            min_age_ms: 5_000,
            hot_events: 64,
            max_age_ms: 240_000,
            max_rows: 256,
            max_buffered_keys: 500_000,
            concurrency: 64,
            series_per_request: 8,
            retry_initial_ms: 100,
            retry_max_ms: 5_000,
            shutdown_grace_ms: 20_000,
            // interval × 60 = 300 s, above max_age: a tail series keeps its rows cached.
            cache_idle_flushes: 60,
            fail_after_writes: 0,
            fault_pause_at: String::new(),
            fault_pause_ms: 0,
        }
    }
}

impl FlushConfig {
    /// The rounds' cadence (`counting::rounds::Cadence`).
    pub fn cadence(&self) -> counting::Cadence {
        let ms = |v: u64| v.min(i64::MAX as u64) as i64;
        counting::Cadence {
            min_age_ms: ms(self.min_age_ms),
            hot_events: self.hot_events,
            max_age_ms: ms(self.max_age_ms),
            max_rows: self.max_rows.max(1),
        }
    }
}

/// Repeats of a client-chosen `eventId` (a client retrying a request whose answer
/// it missed) are dropped when they reach Kafka within `window_secs` of the first
/// copy. On each partition assignment the owner re-reads that much of the log
/// before its committed offset, so a longer window costs a longer start.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DedupConfig {
    /// 0 turns deduplication off.
    pub window_secs: u64,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self { window_secs: 600 }
    }
}

/// The dead-letter topic. A send is retried for `timeout_ms`; then the partition
/// halts at that message (it is not consumed) instead of stalling every partition
/// of the consumer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadLetterConfig {
    pub timeout_ms: u64,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        Self { timeout_ms: 30_000 }
    }
}

/// Who viewed a video (`video_viewers`, migration 012).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ViewersConfig {
    /// A viewer stays on a video's who-viewed list this long after their last
    /// view (counted from the view, not from the write). At least 1 s, at most
    /// Cassandra's 20-year TTL limit.
    pub list_ttl_secs: u64,
}

impl Default for ViewersConfig {
    fn default() -> Self {
        Self { list_ttl_secs: 30 * 86_400 }
    }
}

/// Freshness from the owner (`counting::fresh`): at each claim the owner records
/// where readers reach it (`partition_owners`), and its operational port answers
/// `GET /owner/held` with what it holds of a series and has not written. The
/// query service adds that to the rows it reads, so a count is fresh while the
/// series waits for its round (`flush.max_age_ms` may then be long: fewer writes).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeldConfig {
    /// Record the address and answer readers. Off: readers see the rows only.
    pub enabled: bool,
    /// `host:port` readers use to reach this aggregator's operational port.
    /// Empty: the port it bound (127.0.0.1 if it listens on every interface,
    /// which only serves readers on the same host: set this in a deployment).
    pub advertise: String,
    /// How long a question may wait for its answer before it is a 503 and the
    /// reader uses the rows alone. The poll loop answers between two messages
    /// (`held::Desk`), so this is reached only while it holds the owner for a
    /// whole blocking round (a claim's fenced round, a revoke, shutdown).
    pub wait_ms: u64,
}

impl Default for HeldConfig {
    fn default() -> Self {
        Self { enabled: true, advertise: String::new(), wait_ms: 20 }
    }
}

/// Where users' activity feeds are written. They belong to the catalog (the query
/// service's `cassandra.keyspace`, beside its comment entries), not to the counts:
/// an aggregator counting into a keyspace `vcount-admin rebuild` made keeps
/// writing the feed entries where the feed is read. Entries are keyed by their
/// event, so two groups writing the same one (old and new, during a switch) write
/// the same row. Empty: `cassandra.keyspace`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedConfig {
    pub keyspace: String,
}
