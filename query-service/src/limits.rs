//! Rate limits on signing in and signing up: per client address (IPv6 by /64) and
//! per account (the lower-cased email), each a `governor` GCRA limit from
//! `platform::ratelimit`, answered 429 with `Retry-After`.
//!
//! - Per address: one host cannot try many accounts, or make many accounts, quickly.
//! - Per account: many hosts together cannot guess one account's password quickly.
//!   The price is that someone who knows an email can keep its owner waiting (429
//!   with `Retry-After`, never a lock-out: the budget refills by itself).
//!
//! The limits are checked after the request is parsed and validated and before
//! anything is read or hashed, so a refused request costs a hash-map lookup. The
//! client address is the peer's, or, behind a trusted proxy
//! (`limits.trusted_proxies`), the right-most untrusted hop of `X-Forwarded-For`.
//! Accounts are keyed by a 64-bit keyed hash of the email (SipHash with a
//! per-process random key): 8 bytes per entry whatever the email's length, and no
//! one can make two emails share a budget on purpose.
//!
//! Per process, like every limit here: N instances let N times the rate through
//! (see the README's security section).

use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::http::HeaderMap;
use platform::http::Problem;
use platform::ratelimit::{ClientIp, KeyedLimiter, ip_key};
use tokio_util::sync::CancellationToken;

use crate::config::Limits;
use crate::metrics::RATE_LIMITED;

pub struct SignInLimits {
    login_ip: KeyedLimiter<IpAddr>,
    login_account: KeyedLimiter<u64>,
    register_ip: KeyedLimiter<IpAddr>,
    register_account: KeyedLimiter<u64>,
    client_ip: ClientIp,
    accounts: std::collections::hash_map::RandomState,
}

/// What is being attempted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    Login,
    Register,
}

impl SignInLimits {
    pub fn new(cfg: &Limits) -> anyhow::Result<Self> {
        Ok(Self {
            login_ip: KeyedLimiter::new(cfg.login_per_ip),
            login_account: KeyedLimiter::new(cfg.login_per_account),
            register_ip: KeyedLimiter::new(cfg.register_per_ip),
            register_account: KeyedLimiter::new(cfg.register_per_account),
            client_ip: ClientIp::new(&cfg.trusted_proxies)?,
            accounts: Default::default(),
        })
    }

    /// Forgets refilled budgets every 10 s, so the maps hold recent clients only.
    pub fn spawn_sweepers(&self, stop: &CancellationToken) {
        for l in [&self.login_ip, &self.register_ip] {
            l.spawn_sweeper(stop.clone());
        }
        for l in [&self.login_account, &self.register_account] {
            l.spawn_sweeper(stop.clone());
        }
    }

    /// The client's address: the peer's, or the one a trusted proxy names.
    pub fn client(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> IpAddr {
        let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip());
        self.client_ip.resolve(peer, headers)
    }

    /// Spends one attempt of the client's and of the account's budget, or answers
    /// 429 naming which. The address is checked first, so a host over its limit
    /// spends nothing of the accounts it tries.
    pub fn check(&self, attempt: Attempt, client: IpAddr, email: &str) -> Result<(), Problem> {
        let (by_ip, by_account, names) = match attempt {
            Attempt::Login => (&self.login_ip, &self.login_account, ["login_ip", "login_account"]),
            Attempt::Register => (&self.register_ip, &self.register_account, ["register_ip", "register_account"]),
        };
        let what = match attempt {
            Attempt::Login => ["per-address sign-in", "per-account sign-in"],
            Attempt::Register => ["per-address sign-up", "per-account sign-up"],
        };
        let refused = |i: usize, r: platform::ratelimit::Refusal| {
            RATE_LIMITED.counter_with(&[("limit", names[i])]).increment(1);
            r.into_problem(what[i], "email")
        };
        by_ip.check(&ip_key(client), 1).map_err(|r| refused(0, r))?;
        by_account.check(&self.accounts.hash_one(email), 1).map_err(|r| refused(1, r))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use platform::ratelimit::Rate;

    use super::*;

    fn limits(ip: Rate, account: Rate) -> SignInLimits {
        let cfg = Limits {
            login_per_ip: ip,
            login_per_account: account,
            trusted_proxies: vec!["10.0.0.0/8".into()],
            ..Limits::default()
        };
        SignInLimits::new(&cfg).unwrap()
    }

    #[test]
    fn an_address_and_an_account_each_have_a_budget() {
        let l = limits(Rate::per_minute(60, 3), Rate::per_minute(60, 2));
        let (a, b): (IpAddr, IpAddr) = ("203.0.113.1".parse().unwrap(), "203.0.113.2".parse().unwrap());
        // One address, three accounts: its burst of 3, then 429.
        for email in ["x@a.org", "y@a.org", "z@a.org"] {
            l.check(Attempt::Login, a, email).unwrap();
        }
        let p = l.check(Attempt::Login, a, "w@a.org").unwrap_err();
        assert_eq!((p.status, p.retry_after_secs), (429, Some(1)), "{}", p.detail);
        assert!(p.detail.contains("per-address"), "{}", p.detail);
        // Another address, an account already tried once: one more, then its burst of 2 is spent.
        l.check(Attempt::Login, b, "x@a.org").unwrap();
        let p = l.check(Attempt::Login, b, "x@a.org").unwrap_err();
        assert!(p.detail.contains("per-account"), "{}", p.detail);
        l.check(Attempt::Login, b, "v@a.org").unwrap();
        // Registration has budgets of its own.
        l.check(Attempt::Register, a, "x@a.org").unwrap();
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_names_it() {
        let l = limits(Rate::UNLIMITED, Rate::UNLIMITED);
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "198.51.100.9".parse().unwrap());
        let proxy: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let direct: SocketAddr = "192.0.2.4:5000".parse().unwrap();
        assert_eq!(l.client(Some(proxy), &h), "198.51.100.9".parse::<IpAddr>().unwrap());
        assert_eq!(l.client(Some(direct), &h), direct.ip());
    }
}
