//! A circuit breaker: after `failure_threshold` consecutive failed attempts the
//! client stops sending for `cooldown`, then lets one probe through. A gateway
//! that is down gets no retry storm, and callers learn it at once instead of
//! after every request's full timeout.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct BreakerConfig {
    /// Consecutive failed attempts (5xx, 429, timeouts, connection errors) that
    /// open the circuit; 0 disables the breaker.
    pub failure_threshold: u32,
    /// How long the circuit stays open before a probe may go through.
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { failure_threshold: 5, cooldown: Duration::from_secs(1) }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow; failures are counted.
    Closed,
    /// Requests are refused without being sent.
    Open,
    /// The cooldown is over: the next request (only one at a time) is a probe;
    /// its success closes the circuit, its failure opens it again.
    HalfOpen,
}

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
pub struct CircuitBreaker {
    cfg: BreakerConfig,
    inner: Mutex<Inner>,
    trips: AtomicU64,
}

/// Leave to send one attempt. Report its outcome with [`Permit::record`]; a permit
/// dropped unreported (a cancelled request) frees the probe slot and counts nothing.
#[must_use]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    recorded: bool,
}

impl CircuitBreaker {
    pub fn new(cfg: BreakerConfig) -> Self {
        Self { cfg, inner: Mutex::new(Inner::Closed { failures: 0 }), trips: AtomicU64::new(0) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if Instant::now() < until => BreakerState::Open,
            Inner::Open { .. } | Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// How many times the circuit has opened.
    pub fn trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }

    /// A permit to send, or how long until the circuit may let one through.
    pub fn acquire(&self) -> Result<Permit<'_>, Duration> {
        if self.cfg.failure_threshold == 0 {
            return Ok(Permit { breaker: self, probe: false, recorded: false });
        }
        let mut inner = self.lock();
        let probe = match *inner {
            Inner::Closed { .. } => false,
            Inner::Open { until } => {
                let now = Instant::now();
                if now < until {
                    return Err(until - now);
                }
                *inner = Inner::HalfOpen { probing: true };
                true
            }
            Inner::HalfOpen { probing: true } => return Err(self.cfg.cooldown),
            Inner::HalfOpen { probing: false } => {
                *inner = Inner::HalfOpen { probing: true };
                true
            }
        };
        Ok(Permit { breaker: self, probe, recorded: false })
    }

    fn open(&self, inner: &mut Inner) {
        *inner = Inner::Open { until: Instant::now() + self.cfg.cooldown };
        self.trips.fetch_add(1, Ordering::Relaxed);
    }
}

impl Permit<'_> {
    /// `ok`: the gateway answered (2xx or a 4xx other than 429). Otherwise the
    /// attempt failed in a way that says the gateway is unwell.
    pub fn record(mut self, ok: bool) {
        self.recorded = true;
        let b = self.breaker;
        if b.cfg.failure_threshold == 0 {
            return;
        }
        let mut inner = b.lock();
        match (&mut *inner, ok) {
            (Inner::Closed { failures }, true) => *failures = 0,
            (Inner::Closed { failures }, false) => {
                *failures += 1;
                if *failures >= b.cfg.failure_threshold {
                    b.open(&mut inner);
                }
            }
            (Inner::HalfOpen { .. }, true) if self.probe => *inner = Inner::Closed { failures: 0 },
            (Inner::HalfOpen { .. }, false) if self.probe => b.open(&mut inner),
            // Stragglers sent before the circuit opened decide nothing.
            _ => {}
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.recorded {
            let mut inner = self.breaker.lock();
            if let Inner::HalfOpen { probing } = &mut *inner {
                *probing = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32, cooldown_ms: u64) -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            failure_threshold: threshold,
            cooldown: Duration::from_millis(cooldown_ms),
        })
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = breaker(3, 60_000);
        b.acquire().unwrap().record(false);
        b.acquire().unwrap().record(false);
        b.acquire().unwrap().record(true); // a success resets the count
        b.acquire().unwrap().record(false);
        b.acquire().unwrap().record(false);
        assert_eq!(b.state(), BreakerState::Closed);
        b.acquire().unwrap().record(false);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.acquire().is_err());
        assert_eq!(b.trips(), 1);
    }

    #[test]
    fn half_open_lets_one_probe_through_which_decides() {
        let b = breaker(1, 20);
        b.acquire().unwrap().record(false);
        assert_eq!(b.state(), BreakerState::Open);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.acquire().unwrap();
        assert!(b.acquire().is_err(), "only one probe at a time");
        probe.record(false);
        assert_eq!(b.state(), BreakerState::Open, "a failed probe opens again");
        std::thread::sleep(Duration::from_millis(30));
        drop(b.acquire().unwrap()); // a cancelled probe frees the slot
        let probe = b.acquire().unwrap();
        probe.record(true);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.trips(), 2);
    }

    #[test]
    fn threshold_zero_never_opens() {
        let b = breaker(0, 1000);
        for _ in 0..100 {
            b.acquire().unwrap().record(false);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
