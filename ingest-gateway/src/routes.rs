//! The gateway's HTTP routes: identify the caller, parse (bounded), charge the
//! caller's budget (`crate::policy`), validate, produce, answer.
//!
//! Each handler is routed and documented by one `routes!` call ([`router`]), so
//! the routes the gateway answers and its part of the one-origin OpenAPI document
//! ([`openapi`]; the query service serves it) come from the same place.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use counting::EventTypes;
use platform::auth::Tokens;
use platform::http::{Problem, parse_json as json, parse_json_value, parse_uuid, read_body as body};
use platform::openapi::{BadRequest, Invalid, NotFound, TooLarge, TooMany, Unauthorized, Unavailable};
use platform::server::PeerAddr;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::batch;
use crate::config::GatewayConfig;
use crate::events::EventIn;
use crate::idempotency;
use crate::known::KnownVideos;
use crate::metrics::handles::EVENTS_REJECTED;
use crate::policy::{Caller, Cost, Policy};
use crate::producer::{EventProducer, ProduceError};
use crate::ratings;
use crate::watch_time;

pub struct AppState {
    pub config: GatewayConfig,
    /// `event_types` with the built-ins: what `/events` accepts.
    pub types: EventTypes,
    pub producer: EventProducer,
    /// Checks the sign-in tokens the query service issues (ratings need one).
    pub tokens: Tokens,
    /// API keys and rate limits.
    pub policy: Policy,
    /// Strict mode's videos (accepts every id when strict mode is off).
    pub known: KnownVideos,
}

type St = State<Arc<AppState>>;

pub(crate) const IDEMPOTENCY_KEY_DOC: &str = "1 to 255 visible ASCII characters, e.g. a UUID. A retry with the same key \
(same caller, video and event type) within the aggregator's dedup window (10 minutes by default) counts once.";

/// Every route of the gateway, each with its documentation.
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(record_view))
        .routes(routes!(watch_time::record_watch_time))
        .routes(routes!(post_event))
        .routes(routes!(post_batch))
        .routes(routes!(ratings::post_rating))
        .routes(routes!(ratings::post_rating_legacy))
}

pub fn api(state: Arc<AppState>) -> Router {
    router().split_for_parts().0.with_state(state)
}

/// The gateway's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    router().split_for_parts().1
}

/// The one place a produce failure becomes an answer: 503 with `Retry-After`, the
/// cause in the log and not in the response.
impl From<ProduceError> for Problem {
    fn from(err: ProduceError) -> Self {
        tracing::warn!(error = %err, kind = err.kind(), "produce failed, answering 503");
        Problem::unavailable("the event log is not accepting events right now; retry later", 1)
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Record a view: KillrVideo's body-less view, 204 once durable in Kafka.
///
/// Anonymous, or signed in (then the view carries the verified user id and shows
/// in the user's activity feed; a token that is present but invalid is a 401).
/// The token is checked locally: no database read. A body is refused (422). Always
/// adds exactly 1; every caller has a rate (429, see the README's security section);
/// with strict mode on, an unknown video is a 404.
#[utoipa::path(
    post,
    path = "/api/v1/videos/id/{video_id}/view",
    tag = "counting",
    security((), ("bearer" = []), ("producerKey" = [])),
    params(
        ("video_id" = uuid::Uuid, Path, description = "The video (any well-formed id, or a known one in strict mode)"),
        ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY_DOC),
    ),
    responses(
        (status = 204, description = "Counted once durable in Kafka"),
        BadRequest, Unauthorized, NotFound, TooLarge, Invalid, TooMany, Unavailable
    )
)]
pub async fn record_view(
    State(st): St,
    PeerAddr(peer): PeerAddr,
    headers: HeaderMap,
    Path(video_id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, Problem> {
    let (caller, viewer) = caller_and_viewer(&st, &headers, peer)?;
    let video_id = parse_uuid("videoId", &video_id)?;
    if !body(bytes)?.is_empty() {
        return Err(Problem::invalid("body", "this endpoint takes no body"));
    }
    let now = now_ms();
    let mut event = st.config.events.view_now(video_id, viewer, now);
    let mut retry_id = idempotency::event_id(&headers, &caller, video_id, &idempotency::type_tag(&event))?;
    st.policy.charge(&caller, Cost::View)?;
    st.known.check("videoId", &video_id)?;
    // One view per user and window: every view of the window is a retry of the first.
    let window = st.config.events.view_once_per_user_secs;
    if let (Some(user), true) = (viewer, window > 0) {
        retry_id = Some(idempotency::once_per_window(user, video_id, window, now));
    }
    if let Some(id) = retry_id {
        (event.event_id, event.client_event_id) = (id.as_bytes().to_vec(), true);
    }
    st.producer.send_all(&[event]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who is calling, and the signed-in viewer a view or a watch report counts for:
/// the user's own token, or one a producer passes beside its key (its word
/// vouches for the viewer); an anonymous call has none.
pub(crate) fn caller_and_viewer(
    st: &AppState,
    headers: &HeaderMap,
    peer: Option<std::net::SocketAddr>,
) -> Result<(Caller, Option<Uuid>), Problem> {
    let caller = st.policy.caller(headers, &st.tokens, peer)?;
    let viewer = match &caller {
        Caller::User(user) => Some(*user),
        Caller::Key { .. } => st.tokens.optional(headers)?.map(|c| c.sub),
        Caller::Anonymous(_) => None,
    };
    Ok((caller, viewer))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    /// The event's id: the client's `eventId`, the one its `Idempotency-Key`
    /// stands for, or a UUIDv7 stamped here.
    #[schema(format = Uuid)]
    event_id: String,
}

/// One typed event: 202 once durable in Kafka.
///
/// `occurredAt` must lie within [now − `events.max_age_secs` (7 days), now +
/// `events.max_future_secs` (5 minutes)]: outside it is a 422 naming the field
/// (the window moves with the clock, so the schema cannot state it). An
/// `eventId` (or, without one, an `Idempotency-Key` header; not both) makes a
/// retry count once (within the aggregator's dedup window).
/// Without credentials only `value` 1 is accepted (anything else is a 401 naming
/// `value`); a signed-in user spends `value` from their own rate, a producer key 1.
#[utoipa::path(
    post,
    path = "/api/v1/events",
    tag = "counting",
    security((), ("bearer" = []), ("producerKey" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY_DOC)),
    request_body = EventIn,
    responses(
        (status = 202, description = "Durable in Kafka", body = Accepted),
        BadRequest, Unauthorized, NotFound, TooLarge, Invalid, TooMany, Unavailable
    )
)]
pub async fn post_event(
    State(st): St,
    PeerAddr(peer): PeerAddr,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Accepted>), Problem> {
    let caller = st.policy.caller(&headers, &st.tokens, peer)?;
    let event: EventIn = json(&body(bytes)?)?;
    if event.event_id.is_some() && headers.contains_key(idempotency::HEADER) {
        return Err(Problem::invalid(idempotency::HEADER, "send either an eventId or an Idempotency-Key, not both"));
    }
    st.policy.charge(&caller, Cost::Event { value: event.value.unwrap_or(1) })?;
    let mut event = st.config.events.validate(&st.types, event, "", now_ms())?;
    let video_id = Uuid::from_slice(&event.video_id).expect("16 bytes");
    if let Some(id) = idempotency::event_id(&headers, &caller, video_id, &idempotency::type_tag(&event))? {
        (event.event_id, event.client_event_id) = (id.as_bytes().to_vec(), true);
    }
    st.known.check("videoId", &video_id)?;
    st.producer.send_all(std::slice::from_ref(&event)).await?;
    let event_id = Uuid::from_slice(&event.event_id).expect("16 bytes").to_string();
    Ok((StatusCode::ACCEPTED, Json(Accepted { event_id })))
}

/// A refused item of a batch.
#[derive(Serialize, ToSchema)]
pub struct Reject {
    /// Its position in the batch.
    index: usize,
    /// The field at fault, e.g. `[3].videoId`.
    #[schema(required = true)]
    field: Option<String>,
    detail: String,
}

#[derive(Serialize, ToSchema)]
pub struct BatchAccepted {
    /// Items produced (all durable before the answer).
    accepted: usize,
    rejected: Vec<Reject>,
}

/// A JSON batch: 1 to `events.max_batch_events` (1000 by default) events. Only a
/// schema: `post_batch` reads the array item by item, to name each bad one.
pub struct JsonBatch;

impl utoipa::PartialSchema for JsonBatch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(utoipa::openapi::Ref::from_schema_name("EventIn"))
            .min_items(Some(1))
            .max_items(Some(GatewayConfig::default().events.max_batch_events))
            .into()
    }
}

impl ToSchema for JsonBatch {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        schemas.push(("EventIn".into(), <EventIn as utoipa::PartialSchema>::schema()));
        <EventIn as ToSchema>::schemas(schemas);
    }
}

/// A batch of events, as a JSON array or an `application/x-protobuf` `EventBatch`.
///
/// Valid items are produced (all durable before 202); invalid ones are listed
/// with their index and field, and nothing of them is produced. 1 to
/// `events.max_batch_events` (1000) items, counted before they are decoded. Needs a
/// producer key (costs 1 per event) or a signed-in user (costs the sum of the
/// values); anonymous batches are a 401.
#[utoipa::path(
    post,
    path = "/api/v1/events:batch",
    tag = "counting",
    security(("bearer" = []), ("producerKey" = [])),
    request_body(content(
        (JsonBatch = "application/json"),
        (Vec<u8> = "application/x-protobuf")
    ), description = "JSON: an array of 1 to 1000 events. Protobuf: an `EventBatch` (proto/events.proto)."),
    responses(
        (status = 202, description = "Valid items durable in Kafka; invalid ones listed", body = BatchAccepted),
        BadRequest, Unauthorized, TooLarge, Invalid, TooMany, Unavailable
    )
)]
pub async fn post_batch(
    State(st): St,
    PeerAddr(peer): PeerAddr,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<BatchAccepted>), Problem> {
    {
        let caller = st.policy.caller(&headers, &st.tokens, peer)?;
        let bytes = body(bytes)?;
        let now = now_ms();
        let rules = &st.config.events;
        let max = rules.max_batch_events;
        let is_proto =
            headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/x-protobuf"));
        let items: Vec<Result<_, Problem>> = if is_proto {
            let events = batch::decode_proto(&bytes, max)?;
            let value_sum = events.iter().map(|e| e.value.clamp(1, rules.max_value) as u64).sum();
            st.policy.charge(&caller, Cost::Batch { events: events.len(), value_sum })?;
            events
                .into_iter()
                .enumerate()
                .map(|(i, e)| rules.validate_proto(&st.types, e, &format!("[{i}]."), now))
                .collect()
        } else {
            let raw = batch::decode_json(&bytes, max)?;
            let value_sum = raw
                .iter()
                .map(|v| {
                    v.get("value").and_then(serde_json::Value::as_i64).unwrap_or(1).clamp(1, rules.max_value) as u64
                })
                .sum();
            st.policy.charge(&caller, Cost::Batch { events: raw.len(), value_sum })?;
            raw.into_iter()
                .enumerate()
                .map(|(i, v)| {
                    let at = format!("[{i}].");
                    let e: EventIn = parse_json_value(v).map_err(|p| prefix_field(p, &at))?;
                    rules.validate(&st.types, e, &at, now)
                })
                .collect()
        };
        let mut events = Vec::with_capacity(items.len());
        let mut rejected = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            // Strict mode: an unknown video is this item's rejection, not the batch's.
            let item = item.and_then(|e| {
                st.known.check(&format!("[{index}].videoId"), &Uuid::from_slice(&e.video_id).expect("16 bytes"))?;
                Ok(e)
            });
            match item {
                Ok(e) => events.push(e),
                Err(p) => rejected.push(Reject { index, detail: p.detail, field: p.field }),
            }
        }
        EVENTS_REJECTED.get().increment(rejected.len() as u64);
        st.producer.send_all(&events).await?;
        Ok((StatusCode::ACCEPTED, Json(BatchAccepted { accepted: events.len(), rejected })))
    }
}

fn prefix_field(p: Problem, at: &str) -> Problem {
    let Some(old) = p.field.as_deref() else { return p };
    let new = if old == "body" { at.trim_end_matches('.').to_owned() } else { format!("{at}{old}") };
    Problem::invalid(new, p.reason())
}
