//! Trending and playback statistics, read from the rollups.
//!
//! Trending reads `rollups_by_bucket` (migration 005, written by the aggregator):
//! one partition per (event type, granularity, bucket) holding every video's count
//! in that bucket. A window is the whole buckets overlapping `[now - window, now]`:
//! hour buckets for 1 h and 24 h, day buckets for 7 d and 30 d. So "24h" at 14:20
//! covers yesterday 14:00 to today 15:00 (25 hour buckets), and the answer says so
//! in `from` and `to`. Counts are summed per video over the window's buckets and the
//! top N kept, equal counts in video id order.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use counting::{EventKind, Granularity};
use futures::future::try_join_all;
use futures::{StreamExt, TryStreamExt};
use platform::cassandra::prepare;
use platform::http::{Problem, parse_uuid};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use serde::Serialize;
use uuid::Uuid;

use crate::catalog::first_summaries;
use crate::catalog::tags_of;
use crate::counts::{rfc3339, store_error};
use crate::paging::number;
use crate::routes::{AppState, only_params};
use crate::users::respond;

pub const DEFAULT_TOP: u32 = 10;
pub const MAX_TOP: u32 = 100;
/// KillrVideo's `/videos/trending` answers at most this many.
pub const MAX_TRENDING_VIDEOS: u32 = 10;
/// `videoIds` of the many-at-once playback stats.
pub const MAX_STATS_IDS: usize = 100;
const READ_CONCURRENCY: usize = 16;

pub struct Trending {
    session: Arc<Session>,
    bucket: PreparedStatement,
}

/// A trending window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    Hour,
    Day,
    Week,
    Month,
}

impl Window {
    pub fn name(self) -> &'static str {
        match self {
            Self::Hour => "1h",
            Self::Day => "24h",
            Self::Week => "7d",
            Self::Month => "30d",
        }
    }

    fn length_ms(self) -> i64 {
        use counting::time::{DAY_MS, HOUR_MS};
        match self {
            Self::Hour => HOUR_MS,
            Self::Day => DAY_MS,
            Self::Week => 7 * DAY_MS,
            Self::Month => 30 * DAY_MS,
        }
    }

    pub fn granularity(self) -> Granularity {
        match self {
            Self::Hour | Self::Day => Granularity::Hour,
            Self::Week | Self::Month => Granularity::Day,
        }
    }

    /// `[from, to)`: the whole buckets overlapping `[now - length, now]`.
    pub fn bounds(self, now_ms: i64) -> (i64, i64) {
        let g = self.granularity();
        let width = g.width_ms().expect("hour and day buckets have a width");
        (g.bucket(now_ms - self.length_ms()), g.bucket(now_ms) + width)
    }
}

/// A window's top videos.
#[derive(Debug)]
pub struct Top {
    pub from: i64,
    pub to: i64,
    pub granularity: Granularity,
    /// Every video with a positive count, most counted first, ties by id.
    pub ranked: Vec<(Uuid, i64)>,
}

/// Per-video sums over buckets, most first, equal sums by video id; zeros left out.
fn rank(buckets: Vec<Vec<(Uuid, Option<i64>)>>) -> Vec<(Uuid, i64)> {
    let mut sums: HashMap<Uuid, i64> = HashMap::new();
    for (video, value) in buckets.into_iter().flatten() {
        *sums.entry(video).or_insert(0) += value.unwrap_or(0);
    }
    let mut ranked: Vec<(Uuid, i64)> = sums.into_iter().filter(|(_, n)| *n > 0).collect();
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

impl Trending {
    pub async fn new(session: Arc<Session>, keyspace: &str) -> anyhow::Result<Self> {
        let bucket = prepare(
            &session,
            format!(
                "SELECT video_id, value FROM {keyspace}.rollups_by_bucket \
                 WHERE event_type = ? AND granularity = ? AND bucket = ?"
            ),
            true,
        )
        .await?;
        Ok(Self { session, bucket })
    }

    async fn read_bucket(
        &self,
        kind: EventKind,
        g: Granularity,
        bucket: i64,
    ) -> anyhow::Result<Vec<(Uuid, Option<i64>)>> {
        let pager =
            self.session.execute_iter(self.bucket.clone(), (kind.as_str(), g.as_str(), CqlTimestamp(bucket))).await?;
        Ok(pager.rows_stream::<(Uuid, Option<i64>)>()?.try_collect().await?)
    }

    /// The window's videos by their count of `kind`, read one bucket partition each,
    /// concurrently (at most 31 for 30 days).
    pub async fn top(&self, kind: EventKind, window: Window, now_ms: i64) -> Result<Top, Problem> {
        let g = window.granularity();
        let (from, to) = window.bounds(now_ms);
        let width = g.width_ms().expect("hour and day buckets have a width");
        let buckets = (from..to).step_by(width as usize).map(|b| self.read_bucket(kind, g, b));
        let rows = try_join_all(buckets).await.map_err(store_error)?;
        Ok(Top { from, to, granularity: g, ranked: rank(rows) })
    }
}

pub fn api(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/v1/videos/trending", get(trending_videos))
        .route("/api/v1/trending", get(trending))
        .route("/api/v1/videos/{video_id}/playback-stats", get(playback_stats))
        .route("/api/v1/videos/playback-stats", get(playback_stats_many))
        .with_state(state)
}

type St = State<Arc<AppState>>;
type Params = Query<HashMap<String, String>>;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// GET /api/v1/videos/trending?intervalDays=1|7|30&limit → `[VideoSummary]`, most
/// viewed in the window first (`views` in each summary is still all-time).
async fn trending_videos(State(st): St, Query(q): Params) -> Response {
    let result = async {
        only_params(&q, &["intervalDays", "limit"])?;
        let window = match q.get("intervalDays").map(|s| s.trim()) {
            None | Some("1") => Window::Day,
            Some("7") => Window::Week,
            Some("30") => Window::Month,
            Some(_) => return Err(Problem::invalid("intervalDays", "must be 1, 7 or 30")),
        };
        let limit = number(&q, "limit", 1, MAX_TRENDING_VIDEOS)?.unwrap_or(MAX_TRENDING_VIDEOS) as usize;
        let top = st.trending.top(EventKind::View, window, now_ms()).await?;
        let ids: Vec<Uuid> = top.ranked.iter().map(|(id, _)| *id).collect();
        // Views may name ids the catalog does not know (the view endpoint takes any
        // well-formed id): those are passed over.
        first_summaries(&st, &ids, limit).await
    };
    respond(StatusCode::OK, result.await)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TrendingItem {
    video_id: Uuid,
    count: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TrendingAnswer {
    window: &'static str,
    event_type: EventKind,
    granularity: &'static str,
    /// Start of the first bucket read.
    from: String,
    /// End of the last (current) bucket read.
    to: String,
    items: Vec<TrendingItem>,
}

/// GET /api/v1/trending?window=1h|24h|7d&eventType&limit → the top N videos by
/// count of the event type in the window (counting API).
async fn trending(State(st): St, Query(q): Params) -> Response {
    let result = async {
        only_params(&q, &["window", "eventType", "limit"])?;
        let window = match q.get("window").map(String::as_str) {
            None | Some("24h") => Window::Day,
            Some("1h") => Window::Hour,
            Some("7d") => Window::Week,
            Some(_) => return Err(Problem::invalid("window", "must be 1h, 24h or 7d")),
        };
        let kind = match q.get("eventType") {
            None => EventKind::View,
            Some(s) => s.parse().map_err(|e: counting::kind::UnknownKind| Problem::invalid("eventType", e))?,
        };
        let limit = number(&q, "limit", 1, MAX_TOP)?.unwrap_or(DEFAULT_TOP) as usize;
        let top = st.trending.top(kind, window, now_ms()).await?;
        Ok(TrendingAnswer {
            window: window.name(),
            event_type: kind,
            granularity: top.granularity.as_str(),
            from: rfc3339(top.from),
            to: rfc3339(top.to),
            items: top
                .ranked
                .into_iter()
                .take(limit)
                .map(|(video_id, count)| TrendingItem { video_id, count })
                .collect(),
        })
    };
    respond(StatusCode::OK, result.await)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlaybackStats {
    video_id: Uuid,
    views: i64,
}

/// GET /api/v1/videos/{id}/playback-stats → `{videoId, views}`, all time; 404 for an
/// unknown video.
async fn playback_stats(State(st): St, Path(id): Path<String>) -> Response {
    let result = async {
        let id = parse_uuid("videoId", &id)?;
        match futures::try_join!(tags_of(&st, id), st.counts.total(id, EventKind::View))? {
            (Some(_), views) => Ok(PlaybackStats { video_id: id, views }),
            (None, _) => Err(Problem::not_found("no such video")),
        }
    };
    respond(StatusCode::OK, result.await)
}

/// `videoIds`: 1 to 100 comma-separated UUIDs; duplicates are answered once, in
/// the place of their first occurrence.
fn video_ids(raw: Option<&String>) -> Result<Vec<Uuid>, Problem> {
    let raw = raw.map(|s| s.trim()).unwrap_or_default();
    let parts: Vec<&str> = raw.split(',').collect();
    if raw.is_empty() || parts.len() > MAX_STATS_IDS {
        return Err(Problem::invalid("videoIds", format!("1 to {MAX_STATS_IDS} comma-separated video ids")));
    }
    let mut ids = Vec::with_capacity(parts.len());
    for part in parts {
        let id = parse_uuid("videoIds", part.trim())?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// GET /api/v1/videos/playback-stats?videoIds=a,b,… → `[{videoId, views}]` in the
/// given order, for the ids that are videos (as KillrVideo's GetNumberOfPlays, which
/// answers for the videos it could load). Reads run concurrently.
async fn playback_stats_many(State(st): St, Query(q): Params) -> Response {
    let result = async {
        only_params(&q, &["videoIds"])?;
        let ids = video_ids(q.get("videoIds"))?;
        let st = &st;
        let stats: Vec<Option<PlaybackStats>> = futures::stream::iter(ids)
            .map(|id| async move {
                let (video, views) = futures::try_join!(tags_of(st, id), st.counts.total(id, EventKind::View))?;
                Ok::<_, Problem>(video.map(|_| PlaybackStats { video_id: id, views }))
            })
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(stats.into_iter().flatten().collect::<Vec<_>>())
    };
    respond(StatusCode::OK, result.await)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-03-10T14:20:00Z
    const NOW: i64 = 1_710_028_800_000 + 14 * 3_600_000 + 20 * 60_000;

    #[test]
    fn windows_are_the_buckets_overlapping_them() {
        let day = 1_710_028_800_000;
        let hour = 3_600_000;
        assert_eq!(Window::Hour.bounds(NOW), (day + 13 * hour, day + 15 * hour));
        assert_eq!(Window::Day.bounds(NOW), (day - 10 * hour, day + 15 * hour));
        assert_eq!(Window::Week.bounds(NOW), (day - 7 * 24 * hour, day + 24 * hour));
        assert_eq!(Window::Month.bounds(NOW), (day - 30 * 24 * hour, day + 24 * hour));
        // On a boundary the window starts exactly `length` ago.
        assert_eq!(Window::Day.bounds(day), (day - 24 * hour, day + hour));
    }

    #[test]
    fn ranks_sum_buckets_and_break_ties_by_id() {
        let id = |n: u128| Uuid::from_u128(n);
        let b1 = vec![(id(1), Some(5)), (id(2), Some(3)), (id(3), Some(0))];
        let b2 = vec![(id(2), Some(2)), (id(4), Some(7)), (id(5), None)];
        assert_eq!(rank(vec![b1, b2]), vec![(id(4), 7), (id(1), 5), (id(2), 5)]);
        assert!(rank(vec![]).is_empty());
    }

    #[test]
    fn video_ids_are_checked_and_deduplicated() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let q = |s: String| video_ids(Some(&s));
        assert_eq!(q(format!("{b}, {a},{b}")).unwrap(), vec![b, a]);
        for bad in [String::new(), " ".into(), format!("{a},nope"), format!("{a},"), format!("{a};{b}")] {
            assert_eq!(q(bad.clone()).unwrap_err().field.as_deref(), Some("videoIds"), "{bad:?}");
        }
        assert_eq!(video_ids(None).unwrap_err().field.as_deref(), Some("videoIds"));
        let many: Vec<String> = (0..101u128).map(|n| Uuid::from_u128(n).to_string()).collect();
        assert_eq!(q(many.join(",")).unwrap_err().field.as_deref(), Some("videoIds"));
        assert_eq!(q(many[..100].join(",")).unwrap().len(), 100);
    }
}
