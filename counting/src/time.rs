//! Time buckets. All times are milliseconds since the Unix epoch, UTC; a bucket is
//! named by its first millisecond. Days are UTC days.

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Granularity {
    Minute,
    Hour,
    Day,
    /// All time: one row per (video, event type), bucket 0.
    Total,
}

impl Granularity {
    pub const ALL: [Granularity; 4] = [Self::Minute, Self::Hour, Self::Day, Self::Total];

    /// Width of a bucket; `None` for the all-time row.
    pub fn width_ms(self) -> Option<i64> {
        match self {
            Self::Minute => Some(MINUTE_MS),
            Self::Hour => Some(HOUR_MS),
            Self::Day => Some(DAY_MS),
            Self::Total => None,
        }
    }

    /// First millisecond of the bucket holding `ts_ms`.
    pub fn bucket(self, ts_ms: i64) -> i64 {
        match self.width_ms() {
            Some(w) => floor_to(ts_ms, w),
            None => 0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Total => "total",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// Largest multiple of `width` that is ≤ `ts` (also for negative `ts`).
pub fn floor_to(ts: i64, width: i64) -> i64 {
    ts.div_euclid(width) * width
}

/// Smallest multiple of `width` that is ≥ `ts`.
pub fn ceil_to(ts: i64, width: i64) -> i64 {
    let f = floor_to(ts, width);
    if f == ts { f } else { f + width }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_floor_in_utc() {
        // 2024-03-10T13:47:21.500Z
        let t = 1_710_078_441_500;
        assert_eq!(Granularity::Minute.bucket(t), 1_710_078_420_000);
        assert_eq!(Granularity::Hour.bucket(t), 1_710_075_600_000);
        assert_eq!(Granularity::Day.bucket(t), 1_710_028_800_000);
        assert_eq!(Granularity::Total.bucket(t), 0);
        assert_eq!(floor_to(-1, MINUTE_MS), -MINUTE_MS);
        assert_eq!(ceil_to(MINUTE_MS + 1, MINUTE_MS), 2 * MINUTE_MS);
        assert_eq!(ceil_to(MINUTE_MS, MINUTE_MS), MINUTE_MS);
    }
}
