//! Trending: a window is the whole buckets overlapping `[now - window, now]`, hour
//! buckets for 1 h and 24 h, day buckets for 7 d and 30 d. So "24h" at 14:20
//! covers yesterday 14:00 to today 15:00 (25 hour buckets), and the answer says so
//! in `from` and `to`. Counts are summed per video over the window's buckets, equal
//! counts in video id order.
//!
//! **Bounded reads.** A bucket partition holds every video with events in it, and
//! posting views for made-up ids (strict mode off) adds rows to it, so a request
//! reads at most `limits.trending_rows` rows (100,000 by default), that budget split
//! evenly over the window's buckets ([`rows_per_bucket`]). A bucket with more videos
//! than its share is read in part (its lowest video ids), the ranking then misses
//! the rest, and the answer says so (`complete: false`). Keeping the read exact at
//! any size is the writer's part: a bounded top-K per bucket instead of a row per
//! video (the aggregator's write path, issue 15).

use std::collections::HashMap;

use counting::Granularity;
use platform::http::Problem;
use uuid::Uuid;

pub const DEFAULT_TOP: u32 = 10;
pub const MAX_TOP: u32 = 100;
/// KillrVideo's `/videos/trending` answers at most this many.
pub const MAX_TRENDING_VIDEOS: u32 = 10;

/// A trending window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    Hour,
    Day,
    Week,
    Month,
}

impl Window {
    pub fn name(self) -> &'static str {
        match self {
            Self::Hour => "1h",
            Self::Day => "24h",
            Self::Week => "7d",
            Self::Month => "30d",
        }
    }

    fn length_ms(self) -> i64 {
        use counting::time::{DAY_MS, HOUR_MS};
        match self {
            Self::Hour => HOUR_MS,
            Self::Day => DAY_MS,
            Self::Week => 7 * DAY_MS,
            Self::Month => 30 * DAY_MS,
        }
    }

    pub fn granularity(self) -> Granularity {
        match self {
            Self::Hour | Self::Day => Granularity::Hour,
            Self::Week | Self::Month => Granularity::Day,
        }
    }

    /// `[from, to)`: the whole buckets overlapping `[now - length, now]`.
    pub fn bounds(self, now_ms: i64) -> (i64, i64) {
        let g = self.granularity();
        let width = g.width_ms().expect("hour and day buckets have a width");
        (g.bucket(now_ms - self.length_ms()), g.bucket(now_ms) + width)
    }
}

/// A window's top videos.
#[derive(Debug)]
pub struct Top {
    pub from: i64,
    pub to: i64,
    pub granularity: Granularity,
    /// Every video read with a positive count, most counted first, ties by id.
    pub ranked: Vec<(Uuid, i64)>,
    /// Every bucket was read whole (none reached its share of the row budget).
    pub complete: bool,
}

/// Each bucket's share of a request's row budget (at least 1 row).
pub fn rows_per_bucket(budget: usize, buckets: usize) -> usize {
    (budget / buckets.max(1)).max(1)
}

/// Per-video sums over buckets, most first, equal sums by video id; zeros left out.
pub fn rank(buckets: Vec<Vec<(Uuid, i64)>>) -> Vec<(Uuid, i64)> {
    let mut sums: HashMap<Uuid, i64> = HashMap::new();
    for (video, value) in buckets.into_iter().flatten() {
        *sums.entry(video).or_insert(0) += value;
    }
    let mut ranked: Vec<(Uuid, i64)> = sums.into_iter().filter(|(_, n)| *n > 0).collect();
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

impl Window {
    /// KillrVideo's `intervalDays`: 1 (the default), 7 or 30.
    pub fn from_interval_days(raw: Option<&str>) -> Result<Self, Problem> {
        match raw.map(str::trim) {
            None | Some("1") => Ok(Self::Day),
            Some("7") => Ok(Self::Week),
            Some("30") => Ok(Self::Month),
            Some(_) => Err(Problem::invalid("intervalDays", "must be 1, 7 or 30")),
        }
    }

    /// The counting API's `window`: 1h, 24h (the default) or 7d.
    pub fn from_name(raw: Option<&str>) -> Result<Self, Problem> {
        match raw {
            None | Some("24h") => Ok(Self::Day),
            Some("1h") => Ok(Self::Hour),
            Some("7d") => Ok(Self::Week),
            Some(_) => Err(Problem::invalid("window", "must be 1h, 24h or 7d")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-03-10T14:20:00Z
    const NOW: i64 = 1_710_028_800_000 + 14 * 3_600_000 + 20 * 60_000;

    #[test]
    fn windows_are_the_buckets_overlapping_them() {
        let day = 1_710_028_800_000;
        let hour = 3_600_000;
        assert_eq!(Window::Hour.bounds(NOW), (day + 13 * hour, day + 15 * hour));
        assert_eq!(Window::Day.bounds(NOW), (day - 10 * hour, day + 15 * hour));
        assert_eq!(Window::Week.bounds(NOW), (day - 7 * 24 * hour, day + 24 * hour));
        assert_eq!(Window::Month.bounds(NOW), (day - 30 * 24 * hour, day + 24 * hour));
        // On a boundary the window starts exactly `length` ago.
        assert_eq!(Window::Day.bounds(day), (day - 24 * hour, day + hour));
    }

    #[test]
    fn the_row_budget_is_shared_by_the_buckets() {
        assert_eq!(rows_per_bucket(100_000, 25), 4_000);
        assert_eq!(rows_per_bucket(100_000, 31), 3_225);
        assert_eq!(rows_per_bucket(10, 31), 1, "every bucket reads something");
        assert_eq!(rows_per_bucket(10, 0), 10);
    }

    #[test]
    fn ranks_sum_buckets_and_break_ties_by_id() {
        let id = |n: u128| Uuid::from_u128(n);
        let b1 = vec![(id(1), 5), (id(2), 3), (id(3), 0)];
        let b2 = vec![(id(2), 2), (id(4), 7), (id(5), 0)];
        assert_eq!(rank(vec![b1, b2]), vec![(id(4), 7), (id(1), 5), (id(2), 5)]);
        assert!(rank(vec![]).is_empty());
    }
}
