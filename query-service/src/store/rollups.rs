//! The counts part of storage: the rows the aggregator writes, read by range
//! (`counts`, migration 009: a (video, event type) in one Cassandra partition,
//! a row per granularity and bucket) and by bucket (`rollups_by_bucket`, for
//! trending). Nothing here writes; the aggregator is the single writer of these
//! tables. (The older `rollups` table is no longer read.)
//!
//! A series read also returns each row's tally (event count, min, max) by the
//! aggregator's rule, `counting::Tally::from_cells`: a tally cell counts only if
//! the write of the row's sum wrote it, so a row from before tallies (or one an
//! older aggregator rewrote) reads as an unknown tally, never as a wrong one.

use std::sync::Arc;
use std::time::Instant;

use counting::series::BucketRow;
use counting::{EventKind, Granularity, Span, Tally};
use futures::TryStreamExt;
use futures::future::try_join_all;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use uuid::Uuid;

use super::{Result, prepare};
use crate::metrics::{CASSANDRA_ERRORS, CASSANDRA_READ_DURATION, OP_READ};

pub struct Rollups {
    session: Arc<Session>,
    range: PreparedStatement,
    rows: PreparedStatement,
    bucket: PreparedStatement,
    series: PreparedStatement,
}

#[derive(scylla::DeserializeRow)]
struct SeriesRow {
    video_id: Uuid,
    event_type: String,
}

#[derive(scylla::DeserializeRow)]
struct ValueRow {
    value: Option<i64>,
}

#[derive(scylla::DeserializeRow)]
struct StatsRow {
    bucket: CqlTimestamp,
    value: Option<i64>,
    events: Option<i64>,
    min_value: Option<i64>,
    max_value: Option<i64>,
    value_ts: Option<i64>,
    events_ts: Option<i64>,
    min_ts: Option<i64>,
    max_ts: Option<i64>,
}

#[derive(scylla::DeserializeRow)]
struct VideoValueRow {
    video_id: Uuid,
    value: Option<i64>,
}

impl Rollups {
    pub async fn new(session: Arc<Session>, keyspace: &str) -> anyhow::Result<Self> {
        let range = prepare(
            &session,
            format!(
                "SELECT value FROM {keyspace}.counts \
                 WHERE video_id = ? AND event_type = ? AND granularity = ? AND bucket >= ? AND bucket < ?"
            ),
            true,
        )
        .await?;
        let rows = prepare(
            &session,
            format!(
                "SELECT bucket, value, events, min_value, max_value, WRITETIME(value) AS value_ts, \
                 WRITETIME(events) AS events_ts, WRITETIME(min_value) AS min_ts, WRITETIME(max_value) AS max_ts \
                 FROM {keyspace}.counts \
                 WHERE video_id = ? AND event_type = ? AND granularity = ? AND bucket >= ? AND bucket < ?"
            ),
            true,
        )
        .await?;
        let bucket = prepare(
            &session,
            format!(
                "SELECT video_id, value FROM {keyspace}.rollups_by_bucket \
                 WHERE event_type = ? AND granularity = ? AND bucket = ? LIMIT ?"
            ),
            true,
        )
        .await?;
        // A scan of every partition key: only the operator's tools use it.
        let series = prepare(
            &session,
            // A series is one partition of `counts`, and every written series has its
            // all-time row (the rounds write it last).
            format!("SELECT DISTINCT video_id, event_type FROM {keyspace}.counts"),
            true,
        )
        .await?;
        Ok(Self { session, range, rows, bucket, series })
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// One clustering-range read, timed and counted by granularity.
    async fn sum_span(&self, video: Uuid, kind: EventKind, span: Span) -> Result<i64> {
        let started = Instant::now();
        let result = self.read_span(video, kind, span).await;
        let granularity = span.granularity.as_str();
        CASSANDRA_READ_DURATION.histogram_with(&[("granularity", granularity)]).record(started.elapsed().as_secs_f64());
        if result.is_err() {
            CASSANDRA_ERRORS.counter_with(&[("op", OP_READ)]).increment(1);
        }
        result
    }

    async fn read_span(&self, video: Uuid, kind: EventKind, span: Span) -> Result<i64> {
        let (start, end) = match span.granularity {
            // The all-time row lives at bucket 0.
            Granularity::Total => (0, 1),
            _ => (span.start, span.end),
        };
        let mut pager = self
            .session
            .execute_iter(
                self.range.clone(),
                (video, kind.as_str(), span.granularity.as_str(), CqlTimestamp(start), CqlTimestamp(end)),
            )
            .await?
            .rows_stream::<ValueRow>()?;
        let mut sum = 0i64;
        while let Some(row) = pager.try_next().await? {
            sum += row.value.unwrap_or(0);
        }
        Ok(sum)
    }

    /// The value of each bucket in `buckets` (ascending, one `step` apart) for
    /// `video` and `kind`: one clustering-range read, zeros where no row exists.
    pub async fn series(&self, video: Uuid, kind: EventKind, step: Granularity, buckets: &[i64]) -> Result<Vec<i64>> {
        Ok(self.series_rows(video, kind, step, buckets).await?.into_iter().map(|(value, _)| value).collect())
    }

    /// [`series`](Self::series) with each bucket's tally: no events where no row
    /// exists, `None` where the row's tally is not known.
    pub async fn series_rows(
        &self,
        video: Uuid,
        kind: EventKind,
        step: Granularity,
        buckets: &[i64],
    ) -> Result<Vec<BucketRow>> {
        let (Some(&first), Some(&last), Some(width)) = (buckets.first(), buckets.last(), step.width_ms()) else {
            return Ok(Vec::new());
        };
        let started = Instant::now();
        let values = (video, kind.as_str(), step.as_str(), CqlTimestamp(first), CqlTimestamp(last + width));
        let read = async {
            let mut pager = self.session.execute_iter(self.rows.clone(), values).await?.rows_stream::<StatsRow>()?;
            let mut out: Vec<BucketRow> = vec![(0, Some(Tally::EMPTY)); buckets.len()];
            while let Some(row) = pager.try_next().await? {
                if let Ok(i) = buckets.binary_search(&row.bucket.0) {
                    let tally = Tally::from_cells(
                        row.value_ts,
                        (row.events, row.events_ts),
                        (row.min_value, row.min_ts),
                        (row.max_value, row.max_ts),
                    );
                    out[i] = (row.value.unwrap_or(0), tally);
                }
            }
            Ok(out)
        };
        let result = read.await;
        CASSANDRA_READ_DURATION
            .histogram_with(&[("granularity", step.as_str())])
            .record(started.elapsed().as_secs_f64());
        if result.is_err() {
            CASSANDRA_ERRORS.counter_with(&[("op", OP_READ)]).increment(1);
        }
        result
    }

    /// Every (video, event type) with an all-time row, in no particular order: a
    /// scan of the whole table, paged (`vcount-admin rebuild` compares keyspaces
    /// with it; no request path calls it). Type names read back are trusted (the
    /// aggregator wrote only listed ones) and interned.
    pub async fn all_series(&self) -> Result<Vec<(Uuid, EventKind)>> {
        let pager = self.session.execute_iter(self.series.clone(), ()).await?;
        let rows: Vec<SeriesRow> = pager.rows_stream::<SeriesRow>()?.try_collect().await?;
        Ok(rows.into_iter().filter_map(|r| Some((r.video_id, EventKind::intern(&r.event_type).ok()?))).collect())
    }

    /// All-time count of `kind` for `video` (its total row).
    pub async fn total(&self, video: Uuid, kind: EventKind) -> Result<i64> {
        self.count(video, kind, &[Span { granularity: Granularity::Total, start: 0, end: 0 }]).await
    }

    /// Count of `kind` for `video` over planned spans (`counting::plan`), read
    /// concurrently.
    pub async fn count(&self, video: Uuid, kind: EventKind, spans: &[Span]) -> Result<i64> {
        let sums = try_join_all(spans.iter().map(|s| self.sum_span(video, kind, *s))).await?;
        Ok(sums.into_iter().sum())
    }

    /// The count of `kind` of the first `max` videos (in video id order) of one
    /// hour or day bucket (one partition).
    pub async fn bucket(&self, kind: EventKind, g: Granularity, bucket: i64, max: usize) -> Result<Vec<(Uuid, i64)>> {
        let limit = i32::try_from(max).unwrap_or(i32::MAX);
        let values = (kind.as_str(), g.as_str(), CqlTimestamp(bucket), limit);
        let pager = self.session.execute_iter(self.bucket.clone(), values).await?;
        let rows: Vec<VideoValueRow> = pager.rows_stream::<VideoValueRow>()?.try_collect().await?;
        Ok(rows.into_iter().map(|r| (r.video_id, r.value.unwrap_or(0))).collect())
    }
}
