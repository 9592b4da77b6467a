//! One origin for browsers: with `web.gateway_url` set, the query service also
//! answers the ingest gateway's routes by forwarding them there, so a KillrVideo
//! front end needs one host and port (`scripts/dev` turns this on). In production a
//! reverse proxy does the same by path (deploy/haproxy/haproxy.cfg, `frontend web`)
//! and views skip this hop.
//!
//! Which routes are forwarded comes from the gateway's own router
//! (`ingest_gateway::routes::router`, which documents and routes each handler in
//! one call), and so does their part of this origin's OpenAPI document.
//!
//! The gateway limits anonymous clients per address and producers per key, so the
//! forwarded request carries both: `X-Api-Key` as sent, and `X-Forwarded-For` with
//! the peer appended, as a proxy does. The client's own `X-Forwarded-For` is passed
//! on only when the peer is one of this service's `limits.trusted_proxies` (the
//! load balancer in front); otherwise the peer alone is sent, so a client cannot
//! choose its bucket. The gateway must in turn trust this service's address
//! (`GATEWAY__LIMITS__TRUSTED_PROXIES`), or every client through this origin shares
//! the budget of its address.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use platform::http::{Problem, read_body};
use platform::ratelimit::ClientIp;
use platform::server::PeerAddr;
use utoipa::openapi::OpenApi;

use crate::config::QueryConfig;

struct Forward {
    base: String,
    http: reqwest::Client,
    forwarding: Forwarding,
}

/// Which peers' `X-Forwarded-For` is passed on (`limits.trusted_proxies`).
#[derive(Clone, Debug, Default)]
pub struct Forwarding {
    trusted: ClientIp,
}

const FORWARDED_FOR: &str = "x-forwarded-for";

impl Forwarding {
    pub fn new(cfg: &QueryConfig) -> anyhow::Result<Self> {
        Ok(Self { trusted: ClientIp::new(&cfg.limits.trusted_proxies)? })
    }

    /// The `X-Forwarded-For` to send on: the incoming one (from a trusted proxy
    /// only) with the peer appended, or the peer alone.
    pub fn forwarded_for(&self, peer: Option<std::net::SocketAddr>, headers: &HeaderMap) -> Option<HeaderValue> {
        let peer = peer?.ip();
        let incoming: Vec<&str> = headers.get_all(FORWARDED_FOR).iter().filter_map(|v| v.to_str().ok()).collect();
        let from_proxy = self.trusted.is_trusted(peer) && !incoming.is_empty();
        let value = if from_proxy { format!("{}, {peer}", incoming.join(", ")) } else { peer.to_string() };
        HeaderValue::from_str(&value).ok()
    }
}

/// The gateway's part of the document.
pub fn document() -> OpenApi {
    ingest_gateway::routes::openapi()
}

/// `(method, path template)` of every gateway route: what a browser may send
/// through this origin.
pub fn routes() -> Vec<(Method, String)> {
    let mut out = Vec::new();
    for (path, item) in document().paths.paths {
        let ops = [
            (Method::GET, item.get.is_some()),
            (Method::POST, item.post.is_some()),
            (Method::PUT, item.put.is_some()),
            (Method::DELETE, item.delete.is_some()),
            (Method::PATCH, item.patch.is_some()),
        ];
        out.extend(ops.into_iter().filter(|(_, on)| *on).map(|(m, _)| (m, path.clone())));
    }
    out
}

/// Routes forwarding to the gateway at `base` (e.g. `http://127.0.0.1:18080`).
pub fn forward(base: &str, forwarding: Forwarding) -> anyhow::Result<Router> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build()?;
    let state = Arc::new(Forward { base: base.trim_end_matches('/').to_owned(), http, forwarding });
    let mut router = Router::new();
    for (method, path) in routes() {
        let filter = MethodFilter::try_from(method).map_err(|e| anyhow::anyhow!("{e}"))?;
        router = router.route(&path, on(filter, forward_one));
    }
    Ok(router.with_state(state))
}

const PASSED_ON: [header::HeaderName; 5] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::ACCEPT,
    header::HeaderName::from_static("idempotency-key"),
    header::HeaderName::from_static(ingest_gateway::policy::API_KEY_HEADER),
];
const PASSED_BACK: [header::HeaderName; 2] = [header::CONTENT_TYPE, header::RETRY_AFTER];

async fn forward_one(
    State(f): State<Arc<Forward>>,
    PeerAddr(peer): PeerAddr,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let bytes = read_body(bytes)?;
    let mut out = f.http.request(method, format!("{}{path}", f.base)).body(bytes);
    for name in PASSED_ON {
        if let Some(v) = headers.get(&name) {
            out = out.header(name, v);
        }
    }
    if let Some(v) = f.forwarding.forwarded_for(peer, &headers) {
        out = out.header(FORWARDED_FOR, v);
    }
    let res = out.send().await.map_err(|e| {
        tracing::warn!(error = %e, "forwarding to the gateway failed");
        Problem::unavailable("the ingest gateway is not answering; retry later", 1)
    })?;
    let status = StatusCode::from_u16(res.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut back = HeaderMap::new();
    for name in PASSED_BACK {
        if let Some(Ok(v)) = res.headers().get(name.as_str()).and_then(|v| v.to_str().ok()).map(str::parse) {
            back.insert(name, v);
        }
    }
    let body = res.bytes().await.unwrap_or_default();
    Ok((status, back, body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_is_appended_and_only_a_trusted_proxy_speaks_for_the_client() {
        let mut cfg = QueryConfig::default();
        cfg.limits.trusted_proxies = vec!["10.0.0.0/8".into()];
        let f = Forwarding::new(&cfg).unwrap();
        let mut h = HeaderMap::new();
        h.insert(FORWARDED_FOR, "203.0.113.7".parse().unwrap());
        let lb = "10.0.0.2:4000".parse().ok();
        assert_eq!(f.forwarded_for(lb, &h).unwrap(), "203.0.113.7, 10.0.0.2");
        // A client talking to this service directly: its header is dropped.
        let direct = "198.51.100.1:4000".parse().ok();
        assert_eq!(f.forwarded_for(direct, &h).unwrap(), "198.51.100.1");
        assert_eq!(f.forwarded_for(lb, &HeaderMap::new()).unwrap(), "10.0.0.2");
        assert!(f.forwarded_for(None, &h).is_none());
    }
}
