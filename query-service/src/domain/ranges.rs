//! Counts: time ranges as the counts API reads them, and what an answer says about
//! the rows that made it.
//!
//! A range is planned by `counting::plan` with the rows the retention still keeps
//! (the aggregator's own `retention` section, so both sides do the same
//! arithmetic): any reasonable range is answered, at the finest rows still kept,
//! never silently short. When an edge had to move (to the minute, or further where
//! the finer rows have expired), the answer's `from`/`to` are the effective bounds,
//! `coverage` says whether they are the asked range, a wider one or (past the day
//! rows) a narrower one, `adjustments` says which edge moved and why, and `spans`
//! which rows answered. A series has no coarser fallback for a bucket, so an
//! explicit step the retention or the point cap cannot serve is a 422; without a
//! step the finest that can is chosen.

use chrono::{DateTime, SecondsFormat, Utc};
use counting::range::describe;
use counting::series::{MAX_POINTS, SeriesError, SeriesPlan};
use counting::{AllExpired, Granularity, Moved, Plan, Retention, Span, plan};
use platform::http::Problem;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// getViewsCount's answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ViewsCount {
    pub video_id: Uuid,
    /// Effective start, inclusive: the range `views` counts; `null` for all time.
    pub from: Option<DateTime<Utc>>,
    /// Effective end, exclusive; `null` for all time.
    pub to: Option<DateTime<Utc>>,
    pub views: i64,
    /// The rollups that answered, coarsest first, e.g. `day+hour+minute`; `total`
    /// for all time, `none` for an empty range.
    pub granularity: String,
    #[serde(flatten)]
    pub resolution: Resolution,
}

/// What an answer says about its range and the rows that answered it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resolution {
    /// How the effective range relates to the one asked for.
    pub coverage: Coverage,
    /// Each edge that moved, and why; empty when `coverage` is `exact`.
    pub adjustments: Vec<Adjustment>,
    /// The rows that answered: consecutive spans, each read from one rollup
    /// granularity, tiling `[from, to)`. Empty for all time (the all-time row
    /// answers) and for an empty range.
    pub spans: Vec<RowSpan>,
}

/// How an answer's effective range relates to the range asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Coverage {
    /// `from` and `to` are the bounds asked for (or all time): the count is the
    /// count of that range.
    Exact,
    /// The effective range contains the asked one and more (an edge moved out to
    /// the rows that are kept): the count includes events just outside it.
    Widened,
    /// Rows before the effective `from` have expired at every granularity: events
    /// of the asked range before it are not counted.
    Narrowed,
}

/// An edge of the range that moved.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Adjustment {
    pub edge: Edge,
    /// The bound asked for; `null` when omitted (`from`: the beginning).
    pub requested: Option<DateTime<Utc>>,
    /// The bound the answer is for (the answer's own `from` or `to`).
    pub effective: DateTime<Utc>,
    pub reason: Reason,
    /// The reason in words, with the retention and the oldest row still kept.
    pub note: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Edge {
    From,
    To,
}

/// Why an edge moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Out to the whole minute: no rollup is finer.
    MinuteAlignment,
    /// Out to the whole bucket of the series' step.
    StepAlignment,
    /// Out to the whole hour: the minute rows there have expired.
    MinuteRowsExpired,
    /// Out to the whole UTC day: the minute and hour rows there have expired.
    HourRowsExpired,
    /// `from` in to the oldest day still kept: every row before it has expired.
    DayRowsExpired,
}

/// Rows of one granularity that answered part of a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct RowSpan {
    pub granularity: Level,
    /// First bucket read, inclusive.
    pub from: DateTime<Utc>,
    /// End of the last bucket read, exclusive.
    pub to: DateTime<Utc>,
}

/// A rollup granularity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Minute,
    Hour,
    Day,
}

impl Level {
    fn of(g: Granularity) -> Self {
        match g {
            Granularity::Minute => Self::Minute,
            Granularity::Hour => Self::Hour,
            // The all-time row is never a span of a range.
            Granularity::Day | Granularity::Total => Self::Day,
        }
    }
}

pub fn rfc3339(ms: i64) -> String {
    at(ms).to_rfc3339_opts(SecondsFormat::Secs, true)
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

/// A retention in words: `8 days`, `40 s`.
pub fn duration(secs: u64) -> String {
    match secs {
        0 => "forever".to_owned(),
        s if s % 86_400 == 0 => format!("{} day{}", s / 86_400, if s == 86_400 { "" } else { "s" }),
        s if s % 3_600 == 0 => format!("{} h", s / 3_600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// A range to count, as planned: all time, or the rows of an effective range.
#[derive(Debug)]
pub enum CountRange {
    AllTime,
    Range {
        /// The bounds asked for (`None`: omitted).
        asked: (Option<i64>, Option<i64>),
        plan: Plan,
        /// Oldest buckets kept when planned, and the settings, for the notes.
        kept: counting::Horizons,
        retention: Retention,
    },
}

/// Resolves optional `from`/`to` into a planned range, or all time when both are
/// missing. A missing `from` means the beginning; a missing `to` means now (this
/// minute included). Only a range wholly older than every kept row is refused.
pub fn resolve_range(
    from: Option<&str>,
    to: Option<&str>,
    now_ms: i64,
    retention: &Retention,
) -> Result<CountRange, Problem> {
    if from.is_none() && to.is_none() {
        return Ok(CountRange::AllTime);
    }
    let asked_from = from.map(|s| parse_time("from", s)).transpose()?;
    let asked_to = to.map(|s| parse_time("to", s)).transpose()?;
    let from_ms = asked_from.unwrap_or(0);
    let to_ms = asked_to
        .unwrap_or_else(|| counting::time::floor_to(now_ms, counting::time::MINUTE_MS) + counting::time::MINUTE_MS);
    if from_ms > to_ms {
        return Err(Problem::invalid("from", "must not be after `to`"));
    }
    let kept = retention.horizons(now_ms);
    match plan(from_ms, to_ms, &kept) {
        Ok(plan) => Ok(CountRange::Range { asked: (asked_from, asked_to), plan, kept, retention: retention.clone() }),
        Err(AllExpired { oldest_kept }) => Err(Problem::invalid(
            "to",
            format!(
                "rows before {} have expired at every granularity (day rows live {} after their day): \
                 nothing in this range is kept",
                rfc3339(oldest_kept),
                duration(retention.day_secs)
            ),
        )),
    }
}

impl CountRange {
    /// The rows to read.
    pub fn spans(&self) -> Vec<Span> {
        match self {
            Self::AllTime => vec![Span { granularity: Granularity::Total, start: 0, end: 0 }],
            Self::Range { plan, .. } => plan.spans.clone(),
        }
    }

    /// The effective bounds; `None` for all time.
    pub fn bounds(&self) -> Option<(i64, i64)> {
        match self {
            Self::AllTime => None,
            Self::Range { plan, .. } => Some((plan.from, plan.to)),
        }
    }

    pub fn granularity(&self) -> String {
        match self {
            Self::AllTime => "total".to_owned(),
            Self::Range { plan, .. } if plan.spans.is_empty() => "none".to_owned(),
            Self::Range { plan, .. } => describe(&plan.spans),
        }
    }

    pub fn resolution(&self) -> Resolution {
        let Self::Range { asked, plan, kept, retention } = self else {
            return Resolution { coverage: Coverage::Exact, adjustments: Vec::new(), spans: Vec::new() };
        };
        let note = |moved: Moved, edge: Edge| match moved {
            Moved::MinuteAlignment if edge == Edge::From => "rounded down to the minute: no rollup is finer".to_owned(),
            Moved::MinuteAlignment => "rounded up to the minute: no rollup is finer".to_owned(),
            Moved::MinuteRowsExpired => format!(
                "minute rows live {} after their minute and those before {} have expired: the hour row answers here",
                duration(retention.minute_secs),
                rfc3339(kept.minute)
            ),
            Moved::HourRowsExpired => format!(
                "minute and hour rows here have expired (hour rows live {}; the oldest kept starts at {}): \
                 the day row answers here",
                duration(retention.hour_secs),
                rfc3339(kept.hour)
            ),
            Moved::DayRowsExpired => format!(
                "rows before {} have expired at every granularity (day rows live {} after their day): \
                 views before it are not counted",
                rfc3339(kept.day),
                duration(retention.day_secs)
            ),
        };
        let reason = |moved: Moved| match moved {
            Moved::MinuteAlignment => Reason::MinuteAlignment,
            Moved::MinuteRowsExpired => Reason::MinuteRowsExpired,
            Moved::HourRowsExpired => Reason::HourRowsExpired,
            Moved::DayRowsExpired => Reason::DayRowsExpired,
        };
        let mut adjustments = Vec::new();
        for (edge, moved, requested, effective) in
            [(Edge::From, plan.from_moved, asked.0, plan.from), (Edge::To, plan.to_moved, asked.1, plan.to)]
        {
            if let Some(moved) = moved {
                adjustments.push(Adjustment {
                    edge,
                    requested: requested.map(at),
                    effective: at(effective),
                    reason: reason(moved),
                    note: note(moved, edge),
                });
            }
        }
        let coverage = if plan.from_moved == Some(Moved::DayRowsExpired) {
            Coverage::Narrowed
        } else if adjustments.is_empty() {
            Coverage::Exact
        } else {
            Coverage::Widened
        };
        let spans = plan
            .spans
            .iter()
            .map(|s| RowSpan { granularity: Level::of(s.granularity), from: at(s.start), to: at(s.end) })
            .collect();
        Resolution { coverage, adjustments, spans }
    }
}

impl ViewsCount {
    pub fn new(video_id: Uuid, range: &CountRange, views: i64) -> Self {
        let bounds = range.bounds();
        Self {
            video_id,
            from: bounds.map(|(f, _)| at(f)),
            to: bounds.map(|(_, t)| at(t)),
            views,
            granularity: range.granularity(),
            resolution: range.resolution(),
        }
    }
}

/// The buckets of a series over `[from_ms, to_ms)` (floored and ceiled to the
/// step), at `step` or, without one, the finest step that fits; or a 422 naming
/// the field at fault: `to` not after `from`, more than [`MAX_POINTS`] buckets, or
/// buckets whose rows have expired.
pub fn plan_series(
    from_ms: i64,
    to_ms: i64,
    step: Option<Granularity>,
    now_ms: i64,
    retention: &Retention,
) -> Result<SeriesPlan, Problem> {
    let kept = retention.horizons(now_ms);
    counting::series::plan_series(from_ms, to_ms, step, &kept).map_err(|e| match (e, step) {
        (SeriesError::Empty, _) => Problem::invalid("to", "must be after `from`"),
        (SeriesError::TooManyPoints { points, .. }, Some(_)) => Problem::invalid(
            "step",
            format!("{points} points; at most {MAX_POINTS}: use a coarser step or a shorter range"),
        ),
        (SeriesError::TooManyPoints { points, .. }, None) => Problem::invalid(
            "from",
            format!("{points} days; a series has at most {MAX_POINTS} buckets: use a shorter range"),
        ),
        (SeriesError::Expired { step: g, oldest_kept }, Some(_)) => Problem::invalid(
            "from",
            format!(
                "{} rows before {} have expired: use a coarser step, or omit it for the finest that fits",
                g.as_str(),
                rfc3339(oldest_kept)
            ),
        ),
        (SeriesError::Expired { oldest_kept, .. }, None) => {
            Problem::invalid("from", format!("rows before {} have expired at every granularity", rfc3339(oldest_kept)))
        }
    })
}

/// What a series answer says about its range: its buckets are whole steps, so
/// each ragged edge moved out to the step; the series' rows are all of the step.
pub fn series_resolution(asked: (i64, i64), series: &SeriesPlan) -> Resolution {
    let width = series.step.width_ms().expect("a step has a width");
    let (from, to) = (series.buckets[0], series.buckets[series.buckets.len() - 1] + width);
    let note = format!("a series has whole buckets of its step ({})", series.step.as_str());
    let adjustments: Vec<Adjustment> = [(Edge::From, asked.0, from), (Edge::To, asked.1, to)]
        .into_iter()
        .filter(|(_, requested, effective)| requested != effective)
        .map(|(edge, requested, effective)| Adjustment {
            edge,
            requested: Some(at(requested)),
            effective: at(effective),
            reason: Reason::StepAlignment,
            note: note.clone(),
        })
        .collect();
    Resolution {
        coverage: if adjustments.is_empty() { Coverage::Exact } else { Coverage::Widened },
        adjustments,
        spans: vec![RowSpan { granularity: Level::of(series.step), from: at(from), to: at(to) }],
    }
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

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;
    const NOW: i64 = 1_710_028_800_000 + 12 * HOUR; // 2024-03-10T12:00:00Z

    fn one_day_of_minutes() -> Retention {
        Retention { minute_secs: 86_400, ..Retention::default() }
    }

    fn json(c: &ViewsCount) -> serde_json::Value {
        serde_json::to_value(c).unwrap()
    }

    #[test]
    fn ranges_resolve_or_name_the_bad_field() {
        let r = one_day_of_minutes();
        assert!(matches!(resolve_range(None, None, NOW, &r).unwrap(), CountRange::AllTime));
        let range = resolve_range(Some("2024-03-10T11:00:30Z"), None, NOW, &r).unwrap();
        assert_eq!(range.bounds(), Some((NOW - HOUR, NOW + 60_000)));
        let p = resolve_range(Some("noon"), None, NOW, &r).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("from"));
        let p = resolve_range(Some("2024-03-10T11:00:00Z"), Some("2024-03-10T10:00:00Z"), NOW, &r).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("from"));
        // Wholly older than the day rows: nothing to answer with.
        let r30 = Retention { hour_secs: 10 * 86_400, day_secs: 30 * 86_400, ..r.clone() };
        let p = resolve_range(Some("2024-01-01T00:00:00Z"), Some("2024-01-02T00:00:00Z"), NOW, &r30).unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (422, Some("to")));
        assert!(p.detail.contains("2024-02-09T00:00:00Z"), "{}", p.detail);
    }

    #[test]
    fn an_expired_edge_is_answered_wider_and_says_so() {
        // Minute rows of two days ago have expired with a one-day retention: the
        // hour row answers, and the answer says which edge moved and why.
        let range = resolve_range(Some("2024-03-08T10:17:00Z"), None, NOW, &one_day_of_minutes()).unwrap();
        let c = json(&ViewsCount::new(Uuid::nil(), &range, 7));
        assert_eq!(c["from"], "2024-03-08T10:00:00Z");
        assert_eq!(c["to"], "2024-03-10T12:01:00Z");
        assert_eq!(c["coverage"], "widened");
        assert_eq!(c["granularity"], "day+hour+minute");
        let adj = c["adjustments"].as_array().unwrap();
        assert_eq!(adj.len(), 1, "{c}");
        assert_eq!((&adj[0]["edge"], &adj[0]["reason"]), (&"from".into(), &"minute_rows_expired".into()));
        assert_eq!(adj[0]["requested"], "2024-03-08T10:17:00Z");
        assert!(adj[0]["note"].as_str().unwrap().contains("1 day"), "{c}");
        let spans: Vec<(&str, &str, &str)> = c["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["granularity"].as_str().unwrap(), s["from"].as_str().unwrap(), s["to"].as_str().unwrap()))
            .collect();
        assert_eq!(
            spans,
            [
                ("hour", "2024-03-08T10:00:00Z", "2024-03-09T00:00:00Z"),
                ("day", "2024-03-09T00:00:00Z", "2024-03-10T00:00:00Z"),
                ("hour", "2024-03-10T00:00:00Z", "2024-03-10T12:00:00Z"),
                ("minute", "2024-03-10T12:00:00Z", "2024-03-10T12:01:00Z"),
            ]
        );
        // Hour-aligned edges need no minute rows: exact.
        let range = resolve_range(Some("2024-03-08T10:00:00Z"), None, NOW, &one_day_of_minutes()).unwrap();
        let c = json(&ViewsCount::new(Uuid::nil(), &range, 7));
        assert_eq!((&c["coverage"], c["adjustments"].as_array().unwrap().len()), (&"exact".into(), 0));
    }

    #[test]
    fn past_the_day_rows_the_answer_is_narrowed() {
        let r = Retention { hour_secs: 10 * 86_400, day_secs: 30 * 86_400, ..one_day_of_minutes() };
        let range = resolve_range(None, Some("2024-03-01T00:00:00Z"), NOW, &r).unwrap();
        let c = json(&ViewsCount::new(Uuid::nil(), &range, 7));
        assert_eq!((&c["coverage"], &c["from"]), (&"narrowed".into(), &"2024-02-09T00:00:00Z".into()));
        let adj = &c["adjustments"][0];
        assert_eq!((&adj["requested"], &adj["reason"]), (&serde_json::Value::Null, &"day_rows_expired".into()));
    }

    #[test]
    fn answers_echo_the_effective_range() {
        let range =
            resolve_range(Some("2024-03-10T11:58:30Z"), Some("2024-03-10T12:00:00.005Z"), NOW, &one_day_of_minutes())
                .unwrap();
        let c = json(&ViewsCount::new(Uuid::nil(), &range, 3));
        assert_eq!((&c["from"], &c["to"]), (&"2024-03-10T11:58:00Z".into(), &"2024-03-10T12:01:00Z".into()));
        assert_eq!((&c["granularity"], &c["coverage"]), (&"minute".into(), &"widened".into()));
        let reasons: Vec<_> = c["adjustments"].as_array().unwrap().iter().map(|a| a["reason"].clone()).collect();
        assert_eq!(reasons, ["minute_alignment", "minute_alignment"]);
        assert_eq!(c["adjustments"][1]["requested"], "2024-03-10T12:00:00.005Z");
        let all = json(&ViewsCount::new(Uuid::nil(), &CountRange::AllTime, 3));
        assert_eq!(
            (&all["granularity"], &all["coverage"], &all["from"]),
            (&"total".into(), &"exact".into(), &serde_json::Value::Null)
        );
    }

    #[test]
    fn series_name_the_field_at_fault() {
        let r = one_day_of_minutes();
        let year_1 = -62_135_596_800_000;
        let year_9999 = 253_402_300_799_000;
        let p = plan_series(year_1, year_9999, Some(Granularity::Minute), NOW, &r).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("step"));
        assert!(p.detail.contains("points"), "{}", p.detail);
        assert_eq!(plan_series(year_1, year_9999, None, NOW, &r).unwrap_err().field.as_deref(), Some("from"));
        assert_eq!(plan_series(NOW - DAY + HOUR, NOW, Some(Granularity::Minute), NOW, &r).unwrap().buckets.len(), 1380);
        let p = plan_series(NOW - 2 * DAY, NOW - 2 * DAY + HOUR, Some(Granularity::Minute), NOW, &r).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("from"));
        assert_eq!(plan_series(NOW, NOW, Some(Granularity::Hour), NOW, &r).unwrap_err().field.as_deref(), Some("to"));
        // Without a step, the finest that fits: hours, as the minutes expired.
        let s = plan_series(NOW - 2 * DAY, NOW - 2 * DAY + HOUR + 1, None, NOW, &r).unwrap();
        assert_eq!((s.step, s.buckets.len()), (Granularity::Hour, 2));
        let res = serde_json::to_value(series_resolution((NOW - 2 * DAY, NOW - 2 * DAY + HOUR + 1), &s)).unwrap();
        assert_eq!(res["coverage"], "widened");
        assert_eq!(res["adjustments"][0]["edge"], "to");
        assert_eq!(res["adjustments"][0]["reason"], "step_alignment");
        assert_eq!(res["spans"][0]["granularity"], "hour");
    }
}
