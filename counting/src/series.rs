//! Counts as a series (getCount with a `step`) and statistics over it (getStats):
//! which buckets a range covers at a step, and the functions over their values.

use crate::time::{Granularity, ceil_to, floor_to};

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

/// What getStats computes over a series' buckets (empty buckets count as 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    /// Buckets with at least one event.
    Count,
    /// Everything in the range: the same number getCount gives for it.
    Sum,
    /// The smallest bucket.
    Min,
    /// The largest bucket.
    Max,
    /// Events per bucket.
    Avg,
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
    fn statistics_over_buckets() {
        let v = [0, 4, 2, 0];
        let got: Vec<f64> =
            ["count", "sum", "min", "max", "avg"].iter().map(|s| Stat::parse(s).unwrap().of(&v)).collect();
        assert_eq!(got, vec![2.0, 6.0, 0.0, 4.0, 1.5]);
        assert_eq!(Stat::Max.of(&[]), 0.0);
        assert!(Stat::parse("median").is_none());
        assert_eq!(Stat::parse("avg").unwrap().as_str(), "avg");
    }
}
