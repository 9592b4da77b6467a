//! Ratings: a signed-in user's 1..5 for a video, produced onto the ratings topic
//! keyed by the video id. The aggregator that owns the video's partition is the
//! only writer of ratings, keeping each user's latest and the exact sum and count;
//! the query service serves them. Like views, the gateway reads no database: it
//! accepts a rating for any well-formed video id, unless strict mode is on
//! (`crate::known`).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use platform::http::{Problem, parse_json, parse_uuid, read_body};
use platform::openapi::{BadRequest, Invalid, TooLarge, Unauthorized, Unavailable};
use schemas::events::Rating;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::policy::{Caller, Cost};
use crate::routes::AppState;

type St = State<Arc<AppState>>;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateIn {
    #[serde(deserialize_with = "platform::http::whole_number")]
    #[schema(minimum = 1, maximum = 5)]
    rating: i64,
}

/// KillrVideo's answer to a rating. `created_at` is when this rating was accepted:
/// the gateway does not read the user's earlier rating (the query service's GET
/// has the stored state).
#[derive(Serialize, ToSchema)]
pub struct Rated {
    #[schema(minimum = 1, maximum = 5)]
    rating: i32,
    videoid: Uuid,
    userid: Uuid,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Validates and produces a rating; the answer is sent once it is durable in Kafka.
async fn rate(
    st: &AppState,
    headers: &HeaderMap,
    video: &str,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Rated, Problem> {
    let claims = st.tokens.required(headers)?;
    let video_id = parse_uuid("videoId", video)?;
    let r: RateIn = parse_json(&read_body(bytes)?)?;
    st.policy.charge(&Caller::User(claims.sub), Cost::Rating)?;
    let rating = i32::try_from(r.rating)
        .ok()
        .filter(|r| (1..=5).contains(r))
        .ok_or_else(|| Problem::invalid("rating", "must be an integer from 1 to 5"))?;
    st.known.check("videoId", &video_id)?;
    let now = Utc::now();
    let event = Rating {
        event_id: Uuid::now_v7().as_bytes().to_vec(),
        video_id: video_id.as_bytes().to_vec(),
        user_id: claims.sub.as_bytes().to_vec(),
        rating,
        occurred_at_ms: now.timestamp_millis(),
    };
    st.producer.send_rating(&event).await?;
    Ok(Rated { rating, videoid: video_id, userid: claims.sub, created_at: now, updated_at: now })
}

/// Rate a video 1 to 5 (signed in); re-rating replaces. Accepted for any
/// well-formed video id (the gateway reads no database).
#[utoipa::path(
    post,
    path = "/api/v1/videos/{video_id}/ratings",
    tag = "ratings",
    security(("bearer" = [])),
    params(("video_id" = Uuid, Path, description = "The video")),
    request_body = RateIn,
    responses(
        (status = 200, description = "Durable in Kafka", body = Rated),
        BadRequest, Unauthorized, TooLarge, Invalid, Unavailable
    )
)]
pub async fn post_rating(
    State(st): St,
    headers: HeaderMap,
    Path(video): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Rated>, Problem> {
    Ok(Json(rate(&st, &headers, &video, bytes).await?))
}

/// Rate a video (KillrVideo's older shape): 204.
#[utoipa::path(
    post,
    path = "/api/v1/videos/id/{video_id}/rating",
    tag = "ratings",
    security(("bearer" = [])),
    params(("video_id" = Uuid, Path, description = "The video")),
    request_body = RateIn,
    responses(
        (status = 204, description = "Durable in Kafka"),
        BadRequest, Unauthorized, TooLarge, Invalid, Unavailable
    )
)]
pub async fn post_rating_legacy(
    State(st): St,
    headers: HeaderMap,
    Path(video): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, Problem> {
    rate(&st, &headers, &video, bytes).await?;
    Ok(StatusCode::NO_CONTENT)
}
