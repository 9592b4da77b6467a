//! Trending by event type (the counting API's `/trending`); KillrVideo's
//! `/videos/trending` is the catalog's (`api::catalog::lists`).

use axum::Json;
use axum::extract::State;
use counting::EventKind;
use futures::future::try_join_all;
use platform::http::Problem;
use platform::openapi::{EventTypeSchema, Invalid, Unavailable};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::common::{Params, St, only_params};
use crate::domain::paging::number;
use crate::domain::ranges::rfc3339;
use crate::domain::trending::{DEFAULT_TOP, MAX_TOP, Top, Window, rank, rows_per_bucket};
use crate::state::CountsState;

/// The counting API's trending windows.
#[derive(ToSchema)]
#[allow(dead_code)] // the wire names `Window::from_name` accepts
pub enum WindowName {
    #[schema(rename = "1h")]
    Hour,
    #[schema(rename = "24h")]
    Day,
    #[schema(rename = "7d")]
    Week,
}

/// The window's videos by their count of `kind`, read one bucket partition each,
/// concurrently (at most 31 for 30 days), at most `counts.trending_rows` rows in all
/// (see `domain::trending`).
pub async fn top(counts: &CountsState, kind: EventKind, window: Window, now_ms: i64) -> Result<Top, Problem> {
    let g = window.granularity();
    let (from, to) = window.bounds(now_ms);
    let width = g.width_ms().expect("hour and day buckets have a width");
    let starts: Vec<i64> = (from..to).step_by(width as usize).collect();
    let share = rows_per_bucket(counts.trending_rows, starts.len());
    let rows = try_join_all(starts.iter().map(|b| counts.rollups.bucket(kind, g, *b, share))).await?;
    let complete = rows.iter().all(|r| r.len() < share);
    Ok(Top { from, to, granularity: g, ranked: rank(rows), complete })
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrendingItem {
    video_id: Uuid,
    count: i64,
}

/// Top videos of a window.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrendingAnswer {
    #[schema(value_type = WindowName)]
    window: &'static str,
    #[schema(value_type = EventTypeSchema)]
    event_type: EventKind,
    /// `hour` or `day`: the buckets read.
    #[schema(value_type = String, pattern = "^(hour|day)$")]
    granularity: &'static str,
    /// Start of the first bucket read.
    #[schema(format = DateTime)]
    from: String,
    /// End of the last (current) bucket read.
    #[schema(format = DateTime)]
    to: String,
    items: Vec<TrendingItem>,
    /// Whether every bucket was read whole. `false`: some bucket holds more videos
    /// than one request may read (`limits.trending_rows`, shared by the buckets),
    /// and the ranking covers only part of them.
    complete: bool,
}

/// The top N videos by count of an event type over the hour or day buckets
/// overlapping a window.
///
/// A request reads at most `limits.trending_rows` rows (100,000 by default) over
/// all its buckets; when a bucket holds more videos than its share, `complete` is
/// false and the ranking covers only the videos read.
#[utoipa::path(
    get,
    path = "/api/v1/trending",
    tag = "counting",
    params(
        ("window" = Option<WindowName>, Query, description = "The window (default 24h)"),
        ("eventType" = Option<EventTypeSchema>, Query, description = "The event type (default view)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Videos to answer (default 10)"),
    ),
    responses((status = 200, description = "The ranking", body = TrendingAnswer), Invalid, Unavailable)
)]
pub async fn trending(State(st): St, q: Params) -> Result<Json<TrendingAnswer>, Problem> {
    only_params(&q, &["window", "eventType", "limit"])?;
    let window = Window::from_name(q.get("window").map(String::as_str))?;
    let kind = match q.get("eventType") {
        None => EventKind::View,
        Some(s) => super::views::event_kind(&st, s)?,
    };
    let limit = number(&q, "limit", 1, MAX_TOP)?.unwrap_or(DEFAULT_TOP) as usize;
    let top = top(&st.counts, kind, window, chrono::Utc::now().timestamp_millis()).await?;
    Ok(Json(TrendingAnswer {
        window: window.name(),
        event_type: kind,
        granularity: top.granularity.as_str(),
        from: rfc3339(top.from),
        to: rfc3339(top.to),
        items: top.ranked.into_iter().take(limit).map(|(video_id, count)| TrendingItem { video_id, count }).collect(),
        complete: top.complete,
    }))
}
