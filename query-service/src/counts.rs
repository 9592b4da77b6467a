//! Time-ranged counts: read the rollup rows that `counting::plan_range` picks and
//! add them up. At most five clustering-range reads, run concurrently.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use counting::range::describe;
use counting::{EventKind, Granularity, Span, plan_range};
use futures::future::try_join_all;
use platform::http::Problem;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use serde::Serialize;
use uuid::Uuid;

pub struct CountStore {
    session: Arc<Session>,
    range: PreparedStatement,
    rows: PreparedStatement,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewsCount {
    pub video_id: Uuid,
    /// Effective bounds after truncation to the minute; `null` for all time.
    pub from: Option<String>,
    pub to: Option<String>,
    pub views: i64,
    pub granularity: String,
}

impl CountStore {
    pub async fn new(session: Arc<Session>, keyspace: &str) -> anyhow::Result<Self> {
        describe_metrics();
        let mut range = session
            .prepare(format!(
                "SELECT value FROM {keyspace}.rollups \
                 WHERE video_id = ? AND event_type = ? AND granularity = ? AND bucket >= ? AND bucket < ?"
            ))
            .await?;
        range.set_is_idempotent(true);
        let mut rows = session
            .prepare(format!(
                "SELECT bucket, value FROM {keyspace}.rollups \
                 WHERE video_id = ? AND event_type = ? AND granularity = ? AND bucket >= ? AND bucket < ?"
            ))
            .await?;
        rows.set_is_idempotent(true);
        Ok(Self { session, range, rows })
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// One clustering-range read, timed and counted by granularity.
    async fn sum_span(&self, video: Uuid, kind: EventKind, span: Span) -> anyhow::Result<i64> {
        let started = Instant::now();
        let result = self.read_span(video, kind, span).await;
        let granularity = span.granularity.as_str();
        metrics::histogram!("query_cassandra_read_duration_seconds", "granularity" => granularity)
            .record(started.elapsed().as_secs_f64());
        if result.is_err() {
            metrics::counter!("query_cassandra_errors_total", "op" => "read").increment(1);
        }
        result
    }

    async fn read_span(&self, video: Uuid, kind: EventKind, span: Span) -> anyhow::Result<i64> {
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
            .rows_stream::<(Option<i64>,)>()?;
        let mut sum = 0i64;
        use futures::TryStreamExt;
        while let Some((v,)) = pager.try_next().await? {
            sum += v.unwrap_or(0);
        }
        Ok(sum)
    }

    /// The value of each bucket in `buckets` (ascending, one `step` apart) for
    /// `video` and `kind`: one clustering-range read, zeros where no row exists.
    pub async fn series(
        &self,
        video: Uuid,
        kind: EventKind,
        step: Granularity,
        buckets: &[i64],
    ) -> anyhow::Result<Vec<i64>> {
        use futures::TryStreamExt;
        let (Some(&first), Some(&last), Some(width)) = (buckets.first(), buckets.last(), step.width_ms()) else {
            return Ok(Vec::new());
        };
        let started = Instant::now();
        let values = (video, kind.as_str(), step.as_str(), CqlTimestamp(first), CqlTimestamp(last + width));
        let read = async {
            let mut pager = self
                .session
                .execute_iter(self.rows.clone(), values)
                .await?
                .rows_stream::<(CqlTimestamp, Option<i64>)>()?;
            let mut out = vec![0i64; buckets.len()];
            while let Some((bucket, value)) = pager.try_next().await? {
                if let Ok(i) = buckets.binary_search(&bucket.0) {
                    out[i] = value.unwrap_or(0);
                }
            }
            anyhow::Ok(out)
        };
        let result = read.await;
        metrics::histogram!("query_cassandra_read_duration_seconds", "granularity" => step.as_str())
            .record(started.elapsed().as_secs_f64());
        if result.is_err() {
            metrics::counter!("query_cassandra_errors_total", "op" => "read").increment(1);
        }
        result
    }

    /// All-time count of `kind` for `video` (its total row).
    pub async fn total(&self, video: Uuid, kind: EventKind) -> Result<i64, Problem> {
        self.count(video, kind, None).await.map(|(n, _)| n).map_err(store_error)
    }

    /// Count of `kind` for `video` in `[from, to)` (minute resolution), or all time.
    pub async fn count(
        &self,
        video: Uuid,
        kind: EventKind,
        range: Option<(i64, i64)>,
    ) -> anyhow::Result<(i64, Vec<Span>)> {
        let spans = match range {
            None => vec![Span { granularity: Granularity::Total, start: 0, end: 0 }],
            Some((from, to)) => plan_range(from, to),
        };
        let sums = try_join_all(spans.iter().map(|s| self.sum_span(video, kind, *s))).await?;
        Ok((sums.into_iter().sum(), spans))
    }
}

fn describe_metrics() {
    let _ = platform::telemetry::metrics_handle();
    metrics::describe_histogram!(
        "query_cassandra_read_duration_seconds",
        metrics::Unit::Seconds,
        "One rollup range read from Cassandra (all its pages), by granularity; failed reads included"
    );
    metrics::describe_counter!(
        "query_cassandra_errors_total",
        metrics::Unit::Count,
        "Failed Cassandra requests, by op"
    );
    // Registered at zero: a counter that first appears at 1 hides that increment from `increase()`.
    metrics::counter!("query_cassandra_errors_total", "op" => "read").increment(0);
}

/// The answer when rollups cannot be read; the cause stays in the log.
pub fn store_error(e: impl std::fmt::Display) -> Problem {
    tracing::error!(error = %e, "count query failed");
    Problem::unavailable("the count store is not answering; retry later", 1)
}

pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn parse_time(field: &str, s: &str) -> Result<i64, Problem> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
        .map_err(|_| Problem::invalid(field, format!("{s:?} is not an RFC 3339 timestamp")))
}

/// Resolves optional `from`/`to` into a range, or `None` for all time.
/// A missing `from` means the beginning; a missing `to` means now (this minute included).
pub fn resolve_range(
    from: Option<&str>,
    to: Option<&str>,
    now_ms: i64,
    minute_retention_secs: u64,
) -> Result<Option<(i64, i64)>, Problem> {
    if from.is_none() && to.is_none() {
        return Ok(None);
    }
    let from_ms = from.map(|s| parse_time("from", s)).transpose()?.unwrap_or(0);
    let to_ms = match to {
        Some(s) => parse_time("to", s)?,
        None => counting::time::floor_to(now_ms, counting::time::MINUTE_MS) + counting::time::MINUTE_MS,
    };
    if from_ms > to_ms {
        return Err(Problem::invalid("from", "must not be after `to`"));
    }
    let oldest_minute = now_ms - (minute_retention_secs as i64) * 1000;
    for span in plan_range(from_ms, to_ms) {
        if span.granularity == Granularity::Minute && span.start < oldest_minute {
            let field =
                if span.start == counting::time::floor_to(from_ms, counting::time::MINUTE_MS) { "from" } else { "to" };
            return Err(Problem::invalid(field, "needs minute rows older than their retention; align it to the hour"));
        }
    }
    Ok(Some((from_ms, to_ms)))
}

impl ViewsCount {
    pub fn new(video_id: Uuid, range: Option<(i64, i64)>, views: i64, spans: &[Span]) -> Self {
        let minute = counting::time::MINUTE_MS;
        let granularity = match range {
            None => "total".to_owned(),
            Some(_) if spans.is_empty() => "none".to_owned(),
            Some(_) => describe(spans),
        };
        Self {
            video_id,
            from: range.map(|(f, _)| rfc3339(counting::time::floor_to(f, minute))),
            to: range.map(|(_, t)| rfc3339(counting::time::floor_to(t, minute))),
            views,
            granularity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_710_028_800_000 + 12 * 3_600_000; // 2024-03-10T12:00:00Z

    #[test]
    fn ranges_resolve_or_name_the_bad_field() {
        assert_eq!(resolve_range(None, None, NOW, 86_400).unwrap(), None);
        let r = resolve_range(Some("2024-03-10T11:00:30Z"), None, NOW, 86_400).unwrap().unwrap();
        assert_eq!(r, (NOW - 3_600_000 + 30_000, NOW + 60_000));
        let p = resolve_range(Some("noon"), None, NOW, 86_400).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("from"));
        let p = resolve_range(Some("2024-03-10T11:00:00Z"), Some("2024-03-10T10:00:00Z"), NOW, 86_400).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("from"));
        // Minute rows of two days ago have expired with a one-day retention...
        let p = resolve_range(Some("2024-03-08T10:17:00Z"), None, NOW, 86_400).unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (422, Some("from")));
        // ...but hour-aligned edges need none of them.
        assert!(resolve_range(Some("2024-03-08T10:00:00Z"), None, NOW, 86_400).is_ok());
    }

    #[test]
    fn answers_echo_the_effective_range() {
        let spans = plan_range(NOW - 90_000, NOW);
        let c = ViewsCount::new(Uuid::nil(), Some((NOW - 90_000, NOW + 5)), 3, &spans);
        assert_eq!(c.from.as_deref(), Some("2024-03-10T11:58:00Z"));
        assert_eq!(c.to.as_deref(), Some("2024-03-10T12:00:00Z"));
        assert_eq!(c.granularity, "minute");
        assert_eq!(ViewsCount::new(Uuid::nil(), None, 3, &[]).granularity, "total");
    }
}
