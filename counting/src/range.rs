//! Which rollup rows answer a time range.
//!
//! A range `[from, to)` is covered by the coarsest rows that fit exactly: whole UTC
//! days in the middle, whole hours next to them, minutes at the ragged edges. A
//! 30-day range therefore reads about 30 day rows + 46 hour rows + 118 minute rows
//! at most, never 43,200 minutes ([`plan_range`]).
//!
//! [`plan`] adds retention: rows expire ([`crate::retention`]), finest first, and an
//! answer must never be silently short. So each edge moves outward only as far as it
//! must for every bucket read to be kept: to the minute (the finest row), then, where
//! minute rows have expired, to the hour, then to the day. Only when the day rows at
//! `from` have expired too does `from` move inward, to the oldest kept day, and the
//! plan says so. Outward moves mean an answer counts at least the range asked for;
//! the plan records each move and why, for the answer to state.

use crate::retention::Horizons;
use crate::time::{DAY_MS, Granularity, HOUR_MS, MINUTE_MS, ceil_to, floor_to};

/// Buckets `[start, end)` of one granularity; each is one clustering-range read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub granularity: Granularity,
    pub start: i64,
    pub end: i64,
}

/// The spans covering `[from, to)` after truncating both to the minute, in time
/// order, without gaps or overlaps. Empty when the truncated range is empty.
pub fn plan_range(from_ms: i64, to_ms: i64) -> Vec<Span> {
    let a = floor_to(from_ms, MINUTE_MS);
    let b = floor_to(to_ms, MINUTE_MS);
    let mut spans = Vec::new();
    if a >= b {
        return spans;
    }
    let (ha, hb) = (ceil_to(a, HOUR_MS), floor_to(b, HOUR_MS));
    if ha >= hb {
        push(&mut spans, Granularity::Minute, a, b);
        return spans;
    }
    push(&mut spans, Granularity::Minute, a, ha);
    let (da, db) = (ceil_to(ha, DAY_MS), floor_to(hb, DAY_MS));
    if da >= db {
        push(&mut spans, Granularity::Hour, ha, hb);
    } else {
        push(&mut spans, Granularity::Hour, ha, da);
        push(&mut spans, Granularity::Day, da, db);
        push(&mut spans, Granularity::Hour, db, hb);
    }
    push(&mut spans, Granularity::Minute, hb, b);
    spans
}

fn push(spans: &mut Vec<Span>, granularity: Granularity, start: i64, end: i64) {
    if start < end {
        spans.push(Span { granularity, start, end });
    }
}

/// Why an edge of a range moved (the coarsest reason, when several applied).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moved {
    /// Out to the minute: no row is finer.
    MinuteAlignment,
    /// Out to the hour: the minute rows there have expired.
    MinuteRowsExpired,
    /// Out to the day: the minute and hour rows there have expired.
    HourRowsExpired,
    /// `from` in to the oldest kept day: every row before it has expired.
    DayRowsExpired,
}

/// The rows that answer a range, and the range they answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The effective range `[from, to)`, which `spans` tile.
    pub from: i64,
    pub to: i64,
    pub spans: Vec<Span>,
    /// Why `from` differs from the range asked for; `None` when it does not.
    pub from_moved: Option<Moved>,
    pub to_moved: Option<Moved>,
}

/// Every row the range needs has expired: nothing before `oldest_kept` is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllExpired {
    pub oldest_kept: i64,
}

/// Plans `[from_ms, to_ms)` with only rows that `kept` allows (see the module doc).
/// An empty range (`from_ms >= to_ms`) is answered as asked, by no rows.
pub fn plan(from_ms: i64, to_ms: i64, kept: &Horizons) -> Result<Plan, AllExpired> {
    if from_ms >= to_ms {
        return Ok(Plan { from: from_ms, to: to_ms, spans: Vec::new(), from_moved: None, to_moved: None });
    }
    let (a1, b1) = (floor_to(from_ms, MINUTE_MS), ceil_to(to_ms, MINUTE_MS));
    // `from`: the newest start of a kept bucket at or before it. Buckets are kept
    // newest-first and coarser ones at least as long, so only the bucket of each
    // granularity holding `from` is a candidate.
    let from = if a1 >= kept.minute {
        a1
    } else if floor_to(a1, HOUR_MS) >= kept.hour {
        floor_to(a1, HOUR_MS)
    } else if floor_to(a1, DAY_MS) >= kept.day {
        floor_to(a1, DAY_MS)
    } else {
        kept.day
    };
    if from >= b1 {
        return Err(AllExpired { oldest_kept: kept.day });
    }
    // `to`: `plan_range` ends with minutes from the last whole hour (or from `from`),
    // then hours from the last whole day (or from `from`). Each of those pieces is
    // read only if its first bucket is kept (it is the oldest); otherwise the edge
    // moves to the next coarser boundary, which the coarser row then covers.
    let mut to = b1;
    let minutes = from.max(floor_to(to, HOUR_MS));
    if minutes < to && minutes < kept.minute {
        to = ceil_to(to, HOUR_MS);
    }
    let hours = from.max(floor_to(to, DAY_MS));
    if hours < floor_to(to, HOUR_MS) && hours < kept.hour {
        to = ceil_to(to, DAY_MS);
    }
    let from_moved = match from {
        f if f == from_ms => None,
        f if f > a1 => Some(Moved::DayRowsExpired),
        f if f == a1 => Some(Moved::MinuteAlignment),
        f if f == floor_to(a1, HOUR_MS) => Some(Moved::MinuteRowsExpired),
        _ => Some(Moved::HourRowsExpired),
    };
    let to_moved = match to {
        t if t == to_ms => None,
        t if t == b1 => Some(Moved::MinuteAlignment),
        t if t == ceil_to(b1, HOUR_MS) => Some(Moved::MinuteRowsExpired),
        _ => Some(Moved::HourRowsExpired),
    };
    let spans = plan_range(from, to);
    debug_assert!(spans.iter().all(|s| kept.kept(s.granularity, s.start)), "{spans:?} {kept:?}");
    Ok(Plan { from, to, spans, from_moved, to_moved })
}

/// How a planned answer is described to clients: the granularities used, coarsest
/// first, joined by `+` (for example `day+hour+minute`).
pub fn describe(spans: &[Span]) -> String {
    let mut used: Vec<Granularity> = spans.iter().map(|s| s.granularity).collect();
    used.sort_by(|x, y| y.cmp(x));
    used.dedup();
    used.iter().map(|g| g.as_str()).collect::<Vec<_>>().join("+")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retention::Retention;
    use proptest::prelude::*;

    const T0: i64 = 1_710_028_800_000; // 2024-03-10T00:00:00Z

    #[test]
    fn ragged_range_uses_days_hours_and_minutes() {
        let from = T0 + 13 * HOUR_MS + 47 * MINUTE_MS + 5_000;
        let to = T0 + 3 * DAY_MS + 2 * HOUR_MS + 10 * MINUTE_MS + 59_999;
        let spans = plan_range(from, to);
        let g: Vec<_> = spans.iter().map(|s| s.granularity).collect();
        use Granularity::*;
        assert_eq!(g, [Minute, Hour, Day, Hour, Minute]);
        assert_eq!(spans[0].start, T0 + 13 * HOUR_MS + 47 * MINUTE_MS);
        assert_eq!(spans[2], Span { granularity: Day, start: T0 + DAY_MS, end: T0 + 3 * DAY_MS });
        assert_eq!(spans[4].end, T0 + 3 * DAY_MS + 2 * HOUR_MS + 10 * MINUTE_MS);
        assert_eq!(describe(&spans), "day+hour+minute");
    }

    #[test]
    fn aligned_and_degenerate_ranges() {
        assert_eq!(
            plan_range(T0, T0 + 2 * DAY_MS),
            vec![Span { granularity: Granularity::Day, start: T0, end: T0 + 2 * DAY_MS }]
        );
        assert!(plan_range(T0 + 5, T0 + 59_000).is_empty());
        assert!(plan_range(T0 + DAY_MS, T0).is_empty());
        let within_hour = plan_range(T0 + MINUTE_MS, T0 + 30 * MINUTE_MS);
        assert_eq!(within_hour.len(), 1);
        assert_eq!(within_hour[0].granularity, Granularity::Minute);
    }

    proptest! {
        /// Spans tile the truncated range exactly, are aligned to their own
        /// granularity, and are never finer than needed.
        #[test]
        fn spans_tile_the_range(from in 0i64..40 * DAY_MS, len in 0i64..40 * DAY_MS) {
            let (from, to) = (T0 + from, T0 + from + len);
            let spans = plan_range(from, to);
            let (a, b) = (floor_to(from, MINUTE_MS), floor_to(to, MINUTE_MS));
            let mut cursor = a;
            for s in &spans {
                prop_assert_eq!(s.start, cursor);
                prop_assert!(s.start < s.end);
                let w = s.granularity.width_ms().unwrap();
                prop_assert_eq!(s.start % w, 0);
                prop_assert_eq!(s.end % w, 0);
                cursor = s.end;
            }
            prop_assert_eq!(cursor, if a < b { b } else { a });
            // Minute spans never contain a whole aligned hour, hour spans never a whole day.
            for s in &spans {
                let (coarser, w) = match s.granularity {
                    Granularity::Minute => (HOUR_MS, s.end - s.start),
                    Granularity::Hour => (DAY_MS, s.end - s.start),
                    _ => continue,
                };
                let inner = floor_to(s.end, coarser) - ceil_to(s.start, coarser);
                prop_assert!(inner < coarser || w < coarser, "{:?} could be coarser", s);
            }
        }
    }

    const MINUTE: i64 = MINUTE_MS;
    const HOUR: i64 = HOUR_MS;
    const DAY: i64 = DAY_MS;

    fn span(granularity: Granularity, start: i64, end: i64) -> Span {
        Span { granularity, start, end }
    }

    #[test]
    fn thirty_days_back_from_now_moves_from_to_the_hour() {
        // 2024-03-10T12:34:56.789Z, default retention: minutes 8 days, hours 400.
        let now = T0 + 12 * HOUR + 34 * MINUTE + 56_789;
        let kept = Retention::default().horizons(now);
        let p = plan(now - 30 * DAY, now, &kept).unwrap();
        let day0 = T0 - 29 * DAY; // 2024-02-10
        assert_eq!((p.from, p.to), (day0 - 12 * HOUR, T0 + 12 * HOUR + 35 * MINUTE));
        assert_eq!((p.from_moved, p.to_moved), (Some(Moved::MinuteRowsExpired), Some(Moved::MinuteAlignment)));
        assert_eq!(
            p.spans,
            [
                span(Granularity::Hour, day0 - 12 * HOUR, day0),
                span(Granularity::Day, day0, T0),
                span(Granularity::Hour, T0, T0 + 12 * HOUR),
                span(Granularity::Minute, T0 + 12 * HOUR, T0 + 12 * HOUR + 35 * MINUTE),
            ]
        );
        // Within the minute rows' 8 days nothing moves but the seconds.
        let p = plan(now - 7 * DAY, now, &kept).unwrap();
        assert_eq!(p.from, floor_to(now - 7 * DAY, MINUTE));
        assert_eq!(p.from_moved, Some(Moved::MinuteAlignment));
        // Aligned bounds are exact.
        let p = plan(T0 - 30 * DAY, T0 + 12 * HOUR + 34 * MINUTE, &kept).unwrap();
        assert_eq!((p.from_moved, p.to_moved), (None, None));
    }

    #[test]
    fn past_the_hour_rows_days_answer_and_past_the_days_from_moves_in() {
        let now = T0 + 12 * HOUR;
        let r =
            Retention { minute_secs: 86_400, hour_secs: 10 * 86_400, day_secs: 30 * 86_400, expiry_margin_secs: 60 };
        let kept = r.horizons(now);
        // An hour-aligned range older than the hour rows: whole days answer.
        let p = plan(T0 - 20 * DAY + 5 * HOUR, T0 - 20 * DAY + 7 * HOUR, &kept).unwrap();
        assert_eq!((p.from, p.to), (T0 - 20 * DAY, T0 - 19 * DAY));
        assert_eq!((p.from_moved, p.to_moved), (Some(Moved::HourRowsExpired), Some(Moved::HourRowsExpired)));
        assert_eq!(p.spans, [span(Granularity::Day, T0 - 20 * DAY, T0 - 19 * DAY)]);
        // Reaching past the day rows: `from` moves in to the oldest kept day (the
        // day that ended 30.5 days ago has expired; the next one is kept).
        let p = plan(T0 - 40 * DAY, now, &kept).unwrap();
        assert_eq!((p.from, p.from_moved), (T0 - 30 * DAY, Some(Moved::DayRowsExpired)));
        assert_eq!(p.to_moved, None);
        // Wholly past them: nothing to answer with.
        assert_eq!(plan(T0 - 40 * DAY, T0 - 35 * DAY, &kept), Err(AllExpired { oldest_kept: T0 - 30 * DAY }));
        // An empty range is answered as asked.
        assert_eq!(plan(T0 - 40 * DAY, T0 - 40 * DAY, &kept).unwrap().spans, []);
    }

    #[test]
    fn a_ragged_end_in_an_expired_hour_moves_to_the_day() {
        // Minutes kept 1 day, hours 2 days. `from` 3 days ago lands on a day row;
        // `to` 2.5 days ago falls among expired hours, so the day row covers it.
        let now = T0 + 12 * HOUR;
        let r = Retention { minute_secs: 86_400, hour_secs: 2 * 86_400, day_secs: 0, expiry_margin_secs: 60 };
        let p = plan(T0 - 3 * DAY + 17 * MINUTE, T0 - 2 * DAY - 6 * HOUR + 5 * MINUTE, &r.horizons(now)).unwrap();
        assert_eq!((p.from, p.to), (T0 - 3 * DAY, T0 - 2 * DAY));
        assert_eq!(p.spans, [span(Granularity::Day, T0 - 3 * DAY, T0 - 2 * DAY)]);
        // Later, where the hours are kept (from 2 days before now), the edge stops
        // at the hour.
        let p = plan(T0 - 2 * DAY + 13 * HOUR, T0 - DAY - 6 * HOUR + 5 * MINUTE, &r.horizons(now)).unwrap();
        assert_eq!((p.from, p.to), (T0 - 2 * DAY + 13 * HOUR, T0 - DAY - 5 * HOUR));
        assert_eq!(p.from_moved, None);
        assert_eq!(p.to_moved, Some(Moved::MinuteRowsExpired));
    }

    /// Retentions that keep minutes from seconds to days, the coarser ones at
    /// least as long, each possibly forever.
    fn retention() -> impl Strategy<Value = Retention> {
        let secs = prop_oneof![Just(0u64), 1u64..120, 1u64..3 * 86_400];
        (secs.clone(), secs.clone(), secs, 0u64..90).prop_map(|(m, dh, dd, margin)| {
            let h = if m == 0 || dh == 0 { 0 } else { m + dh };
            let d = if h == 0 || dd == 0 { 0 } else { h + dd * 5 };
            Retention { minute_secs: m, hour_secs: h, day_secs: d, expiry_margin_secs: margin }
        })
    }

    /// Whether a row may be read, straight from its expiry (not from `horizons`).
    fn kept_directly(r: &Retention, now: i64, g: Granularity, bucket: i64) -> bool {
        r.expires_at(g, bucket).is_none_or(|e| e > now + r.expiry_margin_secs as i64 * 1000)
    }

    const LEVELS: [Granularity; 3] = [Granularity::Minute, Granularity::Hour, Granularity::Day];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Against brute force over every minute: the plan reads only kept rows,
        /// tiles its range exactly, covers the range asked for (but for the expired
        /// days before `from`), and each edge moves no further than it must.
        #[test]
        fn plans_use_only_kept_rows_and_move_edges_the_least(
            r in retention(),
            now_off in 0i64..20 * DAY,
            from_back in 0i64..15 * DAY,
            len in 0i64..15 * DAY,
        ) {
            let now = T0 + 20 * DAY + now_off;
            let (from, to) = (now - from_back, now - from_back + len);
            let kept = r.horizons(now);
            let (a1, b1) = (floor_to(from, MINUTE), ceil_to(to, MINUTE));
            // The newest start of a kept bucket at or before `from`, else the
            // oldest kept day.
            let mut want_from = None;
            let mut c = a1;
            while c >= floor_to(a1, DAY) {
                if LEVELS.iter().any(|&g| c % g.width_ms().unwrap() == 0 && kept_directly(&r, now, g, c)) {
                    want_from = Some(c);
                    break;
                }
                c -= MINUTE;
            }
            let want_from = want_from.unwrap_or_else(|| {
                let mut d = floor_to(a1, DAY) + DAY;
                while !kept_directly(&r, now, Granularity::Day, d) {
                    d += DAY;
                }
                d
            });
            let result = plan(from, to, &kept);
            if len == 0 {
                prop_assert_eq!(result, Ok(Plan { from, to, spans: vec![], from_moved: None, to_moved: None }));
                return Ok(());
            }
            if want_from >= b1 {
                prop_assert_eq!(result, Err(AllExpired { oldest_kept: want_from }));
                return Ok(());
            }
            let p = result.unwrap();
            prop_assert_eq!(p.from, want_from);
            // The first end at or after `to` that kept rows can reach from `from`.
            let n = ((ceil_to(b1, DAY) - p.from) / MINUTE) as usize;
            let mut reach = vec![false; n + 1];
            reach[0] = true;
            for i in 0..n {
                if !reach[i] {
                    continue;
                }
                let at = p.from + i as i64 * MINUTE;
                for g in LEVELS {
                    let w = g.width_ms().unwrap();
                    let j = i + (w / MINUTE) as usize;
                    if at % w == 0 && j <= n && kept_directly(&r, now, g, at) {
                        reach[j] = true;
                    }
                }
            }
            let first = ((b1 - p.from) / MINUTE) as usize;
            let want_to = (first..=n).find(|&i| reach[i]).map(|i| p.from + i as i64 * MINUTE);
            prop_assert_eq!(Some(p.to), want_to);
            // The spans tile [from, to) with kept rows only.
            let mut cursor = p.from;
            for s in &p.spans {
                prop_assert_eq!(s.start, cursor);
                prop_assert!(kept_directly(&r, now, s.granularity, s.start), "{:?} has expired", s);
                cursor = s.end;
            }
            prop_assert_eq!(cursor, p.to);
            // The moves are stated, and are outward but for expired days.
            prop_assert_eq!(p.from_moved.is_none(), p.from == from);
            prop_assert_eq!(p.to_moved.is_none(), p.to == to);
            prop_assert!(p.to >= to);
            prop_assert!(p.from <= from || p.from_moved == Some(Moved::DayRowsExpired));
        }

        /// With nothing expired, a plan is `plan_range` over the range rounded out
        /// to the minute.
        #[test]
        fn without_retention_only_seconds_move(from in 0i64..40 * DAY, len in 1i64..40 * DAY) {
            let (from, to) = (T0 + from, T0 + from + len);
            let p = plan(from, to, &Horizons::FOREVER).unwrap();
            let (a, b) = (floor_to(from, MINUTE), ceil_to(to, MINUTE));
            prop_assert_eq!((p.from, p.to), (a, b));
            prop_assert_eq!(p.spans, plan_range(a, b));
            prop_assert!(p.from_moved.is_none() || p.from_moved == Some(Moved::MinuteAlignment));
            prop_assert!(p.to_moved.is_none() || p.to_moved == Some(Moved::MinuteAlignment));
        }
    }
}
