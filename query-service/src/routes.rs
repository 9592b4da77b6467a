//! Counting read routes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use counting::series::Stat;
use counting::{EventKind, Granularity};
use platform::http::{Problem, parse_uuid};
use serde::Serialize;
use uuid::Uuid;

use crate::catalog::Catalog;
use crate::catalog_events::CatalogEvents;
use crate::comments::Comments;
use crate::config::QueryConfig;
use crate::counts::{CountStore, ViewsCount, parse_time, resolve_range, rfc3339, store_error};
use crate::moderation::Moderation;
use crate::ratings::Ratings;
use crate::trending::Trending;
use crate::users::{HasUsers, Users};
use crate::videos::Videos;

pub struct AppState {
    pub config: QueryConfig,
    pub counts: CountStore,
    pub users: Users,
    pub videos: Videos,
    pub ratings: Ratings,
    pub catalog_events: CatalogEvents,
    pub catalog: Catalog,
    pub trending: Trending,
    pub comments: Comments,
    pub moderation: Moderation,
}

impl HasUsers for AppState {
    fn users(&self) -> &Users {
        &self.users
    }

    fn catalog_events(&self) -> &CatalogEvents {
        &self.catalog_events
    }
}

type St = State<Arc<AppState>>;

pub fn api(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/v1/videos/{video_id}/views", get(views))
        .route("/api/v1/videos/{video_id}/counts/{event_type}", get(counts))
        .route("/api/v1/videos/{video_id}/stats/{event_type}", get(stats))
        .with_state(state)
}

/// Rejects query parameters the route does not know: a misspelt `form=` must not
/// silently turn a ranged query into an all-time one.
pub(crate) fn only_params(q: &HashMap<String, String>, allowed: &[&str]) -> Result<(), Problem> {
    match q.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(Problem::invalid(k.clone(), format!("unknown query parameter; expected {allowed:?}"))),
        None => Ok(()),
    }
}

async fn count_of(
    st: &AppState,
    video: &str,
    kind: EventKind,
    q: &HashMap<String, String>,
) -> Result<ViewsCount, Problem> {
    only_params(q, &["from", "to"])?;
    let video = parse_uuid("videoId", video)?;
    let now = chrono::Utc::now().timestamp_millis();
    let range = resolve_range(
        q.get("from").map(String::as_str),
        q.get("to").map(String::as_str),
        now,
        st.config.retention.minute_secs,
    )?;
    let (views, spans) = st.counts.count(video, kind, range).await.map_err(store_error)?;
    Ok(ViewsCount::new(video, range, views, &spans))
}

/// GET /api/v1/videos/{id}/views?from&to — getViewsCount.
async fn views(State(st): St, Path(video): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    match count_of(&st, &video, EventKind::View, &q).await {
        Ok(c) => axum::Json(c).into_response(),
        Err(p) => p.into_response(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Count {
    video_id: Uuid,
    event_type: EventKind,
    from: Option<String>,
    to: Option<String>,
    count: i64,
    granularity: String,
    /// With `?step=`: the bucket width, and the count of every bucket in the range.
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    series: Option<Vec<Point>>,
}

#[derive(Serialize)]
struct Point {
    start: String,
    count: i64,
}

/// Most buckets one series may have: a day of minutes, two months of hours.
const MAX_POINTS: usize = 1440;

/// A series' buckets and values, from `from`, `to` (both required) and `step`.
struct Series {
    step: Granularity,
    buckets: Vec<i64>,
    values: Vec<i64>,
}

async fn series_of(
    st: &AppState,
    video: Uuid,
    kind: EventKind,
    q: &HashMap<String, String>,
    step: &str,
) -> Result<Series, Problem> {
    let step = match Granularity::parse(step) {
        Some(g) if g != Granularity::Total => g,
        _ => return Err(Problem::invalid("step", "must be minute, hour or day")),
    };
    let bound = |field: &'static str| {
        q.get(field)
            .ok_or_else(|| Problem::invalid(field, "is required with `step`"))
            .and_then(|s| parse_time(field, s))
    };
    let (from, to) = (bound("from")?, bound("to")?);
    let buckets =
        counting::series::buckets(from, to, step).ok_or_else(|| Problem::invalid("to", "must be after `from`"))?;
    if buckets.len() > MAX_POINTS {
        let n = buckets.len();
        return Err(Problem::invalid(
            "step",
            format!("{n} points; at most {MAX_POINTS}: use a coarser step or a shorter range"),
        ));
    }
    let oldest_minute = chrono::Utc::now().timestamp_millis() - (st.config.retention.minute_secs as i64) * 1000;
    if step == Granularity::Minute && buckets[0] < counting::time::floor_to(oldest_minute, counting::time::MINUTE_MS) {
        return Err(Problem::invalid("from", "minute rows that old have expired; use step=hour"));
    }
    let values = st.counts.series(video, kind, step, &buckets).await.map_err(store_error)?;
    Ok(Series { step, buckets, values })
}

impl Series {
    /// The effective bounds: the first bucket's start and the last one's end.
    fn bounds(&self) -> (String, String) {
        let width = self.step.width_ms().expect("a step has a width");
        (rfc3339(self.buckets[0]), rfc3339(self.buckets[self.buckets.len() - 1] + width))
    }
}

fn event_kind(event_type: &str) -> Result<EventKind, Problem> {
    event_type.parse().map_err(|e: counting::kind::UnknownKind| Problem::invalid("eventType", e.to_string()))
}

/// GET /api/v1/videos/{id}/counts/{eventType}?from&to[&step=minute|hour|day] —
/// getCount, and with `step` the count of every bucket as a series.
async fn counts(
    State(st): St,
    Path((video, event_type)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        let kind = event_kind(&event_type)?;
        if let Some(step) = q.get("step") {
            only_params(&q, &["from", "to", "step"])?;
            let video_id = parse_uuid("videoId", &video)?;
            let s = series_of(&st, video_id, kind, &q, step).await?;
            let (from, to) = s.bounds();
            let series =
                s.buckets.iter().zip(&s.values).map(|(&b, &count)| Point { start: rfc3339(b), count }).collect();
            return Ok::<_, Problem>(Count {
                video_id,
                event_type: kind,
                from: Some(from),
                to: Some(to),
                count: s.values.iter().sum(),
                granularity: s.step.as_str().to_owned(),
                step: Some(s.step.as_str()),
                series: Some(series),
            });
        }
        let c = count_of(&st, &video, kind, &q).await?;
        Ok(Count {
            video_id: c.video_id,
            event_type: kind,
            from: c.from,
            to: c.to,
            count: c.views,
            granularity: c.granularity,
            step: None,
            series: None,
        })
    };
    match result.await {
        Ok(c) => axum::Json(c).into_response(),
        Err(p) => p.into_response(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Stats {
    video_id: Uuid,
    event_type: EventKind,
    function: &'static str,
    from: String,
    to: String,
    step: &'static str,
    /// Buckets the statistic is over (empty ones included, as 0).
    buckets: usize,
    value: f64,
}

/// GET /api/v1/videos/{id}/stats/{eventType}?function=count|sum|min|max|avg&from&to[&step=hour]
/// — getStats over the range's buckets (see `counting::series::Stat`).
async fn stats(
    State(st): St,
    Path((video, event_type)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        only_params(&q, &["function", "from", "to", "step"])?;
        let kind = event_kind(&event_type)?;
        let video_id = parse_uuid("videoId", &video)?;
        let function = q
            .get("function")
            .and_then(|f| Stat::parse(f))
            .ok_or_else(|| Problem::invalid("function", "must be count, sum, min, max or avg"))?;
        let s = series_of(&st, video_id, kind, &q, q.get("step").map_or("hour", String::as_str)).await?;
        let (from, to) = s.bounds();
        Ok::<_, Problem>(Stats {
            video_id,
            event_type: kind,
            function: function.as_str(),
            from,
            to,
            step: s.step.as_str(),
            buckets: s.buckets.len(),
            value: function.of(&s.values),
        })
    };
    match result.await {
        Ok(s) => axum::Json(s).into_response(),
        Err(p) => p.into_response(),
    }
}
