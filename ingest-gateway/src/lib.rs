//! The ingest gateway: a thin HTTP service that validates view and other counting
//! events, stamps them, encodes them as protobuf and produces them to Kafka keyed
//! by video id, and signed-in users' ratings onto the ratings topic. A 2xx means
//! the event is durable in Kafka; it never touches Cassandra.

pub mod config;
pub mod events;
pub mod metrics;
pub mod producer;
pub mod ratings;
pub mod routes;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use platform::http::{Readiness, service_router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::GatewayConfig;
use producer::EventProducer;
use routes::AppState;

/// A built gateway: listening, not yet serving (so tests can read the port).
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    producer: EventProducer,
}

struct KafkaReady(EventProducer);

impl Readiness for KafkaReady {
    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            let p = self.0.clone();
            let ready = tokio::task::spawn_blocking(move || p.ping(Duration::from_secs(2)));
            ready.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())
        })
    }
}

impl Application {
    pub async fn build(config: GatewayConfig) -> anyhow::Result<Self> {
        // The null sink never talks to Kafka, so it needs no topic.
        if config.kafka.create_topics && config.producer.sink == config::Sink::Kafka {
            platform::kafka::ensure_topics(&config.kafka).await?;
        }
        let producer = EventProducer::new(&config.kafka, &config.producer)?;
        metrics::describe(config.producer.queue_max_messages);
        let listener =
            TcpListener::bind(&config.http.listen).await.with_context(|| format!("binding {}", config.http.listen))?;
        let limit = config.http.max_body_bytes;
        let tokens = platform::auth::Tokens::new(&config.auth)?;
        let state = Arc::new(AppState { config, producer: producer.clone(), tokens });
        let cors = platform::http::cors(&state.config.http.cors_origins)?;
        let mut router = service_router(routes::api(state), Arc::new(KafkaReady(producer.clone())))
            .layer(DefaultBodyLimit::max(limit));
        if let Some(cors) = cors {
            router = router.layer(cors);
        }
        Ok(Self { listener, router, producer })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets in-flight
    /// requests finish and flushes the producer.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), "ingest gateway listening");
        let sampler = {
            let (producer, stop) = (self.producer.clone(), shutdown.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                while stop.run_until_cancelled(tick.tick()).await.is_some() {
                    producer.sample_queue();
                }
            })
        };
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .context("serving http")?;
        let _ = sampler.await;
        let producer = self.producer;
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await?;
        tracing::info!("ingest gateway stopped");
        Ok(())
    }
}
