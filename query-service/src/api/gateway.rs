//! One origin for browsers: with `web.gateway_url` set, the query service also
//! answers the ingest gateway's routes by forwarding them there, so a KillrVideo
//! front end needs one host and port (`scripts/dev` turns this on). In production a
//! reverse proxy does the same by path (deploy/haproxy/haproxy.cfg, `frontend web`)
//! and views skip this hop.
//!
//! Which routes are forwarded comes from the gateway's own router
//! (`ingest_gateway::routes::router`, which documents and routes each handler in
//! one call), and so does their part of this origin's OpenAPI document.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use platform::http::{Problem, read_body};
use utoipa::openapi::OpenApi;

struct Forward {
    base: String,
    http: reqwest::Client,
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
pub fn forward(base: &str) -> anyhow::Result<Router> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build()?;
    let state = Arc::new(Forward { base: base.trim_end_matches('/').to_owned(), http });
    let mut router = Router::new();
    for (method, path) in routes() {
        let filter = MethodFilter::try_from(method).map_err(|e| anyhow::anyhow!("{e}"))?;
        router = router.route(&path, on(filter, forward_one));
    }
    Ok(router.with_state(state))
}

const PASSED_ON: [header::HeaderName; 4] =
    [header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT, header::HeaderName::from_static("idempotency-key")];
const PASSED_BACK: [header::HeaderName; 2] = [header::CONTENT_TYPE, header::RETRY_AFTER];

async fn forward_one(
    State(f): State<Arc<Forward>>,
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
