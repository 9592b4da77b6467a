//! The query service: time-ranged counts stitched from day, hour and minute
//! rollups, and the KillrVideo catalog API: users, videos, ratings, comments and
//! the activity feed, flags and moderation, the catalog's lists, search,
//! recommendations, trending and playback statistics.

pub mod catalog;
pub mod catalog_events;
pub mod comments;
pub mod config;
pub mod counts;
pub mod dashboard;
pub mod forward;
mod listing;
pub mod moderation;
pub mod openapi;
pub mod paging;
pub mod ratings;
pub mod recommend;
pub mod routes;
pub mod search;
pub mod trending;
pub mod users;
pub mod videos;
pub mod youtube;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use platform::http::{Readiness, service_router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::QueryConfig;
use routes::AppState;

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
}

struct Ready(Arc<AppState>);

impl Readiness for Ready {
    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(platform::cassandra::ping(self.0.counts.session()))
    }
}

impl Application {
    pub async fn build(config: QueryConfig) -> anyhow::Result<Self> {
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
        let catalog_events =
            catalog_events::CatalogEvents::new(&config.kafka, config.catalog_events.delivery_timeout_ms)?;
        let session = Arc::new(session);
        let counts = counts::CountStore::new(session.clone(), &config.cassandra.keyspace).await?;
        let users = users::Users::new(session.clone(), &config.cassandra.keyspace, &config.auth)
            .await?
            .with_moderators(&config.moderation.moderators);
        let videos = videos::Videos::new(session.clone(), &config.cassandra.keyspace).await?;
        let ratings = ratings::Ratings::new(session.clone(), &config.cassandra.keyspace).await?;
        let catalog = catalog::Catalog::new(session.clone(), &config.cassandra.keyspace).await?;
        let trending = trending::Trending::new(session.clone(), &config.cassandra.keyspace).await?;
        let comments = comments::Comments::new(session.clone(), &config.cassandra.keyspace).await?;
        let moderation = moderation::Moderation::new(session, &config.cassandra.keyspace).await?;
        let listener =
            TcpListener::bind(&config.http.listen).await.with_context(|| format!("binding {}", config.http.listen))?;
        let (config_gateway, cors_origins) = (config.web.gateway_url.clone(), config.web.cors_origins.clone());
        let state = Arc::new(AppState {
            config,
            counts,
            users,
            videos,
            ratings,
            catalog_events,
            catalog,
            trending,
            comments,
            moderation,
        });
        let api = routes::api(state.clone())
            .merge(users::api(state.clone()))
            .merge(videos::api(state.clone()))
            .merge(ratings::api(state.clone()))
            .merge(catalog::api(state.clone()))
            .merge(search::api(state.clone()))
            .merge(recommend::api(state.clone()))
            .merge(trending::api(state.clone()))
            .merge(comments::api(state.clone()))
            .merge(moderation::api(state.clone()))
            .merge(openapi::api())
            .merge(dashboard::routes());
        let api = if config_gateway.is_empty() { api } else { api.merge(forward::api(&config_gateway)?) };
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
