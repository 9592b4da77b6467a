//! The ingest gateway: a thin HTTP service that validates view and other counting
//! events, stamps them, encodes them as protobuf and produces them to Kafka keyed
//! by video id, and signed-in users' ratings onto the ratings topic. A 2xx means
//! the event is durable in Kafka; it never touches Cassandra.
//!
//! Two listeners: the public one (`http.listen`: the API and a bare `/healthz`) and
//! the admin one (`admin.listen`: `/metrics`, `/readyz` with the reason,
//! `/healthz`), so operational detail never reaches the internet.

pub mod batch;
pub mod config;
pub mod events;
pub mod idempotency;
pub mod known;
pub mod metrics;
pub mod policy;
pub mod producer;
pub mod ratings;
pub mod routes;
pub mod watch_time;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use platform::http::{Readiness, admin_router, public_router};
use platform::server::{Listener, ServerConfig};
use tokio_util::sync::CancellationToken;

pub use config::GatewayConfig;
use known::KnownVideos;
use producer::EventProducer;
use routes::AppState;

/// A built gateway: listening, not yet serving (so tests can read the ports).
pub struct Application {
    public: Listener,
    admin: Listener,
    router: axum::Router,
    admin_router: axum::Router,
    producer: EventProducer,
    /// Stops strict mode's catalog reader and the rate limiters' sweepers.
    background: CancellationToken,
}

struct Ready {
    producer: EventProducer,
    known: KnownVideos,
}

impl Readiness for Ready {
    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            self.known.ready()?;
            let p = self.producer.clone();
            let ready = tokio::task::spawn_blocking(move || p.ping(Duration::from_secs(2)));
            ready.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())
        })
    }
}

impl Application {
    pub async fn build(config: GatewayConfig) -> anyhow::Result<Self> {
        config.events.check()?;
        let types = counting::EventTypes::new(&config.event_types).context("event_types")?;
        let watch = config.limits.watch_seconds;
        anyhow::ensure!(
            watch.is_unlimited() || i64::from(watch.burst) >= config.events.max_watch_seconds,
            "limits.watch_seconds.burst must be at least events.max_watch_seconds, or a longest report never passes"
        );
        // The null sink never talks to Kafka, so it needs no topic.
        if config.kafka.create_topics && config.producer.sink == config::Sink::Kafka {
            platform::kafka::ensure_topics(&config.kafka).await?;
        }
        let producer = EventProducer::new(&config.kafka, &config.producer)?;
        {
            // The partition count for the packs, now if Kafka answers; else the
            // once-a-second sampler learns it, and until then nothing is packed.
            let p = producer.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || p.ping(Duration::from_secs(2))).await? {
                tracing::warn!(error = %e, "the events topic's partitions are not known yet; batches are not packed until they are");
            }
        }
        metrics::describe(config.producer.queue_max_messages);
        let public = Listener::bind(config.http.clone()).await?;
        let admin = Listener::bind(ServerConfig::admin(&config.admin.listen)).await.context("the admin listener")?;
        let tokens = platform::auth::Tokens::new(&config.auth)?;
        let background = CancellationToken::new();
        let policy = policy::Policy::new(&config)?;
        policy.spawn_sweepers(&background);
        let known = if config.strict.enabled {
            KnownVideos::follow(&config.kafka, &config.strict, background.clone())?
        } else {
            KnownVideos::off()
        };
        let cors = platform::http::cors(&config.http.cors_origins)?;
        let ready = Arc::new(Ready { producer: producer.clone(), known: known.clone() });
        let state = Arc::new(AppState { config, types, producer: producer.clone(), tokens, policy, known });
        let mut router = public_router(routes::api(state));
        if let Some(cors) = cors {
            router = router.layer(cors);
        }
        Ok(Self { public, admin, router, admin_router: admin_router(ready), producer, background })
    }

    /// The public port.
    pub fn local_addr(&self) -> SocketAddr {
        self.public.local_addr()
    }

    /// The admin port (`/metrics`, `/readyz`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr()
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets in-flight
    /// requests finish and flushes the producer.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), admin = %self.admin_addr(), "ingest gateway listening");
        let sampler = {
            let (producer, stop) = (self.producer.clone(), shutdown.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                let mut seconds = 0u64;
                while stop.run_until_cancelled(tick.tick()).await.is_some() {
                    producer.sample_queue();
                    // The partition count the packs are grouped by: at once, then
                    // every 30 s (a topic grown by hand is noticed; see README).
                    if !producer.knows_partitions() || seconds.is_multiple_of(30) {
                        let p = producer.clone();
                        let _ = tokio::task::spawn_blocking(move || p.ping(Duration::from_secs(2))).await;
                    }
                    seconds += 1;
                }
            })
        };
        let drain = Duration::from_millis(self.public.config().request_timeout_ms);
        let admin = tokio::spawn(self.admin.serve(self.admin_router, shutdown.clone(), Duration::from_secs(1)));
        self.public.serve(self.router, shutdown.clone(), drain).await.context("serving http")?;
        let _ = admin.await;
        self.background.cancel();
        let _ = sampler.await;
        let producer = self.producer;
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await?;
        tracing::info!("ingest gateway stopped");
        Ok(())
    }
}
