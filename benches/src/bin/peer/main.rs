//! `peer`: the two systems vcount is compared with in `scripts/bench`, behind the
//! same two routes the pipeline offers, so `loadgen` drives all three alike:
//!
//! - `POST /api/v1/videos/id/{videoId}/view` counts one view, 204 once the store
//!   acknowledged it;
//! - `GET /api/v1/videos/{videoId}/views` answers `{"videoId": …, "views": N}`, so
//!   loadgen's exactness check works against a peer too.
//!
//! `peer cassandra` is the KillrVideo way (one counter `UPDATE` per view), `peer
//! redis` one `INCR` per view. Both are increments, not idempotent: a client that
//! times out and retries may count a view twice, which is part of the comparison.
//! Every store write is counted in `peer_db_writes_total` on `/metrics`.

mod cassandra;
mod redis_incr;

use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::{Parser, Subcommand};
use platform::http::{Problem, Readiness, parse_uuid, service_router};
use serde_json::json;
use tokio::net::TcpListener;
use uuid::Uuid;

#[derive(Parser)]
#[command(about = "The peers of the side-by-side benchmark: a Cassandra counter or a Redis INCR per view")]
struct Args {
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:28090", global = true)]
    listen: String,
    #[command(subcommand)]
    store: Store,
}

#[derive(Subcommand)]
enum Store {
    /// Peer A, the KillrVideo way: `UPDATE video_playback_stats SET views = views + 1`.
    Cassandra {
        #[arg(long, default_value = "127.0.0.1:19042")]
        nodes: String,
        /// Created at start-up if missing (SimpleStrategy, RF 1).
        #[arg(long, default_value = "vcount_peer_a")]
        keyspace: String,
        /// `one`, `local_quorum`, … for every request.
        #[arg(long, default_value = "local_quorum")]
        consistency: String,
    },
    /// Peer B: `INCR views:{videoId}`.
    Redis {
        /// `redis://host:port` or `unix:///path/to/socket`.
        #[arg(long, default_value = "redis://127.0.0.1:28379")]
        url: String,
    },
}

/// The store behind the two routes (one per process, behind an `Arc`: size is no concern).
#[allow(clippy::large_enum_variant)]
enum Backend {
    Cassandra(cassandra::CounterTable),
    Redis(redis_incr::RedisCounters),
}

impl Backend {
    async fn incr(&self, video: Uuid) -> anyhow::Result<()> {
        match self {
            Backend::Cassandra(c) => c.incr(video).await,
            Backend::Redis(r) => r.incr(video).await,
        }?;
        metrics::counter!("peer_db_writes_total").increment(1);
        Ok(())
    }

    async fn views(&self, video: Uuid) -> anyhow::Result<i64> {
        match self {
            Backend::Cassandra(c) => c.views(video).await,
            Backend::Redis(r) => r.views(video).await,
        }
    }

    async fn ping(&self) -> anyhow::Result<()> {
        match self {
            Backend::Cassandra(c) => c.ping().await,
            Backend::Redis(r) => r.ping().await,
        }
    }
}

struct Ready(Arc<Backend>);

impl Readiness for Ready {
    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move { self.0.ping().await.map_err(|e| format!("{e:#}")) })
    }
}

type St = State<Arc<Backend>>;

fn unavailable(e: anyhow::Error) -> Response {
    tracing::warn!(error = format!("{e:#}"), "store request failed");
    Problem::unavailable("the store did not acknowledge; retry later", 1).into_response()
}

async fn record_view(State(b): St, Path(video): Path<String>) -> Response {
    let video = match parse_uuid("videoId", &video) {
        Ok(v) => v,
        Err(p) => return p.into_response(),
    };
    match b.incr(video).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => unavailable(e),
    }
}

async fn views(State(b): St, Path(video): Path<String>) -> Response {
    let video = match parse_uuid("videoId", &video) {
        Ok(v) => v,
        Err(p) => return p.into_response(),
    };
    match b.views(video).await {
        Ok(n) => axum::Json(json!({"videoId": video, "views": n})).into_response(),
        Err(e) => unavailable(e),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    platform::telemetry::init_logging(&Default::default());
    let (backend, what) = match args.store {
        Store::Cassandra { nodes, keyspace, consistency } => {
            let t = cassandra::CounterTable::connect(&nodes, &keyspace, &consistency).await?;
            (Backend::Cassandra(t), format!("cassandra counter table {keyspace}.video_playback_stats at {nodes}"))
        }
        Store::Redis { url } => {
            (Backend::Redis(redis_incr::RedisCounters::connect(&url).await?), format!("redis {url}"))
        }
    };
    let backend = Arc::new(backend);
    let api = Router::new()
        .route("/api/v1/videos/id/{video_id}/view", post(record_view))
        .route("/api/v1/videos/{video_id}/views", get(views))
        .with_state(backend.clone());
    let router = service_router(api, Arc::new(Ready(backend)));
    let listener = TcpListener::bind(&args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    // Tests and scripts read this line to learn the port.
    println!("peer listening on http://{} ({what})", listener.local_addr()?);
    let stop = tokio_util::sync::CancellationToken::new();
    platform::http::cancel_on_signal(stop.clone());
    axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).await.context("serving http")?;
    Ok(())
}
