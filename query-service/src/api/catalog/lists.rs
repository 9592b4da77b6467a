//! KillrVideo's video lists: latest (across days), by tag, by uploader, and the
//! most viewed in the last 1, 7 or 30 days. Ids come from the catalog's indexes
//! (or the by-bucket rollups for trending); summaries from their owners.

use axum::Json;
use axum::extract::{Path, State};
use counting::EventKind;
use platform::http::{Problem, parse_uuid};
use platform::openapi::{Invalid, NotFound, Unavailable};
use utoipa::ToSchema;
use uuid::Uuid;

use super::shared::{VideoSummary, first_summaries, summary_page};
use crate::api::common::params::PageParams;
use crate::api::common::{Params, St, only_params, page_request};
use crate::api::counts::trending::top;
use crate::domain::paging::{Page, number};
use crate::domain::trending::{MAX_TRENDING_VIDEOS, Window};
use crate::domain::validate::normal_tag;

/// Newest videos first, across days.
#[utoipa::path(
    get,
    path = "/api/v1/videos/latest",
    tag = "videos",
    params(PageParams),
    responses((status = 200, description = "A page of videos", body = Page<VideoSummary>), Invalid, Unavailable)
)]
pub async fn latest(State(st): St, q: Params) -> Result<Json<Page<VideoSummary>>, Problem> {
    let req = page_request(&q)?;
    let ids = st.catalog.indexes.latest(req).await?;
    Ok(Json(summary_page(&st, req, ids).await?))
}

/// Videos with a tag, newest first; an unused tag is an empty list.
#[utoipa::path(
    get,
    path = "/api/v1/videos/by-tag/{tag}",
    tag = "videos",
    params(
        ("tag" = String, Path, min_length = 1, max_length = 50, pattern = r"\S",
         description = "Trimmed and lower-cased, 1 to 50 characters"),
        PageParams
    ),
    responses((status = 200, description = "A page of videos", body = Page<VideoSummary>), Invalid, Unavailable)
)]
pub async fn by_tag(State(st): St, Path(tag): Path<String>, q: Params) -> Result<Json<Page<VideoSummary>>, Problem> {
    let req = page_request(&q)?;
    let tag = normal_tag("tag", &tag)?;
    let ids = st.catalog.indexes.by_tag(&tag, req).await?;
    Ok(Json(summary_page(&st, req, ids).await?))
}

/// A user's videos, newest first; 404 for an unknown user.
#[utoipa::path(
    get,
    path = "/api/v1/videos/by-uploader/{user_id}",
    tag = "videos",
    params(("user_id" = Uuid, Path, description = "The uploader"), PageParams),
    responses(
        (status = 200, description = "A page of videos", body = Page<VideoSummary>),
        NotFound, Invalid, Unavailable
    )
)]
pub async fn by_uploader(
    State(st): St,
    Path(user): Path<String>,
    q: Params,
) -> Result<Json<Page<VideoSummary>>, Problem> {
    let req = page_request(&q)?;
    let user = parse_uuid("userId", &user)?;
    let c = &st.catalog;
    let (found, page) = futures::try_join!(c.users.get(user), c.indexes.by_user(user, req))?;
    if found.is_none() {
        return Err(Problem::not_found("no such user"));
    }
    Ok(Json(summary_page(&st, req, page).await?))
}

/// KillrVideo's trending intervals, in days.
#[derive(ToSchema)]
#[allow(dead_code)] // the values `Window::from_interval_days` accepts
pub enum IntervalDays {
    #[schema(rename = "1")]
    One,
    #[schema(rename = "7")]
    Seven,
    #[schema(rename = "30")]
    Thirty,
}

/// The most viewed videos in the last 1, 7 or 30 days, most viewed first (`views`
/// in each summary is still all-time). Counted ids that are no video are passed
/// over (the view endpoint takes any well-formed id).
#[utoipa::path(
    get,
    path = "/api/v1/videos/trending",
    tag = "videos",
    params(
        ("intervalDays" = Option<IntervalDays>, Query, description = "The window in days (default 1)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10, description = "Videos to answer (default 10)"),
    ),
    responses((status = 200, description = "The videos", body = Vec<VideoSummary>), Invalid, Unavailable)
)]
pub async fn trending_videos(State(st): St, q: Params) -> Result<Json<Vec<VideoSummary>>, Problem> {
    only_params(&q, &["intervalDays", "limit"])?;
    let window = Window::from_interval_days(q.get("intervalDays").map(String::as_str))?;
    let limit = number(&q, "limit", 1, MAX_TRENDING_VIDEOS)?.unwrap_or(MAX_TRENDING_VIDEOS) as usize;
    let top = top(&st.counts, EventKind::View, window, chrono::Utc::now().timestamp_millis()).await?;
    let ids: Vec<Uuid> = top.ranked.iter().map(|(id, _)| *id).collect();
    Ok(Json(first_summaries(&st, &ids, limit).await?))
}
