//! Which rollup rows answer a time range.
//!
//! A range `[from, to)` is first truncated to whole minutes (the finest rollup), then
//! covered by the coarsest rows that fit exactly: whole UTC days in the middle, whole
//! hours next to them, minutes at the ragged edges. A 30-day range therefore reads
//! about 30 day rows + 46 hour rows + 118 minute rows at most, never 43,200 minutes.

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
}
