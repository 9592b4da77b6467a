//! KillrVideo's watch time: the front end reports how long a video played
//! (`POST /videos/id/{id}/watch-time`, `{"watch_duration_seconds": N}`, with the
//! same optional sign-in as a view). It becomes one `watch_seconds` event of value
//! N, counted like any other type: `getCount` with `eventType=watch_seconds` is
//! the video's watch time over a range. How much time a caller may report is
//! `crate::policy`'s watch budget.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use counting::kind::WATCH_SECONDS;
use platform::http::{Problem, parse_json, parse_uuid, read_body};
use platform::openapi::{BadRequest, Invalid, NotFound, TooLarge, TooMany, Unauthorized, Unavailable};
use platform::server::PeerAddr;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::idempotency;
use crate::policy::{Cost, WATCH_FIELD};
use crate::routes::AppState;

/// A watch-time report, as KillrVideo's front end sends it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchTimeIn {
    /// Seconds watched: 1 to `events.max_watch_seconds` (86,400 by default).
    /// Optional only to Rust: a missing member is a 422 naming it, like a bad one.
    #[serde(default, deserialize_with = "platform::http::some_whole_number")]
    #[schema(value_type = i64, required = true, minimum = 1, maximum = 86400)]
    pub watch_duration_seconds: Option<i64>,
}

/// Record watch time: KillrVideo's report of seconds watched, 204 once durable in Kafka.
///
/// Counted as `watch_seconds` (read it with `GET /api/v1/videos/{id}/counts/watch_seconds`).
/// Anonymous or signed in, like a view (a token that is present but invalid is a
/// 401). Seconds come from a budget per client IP, or per signed-in user, that
/// refills at about 10 viewers' wall-clock time (`limits.watch_seconds`): over it
/// a 429, a report larger than the whole budget a 422. An unknown member or a
/// value outside 1 to 86,400 is a 422 naming the member; with strict mode on, an
/// unknown video is a 404. 404 too when the deployment does not count
/// `watch_seconds` (`event_types`).
#[utoipa::path(
    post,
    path = "/api/v1/videos/id/{video_id}/watch-time",
    tag = "counting",
    security((), ("bearer" = []), ("producerKey" = [])),
    params(
        ("video_id" = uuid::Uuid, Path, description = "The video (any well-formed id, or a known one in strict mode)"),
        ("Idempotency-Key" = Option<String>, Header, description = crate::routes::IDEMPOTENCY_KEY_DOC),
    ),
    request_body = WatchTimeIn,
    responses(
        (status = 204, description = "Counted once durable in Kafka"),
        BadRequest, Unauthorized, NotFound, TooLarge, Invalid, TooMany, Unavailable
    )
)]
pub async fn record_watch_time(
    State(st): State<Arc<AppState>>,
    PeerAddr(peer): PeerAddr,
    headers: HeaderMap,
    Path(video_id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, Problem> {
    let (caller, viewer) = crate::routes::caller_and_viewer(&st, &headers, peer)?;
    let video_id = parse_uuid("videoId", &video_id)?;
    let Ok(kind) = st.types.parse(WATCH_SECONDS) else {
        return Err(Problem::not_found("this deployment does not count watch time (event_types lacks watch_seconds)"));
    };
    let body: WatchTimeIn = parse_json(&read_body(bytes)?)?;
    let max = st.config.events.max_watch_seconds;
    let Some(seconds) = body.watch_duration_seconds.filter(|s| (1..=max).contains(s)) else {
        return Err(Problem::invalid(WATCH_FIELD, format!("must be an integer from 1 to {max}")));
    };
    let now = chrono::Utc::now().timestamp_millis();
    let mut event = st.config.events.now(kind, video_id, viewer, seconds, now);
    let retry_id = idempotency::event_id(&headers, &caller, video_id, &idempotency::type_tag(&event))?;
    st.policy.charge(&caller, Cost::WatchTime { seconds })?;
    st.known.check("videoId", &video_id)?;
    if let Some(id) = retry_id {
        (event.event_id, event.client_event_id) = (id.as_bytes().to_vec(), true);
    }
    st.producer.send_all(&[event]).await?;
    Ok(StatusCode::NO_CONTENT)
}
