//! Reading ratings (POSTs go to the ingest gateway; the aggregator is the single
//! writer).

use axum::Json;
use axum::extract::{Path, State};
use platform::http::Problem;
use platform::openapi::{Invalid, NotFound, Unauthorized, Unavailable};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::shared::found;
use crate::api::common::{MaybeSignedIn, St};

#[derive(Serialize, ToSchema)]
#[schema(as = RatingSummary)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    video_id: Uuid,
    /// 0 when nobody has rated.
    average_rating: f64,
    total_ratings_count: i64,
    /// The caller's own rating, when signed in and rated.
    #[schema(required = true, minimum = 1, maximum = 5)]
    current_user_rating: Option<i32>,
}

/// Average, count and (with a token) the caller's own rating.
#[utoipa::path(
    get,
    path = "/api/v1/videos/{video_id}/ratings",
    tag = "ratings",
    security((), ("bearer" = [])),
    params(("video_id" = Uuid, Path, description = "The video")),
    responses((status = 200, description = "The ratings", body = Summary), Unauthorized, NotFound, Invalid, Unavailable)
)]
pub async fn summary(
    State(st): St,
    MaybeSignedIn(claims): MaybeSignedIn,
    Path(id): Path<String>,
) -> Result<Json<Summary>, Problem> {
    let video = found(&st, &id).await?.video_id;
    let ratings = &st.catalog.ratings;
    let totals = ratings.totals(video).await?;
    let current_user_rating = match claims {
        Some(c) => ratings.of_user(video, c.sub).await?,
        None => None,
    };
    Ok(Json(Summary {
        video_id: video,
        average_rating: totals.average(),
        total_ratings_count: totals.count,
        current_user_rating,
    }))
}

#[derive(Serialize, ToSchema)]
#[schema(as = RatingLegacy)]
#[serde(rename_all = "camelCase")]
pub struct Legacy {
    video_id: Uuid,
    average_rating: f64,
    rating_count: i64,
}

/// Average and count (KillrVideo's older shape).
#[utoipa::path(
    get,
    path = "/api/v1/videos/id/{video_id}/rating",
    tag = "ratings",
    params(("video_id" = Uuid, Path, description = "The video")),
    responses((status = 200, description = "The ratings", body = Legacy), NotFound, Invalid, Unavailable)
)]
pub async fn legacy(State(st): St, Path(id): Path<String>) -> Result<Json<Legacy>, Problem> {
    let video = found(&st, &id).await?.video_id;
    let totals = st.catalog.ratings.totals(video).await?;
    Ok(Json(Legacy { video_id: video, average_rating: totals.average(), rating_count: totals.count }))
}
