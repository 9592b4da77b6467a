//! Distinct viewers over a range: which viewer sketches answer it, and what the
//! answer says about them.
//!
//! Sketches exist per (video, hour) and (video, UTC day) (migration 012), so a
//! range is tiled like the counts are (`counting::plan`) with no minute level: both
//! edges move out to the hour, and where the hour sketches there have expired (the
//! rollups' `retention.hour_secs`, which the aggregator's sketch TTLs follow), to
//! the day; past the day retention `from` moves in to the oldest kept day. The
//! answer states the effective bounds, each edge that moved and why, and the
//! spans that answered. Distinct counts do not add up, so the sketches of the
//! spans are unioned, never summed.
//!
//! Cost is bounded before anything is read: a range needing more than
//! [`MAX_SKETCHES`] sketches (a bit over a year of days) is a 422 naming `from`.

use chrono::{DateTime, Utc};
use counting::time::{HOUR_MS, ceil_to, floor_to};
use counting::viewers::Estimate;
use counting::{AllExpired, Granularity, Horizons, Plan, Retention, Span, plan};
use platform::http::Problem;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::ranges::{Coverage, Edge, Level, RowSpan, at, duration, parse_time, rfc3339};

/// Most sketches one answer reads (each at most about 4 KiB): 366 days and the
/// hours at both edges fit.
pub const MAX_SKETCHES: usize = 420;

/// A planned viewers range: the spans and the bounds asked for.
#[derive(Debug)]
pub struct ViewersRange {
    pub asked: (i64, Option<i64>),
    pub plan: Plan,
    pub kept: Horizons,
    pub retention: Retention,
}

impl ViewersRange {
    /// Sketches the plan reads.
    pub fn sketches(&self) -> usize {
        sketches(&self.plan.spans)
    }
}

fn sketches(spans: &[Span]) -> usize {
    spans.iter().map(|s| ((s.end - s.start) / s.granularity.width_ms().unwrap_or(1)) as usize).sum()
}

/// Plans `from` (required) to `to` (default: now, this hour included) with the
/// sketches the retention keeps, refusing more than [`MAX_SKETCHES`].
pub fn resolve(
    from: Option<&str>,
    to: Option<&str>,
    now_ms: i64,
    retention: &Retention,
) -> Result<ViewersRange, Problem> {
    let from = from.ok_or_else(|| Problem::invalid("from", "required: distinct viewers are counted over a range"))?;
    let from_ms = parse_time("from", from)?;
    let asked_to = to.map(|s| parse_time("to", s)).transpose()?;
    let to_ms = asked_to.unwrap_or_else(|| ceil_to(now_ms + 1, HOUR_MS));
    if from_ms > to_ms {
        return Err(Problem::invalid("from", "must not be after `to`"));
    }
    // No sketch is finer than an hour: to `plan`, every minute row has expired.
    let kept = Horizons { minute: i64::MAX, ..retention.horizons(now_ms) };
    let plan = plan(from_ms, to_ms, &kept).map_err(|AllExpired { oldest_kept }| {
        Problem::invalid(
            "to",
            format!("every viewer sketch of the range has expired; the oldest kept starts at {}", rfc3339(oldest_kept)),
        )
    })?;
    let n = sketches(&plan.spans);
    if n > MAX_SKETCHES {
        return Err(Problem::invalid(
            "from",
            format!(
                "the range needs {n} viewer sketches, more than the {MAX_SKETCHES} one answer reads; ask for a shorter range"
            ),
        ));
    }
    Ok(ViewersRange { asked: (from_ms, asked_to), plan, kept, retention: retention.clone() })
}

/// The distinct-viewers answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ViewersCount {
    pub video_id: Uuid,
    /// Effective start, inclusive (see `adjustments`).
    pub from: DateTime<Utc>,
    /// Effective end, exclusive.
    pub to: DateTime<Utc>,
    /// Distinct signed-in viewers of the range (anonymous views are not viewers).
    pub estimate: u64,
    /// With `upper`: about 95 % of the time (two standard errors) the true count
    /// lies within `[lower, upper]`.
    pub lower: u64,
    pub upper: u64,
    /// `true` while the union still keeps every viewer's hash (up to 384
    /// viewers): the estimate is then the exact count of distinct hashes.
    /// `false`: a HyperLogLog estimate, relative standard error about 1.6 %.
    pub exact: bool,
    /// The relative standard error of a dense sketch (lg_k 12), for reference.
    pub relative_standard_error: f64,
    /// How the effective range relates to the one asked for.
    pub coverage: Coverage,
    /// Each edge that moved, and why; empty when `coverage` is `exact`.
    pub adjustments: Vec<ViewersAdjustment>,
    /// The sketches that answered: consecutive spans of hour or day sketches tiling
    /// `[from, to)`.
    pub spans: Vec<RowSpan>,
    /// Sketches read (at most 420).
    pub sketches: usize,
}

/// An edge of the range that moved.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ViewersAdjustment {
    pub edge: Edge,
    /// The bound asked for; `null` for an omitted `to` (now).
    pub requested: Option<DateTime<Utc>>,
    pub effective: DateTime<Utc>,
    pub reason: ViewersReason,
    pub note: String,
}

/// Why an edge of a viewers range moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ViewersReason {
    /// Out to the whole hour: no sketch is finer.
    HourAlignment,
    /// Out to the whole UTC day: the hour sketches there have expired.
    HourSketchesExpired,
    /// `from` in to the oldest day still kept: every sketch before it has expired.
    DaySketchesExpired,
}

impl ViewersCount {
    pub fn new(video_id: Uuid, range: &ViewersRange, estimate: Estimate, exact: bool) -> Self {
        let p = &range.plan;
        let (asked_from, asked_to) = range.asked;
        let mut adjustments = Vec::new();
        let mut coverage = Coverage::Exact;
        if p.from != asked_from {
            let (reason, note) = if p.from > asked_from {
                coverage = Coverage::Narrowed;
                let note = format!(
                    "day sketches are kept for {} after their day; the oldest kept starts at {}",
                    duration(range.retention.day_secs),
                    rfc3339(range.kept.day)
                );
                (ViewersReason::DaySketchesExpired, note)
            } else {
                let reason = reason_for(asked_from, p.from);
                (reason, note_for(reason, range))
            };
            adjustments.push(ViewersAdjustment {
                edge: Edge::From,
                requested: Some(at(asked_from)),
                effective: at(p.from),
                reason,
                note,
            });
        }
        // An omitted `to` is now, rounded up to the hour: not a move.
        if let Some(asked) = asked_to.filter(|&t| t != p.to) {
            let reason = reason_for(asked, p.to);
            adjustments.push(ViewersAdjustment {
                edge: Edge::To,
                requested: Some(at(asked)),
                effective: at(p.to),
                reason,
                note: note_for(reason, range),
            });
        }
        if coverage == Coverage::Exact && !adjustments.is_empty() {
            coverage = Coverage::Widened;
        }
        let spans = p
            .spans
            .iter()
            .map(|s| RowSpan {
                granularity: if s.granularity == Granularity::Day { Level::Day } else { Level::Hour },
                from: at(s.start),
                to: at(s.end),
            })
            .collect();
        Self {
            video_id,
            from: at(p.from),
            to: at(p.to),
            estimate: estimate.value,
            lower: estimate.lower,
            upper: estimate.upper,
            exact,
            relative_standard_error: counting::viewers::RELATIVE_STANDARD_ERROR,
            coverage,
            adjustments,
            spans,
            sketches: range.sketches(),
        }
    }
}

/// Why an edge moved out from `asked` to `t`: to the hour it lies in (no sketch
/// is finer), or further, to the day, because the hour sketches there expired.
fn reason_for(asked: i64, t: i64) -> ViewersReason {
    if t == floor_to(asked, HOUR_MS) || t == ceil_to(asked, HOUR_MS) {
        ViewersReason::HourAlignment
    } else {
        ViewersReason::HourSketchesExpired
    }
}

fn note_for(reason: ViewersReason, range: &ViewersRange) -> String {
    match reason {
        ViewersReason::HourAlignment => "viewer sketches are per hour: the edge moved out to the whole hour".to_owned(),
        _ => format!(
            "hour sketches are kept for {} after their hour; the oldest kept starts at {}",
            duration(range.retention.hour_secs),
            rfc3339(range.kept.hour)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use counting::time::DAY_MS;

    const D: i64 = 1_710_028_800_000; // 2024-03-10T00:00:00Z

    fn iso(ms: i64) -> String {
        rfc3339(ms)
    }

    #[test]
    fn days_inside_hours_at_the_edges_and_edges_out_to_the_hour() {
        let r = Retention::default();
        let now = D + 10 * DAY_MS;
        let from = iso(D + 22 * HOUR_MS + 30 * 60_000);
        let to = iso(D + 2 * DAY_MS + 3 * HOUR_MS + 60_000);
        let range = resolve(Some(&from), Some(&to), now, &r).unwrap();
        let p = &range.plan;
        assert_eq!((p.from, p.to), (D + 22 * HOUR_MS, D + 2 * DAY_MS + 4 * HOUR_MS));
        let kinds: Vec<_> = p.spans.iter().map(|s| s.granularity).collect();
        assert_eq!(kinds, [Granularity::Hour, Granularity::Day, Granularity::Hour]);
        assert_eq!(range.sketches(), 2 + 1 + 4);
        let e = Estimate { value: 3, lower: 3, upper: 3 };
        let answer = ViewersCount::new(Uuid::nil(), &range, e, true);
        assert_eq!(answer.coverage, Coverage::Widened);
        assert_eq!(answer.adjustments.len(), 2);
        assert!(answer.adjustments.iter().all(|a| a.reason == ViewersReason::HourAlignment));
        // Aligned bounds are answered as asked.
        let range = resolve(Some(&iso(D)), Some(&iso(D + 3 * HOUR_MS)), now, &r).unwrap();
        let answer = ViewersCount::new(Uuid::nil(), &range, e, true);
        assert_eq!((answer.coverage, answer.sketches), (Coverage::Exact, 3));
    }

    #[test]
    fn past_the_hour_retention_days_answer_and_say_so() {
        let r = Retention { minute_secs: 3_600, hour_secs: 2 * 86_400, day_secs: 0, expiry_margin_secs: 60 };
        let now = D + 10 * DAY_MS;
        let range = resolve(Some(&iso(D + 5 * HOUR_MS)), Some(&iso(D + DAY_MS)), now, &r).unwrap();
        assert_eq!(range.plan.from, D);
        assert_eq!(range.plan.spans, vec![Span { granularity: Granularity::Day, start: D, end: D + DAY_MS }]);
        let answer = ViewersCount::new(Uuid::nil(), &range, Estimate { value: 0, lower: 0, upper: 0 }, true);
        assert_eq!(answer.adjustments[0].reason, ViewersReason::HourSketchesExpired);
    }

    #[test]
    fn too_many_sketches_or_no_from_are_refused_before_reading() {
        let r = Retention::default();
        let now = D + 1000 * DAY_MS;
        let long = resolve(Some(&iso(D)), Some(&iso(D + 500 * DAY_MS)), now, &r).unwrap_err();
        assert!(format!("{long:?}").contains("from"), "{long:?}");
        assert!(resolve(Some(&iso(D)), Some(&iso(D + 365 * DAY_MS)), now, &r).is_ok());
        assert!(resolve(None, Some(&iso(D)), now, &r).is_err());
        assert!(resolve(Some(&iso(D + HOUR_MS)), Some(&iso(D)), now, &r).is_err());
    }
}
