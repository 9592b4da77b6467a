//! Retrying what must not be dropped. A flush's reads and writes, a claim and a
//! dead letter are retried until they succeed: giving up would either lose events
//! (an offset committed past them) or stall the partition for good. The only way
//! out is shutdown: after its grace period a flush is abandoned, uncommitted, and
//! the next owner replays it.

use std::fmt::Display;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::FlushConfig;
use crate::metrics::{CASSANDRA_ERRORS, CASSANDRA_REQUEST_DURATION};

/// The retry policy of one owner: backoff bounds and the shutdown grace.
#[derive(Clone, Debug)]
pub struct Retry {
    initial: Duration,
    max: Duration,
    grace: Duration,
    shutdown: CancellationToken,
}

impl Retry {
    pub fn new(cfg: &FlushConfig, shutdown: CancellationToken) -> Self {
        Self {
            initial: Duration::from_millis(cfg.retry_initial_ms),
            max: Duration::from_millis(cfg.retry_max_ms),
            grace: Duration::from_millis(cfg.shutdown_grace_ms),
            shutdown,
        }
    }

    pub fn shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// The pause before retry number `attempt` (0-based).
    pub fn pause(&self, attempt: u32) -> Duration {
        backoff(attempt, self.initial, self.max)
    }

    /// Runs the Cassandra request `f` until it succeeds, timing each attempt and
    /// counting failures by `op`. Gives up (`None`) only once shutdown has been
    /// requested and its grace period has passed.
    pub async fn cassandra<T, E, F, Fut>(&self, op: &'static str, mut f: F) -> Option<T>
    where
        E: Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut give_up_at: Option<tokio::time::Instant> = None;
        let mut attempt = 0;
        let latency = CASSANDRA_REQUEST_DURATION.histogram_with(&[("op", op)]);
        loop {
            let started = tokio::time::Instant::now();
            let result = f().await;
            latency.record(started.elapsed().as_secs_f64());
            match result {
                Ok(v) => return Some(v),
                Err(e) => {
                    CASSANDRA_ERRORS.counter_with(&[("op", op)]).increment(1);
                    tracing::warn!(error = %e, op, attempt, "cassandra request failed, retrying");
                }
            }
            if self.shutting_down() {
                let at = *give_up_at.get_or_insert_with(|| tokio::time::Instant::now() + self.grace);
                if tokio::time::Instant::now() >= at {
                    return None;
                }
            }
            tokio::time::sleep(self.pause(attempt)).await;
            attempt += 1;
        }
    }
}

/// Exponential backoff with a cap.
pub fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    initial.saturating_mul(1u32 << attempt.min(16)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (i, m) = (Duration::from_millis(100), Duration::from_secs(5));
        assert_eq!(backoff(0, i, m), i);
        assert_eq!(backoff(3, i, m), Duration::from_millis(800));
        assert_eq!(backoff(40, i, m), m);
    }
}
