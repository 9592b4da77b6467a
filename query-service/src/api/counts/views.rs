//! getViewsCount, getCount (optionally as a series of buckets) and getStats.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use counting::series::{BucketRow, Stat};
use counting::{EventKind, Granularity};
use platform::http::{Problem, parse_uuid};
use platform::openapi::{EventTypeSchema, Invalid, Unavailable};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::common::params::RangeParams;
use crate::api::common::{Params, St, only_params};
use crate::domain::ranges::{
    Resolution, ViewsCount, parse_step, parse_time, plan_series, resolve_range, rfc3339, series_resolution,
};
use crate::state::AppState;

/// A series' bucket width.
#[derive(ToSchema)]
#[allow(dead_code)] // the wire names `Granularity::parse` accepts for a step
pub enum Step {
    #[schema(rename = "minute")]
    Minute,
    #[schema(rename = "hour")]
    Hour,
    #[schema(rename = "day")]
    Day,
}

/// getStats' function: over the range's events (`count` = events, `min`/`max` =
/// smallest and largest event value, `avg` = sum / count), or with
/// `over=buckets` over its buckets' sums.
#[derive(ToSchema)]
#[allow(dead_code)] // the wire names `Stat::parse` accepts
pub enum StatFunction {
    #[schema(rename = "count")]
    Count,
    #[schema(rename = "sum")]
    Sum,
    #[schema(rename = "min")]
    Min,
    #[schema(rename = "max")]
    Max,
    #[schema(rename = "avg")]
    Avg,
}

/// What getStats' function runs over.
#[derive(ToSchema, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// Every event of the range (the default).
    #[schema(rename = "events")]
    Events,
    /// Every bucket's sum, empty buckets as 0 (the statistic before value metrics).
    #[schema(rename = "buckets")]
    Buckets,
}

impl Over {
    fn parse(s: Option<&str>) -> Result<Self, Problem> {
        match s {
            None | Some("events") => Ok(Self::Events),
            Some("buckets") => Ok(Self::Buckets),
            Some(_) => Err(Problem::invalid("over", "must be events or buckets")),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Buckets => "buckets",
        }
    }
}

/// A type of the deployment's `event_types` (built-ins included), else 422.
pub(super) fn event_kind(st: &AppState, event_type: &str) -> Result<EventKind, Problem> {
    st.counts.event_types.parse(event_type).map_err(|e| Problem::invalid("eventType", e.to_string()))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn count_of(
    st: &AppState,
    video: &str,
    kind: EventKind,
    q: &HashMap<String, String>,
) -> Result<ViewsCount, Problem> {
    only_params(q, &["from", "to"])?;
    let video = parse_uuid("videoId", video)?;
    let (from, to) = (q.get("from").map(String::as_str), q.get("to").map(String::as_str));
    let range = resolve_range(from, to, now_ms(), &st.counts.retention)?;
    let views = st.counts.rollups.count(video, kind, &range.spans()).await?;
    Ok(ViewsCount::new(video, &range, views))
}

/// getViewsCount: a video's views over a time range, exact.
///
/// The range is read from the coarsest rollup rows that tile it (whole UTC days,
/// then hours, then the ragged minutes), using only rows the retention still keeps:
/// an edge moves out to the minute, and where the minute (or hour) rows there have
/// expired, to the hour (or day) whose row still holds it. `from` and `to` are the
/// effective bounds, `coverage` says whether they are the range asked for
/// (`exact`), a wider one (`widened`) or, when even the day rows before `from`
/// have expired, a narrower one (`narrowed`), `adjustments` says why each edge
/// moved and `spans` which rows answered. Never a silently short count; a range
/// wholly older than every kept row is a 422.
#[utoipa::path(
    get,
    path = "/api/v1/videos/{video_id}/views",
    tag = "counting",
    params(("video_id" = Uuid, Path, description = "The video"), RangeParams),
    responses((status = 200, description = "The count", body = ViewsCount), Invalid, Unavailable)
)]
pub async fn views(State(st): St, Path(video): Path<String>, q: Params) -> Result<Json<ViewsCount>, Problem> {
    Ok(Json(count_of(&st, &video, EventKind::View, &q).await?))
}

/// getCount's answer: a count of one event type over a range, and with `step`
/// the count of every bucket.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Count {
    video_id: Uuid,
    #[schema(value_type = EventTypeSchema)]
    event_type: EventKind,
    /// Effective start; `null` for all time.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    from: Option<String>,
    /// Effective end (exclusive); `null` for all time.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    to: Option<String>,
    count: i64,
    /// The rollups that answered, e.g. `day+hour+minute`, or the step.
    granularity: String,
    /// With `?step=` only: the bucket width.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Step>, nullable = false)]
    step: Option<&'static str>,
    /// With `?step=` only: every bucket of the range, empty ones as 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    series: Option<Vec<Point>>,
    #[serde(flatten)]
    resolution: Resolution,
}

/// One bucket of a series.
#[derive(Serialize, ToSchema)]
pub struct Point {
    #[schema(format = DateTime)]
    start: String,
    count: i64,
}

/// A series' buckets and rows, from `from`, `to` (both required) and `step`.
struct Series {
    step: Granularity,
    buckets: Vec<i64>,
    rows: Vec<BucketRow>,
    resolution: Resolution,
}

impl Series {
    fn values(&self) -> Vec<i64> {
        self.rows.iter().map(|(v, _)| *v).collect()
    }

    /// The effective bounds: the first bucket's start and the last one's end.
    fn bounds(&self) -> (String, String) {
        let width = self.step.width_ms().expect("a step has a width");
        (rfc3339(self.buckets[0]), rfc3339(self.buckets[self.buckets.len() - 1] + width))
    }
}

/// The series of `[from, to)` at `step`, or without one at the finest step that fits.
async fn series_of(
    st: &AppState,
    video: Uuid,
    kind: EventKind,
    q: &HashMap<String, String>,
    step: Option<&str>,
) -> Result<Series, Problem> {
    let step = step.map(parse_step).transpose()?;
    let bound = |field: &'static str| {
        q.get(field)
            .ok_or_else(|| Problem::invalid(field, "is required with `step`"))
            .and_then(|s| parse_time(field, s))
    };
    let (from, to) = (bound("from")?, bound("to")?);
    let plan = plan_series(from, to, step, now_ms(), &st.counts.retention)?;
    let rows = st.counts.rollups.series_rows(video, kind, plan.step, &plan.buckets).await?;
    let resolution = series_resolution((from, to), &plan);
    Ok(Series { step: plan.step, buckets: plan.buckets, rows, resolution })
}

/// getCount: a video's count of one event type over a range; with `step`, also as
/// a series with every bucket of the range.
///
/// Without `step`, the range rules of getViewsCount apply (any range, answered
/// from the rows still kept, the effective bounds stated). With `step`, `from` and
/// `to` are required and floored and ceiled to the step; `to` must be after
/// `from`, the series holds at most 1440 buckets, and every bucket's row must still
/// be kept (minute rows live 8 days and hour rows 400 by default), since a bucket
/// has no coarser row to fall back on. Those cross-field rules are 422s the schema
/// cannot state; the series is never short of a bucket.
#[utoipa::path(
    get,
    path = "/api/v1/videos/{video_id}/counts/{event_type}",
    tag = "counting",
    params(
        ("video_id" = Uuid, Path, description = "The video"),
        ("event_type" = EventTypeSchema, Path, description = "The event type"),
        RangeParams,
        ("step" = Option<Step>, Query, description = "Answer a series too (needs `from` and `to`)"),
    ),
    responses((status = 200, description = "The count", body = Count), Invalid, Unavailable)
)]
pub async fn counts(
    State(st): St,
    Path((video, event_type)): Path<(String, String)>,
    q: Params,
) -> Result<Json<Count>, Problem> {
    let kind = event_kind(&st, &event_type)?;
    if let Some(step) = q.get("step") {
        only_params(&q, &["from", "to", "step"])?;
        let video_id = parse_uuid("videoId", &video)?;
        let s = series_of(&st, video_id, kind, &q, Some(step)).await?;
        let (from, to) = s.bounds();
        let values = s.values();
        let series = s.buckets.iter().zip(&values).map(|(&b, &count)| Point { start: rfc3339(b), count }).collect();
        return Ok(Json(Count {
            video_id,
            event_type: kind,
            from: Some(from),
            to: Some(to),
            count: values.iter().sum(),
            granularity: s.step.as_str().to_owned(),
            step: Some(s.step.as_str()),
            series: Some(series),
            resolution: s.resolution,
        }));
    }
    let c = count_of(&st, &video, kind, &q).await?;
    Ok(Json(Count {
        video_id: c.video_id,
        event_type: kind,
        from: c.from.map(|t| rfc3339(t.timestamp_millis())),
        to: c.to.map(|t| rfc3339(t.timestamp_millis())),
        count: c.views,
        granularity: c.granularity,
        step: None,
        series: None,
        resolution: c.resolution,
    }))
}

/// getStats' answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    video_id: Uuid,
    #[schema(value_type = EventTypeSchema)]
    event_type: EventKind,
    #[schema(value_type = StatFunction)]
    function: &'static str,
    #[schema(value_type = Over)]
    over: &'static str,
    #[schema(format = DateTime)]
    from: String,
    #[schema(format = DateTime)]
    to: String,
    #[schema(value_type = Step)]
    step: &'static str,
    /// Buckets of the range (empty ones included).
    buckets: usize,
    /// The statistic. `null` when it has no value: `min`, `max` or `avg` of no
    /// events, or (over events) a range with buckets written before rows kept an
    /// event count (`unrecordedBuckets` > 0), where only `sum` is known.
    #[schema(required = true)]
    value: Option<f64>,
    /// Over events: buckets whose rows were written before value metrics (issue
    /// 13), so their events' count, min and max are not known. Always 0 over buckets.
    unrecorded_buckets: usize,
    #[serde(flatten)]
    resolution: Resolution,
}

/// getStats: count, sum, min, max or avg over the event values of a range.
///
/// Over events (the default), exact like the counts: `count` is the number of
/// events, `sum` their values' sum (getCount's number), `min`/`max` the smallest
/// and largest event value, `avg` = sum / count. Corrections change `sum` and
/// `count` by what they take back and never `min`/`max`. With `over=buckets`, the
/// statistic of the buckets' sums instead (`count` = non-empty buckets, empty ones
/// as 0). The same range rules as getCount's series apply (422s the schema cannot
/// state); `from` and `to` are widened to whole buckets, and the statistic covers
/// them. Without `step`, the finest step whose buckets are all kept and number at
/// most 1440 is used (minutes for a few hours, hours for up to two months, days beyond).
#[utoipa::path(
    get,
    path = "/api/v1/videos/{video_id}/stats/{event_type}",
    tag = "counting",
    params(
        ("video_id" = Uuid, Path, description = "The video"),
        ("event_type" = EventTypeSchema, Path, description = "The event type"),
        ("function" = StatFunction, Query, description = "The statistic"),
        ("from" = chrono::DateTime<chrono::Utc>, Query, description = "Start, inclusive"),
        ("to" = chrono::DateTime<chrono::Utc>, Query, description = "End, exclusive; after `from`"),
        ("step" = Option<Step>, Query, description = "The bucket width (default: the finest that fits)"),
        ("over" = Option<Over>, Query, description = "Over the events (default) or the buckets' sums"),
    ),
    responses((status = 200, description = "The statistic", body = Stats), Invalid, Unavailable)
)]
pub async fn stats(
    State(st): St,
    Path((video, event_type)): Path<(String, String)>,
    q: Params,
) -> Result<Json<Stats>, Problem> {
    only_params(&q, &["function", "from", "to", "step", "over"])?;
    let kind = event_kind(&st, &event_type)?;
    let video_id = parse_uuid("videoId", &video)?;
    let function = q
        .get("function")
        .and_then(|f| Stat::parse(f))
        .ok_or_else(|| Problem::invalid("function", "must be count, sum, min, max or avg"))?;
    let over = Over::parse(q.get("over").map(String::as_str))?;
    let s = series_of(&st, video_id, kind, &q, q.get("step").map(String::as_str)).await?;
    let (from, to) = s.bounds();
    let (value, unrecorded_buckets) = match over {
        Over::Events => {
            let e = function.of_events(&s.rows);
            (e.value, e.unrecorded)
        }
        Over::Buckets => (Some(function.of(&s.values())), 0),
    };
    Ok(Json(Stats {
        video_id,
        event_type: kind,
        function: function.as_str(),
        over: over.as_str(),
        from,
        to,
        step: s.step.as_str(),
        buckets: s.buckets.len(),
        value,
        unrecorded_buckets,
        resolution: s.resolution,
    }))
}
