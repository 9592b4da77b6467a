//! Counts as a series (getCount with a `step`) and statistics over it (getStats):
//! which buckets a range covers at a step, and the functions over their values.
//!
//! getStats answers over the *events* of the range by default ([`Stat::of_events`]):
//! each row keeps its events' sum and [`Tally`] (count, min, max), and tallies
//! merge, so `count` is the number of events, `min`/`max` the smallest and largest
//! event value, `avg` the sum over the count. Over the *buckets* ([`Stat::of`]) is
//! the older statistic of the buckets' sums, kept because it costs nothing more.
//!
//! A series never has a silently missing bucket: every bucket is one row of the
//! step's granularity, so all of them must still be kept ([`crate::retention`]).
//! An explicit step that cannot serve the range is an error for the caller to
//! name; without one, [`plan_series`] picks the finest step that can.

use crate::retention::Horizons;
use crate::rollup::Tally;
use crate::time::{Granularity, ceil_to, floor_to};

/// Most buckets one series may have: a day of minutes, two months of hours.
pub const MAX_POINTS: usize = 1440;

/// A series' step and the start of each of its buckets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesPlan {
    pub step: Granularity,
    pub buckets: Vec<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeriesError {
    /// `to` is not after `from`.
    Empty,
    /// More than [`MAX_POINTS`] buckets at `step` (the coarsest tried, without a step).
    TooManyPoints { step: Granularity, points: u64 },
    /// The first bucket at `step` has expired; `oldest_kept` is the first kept one.
    Expired { step: Granularity, oldest_kept: i64 },
}

/// The buckets of `[from_ms, to_ms)` at `step`, or without a step at the finest of
/// minute, hour and day that has at most [`MAX_POINTS`] buckets, all kept.
pub fn plan_series(
    from_ms: i64,
    to_ms: i64,
    step: Option<Granularity>,
    kept: &Horizons,
) -> Result<SeriesPlan, SeriesError> {
    if to_ms <= from_ms {
        return Err(SeriesError::Empty);
    }
    let try_step = |step: Granularity| {
        let width = step.width_ms().expect("a step has a width");
        // Counted before anything is built; then, buckets are kept newest-first:
        // if the first is kept, all are.
        let n = bucket_count(from_ms, to_ms, step).unwrap_or(u64::MAX);
        if n > MAX_POINTS as u64 {
            return Err(SeriesError::TooManyPoints { step, points: n });
        }
        if !kept.kept(step, floor_to(from_ms, width)) {
            return Err(SeriesError::Expired { step, oldest_kept: kept.oldest(step) });
        }
        let buckets = buckets(from_ms, to_ms, step).expect("to is after from");
        Ok(SeriesPlan { step, buckets })
    };
    match step {
        Some(step) => try_step(step),
        None => try_step(Granularity::Minute)
            .or_else(|_| try_step(Granularity::Hour))
            .or_else(|_| try_step(Granularity::Day)),
    }
}

/// Start of every `step` bucket that `[from, to)` touches: `from` is floored and
/// `to` ceiled to the step, so the series covers the range whole. `None` for
/// `Total`, or when `to <= from`.
pub fn buckets(from_ms: i64, to_ms: i64, step: Granularity) -> Option<Vec<i64>> {
    let width = step.width_ms()?;
    if to_ms <= from_ms {
        return None;
    }
    let (first, end) = (floor_to(from_ms, width), ceil_to(to_ms, width));
    Some((0..).map(|i| first + i * width).take_while(|&b| b < end).collect())
}

/// How many buckets [`buckets`] would return, computed without building them: the
/// check to make before allocating, since a range from year 1 to 9999 at a minute
/// step is about 5·10⁹ buckets. `None` where `buckets` is `None`. Exact for any
/// `i64` bounds (the arithmetic is done in `i128`).
pub fn bucket_count(from_ms: i64, to_ms: i64, step: Granularity) -> Option<u64> {
    let width = i128::from(step.width_ms()?);
    if to_ms <= from_ms {
        return None;
    }
    let first = i128::from(from_ms).div_euclid(width) * width;
    let end = (i128::from(to_ms) + width - 1).div_euclid(width) * width;
    u64::try_from((end - first) / width).ok()
}

/// [`buckets`], or `Err(n)` with the bucket count when it is above `max`, in which
/// case nothing is allocated.
pub fn buckets_at_most(from_ms: i64, to_ms: i64, step: Granularity, max: u64) -> Option<Result<Vec<i64>, u64>> {
    let n = bucket_count(from_ms, to_ms, step)?;
    if n > max {
        return Some(Err(n));
    }
    buckets(from_ms, to_ms, step).map(Ok)
}

/// What getStats computes: over the events of a range ([`Stat::of_events`]), or
/// over its buckets' sums ([`Stat::of`], empty buckets as 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    /// Events; over buckets, buckets with at least one event.
    Count,
    /// Everything in the range: the same number getCount gives for it.
    Sum,
    /// The smallest event value; over buckets, the smallest bucket.
    Min,
    /// The largest event value; over buckets, the largest bucket.
    Max,
    /// Sum over events; over buckets, per bucket.
    Avg,
}

/// One bucket's row as getStats reads it: its sum and its tally (`None`: the row
/// was written before rows kept tallies, so its events are not known). A bucket
/// without a row is `(0, Some(Tally::EMPTY))`.
pub type BucketRow = (i64, Option<Tally>);

/// getStats over a range's events.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EventStats {
    /// The statistic; `None` when it is undefined (min, max or avg of no events)
    /// or not known (count, min, max or avg over a bucket whose tally is not).
    pub value: Option<f64>,
    /// Buckets whose tally is not known.
    pub unrecorded: usize,
}

impl Stat {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "count" => Self::Count,
            "sum" => Self::Sum,
            "min" => Self::Min,
            "max" => Self::Max,
            "avg" => Self::Avg,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Sum => "sum",
            Self::Min => "min",
            Self::Max => "max",
            Self::Avg => "avg",
        }
    }

    /// The statistic over the events of `rows`: their sums and tallies merged.
    pub fn of_events(self, rows: &[BucketRow]) -> EventStats {
        let sum = rows.iter().fold(0i64, |s, (v, _)| crate::rollup::add_count(s, *v));
        let unrecorded = rows.iter().filter(|(_, t)| t.is_none()).count();
        let tally = rows.iter().try_fold(Tally::EMPTY, |acc, (_, t)| t.map(|t| acc.merge(t)));
        let value = match (self, tally) {
            (Self::Sum, _) => Some(sum as f64),
            (_, None) => None,
            (Self::Count, Some(t)) => Some(t.events as f64),
            (Self::Min, Some(t)) => t.min().map(|v| v as f64),
            (Self::Max, Some(t)) => t.max().map(|v| v as f64),
            (Self::Avg, Some(t)) => (t.events > 0).then(|| sum as f64 / t.events as f64),
        };
        EventStats { value, unrecorded }
    }

    /// The statistic of `values` (one per bucket); 0 for no buckets.
    pub fn of(self, values: &[i64]) -> f64 {
        if values.is_empty() {
            return 0.0;
        }
        let sum: i64 = values.iter().sum();
        match self {
            Self::Count => values.iter().filter(|&&v| v > 0).count() as f64,
            Self::Sum => sum as f64,
            Self::Min => *values.iter().min().expect("not empty") as f64,
            Self::Max => *values.iter().max().expect("not empty") as f64,
            Self::Avg => sum as f64 / values.len() as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{HOUR_MS, MINUTE_MS};

    const T0: i64 = 1_710_028_800_000; // 2024-03-10T00:00:00Z

    #[test]
    fn the_count_comes_before_the_allocation() {
        for (from, to) in [(T0, T0 + 1), (T0 - 1, T0 + 1), (T0 + 5, T0 + 3 * HOUR_MS - 7), (-HOUR_MS - 3, 17)] {
            for step in [Granularity::Minute, Granularity::Hour, Granularity::Day] {
                let built = buckets(from, to, step).unwrap();
                assert_eq!(bucket_count(from, to, step), Some(built.len() as u64), "{from} {to} {step:?}");
            }
        }
        // The range, year 1 to 9999, at a minute step: counted, never built.
        let (y1, y9999) = (-62_135_596_800_000, 253_370_764_800_000);
        assert_eq!(bucket_count(y1, y9999, Granularity::Minute), Some(5_258_439_360));
        assert_eq!(buckets_at_most(y1, y9999, Granularity::Minute, 1440), Some(Err(5_258_439_360)));
        assert_eq!(
            buckets_at_most(T0, T0 + 2 * MINUTE_MS, Granularity::Minute, 1440),
            Some(Ok(vec![T0, T0 + MINUTE_MS]))
        );
        assert_eq!(bucket_count(i64::MIN, i64::MAX, Granularity::Minute), Some(307_445_734_561_826));
        assert_eq!(bucket_count(T0, T0, Granularity::Minute), None);
        assert_eq!(bucket_count(T0, T0 + 1, Granularity::Total), None);
    }

    #[test]
    fn buckets_cover_the_range_whole() {
        let b = buckets(T0 + 90 * MINUTE_MS, T0 + 3 * HOUR_MS + 1, Granularity::Hour).unwrap();
        assert_eq!(b, vec![T0 + HOUR_MS, T0 + 2 * HOUR_MS, T0 + 3 * HOUR_MS]);
        assert_eq!(buckets(T0, T0 + HOUR_MS, Granularity::Hour).unwrap(), vec![T0]);
        assert_eq!(buckets(T0, T0 + 3 * MINUTE_MS, Granularity::Minute).unwrap().len(), 3);
        assert!(buckets(T0, T0, Granularity::Hour).is_none());
        assert!(buckets(T0, T0 + 1, Granularity::Total).is_none());
    }

    #[test]
    fn series_fit_the_cap_and_the_retention() {
        use crate::retention::Retention;
        use crate::time::DAY_MS;
        let now = T0 + 12 * HOUR_MS;
        let kept = Retention::default().horizons(now); // minutes 8 days, hours 400
        let year_1 = -62_135_596_800_000;
        let year_9999 = 253_402_300_799_000;
        assert_eq!(bucket_count(year_1, year_9999, Granularity::Minute), Some(5_258_964_960));
        let too_many = plan_series(year_1, year_9999, Some(Granularity::Day), &kept).unwrap_err();
        assert!(matches!(too_many, SeriesError::TooManyPoints { step: Granularity::Day, .. }));
        assert_eq!(plan_series(now, now, None, &kept), Err(SeriesError::Empty));
        // A day of minutes is the most a minute series holds.
        assert_eq!(plan_series(now - DAY_MS, now, Some(Granularity::Minute), &kept).unwrap().buckets.len(), 1440);
        let over = plan_series(now - DAY_MS - 1, now, Some(Granularity::Minute), &kept);
        assert_eq!(over, Err(SeriesError::TooManyPoints { step: Granularity::Minute, points: 1441 }));
        // Minutes of 9 days ago have expired: refused with a step, hours without.
        let old = now - 9 * DAY_MS;
        let expired = plan_series(old, old + HOUR_MS, Some(Granularity::Minute), &kept);
        assert_eq!(expired, Err(SeriesError::Expired { step: Granularity::Minute, oldest_kept: kept.minute }));
        let p = plan_series(old, old + HOUR_MS, None, &kept).unwrap();
        assert_eq!((p.step, p.buckets), (Granularity::Hour, vec![old]));
        // The finest that fits: minutes for 3 hours, hours for 3 days, days for 3 months.
        for (len, step) in
            [(3 * HOUR_MS, Granularity::Minute), (3 * DAY_MS, Granularity::Hour), (90 * DAY_MS, Granularity::Day)]
        {
            assert_eq!(plan_series(now - len, now, None, &kept).unwrap().step, step);
        }
    }

    #[test]
    fn statistics_over_buckets() {
        let v = [0, 4, 2, 0];
        let got: Vec<f64> =
            ["count", "sum", "min", "max", "avg"].iter().map(|s| Stat::parse(s).unwrap().of(&v)).collect();
        assert_eq!(got, vec![2.0, 6.0, 0.0, 4.0, 1.5]);
        assert_eq!(Stat::Max.of(&[]), 0.0);
        assert!(Stat::parse("median").is_none());
        assert_eq!(Stat::parse("avg").unwrap().as_str(), "avg");
    }

    #[test]
    fn statistics_over_events() {
        // Buckets of 3 events (2, 5, 1), none, and 2 events (4, 4), one more event
        // taken back by a correction of -4 (min and max stay).
        let rows = [
            (8, Some(Tally::new(3, Some(1), Some(5)))),
            (0, Some(Tally::EMPTY)),
            (8, Some(Tally::new(2, Some(4), Some(4)))),
            (-4, Some(Tally::new(-1, None, None))),
        ];
        let got: Vec<Option<f64>> = ["count", "sum", "min", "max", "avg"]
            .iter()
            .map(|s| Stat::parse(s).unwrap().of_events(&rows).value)
            .collect();
        assert_eq!(got, vec![Some(4.0), Some(12.0), Some(1.0), Some(5.0), Some(3.0)]);
        assert_eq!(Stat::Count.of_events(&rows).unrecorded, 0);
        // No events: a count and a sum of 0; no min, max or average.
        let none = [(0, Some(Tally::EMPTY)); 3];
        let got: Vec<Option<f64>> = [Stat::Count, Stat::Sum, Stat::Min, Stat::Max, Stat::Avg]
            .iter()
            .map(|s| s.of_events(&none).value)
            .collect();
        assert_eq!(got, vec![Some(0.0), Some(0.0), None, None, None]);
        assert_eq!(Stat::Avg.of_events(&[]).value, None);
        // A bucket from before tallies: the sum is still exact, the rest unknown.
        let old = [(8, Some(Tally::new(3, Some(1), Some(5)))), (7, None)];
        assert_eq!(Stat::Sum.of_events(&old), EventStats { value: Some(15.0), unrecorded: 1 });
        for s in [Stat::Count, Stat::Min, Stat::Max, Stat::Avg] {
            assert_eq!(s.of_events(&old), EventStats { value: None, unrecorded: 1 }, "{s:?}");
        }
    }

    proptest::proptest! {
        /// Every bucket of a planned series is kept, the series covers the range,
        /// holds at most `MAX_POINTS`, and without a step no finer step would do.
        #[test]
        fn series_buckets_are_all_kept(
            minute_secs in 1u64..20 * 86_400,
            extra in 0u64..400 * 86_400,
            now_off in 0i64..30 * 86_400_000,
            from_back in 0i64..500 * 86_400_000,
            len in 1i64..1500 * 86_400_000,
            step in proptest::option::of(0usize..3),
        ) {
            use crate::retention::Retention;
            let levels = [Granularity::Minute, Granularity::Hour, Granularity::Day];
            let r = Retention { minute_secs, hour_secs: minute_secs + extra, day_secs: 0, expiry_margin_secs: 60 };
            let now = T0 + now_off;
            let kept = r.horizons(now);
            let (from, to) = (now - from_back, now - from_back + len);
            let fits = |g: Granularity| {
                bucket_count(from, to, g).unwrap() <= MAX_POINTS as u64
                    && kept.kept(g, floor_to(from, g.width_ms().unwrap()))
            };
            match plan_series(from, to, step.map(|i| levels[i]), &kept) {
                Ok(p) => {
                    let w = p.step.width_ms().unwrap();
                    proptest::prop_assert!(p.buckets.len() <= MAX_POINTS);
                    proptest::prop_assert!(p.buckets[0] <= from && p.buckets[p.buckets.len() - 1] + w >= to);
                    proptest::prop_assert!(p.buckets.iter().all(|&b| r.expires_at(p.step, b).is_none_or(|e| e > now + 60_000)));
                    if step.is_none() {
                        proptest::prop_assert!(levels.iter().take_while(|&&g| g != p.step).all(|&g| !fits(g)));
                    }
                }
                Err(_) => match step {
                    Some(i) => proptest::prop_assert!(!fits(levels[i])),
                    None => proptest::prop_assert!(levels.iter().all(|&g| !fits(g))),
                },
            }
        }
    }
}
