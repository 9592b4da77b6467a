//! How long rollup rows live, and therefore which rows a reader may still use.
//!
//! A row's lifetime is tied to its bucket, not to when it was written: the row of
//! bucket `b` at granularity `g` lives until `retention` after the bucket ends
//! (`b + width + retention`). The aggregator gives every write the TTL that ends
//! there ([`Retention::ttl_secs`]), so a late event rewriting an old row cannot extend
//! it, and a reader knows from the clock alone which buckets still exist
//! ([`Retention::horizons`]). With TTLs counted from the write instead (as they once
//! were), a row lived until its last write plus the retention, which no reader can
//! know: an answer near the retention edge could be silently short.
//!
//! These settings are one section (`retention`) that the aggregator's and the query
//! service's configs both embed, so the writer and the reader cannot disagree about
//! the arithmetic, only about the values (and the deploy test checks those match).
//! The type lives here rather than in `platform` because the range planner, which
//! is I/O-free, needs the same arithmetic.

use serde::{Deserialize, Serialize};

use crate::time::{Granularity, floor_to};

/// Cassandra refuses a TTL above 20 years.
pub const MAX_TTL_SECS: i64 = 630_720_000;

/// Longest retention accepted: a row's TTL is its retention plus at most its bucket's
/// width and the gateway's allowance for clocks ahead, which must stay below
/// [`MAX_TTL_SECS`].
pub const MAX_RETENTION_SECS: u64 = 19 * 365 * 86_400;

/// Time to live of rollup rows by granularity, counted from the end of their bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Minute rows live this long after their minute ends; 0 keeps them forever.
    pub minute_secs: u64,
    /// Hour rows, likewise; at least `minute_secs`.
    pub hour_secs: u64,
    /// Day rows, likewise; at least `hour_secs`. All-time rows never expire.
    pub day_secs: u64,
    /// Readers treat a row as gone this long before its TTL ends: room for clocks
    /// that differ between hosts and for the time a read takes. The aggregator does
    /// not use it.
    pub expiry_margin_secs: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self { minute_secs: 8 * 86_400, hour_secs: 400 * 86_400, day_secs: 0, expiry_margin_secs: 60 }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RetentionError {
    #[error("retention.{0}_secs must be at most {MAX_RETENTION_SECS} (19 years), or 0 for forever")]
    TooLong(&'static str),
    #[error(
        "retention.{coarser}_secs must be at least retention.{finer}_secs (0 is forever): \
         coarser rows answer when finer ones have expired"
    )]
    NotMonotone { finer: &'static str, coarser: &'static str },
}

impl Retention {
    /// Checks what the planner relies on: each granularity is kept at least as long
    /// as the finer one, so a bucket that is kept lies inside a coarser kept bucket.
    pub fn validate(&self) -> Result<(), RetentionError> {
        let levels = [("minute", self.minute_secs), ("hour", self.hour_secs), ("day", self.day_secs)];
        for (name, secs) in levels {
            if secs > MAX_RETENTION_SECS {
                return Err(RetentionError::TooLong(name));
            }
        }
        let forever = |s: u64| if s == 0 { u64::MAX } else { s };
        for pair in levels.windows(2) {
            if forever(pair[1].1) < forever(pair[0].1) {
                return Err(RetentionError::NotMonotone { finer: pair[0].0, coarser: pair[1].0 });
            }
        }
        Ok(())
    }

    /// The retention of `g` in milliseconds; `None` when its rows never expire.
    fn lifetime_ms(&self, g: Granularity) -> Option<i64> {
        let secs = match g {
            Granularity::Minute => self.minute_secs,
            Granularity::Hour => self.hour_secs,
            Granularity::Day => self.day_secs,
            Granularity::Total => 0,
        };
        (secs > 0).then(|| i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000))
    }

    /// When the row of `bucket_ms` at `g` expires; `None` for never.
    pub fn expires_at(&self, g: Granularity, bucket_ms: i64) -> Option<i64> {
        let width = g.width_ms()?;
        Some(bucket_ms.saturating_add(width).saturating_add(self.lifetime_ms(g)?))
    }

    /// The TTL, in seconds, to write the row of `bucket_ms` at `g` with at `now_ms`:
    /// 0 (no TTL) for rows that never expire; otherwise rounded up so the row lives
    /// at least until [`Self::expires_at`] (when the clocks of the writer and of
    /// Cassandra agree), and at least 1 s for a row written after it expired (a late
    /// event): it is gone a second later, and no reader uses it.
    pub fn ttl_secs(&self, g: Granularity, bucket_ms: i64, now_ms: i64) -> i32 {
        let Some(expiry) = self.expires_at(g, bucket_ms) else { return 0 };
        // Cassandra counts a TTL from the write's whole second, so we do too.
        let ms = expiry.saturating_sub(floor_to(now_ms, 1000));
        let secs = ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) > 0);
        secs.clamp(1, MAX_TTL_SECS) as i32
    }

    /// The oldest bucket of each granularity a reader may use at `now_ms`.
    pub fn horizons(&self, now_ms: i64) -> Horizons {
        let margin = i64::try_from(self.expiry_margin_secs).unwrap_or(i64::MAX).saturating_mul(1000);
        let oldest = |g: Granularity| {
            let (Some(width), Some(life)) = (g.width_ms(), self.lifetime_ms(g)) else { return i64::MIN };
            // Kept while b + width + life > now + margin, i.e. b > now + margin - width - life.
            let limit = now_ms.saturating_add(margin).saturating_sub(width).saturating_sub(life);
            floor_to(limit, width).saturating_add(width)
        };
        Horizons { minute: oldest(Granularity::Minute), hour: oldest(Granularity::Hour), day: oldest(Granularity::Day) }
    }
}

/// The oldest bucket start still readable at each granularity, at one instant:
/// every bucket from there on is kept, every earlier one has (or may have) expired.
/// `i64::MIN` where rows never expire. With a valid [`Retention`],
/// `day <= hour <= minute`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Horizons {
    pub minute: i64,
    pub hour: i64,
    pub day: i64,
}

impl Horizons {
    /// Nothing ever expires.
    pub const FOREVER: Horizons = Horizons { minute: i64::MIN, hour: i64::MIN, day: i64::MIN };

    /// The oldest readable bucket of `g` (`i64::MIN` for the all-time row).
    pub fn oldest(&self, g: Granularity) -> i64 {
        match g {
            Granularity::Minute => self.minute,
            Granularity::Hour => self.hour,
            Granularity::Day => self.day,
            Granularity::Total => i64::MIN,
        }
    }

    /// Whether the row of `bucket_ms` at `g` may be read.
    pub fn kept(&self, g: Granularity, bucket_ms: i64) -> bool {
        bucket_ms >= self.oldest(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{DAY_MS, HOUR_MS, MINUTE_MS};
    use proptest::prelude::*;

    const T0: i64 = 1_710_028_800_000; // 2024-03-10T00:00:00Z

    fn short() -> Retention {
        Retention { minute_secs: 20, hour_secs: 40, day_secs: 60, expiry_margin_secs: 2 }
    }

    #[test]
    fn rows_live_until_retention_after_their_bucket_ends() {
        let r = short();
        let m = T0 + 10 * MINUTE_MS;
        assert_eq!(r.expires_at(Granularity::Minute, m), Some(m + MINUTE_MS + 20_000));
        assert_eq!(r.expires_at(Granularity::Total, 0), None);
        assert_eq!(Retention { day_secs: 0, ..r.clone() }.expires_at(Granularity::Day, T0), None);
        // Written during the minute: the TTL runs to 20 s after it ends, rounded up.
        assert_eq!(r.ttl_secs(Granularity::Minute, m, m + 30_500), 50);
        // A late event rewriting it cannot extend it; after its end, a 1 s TTL.
        assert_eq!(r.ttl_secs(Granularity::Minute, m, m + 79_999), 1);
        assert_eq!(r.ttl_secs(Granularity::Minute, m, m + DAY_MS), 1);
        assert_eq!(r.ttl_secs(Granularity::Total, 0, m), 0);
        assert_eq!(Retention::default().ttl_secs(Granularity::Day, T0, T0), 0);
    }

    #[test]
    fn horizons_keep_the_margin() {
        let r = short();
        // 10:01:17: minute 10:00 ended at 10:01 and expires at 10:01:20, after
        // now + the 2 s margin, so it is still read.
        let now = T0 + 10 * HOUR_MS + MINUTE_MS + 17_000;
        let h = r.horizons(now);
        assert_eq!(h.minute, T0 + 10 * HOUR_MS);
        // One more second and it is not.
        assert_eq!(r.horizons(now + 1_000).minute, T0 + 10 * HOUR_MS + MINUTE_MS);
        assert_eq!(h.hour, T0 + 10 * HOUR_MS);
        assert_eq!(h.day, T0);
        assert_eq!(Retention { minute_secs: 0, hour_secs: 0, day_secs: 0, ..r }.horizons(now), Horizons::FOREVER);
    }

    #[test]
    fn validation_names_the_key() {
        assert_eq!(Retention::default().validate(), Ok(()));
        let bad = Retention { hour_secs: 10, ..short() };
        assert_eq!(bad.validate(), Err(RetentionError::NotMonotone { finer: "minute", coarser: "hour" }));
        let bad = Retention { day_secs: 0, hour_secs: 0, minute_secs: 5, ..short() };
        assert_eq!(bad.validate(), Ok(()));
        let bad = Retention { day_secs: 30, hour_secs: 0, ..short() };
        assert_eq!(bad.validate(), Err(RetentionError::NotMonotone { finer: "hour", coarser: "day" }));
        let bad = Retention { day_secs: MAX_RETENTION_SECS + 1, ..Retention::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("retention.day_secs"));
    }

    fn retention() -> impl Strategy<Value = Retention> {
        (0u64..3 * 86_400, 0u64..3 * 86_400, 0u64..30 * 86_400, 0u64..120).prop_map(|(m, dh, dd, margin)| {
            let h = if m == 0 { 0 } else { m + dh };
            let d = if h == 0 { 0 } else { h + dd };
            Retention { minute_secs: m, hour_secs: h, day_secs: d, expiry_margin_secs: margin }
        })
    }

    proptest! {
        /// The horizon is exactly where "expires after now + margin" flips, and a
        /// row written with `ttl_secs` at any time lives at least until it (whole
        /// seconds, as Cassandra counts them).
        #[test]
        fn horizons_match_the_ttls(r in retention(), now in T0..T0 + 40 * DAY_MS, g in 0usize..3) {
            let g = [Granularity::Minute, Granularity::Hour, Granularity::Day][g];
            let h = r.horizons(now);
            prop_assert!(h.day <= h.hour && h.hour <= h.minute, "{h:?}");
            let oldest = h.oldest(g);
            let margin = r.expiry_margin_secs as i64 * 1000;
            match r.expires_at(g, if oldest == i64::MIN { T0 } else { oldest }) {
                None => prop_assert_eq!(oldest, i64::MIN),
                Some(expiry) => {
                    let w = g.width_ms().unwrap();
                    prop_assert_eq!(oldest % w, 0);
                    prop_assert!(expiry > now + margin);
                    prop_assert!(r.expires_at(g, oldest - w).unwrap() <= now + margin);
                    // Cassandra: expiry = floor(write time in s) + ttl.
                    for written in [now - 3 * DAY_MS, now - 1, now, now + 999] {
                        let ttl = i64::from(r.ttl_secs(g, oldest, written));
                        prop_assert!(ttl >= 1);
                        let gone = (written.div_euclid(1000) + ttl) * 1000;
                        prop_assert!(gone >= expiry || written >= expiry, "{gone} < {expiry}");
                        prop_assert!(gone < expiry + 1000 || written >= expiry - 1000, "{gone} lives too long");
                    }
                }
            }
        }
    }
}
