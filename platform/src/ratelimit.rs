//! Rate limits per key (a client IP, an API key, a user), answered with 429 and
//! `Retry-After`.
//!
//! `governor` implements GCRA: per key one 8-byte timestamp ("theoretical arrival
//! time") in a sharded map, updated with a compare-and-swap, so a check is a hash
//! and an atomic, with no timer task per key. A request may cost more than one cell
//! (`check(key, n)`: a batch of n events), and a cost above the burst can never pass,
//! which callers report as a validation error rather than a 429 a retry cannot fix.
//!
//! Memory: a key whose bucket is full again is indistinguishable from a new one, and
//! [`KeyedLimiter::sweep`] (every 10 s from [`KeyedLimiter::spawn_sweeper`]) drops it.
//! So the map holds the keys seen within about `burst / per_second` seconds; each
//! entry is the key, an 8-byte state and the map's overhead (under 100 bytes for an
//! IP). IPv6 clients are keyed by their /64, the block a single subscriber gets, or
//! one host could mint 2^64 keys.
//!
//! Limits are per process: N instances behind a load balancer let N times the rate
//! through (see the README's security section).

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::http::Problem;

/// One limit: a sustained rate and a burst. The rate is `per_second`, or, when that
/// is 0, `per_minute` (for slow things such as sign-ins); both 0 turn it off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Cells per second, sustained (0: see `per_minute`).
    #[serde(default)]
    pub per_second: u32,
    /// Cells that may be spent at once after a quiet period (at least 1).
    pub burst: u32,
    /// Cells per minute, sustained, when `per_second` is 0 (both 0: no limit).
    #[serde(default)]
    pub per_minute: u32,
}

impl Rate {
    pub const UNLIMITED: Rate = Rate { per_second: 0, burst: 0, per_minute: 0 };

    pub const fn new(per_second: u32, burst: u32) -> Self {
        Self { per_second, burst, per_minute: 0 }
    }

    /// `per_minute` cells a minute, `burst` at once.
    pub const fn per_minute(per_minute: u32, burst: u32) -> Self {
        Self { per_second: 0, burst, per_minute }
    }

    pub fn is_unlimited(&self) -> bool {
        self.per_second == 0 && self.per_minute == 0
    }

    fn quota(&self) -> Option<Quota> {
        let quota = match (NonZeroU32::new(self.per_second), NonZeroU32::new(self.per_minute)) {
            (Some(s), _) => Quota::per_second(s),
            (None, Some(m)) => Quota::per_minute(m),
            (None, None) => return None,
        };
        Some(quota.allow_burst(NonZeroU32::new(self.burst.max(1)).expect("at least 1")))
    }
}

/// Why a check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Over the rate: this much later it would pass.
    Wait(Duration),
    /// The cost is larger than the burst: it never passes.
    TooLarge { burst: u32 },
}

impl Refusal {
    /// 429 with `Retry-After` (whole seconds, rounded up), or for a cost above the
    /// burst a 422 naming `field`.
    pub fn into_problem(self, what: &str, field: &str) -> Problem {
        match self {
            Refusal::Wait(wait) => rate_limited(what, wait),
            Refusal::TooLarge { burst } => {
                Problem::invalid(field, format!("costs more than the {what} limit allows at once ({burst})"))
            }
        }
    }
}

/// 429 Too Many Requests with `Retry-After`.
pub fn rate_limited(what: &str, wait: Duration) -> Problem {
    let secs = u32::try_from(wait.as_millis().div_ceil(1000)).unwrap_or(u32::MAX).max(1);
    let mut p = Problem::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "Too many requests",
        format!("the {what} rate limit is reached; retry in {secs} s"),
    );
    p.retry_after_secs = Some(secs);
    p
}

/// A rate limit per key. Cheap to share (`Arc` inside).
pub struct KeyedLimiter<K: Hash + Eq + Clone> {
    limiter: Option<Arc<DefaultKeyedRateLimiter<K>>>,
    rate: Rate,
}

impl<K: Hash + Eq + Clone> Clone for KeyedLimiter<K> {
    fn clone(&self) -> Self {
        Self { limiter: self.limiter.clone(), rate: self.rate }
    }
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> KeyedLimiter<K> {
    pub fn new(rate: Rate) -> Self {
        Self { limiter: rate.quota().map(|q| Arc::new(RateLimiter::keyed(q))), rate }
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Spends `cost` cells of `key`'s budget, or says why not (nothing is spent then).
    pub fn check(&self, key: &K, cost: u32) -> Result<(), Refusal> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        let Some(n) = NonZeroU32::new(cost) else { return Ok(()) };
        match limiter.check_key_n(key, n) {
            Ok(Ok(())) => Ok(()),
            // The limiter's own clock: making a new one recalibrates quanta's TSC clock
            // (measured: a refusal cost 58 µs of CPU that way, against 13 µs for a pass).
            Ok(Err(not_until)) => Err(Refusal::Wait(not_until.wait_time_from(limiter.clock().now()))),
            Err(_) => Err(Refusal::TooLarge { burst: self.rate.burst.max(1) }),
        }
    }

    /// Keys currently remembered.
    pub fn len(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets keys whose budget is full again (they behave exactly like new ones).
    pub fn sweep(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// Sweeps every 10 s until `stop`.
    pub fn spawn_sweeper(&self, stop: CancellationToken) {
        if self.limiter.is_none() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            while stop.run_until_cancelled(tick.tick()).await.is_some() {
                me.sweep();
            }
        });
    }
}

/// The key a client IP is limited under: IPv4 as is, IPv6 by its /64.
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

/// An address block, `10.0.0.0/8` or a single address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s.trim().split_once('/').map_or((s.trim(), None), |(a, p)| (a, Some(p)));
        let addr: IpAddr = a.parse().map_err(|_| format!("{s:?} is not an address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("{s:?}: bad prefix"))?,
        };
        Ok(Self { addr, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let mask = |bits: u32, total: u32| if bits == 0 { 0 } else { u128::MAX << (total - bits) };
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let m = mask(self.prefix.into(), 32) as u32;
                u32::from(a) & m == u32::from(b) & m
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let m = mask(self.prefix.into(), 128);
                u128::from(a) & m == u128::from(b) & m
            }
            _ => false,
        }
    }
}

/// Finds the client's address: the peer's, unless the peer is a trusted proxy
/// (the load balancer), whose `X-Forwarded-For` is then read from the right,
/// skipping trusted hops. Anything a client writes to the left of that is ignored,
/// so a client cannot choose its own bucket.
#[derive(Clone, Debug, Default)]
pub struct ClientIp {
    trusted: Vec<Cidr>,
}

impl ClientIp {
    pub fn new(trusted: &[String]) -> anyhow::Result<Self> {
        let trusted =
            trusted.iter().map(|s| s.parse::<Cidr>().map_err(anyhow::Error::msg)).collect::<Result<_, _>>()?;
        Ok(Self { trusted })
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let mut hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        hops.reverse();
        for hop in hops {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.is_trusted(ip) => continue,
                Ok(ip) => return ip,
                Err(_) => return peer,
            }
        }
        peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let l = KeyedLimiter::<u32>::new(Rate::new(1, 3));
        for _ in 0..3 {
            l.check(&7, 1).unwrap();
        }
        let Err(Refusal::Wait(wait)) = l.check(&7, 1) else { panic!("the fourth must wait") };
        assert!(wait > Duration::from_millis(500) && wait <= Duration::from_secs(1), "{wait:?}");
        // Another key has its own budget.
        l.check(&8, 3).unwrap();
        // More than the burst never passes, and spends nothing.
        assert_eq!(l.check(&9, 4), Err(Refusal::TooLarge { burst: 3 }));
        l.check(&9, 3).unwrap();
        let p = Refusal::Wait(Duration::from_millis(1200)).into_problem("per-IP", "value");
        assert_eq!((p.status, p.retry_after_secs), (429, Some(2)));
        let p = Refusal::TooLarge { burst: 3 }.into_problem("per-user", "value");
        assert_eq!((p.status, p.field.as_deref()), (422, Some("value")));
    }

    #[test]
    fn a_rate_per_minute_refills_a_cell_every_so_many_seconds() {
        let l = KeyedLimiter::<u32>::new(Rate::per_minute(6, 2));
        l.check(&1, 2).unwrap();
        let Err(Refusal::Wait(wait)) = l.check(&1, 1) else { panic!("the third must wait") };
        assert!(wait > Duration::from_secs(9) && wait <= Duration::from_secs(10), "{wait:?}");
        assert_eq!(Refusal::Wait(wait).into_problem("login", "email").retry_after_secs, Some(10));
        assert!(!Rate::per_minute(6, 2).is_unlimited() && Rate::UNLIMITED.is_unlimited());
    }

    #[test]
    fn unlimited_is_off_and_keeps_no_keys() {
        let l = KeyedLimiter::<u32>::new(Rate::UNLIMITED);
        for i in 0..1000 {
            l.check(&i, 1_000_000).unwrap();
        }
        assert!(l.is_empty());
    }

    #[test]
    fn the_sweep_forgets_full_buckets_only() {
        let l = KeyedLimiter::<u32>::new(Rate::new(1000, 1));
        l.check(&1, 1).unwrap();
        assert_eq!(l.len(), 1);
        std::thread::sleep(Duration::from_millis(5));
        l.sweep();
        assert_eq!(l.len(), 0, "a key whose budget refilled is dropped");
    }

    #[test]
    fn ipv6_clients_share_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(ip_key(mapped), "10.1.2.3".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let ips = ClientIp::new(&["10.0.0.0/8".into(), "::1".into()]).unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.1.1.1".parse().unwrap());
        let lb: IpAddr = "10.0.0.2".parse().unwrap();
        // Behind the load balancer: the rightmost untrusted hop, not what the client wrote.
        assert_eq!(ips.resolve(lb, &h), "203.0.113.9".parse::<IpAddr>().unwrap());
        // A client talking directly cannot pick its address.
        let direct: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(ips.resolve(direct, &h), direct);
        // Garbage in the header: the proxy's own address, never a client's choice.
        h.insert("x-forwarded-for", "nonsense".parse().unwrap());
        assert_eq!(ips.resolve(lb, &h), lb);
        assert!(ClientIp::new(&["10.0.0.0/33".into()]).is_err());
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(direct));
    }
}
