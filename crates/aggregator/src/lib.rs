//! The aggregator: a Kafka consumer group member that pre-aggregates events per
//! (video, event type, minute) in memory, flushes minute, hour, day and all-time
//! rollups to Cassandra as absolute values, and commits offsets only after the
//! flush is durable. See `counting::rollup` for the exactly-once argument.

pub mod config;
pub mod pipeline;
pub mod store;
pub mod telemetry;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use platform::http::{Readiness, service_router};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::AggregatorConfig;
use pipeline::{Ctx, Owner};
use store::RollupStore;

pub struct Application {
    config: AggregatorConfig,
    listener: TcpListener,
    store: Arc<RollupStore>,
    dlq: FutureProducer,
}

struct Ready {
    store: Arc<RollupStore>,
    heartbeat: Arc<AtomicI64>,
}

impl Readiness for Ready {
    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            platform::cassandra::ping(self.store.session()).await?;
            let age = chrono::Utc::now().timestamp_millis() - self.heartbeat.load(Ordering::Relaxed);
            if age > 30_000 {
                return Err(format!("consumer loop has not turned for {age} ms"));
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
        let session = platform::cassandra::connect(&config.cassandra, Duration::from_secs(60)).await?;
        if config.cassandra.create_schema {
            platform::cassandra::migrate(&session, &config.cassandra).await?;
        }
        if config.kafka.create_topics {
            platform::kafka::ensure_topics(&config.kafka).await?;
        }
        let store = Arc::new(RollupStore::new(session, &config.cassandra.keyspace, config.retention.clone()).await?);
        let dlq: FutureProducer = config
            .kafka
            .client_config()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .create()
            .context("creating dead-letter producer")?;
        let listener =
            TcpListener::bind(&config.http.listen).await.with_context(|| format!("binding {}", config.http.listen))?;
        telemetry::describe();
        Ok(Self { config, listener, store, dlq })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// Consumes until `shutdown` is cancelled, then flushes, commits and leaves the
    /// group before returning.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let cfg = &self.config;
        let owner = Owner::new(
            cfg.kafka.events_topic(),
            cfg.kafka.dead_letter_topic(),
            self.store.clone(),
            self.dlq.clone(),
            cfg.flush.clone(),
            (cfg.dedup.window_secs as i64).saturating_mul(1000),
            cfg.kafka
                .client_config()
                .set("group.id", format!("{}-dedup-primer", cfg.consumer.group_id))
                .set("enable.auto.commit", "false")
                .set("enable.partition.eof", "true")
                .clone(),
            shutdown.clone(),
        );
        let heartbeat = owner.heartbeat.clone();
        heartbeat.store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
        let consumer: BaseConsumer<Ctx> = cfg
            .kafka
            .client_config()
            .set("group.id", &cfg.consumer.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", &cfg.consumer.auto_offset_reset)
            .set("session.timeout.ms", cfg.consumer.session_timeout_ms.to_string())
            .set("heartbeat.interval.ms", (cfg.consumer.session_timeout_ms / 4).max(100).to_string())
            .set("max.poll.interval.ms", cfg.consumer.max_poll_interval_ms.to_string())
            .set("statistics.interval.ms", "5000")
            .create_with_context(Ctx { owner: Arc::new(Mutex::new(owner)) })
            .context("creating kafka consumer")?;
        consumer.subscribe(&[&cfg.kafka.events_topic()]).context("subscribing")?;

        let ready = Arc::new(Ready { store: self.store.clone(), heartbeat });
        let router = service_router(axum::Router::new(), ready);
        let http_stop = CancellationToken::new();
        let http = tokio::spawn(
            axum::serve(self.listener, router)
                .with_graceful_shutdown(http_stop.clone().cancelled_owned())
                .into_future(),
        );
        tracing::info!(topic = %cfg.kafka.events_topic(), group = %cfg.consumer.group_id, "aggregator consuming");
        let interval = Duration::from_millis(cfg.flush.interval_ms);
        let max_keys = cfg.flush.max_buffered_keys;
        let looped = tokio::task::spawn_blocking(move || pipeline::run(consumer, shutdown, interval, max_keys)).await;
        http_stop.cancel();
        let _ = http.await;
        looped.context("consumer loop panicked")?;
        tracing::info!("aggregator stopped");
        Ok(())
    }
}
