//! The aggregator: a Kafka consumer group member that pre-aggregates events per
//! (video, event type, minute) in memory and writes minute, hour, day and
//! all-time counts to Cassandra as absolute values, each (video, event type)
//! series on its own cadence (flush rounds, `counting::rounds`), committing the
//! first offset still pending only after the rows before it are durable. It is
//! also the single writer of ratings: each user's latest, and exact sums and
//! counts (`counting::ratings`), flushed whole on an interval.
//!
//! The exactly-once protocol, its proofs and its tests are in one place:
//! `counting::protocol` (steps P1–P11, with P3a, and R1–R7 for the rounds). The
//! modules here perform those steps:
//!
//! | module | what it holds | steps |
//! | --- | --- | --- |
//! | [`consumer`] | the rdkafka context, rebalance callbacks, the poll loop | P10 |
//! | [`owner`] | the owner of a consumer's partitions: folding each message, letting go | P4, P10 |
//! | [`ownership`] | taking a partition over: epoch bump, `attempted`, the fence, priming | P1–P3 |
//! | [`priming`] | re-reading the dedup window on assignment (and the replay region for the census) | P3, R2 |
//! | [`census`] | the floors of the replay region's series after a claim | R2 |
//! | [`flush`] | one round (events) or flush (ratings): mark, read, resolve, write, commit | P5–P9, R4–R7 |
//! | [`decode`] | protobuf to `counting` events, and why a message is poison | P4 |
//! | [`dead_letter`] | the dead-letter topic | P4 |
//! | [`store`] | Cassandra statements and rows, one file per table family | P1, P2, P5, P6, P8 |
//! | [`start`] | where a new owner starts reading: never `auto.offset.reset` | P3a |
//! | [`halt`] | halting a partition instead of guessing, and resuming it | P11 |
//! | [`fault`] | fault injection for the kill and pause tests | |
//! | [`retry`] | retrying what must not be dropped, and giving up at shutdown | |
//! | [`metrics`] | every metric name, declared once | |
//! | [`config`] | the layered configuration | |

pub mod census;
pub mod config;
pub mod consumer;
pub mod dead_letter;
pub mod decode;
pub mod fault;
pub mod flush;
pub mod halt;
pub mod held;
pub mod metrics;
pub mod owner;
pub mod ownership;
pub mod priming;
pub mod replay;
pub mod retry;
pub mod start;
pub mod store;
pub mod viewers;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use counting::EventTypes;
use platform::http::{Readiness, admin_router};
use platform::server::{Listener, ServerConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;
use tokio_util::sync::CancellationToken;

pub use config::AggregatorConfig;

/// The `aggregator` binary: parse flags and config, run until SIGTERM or SIGINT.
/// A library function so the system tests (`e2e`) build the very same binary.
pub fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let about = "Consumes events from Kafka and keeps exact minute/hour/day/all-time rollups in Cassandra";
        let Some((config, shutdown)) =
            platform::cli::start::<AggregatorConfig>("aggregator", "AGGREGATOR", about, |c| &c.log)?
        else {
            return Ok(());
        };
        let app = Application::build(config).await?;
        // Tests read this first line to find /metrics.
        println!("aggregator metrics on http://{}/metrics", app.local_addr());
        app.run(shutdown).await
    })
}
use consumer::OwnerContext;
use dead_letter::DeadLetters;
use owner::{Family, Owner, OwnerParts};
use priming::Primer;
use store::RollupStore;

pub struct Application {
    config: AggregatorConfig,
    /// The operational port (`/metrics`, `/readyz` with the reason, `/healthz`),
    /// served by `platform::server` with the admin listener's limits: keep it private.
    listener: Listener,
    store: Arc<RollupStore>,
    dlq: FutureProducer,
    /// `event_types` with the built-ins: what decoding counts.
    types: EventTypes,
}

struct Ready {
    store: Arc<RollupStore>,
    /// One per consumer loop.
    heartbeats: Vec<Arc<AtomicI64>>,
}

impl Readiness for Ready {
    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            platform::cassandra::ping(self.store.session()).await.map_err(|e| format!("cassandra: {e}"))?;
            for heartbeat in &self.heartbeats {
                let age = chrono::Utc::now().timestamp_millis() - heartbeat.load(Ordering::Relaxed);
                if age > 30_000 {
                    return Err(format!("a consumer loop has not turned for {age} ms"));
                }
            }
            Ok(())
        })
    }
}

impl Application {
    /// Connects to Cassandra and Kafka, creating the schema and topics if the config
    /// says so, and binds the operational HTTP port. Consuming starts in `run`.
    pub async fn build(config: AggregatorConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(config.flush.interval_ms > 0, "flush.interval_ms must be positive");
        config.retention.validate()?;
        let types = EventTypes::new(&config.event_types).context("event_types")?;
        anyhow::ensure!(config.flush.tick_ms > 0, "flush.tick_ms must be positive");
        anyhow::ensure!(
            config.flush.min_age_ms <= config.flush.max_age_ms,
            "flush.min_age_ms must not exceed flush.max_age_ms"
        );
        anyhow::ensure!(
            (1..=counting::retention::MAX_TTL_SECS as u64).contains(&config.viewers.list_ttl_secs),
            "viewers.list_ttl_secs must be from 1 to {} (Cassandra's longest TTL)",
            counting::retention::MAX_TTL_SECS
        );
        anyhow::ensure!(
            start::NewPartitions::parse(&config.consumer.auto_offset_reset).is_some(),
            "consumer.auto_offset_reset must be earliest or latest, not {:?}",
            config.consumer.auto_offset_reset
        );
        anyhow::ensure!(
            ["", fault::BEFORE_MARK, fault::MID_WRITE, fault::MID_VIEWERS, fault::AFTER_VIEWERS]
                .contains(&config.flush.fault_pause_at.as_str()),
            "flush.fault_pause_at must be empty, {}, {}, {} or {}",
            fault::BEFORE_MARK,
            fault::MID_WRITE,
            fault::MID_VIEWERS,
            fault::AFTER_VIEWERS
        );
        let session = platform::cassandra::connect(&config.cassandra, Duration::from_secs(60)).await?;
        if config.cassandra.create_schema {
            platform::cassandra::migrate(&session, &config.cassandra).await?;
        }
        if config.kafka.create_topics {
            platform::kafka::ensure_topics(&config.kafka).await?;
        }
        let store =
            RollupStore::new(session, &config.cassandra.keyspace, &config.feed.keyspace, config.retention.clone())
                .await?;
        let store = Arc::new(store.with_viewers(&config.viewers));
        check_topics(&config, &store).await?;
        let dlq: FutureProducer = config
            .kafka
            .client_config()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            // One dead letter never waits longer than its partition may stall.
            .set("message.timeout.ms", config.dead_letter.timeout_ms.max(1).to_string())
            .create()
            .context("creating dead-letter producer")?;
        let listener = Listener::bind(ServerConfig::admin(&config.http.listen)).await?;
        metrics::describe();
        Ok(Self { config, listener, store, dlq, types })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// Where readers reach this aggregator's operational port (`held.advertise`).
    fn advertise(&self) -> String {
        if !self.config.held.advertise.is_empty() {
            return self.config.held.advertise.clone();
        }
        let mut addr = self.local_addr();
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        addr.to_string()
    }

    /// Consumes until `shutdown` is cancelled, then flushes, commits and leaves the
    /// group before returning. Two consumers run side by side, each on a blocking
    /// thread: one for the events topic (rollups) and one, in a group of its own,
    /// for the ratings topic, so a flood of views never holds up a rating.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let cfg = &self.config;
        let dedup_ms = (cfg.dedup.window_secs as i64).saturating_mul(1000);
        let ratings_group = format!("{}-ratings", cfg.consumer.group_id);
        let consumers = [
            (Family::Counts, cfg.kafka.events_topic(), cfg.consumer.group_id.clone(), dedup_ms),
            (Family::Ratings, cfg.kafka.ratings_topic(), ratings_group, 0),
        ];
        let mut heartbeats = Vec::new();
        let mut loops = Vec::new();
        let mut counts_owner = None;
        for (family, topic, group, dedup_ms) in consumers {
            let (consumer, heartbeat) = self.consumer(family, &topic, &group, dedup_ms, &shutdown)?;
            if family == Family::Counts {
                counts_owner = Some((consumer.context().owner.clone(), consumer.context().desk.clone()));
            }
            heartbeat.store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
            heartbeats.push(heartbeat);
            tracing::info!(%topic, %group, "aggregator consuming");
            let tick = Duration::from_millis(cfg.flush.tick_ms.min(cfg.flush.interval_ms));
            let max_keys = cfg.flush.max_buffered_keys;
            let stop = shutdown.clone();
            loops.push(tokio::task::spawn_blocking(move || consumer::run(consumer, stop, tick, max_keys)));
        }

        let ready = Arc::new(Ready { store: self.store.clone(), heartbeats });
        let http_stop = CancellationToken::new();
        let mut routes = admin_router(ready);
        if let Some((owner, desk)) = counts_owner.filter(|_| cfg.held.enabled) {
            let wait = Duration::from_millis(cfg.held.wait_ms);
            routes = routes.merge(held::router(owner, desk, self.types.clone(), wait));
        }
        let http = tokio::spawn(self.listener.serve(routes, http_stop.clone(), Duration::from_secs(1)));
        // A loop ends only at shutdown or by panicking. Either way the other one is
        // stopped too (flushing and committing what it holds): a half-running
        // aggregator would keep partitions it does not serve.
        let mut panicked = None;
        let mut pending = loops;
        while !pending.is_empty() {
            let (ended, _, rest) = futures::future::select_all(pending).await;
            pending = rest;
            shutdown.cancel();
            if let Err(e) = ended {
                panicked.get_or_insert(e);
            }
        }
        http_stop.cancel();
        let _ = http.await;
        if let Some(e) = panicked {
            return Err(e).context("consumer loop panicked");
        }
        tracing::info!("aggregator stopped");
        Ok(())
    }

    /// A consumer of `topic` in `group`, subscribed, with its owner of partitions.
    fn consumer(
        &self,
        family: Family,
        topic: &str,
        group: &str,
        dedup_ms: i64,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<(BaseConsumer<OwnerContext>, Arc<AtomicI64>)> {
        let cfg = &self.config;
        let primer = Primer {
            window_ms: dedup_ms,
            client: cfg
                .kafka
                .client_config()
                .set("group.id", format!("{group}-dedup-primer"))
                .set("enable.auto.commit", "false")
                .set("enable.partition.eof", "true")
                .clone(),
            types: self.types.clone(),
        };
        let owner = Owner::new(OwnerParts {
            family,
            topic: topic.to_owned(),
            store: self.store.clone(),
            flush: cfg.flush.clone(),
            dead_letters: DeadLetters {
                producer: self.dlq.clone(),
                topic: cfg.kafka.dead_letter_topic(),
                timeout: Duration::from_millis(cfg.dead_letter.timeout_ms),
                shutdown: shutdown.clone(),
            },
            primer,
            shutdown: shutdown.clone(),
            new_partitions: start::NewPartitions::parse(&cfg.consumer.auto_offset_reset).expect("checked in build"),
            advertise: cfg.held.enabled.then(|| self.advertise()),
            claim_threads: cfg.consumer.claim_threads,
        });
        let heartbeat = owner.heartbeat.clone();
        let consumer: BaseConsumer<OwnerContext> = cfg
            .kafka
            .client_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // Never pick an offset silently: the owner decides (P3a, `start`).
            .set("auto.offset.reset", "error")
            .set("session.timeout.ms", cfg.consumer.session_timeout_ms.to_string())
            .set("heartbeat.interval.ms", (cfg.consumer.session_timeout_ms / 4).max(100).to_string())
            .set("max.poll.interval.ms", cfg.consumer.max_poll_interval_ms.to_string())
            .set("fetch.min.bytes", cfg.consumer.fetch_min_bytes.max(1).to_string())
            .set("fetch.wait.max.ms", cfg.consumer.fetch_wait_max_ms.to_string())
            .set("statistics.interval.ms", "5000")
            .create_with_context(OwnerContext { owner: Arc::new(Mutex::new(owner)), desk: Default::default() })
            .context("creating kafka consumer")?;
        consumer.subscribe(&[topic]).context("subscribing")?;
        Ok((consumer, heartbeat))
    }
}

/// Start-up checks of the topics the aggregator counts (P1, P3):
/// - each topic still has the partition count it was first counted with (recorded
///   in `topic_state` the first time): a grown topic moves videos between
///   partitions, and `last_offset` only means something within one;
/// - the events topic uses `LogAppendTime` when deduplication is on: the dedup
///   rule and its priming read the window in broker time, which must never go back.
async fn check_topics(config: &AggregatorConfig, store: &RollupStore) -> anyhow::Result<()> {
    let kafka = config.kafka.clone();
    for topic in [config.kafka.events_topic(), config.kafka.ratings_topic()] {
        let (k, t) = (kafka.clone(), topic.clone());
        let seen =
            tokio::task::spawn_blocking(move || platform::kafka::partition_count(&k, &t, Duration::from_secs(30)))
                .await?
                .with_context(|| format!("reading the partition count of {topic}"))? as i32;
        let recorded = store.recorded_partitions(&topic, seen).await?;
        anyhow::ensure!(
            recorded == seen,
            "topic {topic} has {seen} partitions but was counted with {recorded}: growing a topic moves videos \
             between partitions; see the README's repartitioning procedure"
        );
    }
    if config.dedup.window_secs > 0 {
        let topic = config.kafka.events_topic();
        let kind = platform::kafka::topic_config(&config.kafka, &topic, "message.timestamp.type")
            .await
            .with_context(|| format!("reading the timestamp type of {topic}"))?;
        anyhow::ensure!(
            kind.as_deref() == Some("LogAppendTime"),
            "topic {topic} has message.timestamp.type {kind:?}; deduplication needs LogAppendTime \
             (kafka-configs --alter --entity-type topics --entity-name {topic} --add-config \
             message.timestamp.type=LogAppendTime, or dedup.window_secs = 0)"
        );
    }
    Ok(())
}
