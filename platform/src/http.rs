//! HTTP plumbing shared by the services: RFC 9457 problem+json errors, the public
//! and admin routers (operational routes `/metrics`, `/readyz` on the admin
//! listener), per-route metrics with bounded labels, and graceful shutdown. The
//! server loop and its limits are in [`crate::server`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::metrics::{HTTP_REQUEST_DURATION, HTTP_REQUESTS};

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Where a port with nothing but operational routes listens (the aggregator's,
/// served with [`crate::server::ServerConfig::admin`]'s limits).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: String,
}

impl ListenConfig {
    pub fn on(addr: &str) -> Self {
        Self { listen: addr.to_owned() }
    }
}

/// CORS for browsers on another origin. `origins`: empty (the default) adds no
/// CORS headers, so only same-origin pages can call; `*` allows any origin (tokens
/// travel in the Authorization header, never in cookies, so no credentials mode);
/// otherwise a comma-separated list of exact origins such as
/// `https://app.example.org,http://localhost:3000`.
pub fn cors(origins: &str) -> anyhow::Result<Option<tower_http::cors::CorsLayer>> {
    use axum::http::Method;
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins = origins.trim();
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins == "*" {
        AllowOrigin::any()
    } else {
        let list = origins
            .split(',')
            .map(|o| {
                HeaderValue::from_str(o.trim()).map_err(|_| anyhow::anyhow!("cors origin {o:?} is not a header value"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(list)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                header::HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([header::RETRY_AFTER, header::LOCATION])
            .max_age(Duration::from_secs(600)),
    ))
}

/// A path or body UUID in its canonical hyphenated form, or a 422 naming `field`.
/// (`Uuid::parse_str` alone also accepts braced, URN and unhyphenated forms.)
pub fn parse_uuid(field: &str, s: &str) -> Result<uuid::Uuid, Problem> {
    let bad = || Problem::invalid(field, format!("{s:?} is not a UUID (8-4-4-4-12 hex digits)"));
    if s.len() != 36 {
        return Err(bad());
    }
    uuid::Uuid::parse_str(s).map_err(|_| bad())
}

/// Oversized bodies answer 413, a body that stalls past `http.body_timeout_ms` 408,
/// anything else unreadable 400.
pub fn read_body(bytes: Result<Bytes, BytesRejection>) -> Result<Bytes, Problem> {
    bytes.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(status, "too-large", "Request body too large", "the body exceeds the configured limit")
        } else if caused_by::<tower_http::timeout::TimeoutError>(&rejection) {
            Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                "Request body too slow",
                "the body stalled for longer than the configured timeout",
            )
        } else {
            Problem::new(StatusCode::BAD_REQUEST, "bad-body", "Unreadable body", rejection.body_text())
        }
    })
}

fn caused_by<E: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<E>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Parses JSON, naming the field at fault for type errors and unknown fields.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let field = field_at(err.path());
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            Problem::invalid("body", format!("malformed JSON: {inner}"))
        } else {
            // The path names the field, unknown fields included.
            Problem::invalid(field, inner.to_string())
        }
    })
}

/// [`parse_json`] of a value already parsed (an item of a batch), naming the
/// field at fault the same way, without printing and parsing it again.
pub fn parse_json_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Problem> {
    serde_path_to_error::deserialize(value)
        .map_err(|err| Problem::invalid(field_at(err.path()), err.into_inner().to_string()))
}

/// The request field a deserializer's error path names: `videoId`, `tags[2]`, or
/// `body` for the document itself.
fn field_at(path: &serde_path_to_error::Path) -> String {
    let path = path.to_string();
    if path == "." { "body".to_owned() } else { path.trim_start_matches('.').to_owned() }
}

/// A JSON integer member: any number without a fraction, so `5.0` is `5` (JSON
/// Schema's `integer` includes it, and so may a client's JSON encoder).
pub fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    let whole = n.as_i64().or_else(|| {
        n.as_f64().filter(|f| f.fract() == 0.0 && (i64::MIN as f64..=i64::MAX as f64).contains(f)).map(|f| f as i64)
    });
    whole.ok_or_else(|| serde::de::Error::custom(format!("{n} is not an integer")))
}

/// An optional [`whole_number`] that, when present, must not be `null`.
pub fn some_whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    whole_number(d).map(Some)
}

/// An error answer. The cause stays in the log; the client gets a stable type and
/// title, a human detail and, for validation errors, the offending field. The
/// `instance` member is filled in by [`service_router`] from the request path.
#[derive(Clone, Debug)]
pub struct Problem {
    /// Last segment of the `type` URI, e.g. `validation`.
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// The request field at fault: `occurredAt`, `[3].videoId`.
    pub field: Option<String>,
    pub retry_after_secs: Option<u32>,
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    type_: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self { kind, title, status: status.as_u16(), detail: detail.into(), field: None, retry_after_secs: None }
    }

    /// 422: a field failed validation; the detail starts with the field's name.
    pub fn invalid(field: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        let field = field.into();
        let mut p =
            Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", "Invalid request", format!("{field}: {detail}"));
        p.field = Some(field);
        p
    }

    /// 401: no token, or not a valid one.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", detail)
    }

    /// 403: signed in, but not allowed to do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 503 with `Retry-After`: overloaded or a dependency is unavailable.
    pub fn unavailable(detail: impl Into<String>, retry_after_secs: u32) -> Self {
        let mut p = Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable", detail);
        p.retry_after_secs = Some(retry_after_secs);
        p
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the request failed; the cause is in the service log",
        )
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The detail without the leading `field: `.
    pub fn reason(&self) -> &str {
        match &self.field {
            Some(f) => self.detail.strip_prefix(f.as_str()).and_then(|d| d.strip_prefix(": ")).unwrap_or(&self.detail),
            None => &self.detail,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&ProblemBody {
            type_: format!("https://vcount.dev/problems/{}", self.kind),
            title: self.title,
            status: self.status,
            detail: &self.detail,
            field: self.field.as_deref(),
        })
        .expect("problem serializes");
        let mut res = (self.status(), body).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after_secs {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// Fills `instance` (the request path) into problem+json answers that lack it,
/// so handlers and extractors need not thread the URI through.
async fn fill_problem_instance(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let res = next.run(req).await;
    let is_problem = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    if !is_problem {
        return res;
    }
    let (parts, body) = res.into_parts();
    let Ok(bytes) = body.collect().await.map(|b| b.to_bytes()) else {
        return Problem::internal().into_response();
    };
    let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if let Some(obj) = value.as_object_mut() {
        obj.entry("instance").or_insert(serde_json::Value::String(path));
    }
    let mut res = Response::from_parts(parts, Body::from(serde_json::to_vec(&value).unwrap_or_default()));
    res.headers_mut().remove(header::CONTENT_LENGTH);
    res
}

/// The `route` label of a request no route matched.
pub const UNMATCHED_ROUTE: &str = "unmatched";
/// The `method` label of any method outside the standard set.
pub const OTHER_METHOD: &str = "other";

/// The `method` label: one of the methods RFC 9110 and RFC 5789 define, else
/// `other`. Hyper accepts any token as a method, so taking it as it comes would let
/// each client request mint new series (memory here, and in every scrape).
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => OTHER_METHOD,
    }
}

/// Request rate, errors and latency per route template (never raw paths: ids would
/// explode the label set). Paths no route matches count as `unmatched`, methods
/// outside the standard set as `other`: no label takes raw client input.
async fn track_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    // The template is an `Arc<str>`: cloned, not copied.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = method_label(req.method());
    let res = next.run(req).await;
    let route = route.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
    let status = res.status().as_u16();
    REQUEST_HANDLES.with_borrow_mut(|routes| {
        if let Some(handles) = routes.get_mut(route) {
            handles.record(route, method, status, start);
        } else {
            let mut handles = RouteHandles::default();
            handles.record(route, method, status, start);
            routes.insert(route.to_owned(), handles);
        }
    });
    res
}

thread_local! {
    /// The request metrics' handles by route template, kept per worker thread so
    /// requests share no lock. Looking a labelled series up by name costs about a
    /// dozen small allocations (label strings, the key) and a registry read, twice
    /// per request; a kept handle is an atomic add. As bounded as the series
    /// themselves: route templates × standard methods × the statuses the code answers.
    static REQUEST_HANDLES: RefCell<HashMap<String, RouteHandles>> = RefCell::default();
}

/// One route template's handles, registered with the recorder on first use.
#[derive(Default)]
struct RouteHandles {
    /// `http_requests_total` by method label and status.
    requests: HashMap<(&'static str, u16), metrics::Counter>,
    /// `http_request_duration_seconds` by method label.
    duration: HashMap<&'static str, metrics::Histogram>,
}

impl RouteHandles {
    fn record(&mut self, route: &str, method: &'static str, status: u16, start: Instant) {
        let labels = || [("route", route.to_owned()), ("method", method.to_owned()), ("status", status.to_string())];
        self.requests.entry((method, status)).or_insert_with(|| HTTP_REQUESTS.counter_with(&labels())).increment(1);
        self.duration
            .entry(method)
            .or_insert_with(|| HTTP_REQUEST_DURATION.histogram_with(&labels()[..2]))
            .record(start.elapsed().as_secs_f64());
    }
}

async fn not_found() -> Problem {
    Problem::not_found("no route for this path")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "this path does not accept that method",
    )
}

/// Something `/readyz` can ask. Boxed future keeps it object-safe. The error text
/// may name drivers and addresses: it is shown on the admin listener only.
pub trait Readiness: Send + Sync + 'static {
    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}

/// The admin listener's `/readyz`: the reason in full, for operators.
async fn readyz_detail(State(ready): State<Arc<dyn Readiness>>) -> Response {
    match ready.check().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => Problem::unavailable(why, 1).into_response(),
    }
}

/// A public `/readyz` (services not yet on an admin listener): the reason goes to
/// the log, never to the client, since driver errors name hosts and versions.
async fn readyz_public(State(ready): State<Arc<dyn Readiness>>) -> Response {
    match ready.check().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => {
            tracing::warn!(reason = %why, "not ready");
            Problem::unavailable("not ready", 1).into_response()
        }
    }
}

async fn metrics_text() -> Response {
    let body = crate::telemetry::metrics_handle().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

fn describe_http_metrics() {
    // Install the recorder now, before the first request is counted.
    crate::metrics::describe();
}

/// Problem+json fallbacks, per-route metrics and the problem `instance`.
fn finish(router: Router) -> Router {
    router
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        // `layer`, not `route_layer`: the 404 fallback is counted too (as `unmatched`).
        .layer(middleware::from_fn(track_metrics))
        .layer(middleware::from_fn(fill_problem_instance))
}

/// The public port of a service with an admin listener: its API and a bare
/// `/healthz` liveness answer, nothing operational.
pub fn public_router(api: Router) -> Router {
    describe_http_metrics();
    finish(api.route("/healthz", get(|| async { "ok\n" })))
}

/// The admin listener: `/metrics`, `/readyz` with the reason when not ready, and
/// `/healthz`. Not counted in the request metrics, so scrapes do not move them.
pub fn admin_router(ready: Arc<dyn Readiness>) -> Router {
    describe_http_metrics();
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz_detail).with_state(ready))
        .route("/metrics", get(metrics_text))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
}

/// Wraps an API's routes with the operational routes on the same port,
/// problem+json fallbacks and per-route metrics, for a private server without an
/// admin listener (the benchmarks' peer); its `/readyz` gives no reason. Every
/// service uses [`public_router`] + [`admin_router`].
pub fn service_router(api: Router, ready: Arc<dyn Readiness>) -> Router {
    describe_http_metrics();
    let ops = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz_public).with_state(ready))
        .route("/metrics", get(metrics_text));
    finish(api.merge(ops))
}

/// Resolves on SIGINT or SIGTERM, or when `token` is cancelled.
pub async fn shutdown_signal(token: CancellationToken) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
        _ = token.cancelled() => {}
    }
}

/// Cancels `token` on SIGINT/SIGTERM: the root of a service's ordered shutdown.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        shutdown_signal(token.clone()).await;
        tracing::info!("shutdown requested");
        token.cancel();
    });
}

#[cfg(test)]
mod tests {
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    /// The value of the one series of `name` whose labels include all of `labels`.
    fn series(scrape: &str, name: &str, labels: &[&str]) -> u64 {
        let found: Vec<u64> = scrape
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|want| l.contains(want)))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(found.len(), 1, "one series of {name} with {labels:?} in:\n{scrape}");
        found[0]
    }

    /// The handles kept per worker thread count into the same series as a lookup by
    /// name: every request once, under the same labels, whichever thread served it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn request_metrics_count_every_request_once_from_every_thread() {
        let route = "/t-request-handles/{id}";
        let app = public_router(Router::new().route(route, post(|| async { StatusCode::ACCEPTED })));
        let send = |method: &'static str, path: String| {
            let app = app.clone();
            tokio::spawn(async move {
                let req = Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
                app.oneshot(req).await.unwrap().status()
            })
        };
        let mut answers = Vec::new();
        for i in 0..40 {
            answers.push(send("POST", format!("/t-request-handles/{i}")));
            if i % 4 == 0 {
                answers.push(send("GET", format!("/t-request-handles/{i}")));
            }
        }
        let mut statuses = Vec::new();
        for answer in answers {
            statuses.push(answer.await.unwrap().as_u16());
        }
        assert_eq!(statuses.iter().filter(|&&s| s == 202).count(), 40);
        assert_eq!(statuses.iter().filter(|&&s| s == 405).count(), 10);

        let scrape = crate::telemetry::metrics_handle().render();
        let route = format!("route=\"{route}\"");
        let requests = |method: &str, status: &str| {
            let (method, status) = (format!("method=\"{method}\""), format!("status=\"{status}\""));
            series(&scrape, "http_requests_total", &[&route, &method, &status])
        };
        assert_eq!(requests("POST", "202"), 40);
        assert_eq!(requests("GET", "405"), 10);
        let durations = |method: &str| {
            series(&scrape, "http_request_duration_seconds_count", &[&route, &format!("method=\"{method}\"")])
        };
        assert_eq!(durations("POST"), 40);
        assert_eq!(durations("GET"), 10);
    }
}
