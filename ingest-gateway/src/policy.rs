//! Who may send what, and how fast. The policy:
//!
//! | caller | `/view` | `/watch-time` | `/events` | `/events:batch` | ratings |
//! | --- | --- | --- | --- | --- | --- |
//! | anonymous, per client IP | 1 per view | 1, and the seconds from the IP's watch budget | `value` absent or 1 only (else 401 naming `value`) | refused (401) | refused (401) |
//! | signed-in user (`Authorization: Bearer`), per user | 1 per view | 1, and the seconds from the user's watch budget | costs `value` | costs the sum of the values | 1 per rating |
//! | producer API key (`X-Api-Key`), per key | 1 per view | 1 | costs 1 | costs 1 per event | – |
//!
//! A KillrVideo view (`POST /videos/id/{id}/view`) always adds exactly 1, whoever
//! sends it. A value other than 1 is a claim that many things happened, so only a
//! producer holding a key (a trusted backend that aggregates, e.g. a CDN log
//! importer) or a signed-in user spending their own budget may make it. A user's
//! cost above their burst is refused outright (422 naming the field): waiting would
//! never make it pass. Over a rate, the answer is 429 with `Retry-After`.
//!
//! KillrVideo's watch time (`watch_duration_seconds`, up to `events.max_watch_seconds`)
//! is a value every viewer sends, signed in or not, so refusing anonymous values
//! would break the front end, and charging it as one request would let one address
//! claim a day of watching per request. Instead seconds come out of a budget of
//! their own (`limits.watch_seconds`, per IP or per user) that refills at wall-clock
//! speed times the number of viewers an address may plausibly hold (10 by
//! default): nobody can report watching faster than that many people watch, and
//! one maximal report fits in the burst. A report the budget cannot pay is a 429
//! (422 naming `watch_duration_seconds` if it could never pay). The request also
//! costs 1 of the ordinary rate, charged first: a report then refused for its
//! seconds has spent that one request (the only refusal that spends anything; it
//! hurts nobody but the sender), while the seconds are never spent for a request
//! refused for its rate.
//!
//! The budget is spent after the body is parsed (bounded by the body limit and the
//! batch cap) and before events are validated and produced; a request refused by
//! the policy spends nothing. A wrong key or token is a 401, never a fall back to
//! anonymous: a producer that meant to authenticate should hear that it did not.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::http::{HeaderMap, StatusCode};
use platform::apikeys::ApiKeys;
use platform::auth::Tokens;
use platform::http::Problem;
use platform::ratelimit::{ClientIp, KeyedLimiter, ip_key};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::GatewayConfig;

/// The header a producer's API key travels in.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Who is calling, as far as the limits are concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    Key { index: usize },
    User(Uuid),
    Anonymous(IpAddr),
}

/// What a request would add.
#[derive(Clone, Copy, Debug)]
pub enum Cost {
    View,
    Event {
        value: i64,
    },
    Batch {
        events: usize,
        value_sum: u64,
    },
    Rating,
    /// KillrVideo's watch time: one report of this many seconds.
    WatchTime {
        seconds: i64,
    },
}

pub struct Policy {
    keys: ApiKeys,
    /// One limiter per key (the unit key: each has its own rate).
    key_limits: Vec<KeyedLimiter<()>>,
    anonymous: KeyedLimiter<IpAddr>,
    users: KeyedLimiter<Uuid>,
    /// Watch seconds, per client IP and per user (`limits.watch_seconds`).
    watch_anonymous: KeyedLimiter<IpAddr>,
    watch_users: KeyedLimiter<Uuid>,
    client_ip: ClientIp,
}

impl Policy {
    pub fn new(cfg: &GatewayConfig) -> anyhow::Result<Self> {
        let keys = ApiKeys::new(&cfg.producers.keys)?;
        let key_limits = keys.rates().into_iter().map(KeyedLimiter::new).collect();
        Ok(Self {
            keys,
            key_limits,
            anonymous: KeyedLimiter::new(cfg.limits.anonymous),
            users: KeyedLimiter::new(cfg.limits.user),
            watch_anonymous: KeyedLimiter::new(cfg.limits.watch_seconds),
            watch_users: KeyedLimiter::new(cfg.limits.watch_seconds),
            client_ip: ClientIp::new(&cfg.limits.trusted_proxies)?,
        })
    }

    /// Forgets refilled buckets every 10 s, so the maps hold recent clients only.
    pub fn spawn_sweepers(&self, stop: &CancellationToken) {
        self.anonymous.spawn_sweeper(stop.clone());
        self.users.spawn_sweeper(stop.clone());
        self.watch_anonymous.spawn_sweeper(stop.clone());
        self.watch_users.spawn_sweeper(stop.clone());
    }

    /// A key if one is presented (and it must be valid), else the signed-in user,
    /// else the client's address.
    pub fn caller(&self, headers: &HeaderMap, tokens: &Tokens, peer: Option<SocketAddr>) -> Result<Caller, Problem> {
        if let Some(key) = headers.get(API_KEY_HEADER) {
            let key = key.to_str().unwrap_or_default().trim();
            return match self.keys.verify(key) {
                Some((index, _)) => Ok(Caller::Key { index }),
                None => Err(Problem::unauthorized("the X-Api-Key is not a valid producer key")),
            };
        }
        if let Some(claims) = tokens.optional(headers)? {
            return Ok(Caller::User(claims.sub));
        }
        let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip());
        Ok(Caller::Anonymous(ip_key(self.client_ip.resolve(peer, headers))))
    }

    /// Spends the request's cost from the caller's budget, or refuses it.
    pub fn charge(&self, caller: &Caller, cost: Cost) -> Result<(), Problem> {
        match (caller, cost) {
            (Caller::Anonymous(_), Cost::Event { value }) if value != 1 => Err(needs_credentials(
                "value",
                "a value other than 1 needs a producer API key (X-Api-Key) or a signed-in user",
            )),
            (Caller::Anonymous(_), Cost::Batch { .. }) => {
                Err(needs_credentials("body", "batches need a producer API key (X-Api-Key) or a signed-in user"))
            }
            (Caller::Anonymous(_), Cost::Rating) => Err(Problem::unauthorized("sign in first")),
            (Caller::Anonymous(ip), Cost::WatchTime { seconds }) => {
                self.anonymous.check(ip, 1).map_err(|r| r.into_problem("per-client", "body"))?;
                self.watch_anonymous
                    .check(ip, watch_units(seconds))
                    .map_err(|r| r.into_problem("per-client watch time", WATCH_FIELD))
            }
            (Caller::User(user), Cost::WatchTime { seconds }) => {
                self.users.check(user, 1).map_err(|r| r.into_problem("per-user", "body"))?;
                self.watch_users
                    .check(user, watch_units(seconds))
                    .map_err(|r| r.into_problem("per-user watch time", WATCH_FIELD))
            }
            (Caller::Anonymous(ip), _) => self.anonymous.check(ip, 1).map_err(|r| r.into_problem("per-client", "body")),
            (Caller::User(user), cost) => {
                let (units, field) = match cost {
                    Cost::View | Cost::Rating | Cost::WatchTime { .. } => (1, "body"),
                    Cost::Event { value } => (u32::try_from(value.max(1)).unwrap_or(u32::MAX), "value"),
                    Cost::Batch { value_sum, .. } => (u32::try_from(value_sum).unwrap_or(u32::MAX), "body"),
                };
                self.users.check(user, units).map_err(|r| r.into_problem("per-user", field))
            }
            (Caller::Key { index }, cost) => {
                let units = match cost {
                    Cost::Batch { events, .. } => u32::try_from(events).unwrap_or(u32::MAX),
                    _ => 1,
                };
                self.key_limits[*index].check(&(), units).map_err(|r| r.into_problem("API key", "body"))
            }
        }
    }
}

/// The watch-time body's member.
pub const WATCH_FIELD: &str = "watch_duration_seconds";

/// Seconds as limiter cells (validated to 1..=max before the charge).
fn watch_units(seconds: i64) -> u32 {
    u32::try_from(seconds.max(1)).unwrap_or(u32::MAX)
}

/// 401 naming the field that needs credentials.
fn needs_credentials(field: &str, detail: &str) -> Problem {
    let mut p = Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", format!("{field}: {detail}"));
    p.field = Some(field.to_owned());
    p
}

#[cfg(test)]
mod tests {
    use platform::apikeys::{ApiKeyConfig, generate};
    use platform::auth::AuthConfig;
    use platform::ratelimit::Rate;

    use super::*;

    fn setup(key_rate: Rate) -> (Policy, Tokens, String) {
        let (key, sha256) = generate();
        let mut cfg = GatewayConfig::default();
        cfg.producers.keys = vec![ApiKeyConfig {
            name: "importer".into(),
            sha256,
            per_second: key_rate.per_second,
            burst: key_rate.burst,
        }];
        cfg.limits.anonymous = Rate::new(1, 2);
        cfg.limits.user = Rate::new(1, 10);
        let tokens = Tokens::new(&AuthConfig { jwt_secret: "s".repeat(32), token_ttl_secs: 60 }).unwrap();
        (Policy::new(&cfg).unwrap(), tokens, key)
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn anonymous_callers_send_single_views_only() {
        let (policy, tokens, _) = setup(Rate::UNLIMITED);
        let peer: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        let anon = policy.caller(&HeaderMap::new(), &tokens, Some(peer)).unwrap();
        assert_eq!(anon, Caller::Anonymous(peer.ip()));
        let p = policy.charge(&anon, Cost::Event { value: 1_000_000 }).unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (401, Some("value")));
        let p = policy.charge(&anon, Cost::Batch { events: 1, value_sum: 1 }).unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (401, Some("body")));
        policy.charge(&anon, Cost::View).unwrap();
        policy.charge(&anon, Cost::Event { value: 1 }).unwrap();
        let p = policy.charge(&anon, Cost::View).unwrap_err();
        assert_eq!((p.status, p.retry_after_secs), (429, Some(1)));
    }

    /// Watch time is open to anonymous viewers, but seconds come out of a budget per
    /// IP (and per user) refilled at about wall-clock speed: nobody buys a count.
    #[test]
    fn watch_seconds_are_paid_from_a_budget_of_their_own() {
        let (key, sha256) = generate();
        let mut cfg = GatewayConfig::default();
        cfg.producers.keys = vec![ApiKeyConfig { name: "k".into(), sha256, per_second: 1, burst: 2 }];
        cfg.limits.anonymous = Rate::new(1, 3);
        cfg.limits.user = Rate::new(1, 3);
        cfg.limits.watch_seconds = Rate::new(1, 100);
        let tokens = Tokens::new(&AuthConfig { jwt_secret: "s".repeat(32), token_ttl_secs: 60 }).unwrap();
        let policy = Policy::new(&cfg).unwrap();
        let anon = Caller::Anonymous("198.51.100.7".parse().unwrap());
        policy.charge(&anon, Cost::WatchTime { seconds: 60 }).unwrap();
        // 40 seconds left in the burst: 41 must wait (429), whatever the request rate.
        let p = policy.charge(&anon, Cost::WatchTime { seconds: 41 }).unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (429, None), "{p:?}");
        // More than the burst can never pass: 422 naming the member.
        let p = policy.charge(&anon, Cost::WatchTime { seconds: 101 }).unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (422, Some(WATCH_FIELD)));
        // That refused report spent its one request: the third request is over the rate.
        let p = policy.charge(&anon, Cost::WatchTime { seconds: 1 }).unwrap_err();
        assert_eq!(p.status, 429);
        // Another address has its own budgets.
        policy.charge(&Caller::Anonymous("198.51.100.8".parse().unwrap()), Cost::WatchTime { seconds: 100 }).unwrap();
        // A signed-in user pays from their own budget, not their address's.
        let user = Caller::User(Uuid::new_v4());
        policy.charge(&user, Cost::WatchTime { seconds: 100 }).unwrap();
        assert_eq!(policy.charge(&user, Cost::WatchTime { seconds: 50 }).unwrap_err().status, 429);
        // A producer key pays 1 per report.
        let keyed = policy.caller(&headers(&[(API_KEY_HEADER, key)]), &tokens, None).unwrap();
        policy.charge(&keyed, Cost::WatchTime { seconds: 86_400 }).unwrap();
        policy.charge(&keyed, Cost::WatchTime { seconds: 86_400 }).unwrap();
        assert_eq!(policy.charge(&keyed, Cost::WatchTime { seconds: 1 }).unwrap_err().status, 429);
    }

    #[test]
    fn users_spend_their_value_and_keys_their_events() {
        let (policy, tokens, key) = setup(Rate::new(1, 5));
        let user = Uuid::new_v4();
        let bearer = format!("Bearer {}", tokens.issue(user, vec![]).unwrap());
        let caller = policy.caller(&headers(&[("authorization", bearer)]), &tokens, None).unwrap();
        assert_eq!(caller, Caller::User(user));
        let p = policy.charge(&caller, Cost::Event { value: 1_000_000 }).unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (422, Some("value")), "more than the burst never passes");
        policy.charge(&caller, Cost::Event { value: 7 }).unwrap();
        assert_eq!(policy.charge(&caller, Cost::Batch { events: 2, value_sum: 4 }).unwrap_err().status, 429);

        let caller = policy.caller(&headers(&[(API_KEY_HEADER, key)]), &tokens, None).unwrap();
        assert_eq!(caller, Caller::Key { index: 0 });
        // A key is charged per event, whatever the value.
        policy.charge(&caller, Cost::Event { value: 1_000_000 }).unwrap();
        policy.charge(&caller, Cost::Batch { events: 4, value_sum: 4_000_000 }).unwrap();
        assert_eq!(policy.charge(&caller, Cost::View).unwrap_err().status, 429);

        let wrong = policy.caller(&headers(&[(API_KEY_HEADER, "vck_guess".into())]), &tokens, None).unwrap_err();
        assert_eq!(wrong.status, 401);
    }
}
