//! The query service: time-ranged counts stitched from day, hour and minute
//! rollups (the counts API), and the KillrVideo catalog API: users, videos,
//! ratings, comments and the activity feed, flags and moderation, the catalog's
//! lists, search, recommendations, trending and playback statistics.
//!
//! Layers, outside in:
//! - [`api`]: handlers, one file per resource, in two parts (`api::counts`,
//!   `api::catalog`), plus the gateway's forwarded routes and the OpenAPI document
//!   generated from the handlers. Handlers return `Result<_, Problem>`.
//! - [`domain`]: the rules, with no I/O (range planning, ranking, search and
//!   recommendation scoring, the latest list's day walk, YouTube URLs, moderation,
//!   field validation), unit-tested on their own.
//! - [`store`]: one repository per table family, statements prepared at start-up,
//!   rows as named structs, one typed error mapped to an answer in one place.
//! - [`state`]: what handlers reach, as counts and catalog sub-states.
//!
//! Beside them, [`dashboard`] serves the counts page (static files, not API).

pub mod api;
pub mod catalog_events;
pub mod config;
pub mod dashboard;
pub mod domain;
pub mod metrics;
pub mod state;
pub mod store;

pub use api::openapi;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use platform::http::{Readiness, service_router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::QueryConfig;
use state::AppState;

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
}

struct Ready(Arc<AppState>);

impl Readiness for Ready {
    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            platform::cassandra::ping(self.0.counts.rollups.session()).await.map_err(|e| format!("cassandra: {e}"))
        })
    }
}

impl Application {
    pub async fn build(config: QueryConfig) -> anyhow::Result<Self> {
        metrics::describe();
        config.retention.validate()?;
        let session = platform::cassandra::connect(&config.cassandra, Duration::from_secs(60)).await?;
        if config.cassandra.create_schema {
            platform::cassandra::migrate(&session, &config.cassandra).await?;
        }
        // Reads must not depend on Kafka: if it is down now, start anyway; catalog
        // events are then retried by the producer (and counted if they fail).
        if config.kafka.create_topics
            && let Err(e) = platform::kafka::ensure_topics(&config.kafka).await
        {
            tracing::warn!(error = %e, "could not create the Kafka topics; catalog events may fail until Kafka is up");
        }
        let events = catalog_events::CatalogEvents::new(&config.kafka, config.catalog_events.delivery_timeout_ms)?;
        let listener =
            TcpListener::bind(&config.http.listen).await.with_context(|| format!("binding {}", config.http.listen))?;
        let (gateway_url, cors_origins) = (config.web.gateway_url.clone(), config.web.cors_origins.clone());
        let state = Arc::new(AppState::build(config, Arc::new(session), events).await?);
        let api = api::router(state.clone(), &gateway_url)?.merge(dashboard::routes());
        let mut router = service_router(api, Arc::new(Ready(state)));
        if let Some(cors) = platform::http::cors(&cors_origins)? {
            router = router.layer(cors);
        }
        Ok(Self { listener, router })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), "query service listening");
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .context("serving http")
    }
}
