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
//! Beside them, [`dashboard`] serves the counts page (static files, not API), and
//! [`passwords`] hashes on a bounded pool.
//!
//! Two listeners, served by `platform::server` (header, body and request timeouts,
//! connection and in-flight limits): the public one (`http.listen`: the API, the
//! dashboard and a bare `/healthz`) and the admin one (`admin.listen`: `/metrics`,
//! `/readyz` with the reason, `/healthz`), so operational detail never reaches the
//! internet.

pub mod api;
pub mod catalog_events;
pub mod config;
pub mod dashboard;
pub mod domain;
pub mod limits;
pub mod metrics;
pub mod passwords;
pub mod state;
pub mod store;

pub use api::openapi;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use platform::http::{Readiness, admin_router, public_router};
use platform::server::{Listener, ServerConfig};
use tokio_util::sync::CancellationToken;

pub use config::QueryConfig;
use state::AppState;

/// A built query service: listening, not yet serving (so tests can read the ports).
pub struct Application {
    public: Listener,
    admin: Listener,
    router: axum::Router,
    admin_router: axum::Router,
    /// Stops the rate limiters' sweepers.
    background: CancellationToken,
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
        config.moderation.check()?;
        anyhow::ensure!(
            config.http.cors_origins.is_empty(),
            "the query service's browser origins are web.cors_origins, not http.cors_origins"
        );
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
        let public = Listener::bind(config.http.clone()).await?;
        let admin = Listener::bind(ServerConfig::admin(&config.admin.listen)).await.context("the admin listener")?;
        let (web, forwarding) = (config.web.clone(), api::gateway::Forwarding::new(&config)?);
        let background = CancellationToken::new();
        let state = Arc::new(AppState::build(config, Arc::new(session), events).await?);
        state.catalog.limits.spawn_sweepers(&background);
        let api = api::router(state.clone(), &web.gateway_url, forwarding)?.merge(dashboard::routes());
        let mut router = public_router(api);
        if let Some(cors) = platform::http::cors(&web.cors_origins)? {
            router = router.layer(cors);
        }
        Ok(Self { public, admin, router, admin_router: admin_router(Arc::new(Ready(state))), background })
    }

    /// The public port.
    pub fn local_addr(&self) -> SocketAddr {
        self.public.local_addr()
    }

    /// The admin port (`/metrics`, `/readyz`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr()
    }

    /// Serves until `shutdown` is cancelled, then stops accepting and lets
    /// in-flight requests finish (up to `http.request_timeout_ms`).
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), admin = %self.admin_addr(), "query service listening");
        let drain = Duration::from_millis(self.public.config().request_timeout_ms);
        let admin = tokio::spawn(self.admin.serve(self.admin_router, shutdown.clone(), Duration::from_secs(1)));
        self.public.serve(self.router, shutdown, drain).await.context("serving http")?;
        let _ = admin.await;
        self.background.cancel();
        tracing::info!("query service stopped");
        Ok(())
    }
}
