//! The HTTP server every service runs, with the limits a public server needs.
//!
//! `axum::serve` runs hyper without a timer, which silently turns off hyper's
//! header-read timeout: a client that sends its headers a byte at a time (slowloris)
//! keeps a socket and a task forever. So the accept loop is ours, on hyper's HTTP/1
//! connection builder with a Tokio timer:
//!
//! - `header_read_timeout_ms`: the whole request head must arrive within it. Hyper
//!   starts the same timer when a keep-alive connection waits for its next request,
//!   so it is also the idle timeout.
//! - `body_timeout_ms`: the longest pause between two pieces of a request body (408).
//! - `request_timeout_ms`: from the head to the response head, body included (503).
//! - `max_connections`: open connections; beyond it the loop stops accepting and new
//!   connections wait in the kernel's backlog, so a flood costs no memory here.
//! - `max_in_flight`: requests being handled at once; beyond it 503 with
//!   `Retry-After` at once, instead of a queue that grows with the attack.
//! - `max_body_bytes` (413) and `max_header_bytes` (431).
//!
//! Only HTTP/1.1: every client of ours speaks it, load balancers terminate TLS and
//! HTTP/2 in front, and h2c would add its own denial-of-service surface (stream
//! floods, rapid reset) to harden.
//!
//! The admin listener (metrics, readiness) is served by the same loop with its own
//! limits, so a saturated public port never hides the service's metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::http::Problem;

/// The `[http]` section of a service: where it listens and what it tolerates.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: String,
    /// Largest request body, in bytes (413 above).
    pub max_body_bytes: usize,
    /// Largest request head (request line and headers), in bytes (431 above).
    pub max_header_bytes: usize,
    /// The request head must arrive within this; also how long a keep-alive
    /// connection may sit idle between requests. The socket is closed after it.
    pub header_read_timeout_ms: u64,
    /// Longest pause between two pieces of a request body (408 after it).
    pub body_timeout_ms: u64,
    /// Longest time from the request head to the response head, body included
    /// (503 after it). Keep it above any dependency timeout a handler waits for.
    pub request_timeout_ms: u64,
    /// Most open connections; more wait in the kernel's accept backlog.
    pub max_connections: usize,
    /// Most requests handled at once; more get 503 with `Retry-After` at once.
    pub max_in_flight: usize,
    /// Allowed browser origins: empty (no CORS headers), `*`, or a comma-separated
    /// list of exact origins.
    pub cors_origins: String,
}

impl ServerConfig {
    /// Defaults, listening on `addr`.
    pub fn on(addr: &str) -> Self {
        Self { listen: addr.to_owned(), ..Self::default() }
    }

    /// The admin listener's limits: small, since only scrapers and probes call it.
    pub fn admin(addr: &str) -> Self {
        Self { listen: addr.to_owned(), max_connections: 64, max_in_flight: 16, max_body_bytes: 0, ..Self::default() }
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.max_connections > 0, "http.max_connections must be positive");
        anyhow::ensure!(self.max_in_flight > 0, "http.max_in_flight must be positive");
        anyhow::ensure!(self.max_header_bytes >= 1024, "http.max_header_bytes must be at least 1024");
        for (name, ms) in [
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("body_timeout_ms", self.body_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
        ] {
            anyhow::ensure!(ms > 0, "http.{name} must be positive");
        }
        Ok(())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:0".into(),
            max_body_bytes: 1 << 20,
            max_header_bytes: 16 << 10,
            header_read_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            max_connections: 4096,
            max_in_flight: 1024,
            cors_origins: String::new(),
        }
    }
}

/// Where the operational routes (`/metrics`, `/readyz`, `/healthz`) listen: keep it
/// off the public network (loopback, or a port only the scraper and the
/// orchestrator reach). Empty: no admin listener.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: String,
}

impl AdminConfig {
    pub fn on(addr: &str) -> Self {
        Self { listen: addr.to_owned() }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self::on("127.0.0.1:0")
    }
}

/// A bound listener and what to serve on it.
pub struct Listener {
    listener: TcpListener,
    config: ServerConfig,
}

impl Listener {
    /// Binds `config.listen`, checking the limits first.
    pub async fn bind(config: ServerConfig) -> anyhow::Result<Self> {
        use anyhow::Context;
        config.validate()?;
        let listener = TcpListener::bind(&config.listen).await.with_context(|| format!("binding {}", config.listen))?;
        Ok(Self { listener, config })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Serves `router` with the limits until `shutdown` is cancelled, then stops
    /// accepting and waits (up to `drain`) for in-flight requests to finish.
    pub async fn serve(self, router: Router, shutdown: CancellationToken, drain: Duration) -> std::io::Result<()> {
        let cfg = &self.config;
        let router = limit(router, cfg);
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(Duration::from_millis(cfg.header_read_timeout_ms))
            .max_header_size(cfg.max_header_bytes)
            // The read buffer never needs to hold more than a head; bodies stream.
            .max_buf_size(cfg.max_header_bytes.max(8192) * 2);
        let connections = Arc::new(Semaphore::new(cfg.max_connections));
        let graceful = GracefulShutdown::new();
        loop {
            let permit = tokio::select! {
                p = connections.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                () = shutdown.cancelled() => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = shutdown.cancelled() => break,
            };
            let _ = stream.set_nodelay(true);
            let service = router.clone().map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.map(Body::new)
            });
            let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                drop(permit);
            });
        }
        drop(self.listener);
        if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
            tracing::warn!(?drain, "connections still open after the drain time; closing them");
        }
        Ok(())
    }
}

/// The per-request limits, as layers around `router` (outermost last).
fn limit(router: Router, cfg: &ServerConfig) -> Router {
    let in_flight = Arc::new(Semaphore::new(cfg.max_in_flight));
    let request_timeout = Duration::from_millis(cfg.request_timeout_ms);
    router
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(Duration::from_millis(cfg.body_timeout_ms)))
        .layer(middleware::from_fn_with_state(request_timeout, time_limit))
        .layer(middleware::from_fn_with_state(in_flight, shed_load))
}

async fn shed_load(State(in_flight): State<Arc<Semaphore>>, req: Request, next: Next) -> Response {
    let Ok(_permit) = in_flight.try_acquire() else {
        crate::metrics::HTTP_REQUESTS_SHED.counter().increment(1);
        return Problem::unavailable("too many requests in flight; retry later", 1).into_response();
    };
    next.run(req).await
}

async fn time_limit(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            crate::metrics::HTTP_REQUEST_TIMEOUTS.counter().increment(1);
            let mut res = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "Request timed out",
                format!("the request did not complete within {} ms", limit.as_millis()),
            )
            .into_response();
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            res
        }
    }
}

/// The peer address the server loop recorded, as an extractor that never fails (a
/// router called without [`Listener::serve`], as in some tests, has none).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PeerAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)))
    }
}
