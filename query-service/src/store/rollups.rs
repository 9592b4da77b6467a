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
//!
//! Counts ([`Rollups::count`], [`Rollups::total`]) and series
//! ([`Rollups::series_rows`], getCount with a step and getStats) are fresh when [`Owners`] are
//! given ([`Rollups::with_owners`], `counts.owner_reads`): the owner of the
//! video's partition is asked what it holds of the series *before* the rows are
//! read (the order `counting::fresh`'s rule needs: anything the owner wrote
//! after answering shows in the rows' `last_offset`), then each span's rows are
//! read with their `last_offset` and write timestamp and the held minutes the
//! span covers are added by that rule. A round that landed the held events in
//! between ([`Stale::Landed`]) asks once more; anything else that voids or lacks
//! an answer gives the rows alone, today's answer.

use std::sync::Arc;
use std::time::Instant;

use counting::fresh::{Held, RowStamp, Stale};
use counting::series::BucketRow;
use counting::{EventKind, Granularity, Span, Tally};
use futures::TryStreamExt;
use futures::future::try_join_all;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use uuid::Uuid;

use super::owners::{Outcome, Owners};
use super::rows_cache::{RowsCache, StampedSpan, Validator};
use super::{Result, prepare};
use crate::metrics::{CASSANDRA_ERRORS, CASSANDRA_READ_DURATION, OP_READ, OWNER_READS};

pub struct Rollups {
    session: Arc<Session>,
    range: PreparedStatement,
    rows: PreparedStatement,
    bucket: PreparedStatement,
    series: PreparedStatement,
    stamped: PreparedStatement,
    /// The all-time row with its stamp: the validator of [`RowsCache`].
    all_time: PreparedStatement,
    owners: Option<Owners>,
    cache: Option<RowsCache>,
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

/// A row with what the freshness rule compares: its `last_offset` and the
/// write timestamp of its sum (the writer's epoch in the top bits).
#[derive(scylla::DeserializeRow)]
struct StampedRow {
    bucket: CqlTimestamp,
    value: Option<i64>,
    last_offset: Option<i64>,
    value_ts: Option<i64>,
}

/// A series' rows as read, and each bucket's stamp for the freshness rule
/// (`None`: no row; `unstamped`: a row with a sum and no stamp).
struct SeriesRead {
    rows: Vec<BucketRow>,
    stamps: Vec<Option<RowStamp>>,
    unstamped: bool,
}

/// The all-time row's sum with its stamp.
#[derive(scylla::DeserializeRow)]
struct AllTimeRow {
    value: Option<i64>,
    last_offset: Option<i64>,
    value_ts: Option<i64>,
}

#[derive(scylla::DeserializeRow)]
struct StatsRow {
    bucket: CqlTimestamp,
    value: Option<i64>,
    last_offset: Option<i64>,
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
                "SELECT bucket, value, last_offset, events, min_value, max_value, WRITETIME(value) AS value_ts, \
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
        let stamped = prepare(
            &session,
            format!(
                "SELECT bucket, value, last_offset, WRITETIME(value) AS value_ts FROM {keyspace}.counts \
                 WHERE video_id = ? AND event_type = ? AND granularity = ? AND bucket >= ? AND bucket < ?"
            ),
            true,
        )
        .await?;
        let all_time = prepare(
            &session,
            format!(
                "SELECT value, last_offset, WRITETIME(value) AS value_ts FROM {keyspace}.counts \
                 WHERE video_id = ? AND event_type = ? AND granularity = ? AND bucket = ?"
            ),
            true,
        )
        .await?;
        Ok(Self { session, range, rows, bucket, series, stamped, all_time, owners: None, cache: None })
    }

    /// Counts reuse span reads while the series' all-time row is unchanged
    /// (`counts.rows_cache_rows`; [`RowsCache`]).
    pub fn with_cache(mut self, cache: Option<RowsCache>) -> Self {
        self.cache = cache;
        self
    }

    /// Counts add what the owners hold and have not written (`counts.owner_reads`).
    pub fn with_owners(mut self, owners: Owners) -> Self {
        self.owners = Some(owners);
        self
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// One clustering-range read, timed and counted by granularity.
    async fn sum_span(&self, video: Uuid, kind: EventKind, span: Span) -> Result<i64> {
        timed(span.granularity, self.read_span(video, kind, span)).await
    }

    async fn read_span(&self, video: Uuid, kind: EventKind, span: Span) -> Result<i64> {
        let mut pager = self
            .session
            .execute_iter(self.range.clone(), span_values(video, kind, span))
            .await?
            .rows_stream::<ValueRow>()?;
        let mut sum = 0i64;
        while let Some(row) = pager.try_next().await? {
            sum += row.value.unwrap_or(0);
        }
        Ok(sum)
    }

    /// [`sum_span`](Self::sum_span) with each row's stamp, for the freshness rule.
    async fn stamped_span(&self, video: Uuid, kind: EventKind, span: Span) -> Result<StampedSpan> {
        timed(span.granularity, async {
            let mut pager = self
                .session
                .execute_iter(self.stamped.clone(), span_values(video, kind, span))
                .await?
                .rows_stream::<StampedRow>()?;
            let mut out = StampedSpan { sum: 0, stamps: Vec::new() };
            while let Some(row) = pager.try_next().await? {
                // A row without a sum holds none of the series' events: as good as absent.
                let Some(value) = row.value else { continue };
                out.sum += value;
                let stamp = row.last_offset.zip(row.value_ts).map(|(lo, ts)| RowStamp::new(lo, ts));
                out.stamps.push((row.bucket.0, stamp));
            }
            Ok(out)
        })
        .await
    }

    /// The value of each bucket in `buckets` (ascending, one `step` apart) for
    /// `video` and `kind`: one clustering-range read, zeros where no row exists.
    pub async fn series(&self, video: Uuid, kind: EventKind, step: Granularity, buckets: &[i64]) -> Result<Vec<i64>> {
        Ok(self.series_rows(video, kind, step, buckets).await?.into_iter().map(|(value, _)| value).collect())
    }

    /// [`series`](Self::series) with each bucket's tally: no events where no row
    /// exists, `None` where the row's tally is not known; with owners, including
    /// what the series' owner holds (its tallies too).
    pub async fn series_rows(
        &self,
        video: Uuid,
        kind: EventKind,
        step: Granularity,
        buckets: &[i64],
    ) -> Result<Vec<BucketRow>> {
        let Some(owners) = self.owners.as_ref().filter(|_| !buckets.is_empty()) else {
            return Ok(self.read_series(video, kind, step, buckets).await?.rows);
        };
        let (rows, outcome) = self.series_fresh(owners, video, kind, step, buckets).await?;
        OWNER_READS.counter_with(&[("outcome", outcome.as_str())]).increment(1);
        Ok(rows)
    }

    /// [`count_fresh`](Self::count_fresh) for a series: ask, read, add bucket by bucket.
    async fn series_fresh(
        &self,
        owners: &Owners,
        video: Uuid,
        kind: EventKind,
        step: Granularity,
        buckets: &[i64],
    ) -> Result<(Vec<BucketRow>, Outcome)> {
        let mut tries = 0;
        loop {
            tries += 1;
            let (held, owner) = match owners.ask(video, kind).await {
                Ok(answer) => answer,
                Err(outcome) => return Ok((self.read_series(video, kind, step, buckets).await?.rows, outcome)),
            };
            let read = self.read_series(video, kind, step, buckets).await?;
            if !held.ready {
                return Ok((read.rows, Outcome::NotReady));
            }
            if held.is_empty() {
                return Ok((read.rows, Outcome::Fresh));
            }
            if read.unstamped {
                tracing::warn!(%video, "rows without last_offset or write time: the series from the rows alone");
                return Ok((read.rows, Outcome::Error));
            }
            match add_held_to_series(&held, step, buckets, &read) {
                Ok(Some(rows)) => return Ok((rows, Outcome::Fresh)),
                Ok(None) => {
                    tracing::warn!(%video, address = %owner.address, "owner answer overflows the series");
                    return Ok((read.rows, Outcome::Error));
                }
                Err(Stale::Replaced) => {
                    owners.forget(owner.partition);
                    return Ok((read.rows, Outcome::Replaced));
                }
                Err(Stale::Landed) if tries < 2 => {}
                Err(Stale::Landed) => return Ok((read.rows, Outcome::Landed)),
            }
        }
    }

    /// One clustering-range read of the series' buckets, timed, with each row's stamp.
    async fn read_series(
        &self,
        video: Uuid,
        kind: EventKind,
        step: Granularity,
        buckets: &[i64],
    ) -> Result<SeriesRead> {
        let (Some(&first), Some(&last), Some(width)) = (buckets.first(), buckets.last(), step.width_ms()) else {
            return Ok(SeriesRead { rows: Vec::new(), stamps: Vec::new(), unstamped: false });
        };
        let values = (video, kind.as_str(), step.as_str(), CqlTimestamp(first), CqlTimestamp(last + width));
        timed(step, async {
            let mut pager = self.session.execute_iter(self.rows.clone(), values).await?.rows_stream::<StatsRow>()?;
            let mut out = SeriesRead {
                rows: vec![(0, Some(Tally::EMPTY)); buckets.len()],
                stamps: vec![None; buckets.len()],
                unstamped: false,
            };
            while let Some(row) = pager.try_next().await? {
                if let Ok(i) = buckets.binary_search(&row.bucket.0) {
                    let tally = Tally::from_cells(
                        row.value_ts,
                        (row.events, row.events_ts),
                        (row.min_value, row.min_ts),
                        (row.max_value, row.max_ts),
                    );
                    out.rows[i] = (row.value.unwrap_or(0), tally);
                    if row.value.is_some() {
                        out.stamps[i] = row.last_offset.zip(row.value_ts).map(|(lo, ts)| RowStamp::new(lo, ts));
                        out.unstamped |= out.stamps[i].is_none();
                    }
                }
            }
            Ok(out)
        })
        .await
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
    /// concurrently; with owners, including what the series' owner holds.
    pub async fn count(&self, video: Uuid, kind: EventKind, spans: &[Span]) -> Result<i64> {
        let Some(owners) = self.owners.as_ref().filter(|_| !spans.is_empty()) else {
            return self.count_rows(video, kind, spans).await;
        };
        let (count, outcome) = self.count_fresh(owners, video, kind, spans).await?;
        OWNER_READS.counter_with(&[("outcome", outcome.as_str())]).increment(1);
        Ok(count)
    }

    /// The rows alone.
    async fn count_rows(&self, video: Uuid, kind: EventKind, spans: &[Span]) -> Result<i64> {
        if self.cache.is_some() {
            return Ok(self.stamped_spans(video, kind, spans).await?.iter().map(|s| s.sum).sum());
        }
        let sums = try_join_all(spans.iter().map(|s| self.sum_span(video, kind, *s))).await?;
        Ok(sums.into_iter().sum())
    }

    /// Each span's rows with their stamps (`read[i]` is `spans[i]`'s): with the
    /// cache, the all-time row first, then only the spans not kept at it.
    async fn stamped_spans(&self, video: Uuid, kind: EventKind, spans: &[Span]) -> Result<Vec<Arc<StampedSpan>>> {
        let Some(cache) = self.cache.as_ref() else {
            let read = try_join_all(spans.iter().map(|s| self.stamped_span(video, kind, *s))).await?;
            return Ok(read.into_iter().map(Arc::new).collect());
        };
        let validator = self.validator(video, kind).await?;
        let mut found = cache.get(video, kind, validator, spans);
        let missing: Vec<(usize, Span)> =
            spans.iter().enumerate().filter(|(i, _)| found[*i].is_none()).map(|(i, s)| (i, *s)).collect();
        let read = try_join_all(missing.iter().map(|(_, s)| async move {
            match s.granularity {
                // The all-time span is the validator itself.
                Granularity::Total => Ok(all_time_span(validator)),
                _ => self.stamped_span(video, kind, *s).await,
            }
        }))
        .await?;
        let mut fresh = Vec::with_capacity(read.len());
        for ((i, span), rows) in missing.into_iter().zip(read) {
            let rows = Arc::new(rows);
            found[i] = Some(rows.clone());
            fresh.push((span, rows));
        }
        cache.put(video, kind, validator, fresh);
        Ok(found.into_iter().map(|f| f.unwrap_or_default()).collect())
    }

    /// The series' all-time row as the cache's validator: one single-row read.
    async fn validator(&self, video: Uuid, kind: EventKind) -> Result<Validator> {
        timed(Granularity::Total, async {
            let values = (video, kind.as_str(), Granularity::Total.as_str(), CqlTimestamp(0));
            let rows = self.session.execute_unpaged(&self.all_time, values).await?.into_rows_result()?;
            Ok(rows.maybe_first_row::<AllTimeRow>()?.map(|r| (r.value, r.last_offset, r.value_ts)))
        })
        .await
    }

    /// Asks the owner first, then reads the rows and adds its answer; a round
    /// that landed in between asks again once.
    async fn count_fresh(
        &self,
        owners: &Owners,
        video: Uuid,
        kind: EventKind,
        spans: &[Span],
    ) -> Result<(i64, Outcome)> {
        let mut tries = 0;
        loop {
            tries += 1;
            let (held, owner) = match owners.ask(video, kind).await {
                Ok(answer) => answer,
                Err(outcome) => return Ok((self.count_rows(video, kind, spans).await?, outcome)),
            };
            if !held.ready {
                return Ok((self.count_rows(video, kind, spans).await?, Outcome::NotReady));
            }
            if held.is_empty() {
                return Ok((self.count_rows(video, kind, spans).await?, Outcome::Fresh));
            }
            let read = self.stamped_spans(video, kind, spans).await?;
            let rows: i64 = read.iter().map(|r| r.sum).sum();
            if read.iter().any(|r| r.unstamped()) {
                tracing::warn!(%video, "rows without last_offset or write time: counting from the rows alone");
                return Ok((rows, Outcome::Error));
            }
            match add_held(&held, spans, &read) {
                Ok(added) => {
                    let Some(count) = added.and_then(|a| rows.checked_add(a)) else {
                        tracing::warn!(%video, address = %owner.address, "owner answer overflows the count");
                        return Ok((rows, Outcome::Error));
                    };
                    return Ok((count, Outcome::Fresh));
                }
                Err(Stale::Replaced) => {
                    owners.forget(owner.partition);
                    return Ok((rows, Outcome::Replaced));
                }
                Err(Stale::Landed) if tries < 2 => {}
                Err(Stale::Landed) => return Ok((rows, Outcome::Landed)),
            }
        }
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

/// What `held` adds to the rows read for `spans` (`read[i]` is `spans[i]`'s);
/// `None` if it overflows (no real answer does).
fn add_held(held: &Held, spans: &[Span], read: &[Arc<StampedSpan>]) -> std::result::Result<Option<i64>, Stale> {
    let mut sum = Some(0i64);
    for (span, rows) in spans.iter().zip(read) {
        let delta = held.delta_for_span(span, |bucket| rows.stamp(bucket))?;
        sum = sum.and_then(|s| s.checked_add(delta.value));
    }
    Ok(sum)
}

/// The series' rows with what `held` adds to each bucket (only minutes within
/// it); `None` if a sum overflows (no real answer does).
fn add_held_to_series(
    held: &Held,
    step: Granularity,
    buckets: &[i64],
    read: &SeriesRead,
) -> std::result::Result<Option<Vec<BucketRow>>, Stale> {
    let Some(width) = step.width_ms() else { return Ok(Some(read.rows.clone())) };
    let mut out = read.rows.clone();
    for (i, &bucket) in buckets.iter().enumerate() {
        let delta = held.delta_for(step, bucket, (bucket, bucket + width), read.stamps[i])?;
        let (value, tally) = &mut out[i];
        let Some(sum) = value.checked_add(delta.value) else { return Ok(None) };
        *value = sum;
        *tally = tally.map(|t| t.merge(delta.tally));
    }
    Ok(Some(out))
}

/// The all-time span as its row, read as the validator.
fn all_time_span(validator: Validator) -> StampedSpan {
    match validator {
        Some((Some(value), last_offset, value_ts)) => StampedSpan {
            sum: value,
            stamps: vec![(0, last_offset.zip(value_ts).map(|(lo, ts)| RowStamp::new(lo, ts)))],
        },
        // A row without a sum holds none of the series' events: as good as absent.
        _ => StampedSpan::default(),
    }
}

/// The bound values of a span's clustering-range read.
fn span_values(
    video: Uuid,
    kind: EventKind,
    span: Span,
) -> (Uuid, &'static str, &'static str, CqlTimestamp, CqlTimestamp) {
    let (start, end) = match span.granularity {
        // The all-time row lives at bucket 0.
        Granularity::Total => (0, 1),
        _ => (span.start, span.end),
    };
    (video, kind.as_str(), span.granularity.as_str(), CqlTimestamp(start), CqlTimestamp(end))
}

/// Times a range read by granularity and counts its failure.
async fn timed<T>(granularity: Granularity, read: impl Future<Output = Result<T>>) -> Result<T> {
    let started = Instant::now();
    let result = read.await;
    CASSANDRA_READ_DURATION
        .histogram_with(&[("granularity", granularity.as_str())])
        .record(started.elapsed().as_secs_f64());
    if result.is_err() {
        CASSANDRA_ERRORS.counter_with(&[("op", OP_READ)]).increment(1);
    }
    result
}
