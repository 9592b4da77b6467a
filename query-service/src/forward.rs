//! One origin for browsers: with `web.gateway_url` set, the query service also
//! answers the ingest gateway's routes by forwarding them there, so a KillrVideo
//! front end needs one host and port (`scripts/dev` turns this on). In production a
//! reverse proxy does the same by path (deploy/haproxy/haproxy.cfg, `frontend web`)
//! and views skip this hop.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use platform::http::{Problem, read_body};

/// The gateway's routes, all POST: what a browser may send through this origin.
pub const GATEWAY_ROUTES: [&str; 5] = [
    "/api/v1/videos/id/{video_id}/view",
    "/api/v1/events",
    "/api/v1/events:batch",
    "/api/v1/videos/{video_id}/ratings",
    "/api/v1/videos/id/{video_id}/rating",
];

struct Forward {
    base: String,
    http: reqwest::Client,
}

/// POST routes forwarding to the gateway at `base` (e.g. `http://127.0.0.1:18080`).
pub fn api(base: &str) -> anyhow::Result<Router> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build()?;
    let state = Arc::new(Forward { base: base.trim_end_matches('/').to_owned(), http });
    let mut router = Router::new();
    for path in GATEWAY_ROUTES {
        router = router.route(path, post(forward));
    }
    Ok(router.with_state(state))
}

const PASSED_ON: [header::HeaderName; 3] = [header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT];
const PASSED_BACK: [header::HeaderName; 2] = [header::CONTENT_TYPE, header::RETRY_AFTER];

async fn forward(
    State(f): State<Arc<Forward>>,
    uri: Uri,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let bytes = match read_body(bytes) {
        Ok(b) => b,
        Err(p) => return p.into_response(),
    };
    let mut out = f.http.post(format!("{}{path}", f.base)).body(bytes);
    for name in PASSED_ON {
        if let Some(v) = headers.get(&name) {
            out = out.header(name, v);
        }
    }
    match out.send().await {
        Ok(res) => {
            let status = StatusCode::from_u16(res.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut headers = HeaderMap::new();
            for name in PASSED_BACK {
                if let Some(Ok(v)) = res.headers().get(name.as_str()).and_then(|v| v.to_str().ok()).map(str::parse) {
                    headers.insert(name, v);
                }
            }
            let body = res.bytes().await.unwrap_or_default();
            (status, headers, body).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "forwarding to the gateway failed");
            Problem::unavailable("the ingest gateway is not answering; retry later", 1).into_response()
        }
    }
}
