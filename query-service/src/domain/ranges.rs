//! Counts: time ranges as the counts API reads them, and what an answer says about
//! the rows that made it. A range is truncated to the minute; `counting::plan_range`
//! picks the coarsest rollup rows that tile it; an edge that would need minute
//! rows older than their retention is refused (422) rather than answered short.

use chrono::{DateTime, SecondsFormat, Utc};
use counting::range::describe;
use counting::{Granularity, Span, plan_range};
use platform::http::Problem;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// getViewsCount's answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ViewsCount {
    pub video_id: Uuid,
    /// Effective start after truncation to the minute; `null` for all time.
    pub from: Option<DateTime<Utc>>,
    /// Effective end (exclusive); `null` for all time.
    pub to: Option<DateTime<Utc>>,
    pub views: i64,
    /// The rollups that answered, e.g. `day+hour+minute`; `total` for all time.
    pub granularity: String,
}

/// Most buckets one series may have: a day of minutes, two months of hours.
pub const MAX_POINTS: usize = 1440;

pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A time in milliseconds as a `DateTime` (answers serialize it as RFC 3339).
pub fn at(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
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
            from: range.map(|(f, _)| at(counting::time::floor_to(f, minute))),
            to: range.map(|(_, t)| at(counting::time::floor_to(t, minute))),
            views,
            granularity,
        }
    }
}

/// The buckets of a series over `[from_ms, to_ms)` with width `step` (floored and
/// ceiled to the step), or a 422 naming the field at fault: `to` not after
/// `from`, more than [`MAX_POINTS`] buckets, or minute buckets past their retention.
pub fn plan_series(
    from_ms: i64,
    to_ms: i64,
    step: Granularity,
    now_ms: i64,
    minute_retention_secs: u64,
) -> Result<Vec<i64>, Problem> {
    if to_ms <= from_ms {
        return Err(Problem::invalid("to", "must be after `from`"));
    }
    // Counted before any bucket is made: a range from year 1 to 9999 in minutes is
    // 5·10⁹ buckets, and building them first would take the service down.
    let width = i128::from(step.width_ms().expect("a step has a width"));
    let n = (i128::from(to_ms) + width - 1).div_euclid(width) - i128::from(from_ms).div_euclid(width);
    if n > MAX_POINTS as i128 {
        return Err(Problem::invalid(
            "step",
            format!("{n} points; at most {MAX_POINTS}: use a coarser step or a shorter range"),
        ));
    }
    let buckets = counting::series::buckets(from_ms, to_ms, step)
        .ok_or_else(|| Problem::invalid("to", "must be after `from`"))?;
    let oldest_minute = now_ms - (minute_retention_secs as i64) * 1000;
    if step == Granularity::Minute && buckets[0] < counting::time::floor_to(oldest_minute, counting::time::MINUTE_MS) {
        return Err(Problem::invalid("from", "minute rows that old have expired; use step=hour"));
    }
    Ok(buckets)
}

/// A series' step from the query: minute, hour or day.
pub fn parse_step(raw: &str) -> Result<Granularity, Problem> {
    match Granularity::parse(raw) {
        Some(g) if g != Granularity::Total => Ok(g),
        _ => Err(Problem::invalid("step", "must be minute, hour or day")),
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
    fn series_are_counted_before_they_are_built() {
        let year_1 = -62_135_596_800_000;
        let year_9999 = 253_402_300_799_000;
        let p = plan_series(year_1, year_9999, Granularity::Minute, NOW, 86_400).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("step"));
        assert!(p.detail.contains("points"), "{}", p.detail);
        let day = 86_400_000;
        assert_eq!(plan_series(NOW - day, NOW, Granularity::Minute, NOW, 86_400).unwrap().len(), 1440);
        assert_eq!(
            plan_series(NOW - day - 1, NOW, Granularity::Minute, NOW, 86_400).unwrap_err().field.as_deref(),
            Some("step")
        );
        assert_eq!(plan_series(NOW, NOW, Granularity::Hour, NOW, 86_400).unwrap_err().field.as_deref(), Some("to"));
    }

    #[test]
    fn answers_echo_the_effective_range() {
        let spans = plan_range(NOW - 90_000, NOW);
        let c = ViewsCount::new(Uuid::nil(), Some((NOW - 90_000, NOW + 5)), 3, &spans);
        assert_eq!(
            c.from.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)).as_deref(),
            Some("2024-03-10T11:58:00Z")
        );
        assert_eq!(c.to.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)).as_deref(), Some("2024-03-10T12:00:00Z"));
        assert_eq!(c.granularity, "minute");
        assert_eq!(ViewsCount::new(Uuid::nil(), None, 3, &[]).granularity, "total");
    }
}
