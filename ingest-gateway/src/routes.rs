//! The gateway's HTTP routes: validate, stamp, produce, answer.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use platform::auth::Tokens;
use platform::http::{Problem, parse_json as json, parse_uuid, read_body as body};
use prost::Message;
use schemas::events::EventBatch;
use serde::Serialize;

use crate::config::GatewayConfig;
use crate::events::EventIn;
use crate::producer::EventProducer;
use crate::ratings;

pub struct AppState {
    pub config: GatewayConfig,
    pub producer: EventProducer,
    /// Checks the sign-in tokens the query service issues (ratings need one).
    pub tokens: Tokens,
}

type St = State<Arc<AppState>>;

pub fn api(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/v1/videos/id/{video_id}/view", post(record_view))
        .route("/api/v1/events", post(post_event))
        .route("/api/v1/events:batch", post(post_batch))
        .route("/api/v1/videos/{video_id}/ratings", post(ratings::post_rating))
        .route("/api/v1/videos/id/{video_id}/rating", post(ratings::post_rating_legacy))
        .with_state(state)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// POST /api/v1/videos/id/{video_id}/view — KillrVideo's body-less view: 204.
/// Anonymous, or signed in (then the view carries the verified user id and shows
/// in the user's activity feed). The token is checked locally: no database read.
async fn record_view(
    State(st): St,
    headers: HeaderMap,
    Path(video_id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let viewer = st.tokens.optional(&headers)?.map(|c| c.sub);
        let video_id = parse_uuid("videoId", &video_id)?;
        if !body(bytes)?.is_empty() {
            return Err(Problem::invalid("body", "this endpoint takes no body"));
        }
        st.producer.send_all(&[st.config.events.view_now(video_id, viewer, now_ms())]).await
    };
    match result.await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(p) => p.into_response(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Accepted {
    event_id: String,
}

/// POST /api/v1/events — one typed event: 202 once durable.
async fn post_event(State(st): St, bytes: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let event: EventIn = json(&body(bytes)?)?;
        let event = st.config.events.validate(event, "", now_ms())?;
        st.producer.send_all(std::slice::from_ref(&event)).await?;
        let event_id = uuid::Uuid::from_slice(&event.event_id).expect("16 bytes").to_string();
        Ok::<_, Problem>(Accepted { event_id })
    };
    match result.await {
        Ok(a) => (StatusCode::ACCEPTED, axum::Json(a)).into_response(),
        Err(p) => p.into_response(),
    }
}

#[derive(Serialize)]
struct Reject {
    index: usize,
    field: Option<String>,
    detail: String,
}

#[derive(Serialize)]
struct BatchAccepted {
    accepted: usize,
    rejected: Vec<Reject>,
}

/// POST /api/v1/events:batch — a JSON array or an `application/x-protobuf`
/// `EventBatch`. Valid items are produced (all durable before 202); invalid ones
/// are listed with their index and field, and nothing of them is produced.
async fn post_batch(State(st): St, headers: HeaderMap, bytes: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let bytes = body(bytes)?;
        let now = now_ms();
        let rules = &st.config.events;
        let is_proto =
            headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/x-protobuf"));
        let items: Vec<Result<_, Problem>> = if is_proto {
            let batch = EventBatch::decode(bytes.as_ref())
                .map_err(|e| Problem::invalid("body", format!("not a protobuf EventBatch: {e}")))?;
            check_size(batch.events.len(), st.config.http.max_batch_events)?;
            batch
                .events
                .into_iter()
                .enumerate()
                .map(|(i, e)| rules.validate_proto(e, &format!("[{i}]."), now))
                .collect()
        } else {
            let raw: Vec<serde_json::Value> = json(&bytes)?;
            check_size(raw.len(), st.config.http.max_batch_events)?;
            raw.into_iter()
                .enumerate()
                .map(|(i, v)| {
                    let at = format!("[{i}].");
                    let e: EventIn = json(v.to_string().as_bytes()).map_err(|p| prefix_field(p, &at))?;
                    rules.validate(e, &at, now)
                })
                .collect()
        };
        let mut events = Vec::with_capacity(items.len());
        let mut rejected = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            match item {
                Ok(e) => events.push(e),
                Err(p) => rejected.push(Reject { index, detail: p.detail, field: p.field }),
            }
        }
        metrics::counter!("gateway_events_rejected_total").increment(rejected.len() as u64);
        st.producer.send_all(&events).await?;
        Ok::<_, Problem>(BatchAccepted { accepted: events.len(), rejected })
    };
    match result.await {
        Ok(a) => (StatusCode::ACCEPTED, axum::Json(a)).into_response(),
        Err(p) => p.into_response(),
    }
}

fn check_size(n: usize, max: usize) -> Result<(), Problem> {
    if n == 0 || n > max {
        return Err(Problem::invalid("body", format!("a batch holds 1 to {max} events, got {n}")));
    }
    Ok(())
}

fn prefix_field(p: Problem, at: &str) -> Problem {
    let Some(old) = p.field.as_deref() else { return p };
    let new = if old == "body" { at.trim_end_matches('.').to_owned() } else { format!("{at}{old}") };
    Problem::invalid(new, p.reason())
}
