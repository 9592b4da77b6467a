//! When to try again: exponential backoff with full jitter, and `Retry-After`.

use std::time::Duration;

use rand::Rng;

/// How often and how patiently to retry retryable failures (5xx, 429, timeouts,
/// connection errors). 4xx other than 429 is never retried.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Backoff before retry `n` (0-based) is uniform in `[0, min(cap, base · 2ⁿ)]`.
    pub base: Duration,
    pub cap: Duration,
    /// A `Retry-After` longer than this ends the retries instead of waiting.
    pub max_retry_after: Duration,
    /// No retry starts later than this after the first attempt.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base: Duration::from_millis(50),
            cap: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(10),
            max_elapsed: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"):
    /// spreads the retries of many clients evenly instead of in synchronised waves.
    pub fn backoff(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.base.saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX)).min(self.cap);
        Duration::from_nanos(rng.random_range(0..=ceiling.as_nanos().min(u64::MAX as u128) as u64))
    }

    /// The wait before retry `retry` (0-based): the server's `Retry-After` when it
    /// gave one, else the jittered backoff. `None`: stop retrying.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, rng: &mut impl Rng) -> Option<Duration> {
        match retry_after {
            Some(d) if d > self.max_retry_after => None,
            Some(d) => Some(d),
            None => Some(self.backoff(retry, rng)),
        }
    }
}

/// `Retry-After` as delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&chrono::Utc) - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_is_full_jitter_under_a_growing_capped_ceiling() {
        let p = RetryPolicy { base: Duration::from_millis(10), cap: Duration::from_millis(100), ..Default::default() };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (retry, ceiling_ms) in [(0, 10), (1, 20), (2, 40), (3, 80), (4, 100), (30, 100), (200, 100)] {
            let samples: Vec<Duration> = (0..2000).map(|_| p.backoff(retry, &mut rng)).collect();
            let max = *samples.iter().max().unwrap();
            let min = *samples.iter().min().unwrap();
            let ceiling = Duration::from_millis(ceiling_ms);
            assert!(max <= ceiling, "retry {retry}: {max:?} > {ceiling:?}");
            // Full jitter: the whole of [0, ceiling] is used, not just its top.
            assert!(min < ceiling / 10 && max > ceiling * 9 / 10, "retry {retry}: {min:?}..{max:?}");
        }
    }

    #[test]
    fn retry_after_wins_unless_too_long() {
        let p = RetryPolicy::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert_eq!(p.delay(0, Some(Duration::from_secs(3)), &mut rng), Some(Duration::from_secs(3)));
        assert_eq!(p.delay(0, Some(Duration::from_secs(11)), &mut rng), None);
        assert!(p.delay(0, None, &mut rng).unwrap() <= p.base);
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z").unwrap().to_utc();
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
