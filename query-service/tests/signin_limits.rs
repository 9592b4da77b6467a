//! Rate limits on login and register, per client address and per account, on the
//! real service: 429 problems with `Retry-After`, counted per limit, spending no
//! password hash. The test client is 127.0.0.1, trusted here as a proxy, so its
//! `X-Forwarded-For` stands for many clients (as behind the load balancer); a
//! direct client's header is not believed.

mod common;

use common::*;
use platform::ratelimit::Rate;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn post_from(s: &Service, path: &str, client: Option<&str>, body: Value) -> (StatusCode, Option<String>, Value) {
    let mut req = reqwest::Client::new().post(s.url(path)).json(&body);
    if let Some(ip) = client {
        req = req.header("x-forwarded-for", ip);
    }
    let res = req.send().await.unwrap();
    let (status, retry) = (res.status(), res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned()));
    (status, retry, res.json().await.unwrap_or(Value::Null))
}

/// `Retry-After` in whole seconds (at least 1: a 429 always says when).
fn refill_secs(retry: &Option<String>) -> u64 {
    let secs: u64 = retry.as_deref().expect("Retry-After").parse().unwrap();
    assert!(secs >= 1, "{secs}");
    secs
}

fn login(email: &str) -> Value {
    json!({"email": email, "password": "not the password"})
}

fn register(email: &str) -> Value {
    json!({"firstName": "R", "lastName": "L", "email": email, "password": "password123"})
}

fn email() -> String {
    format!("{}@example.org", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn logins_and_registrations_are_limited_per_address_and_per_account() {
    let s = Service::start_with(SECRET, |c| {
        c.limits.login_per_ip = Rate::per_minute(6, 3);
        c.limits.login_per_account = Rate::per_minute(6, 4);
        c.limits.register_per_ip = Rate::per_minute(6, 2);
        c.limits.register_per_account = Rate::per_minute(6, 1);
        c.limits.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;

    // One address, a new account each time: three logins, then 429 for the fourth.
    let a = Some("203.0.113.1");
    for _ in 0..3 {
        assert_eq!(post_from(&s, "/users/login", a, login(&email())).await.0, StatusCode::UNAUTHORIZED);
    }
    let hashes = s.metric("query_password_hashes_total").await;
    let (status, retry, p) = post_from(&s, "/users/login", a, login(&email())).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{p}");
    assert!(refill_secs(&retry) <= 10, "6 a minute: one every 10 s, less the time the logins took: {retry:?}");
    assert_eq!(
        (p["type"].as_str(), p["status"].as_u64()),
        (Some("https://vcount.dev/problems/rate-limited"), Some(429))
    );
    assert!(p["detail"].as_str().unwrap().contains("per-address sign-in"), "{p}");
    assert_eq!(s.metric("query_password_hashes_total").await, hashes, "a refused login hashes nothing");
    // Another address is not affected.
    assert_eq!(post_from(&s, "/users/login", Some("203.0.113.2"), login(&email())).await.0, StatusCode::UNAUTHORIZED);

    // One account, many addresses (password guessing spread over a botnet): four
    // tries, then 429 from any address.
    let victim = email();
    for i in 0..4 {
        let ip = format!("198.51.100.{i}");
        assert_eq!(post_from(&s, "/users/login", Some(&ip), login(&victim)).await.0, StatusCode::UNAUTHORIZED);
    }
    let (status, retry, p) = post_from(&s, "/users/login", Some("198.51.100.99"), login(&victim)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{p}");
    assert!(refill_secs(&retry) <= 10, "{retry:?}");
    assert!(p["detail"].as_str().unwrap().contains("per-account sign-in"), "{p}");

    // Registration: two per address, one per email.
    let b = Some("192.0.2.1");
    assert_eq!(post_from(&s, "/users/register", b, register(&email())).await.0, StatusCode::CREATED);
    let taken = email();
    assert_eq!(post_from(&s, "/users/register", b, register(&taken)).await.0, StatusCode::CREATED);
    let (status, _, p) = post_from(&s, "/users/register", b, register(&email())).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("per-address sign-up"), "{p}");
    let (status, _, p) = post_from(&s, "/users/register", Some("192.0.2.2"), register(&taken)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "the email's one attempt is spent: {p}");
    assert!(p["detail"].as_str().unwrap().contains("per-account sign-up"), "{p}");

    // Counted per limit (at least these; the other test of this binary shares the recorder).
    let text = reqwest::get(format!("{}/metrics", s.admin)).await.unwrap().text().await.unwrap();
    for limit in ["login_ip", "login_account", "register_ip", "register_account"] {
        let prefix = format!("query_rate_limited_total{{limit=\"{limit}\"}} ");
        let n: f64 =
            text.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("{prefix}")).parse().unwrap();
        assert!(n >= 1.0, "{prefix}{n}");
    }
}

/// A client that is not a trusted proxy cannot pick its bucket with a made-up
/// `X-Forwarded-For`: every header it sends lands in its own address's budget.
#[tokio::test]
async fn a_direct_client_cannot_choose_its_address() {
    let s = Service::start_with(SECRET, |c| {
        c.limits.login_per_ip = Rate::per_minute(6, 2);
        c.limits.trusted_proxies = vec!["10.0.0.0/8".into()];
    })
    .await;
    for i in 0..2 {
        let ip = format!("203.0.113.{i}");
        assert_eq!(post_from(&s, "/users/login", Some(&ip), login(&email())).await.0, StatusCode::UNAUTHORIZED);
    }
    let (status, _, p) = post_from(&s, "/users/login", Some("203.0.113.77"), login(&email())).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{p}");
}

/// The defaults limit (an operator has to turn them off, not on).
#[test]
fn the_defaults_are_limits() {
    let l = query_service::QueryConfig::default().limits;
    for r in [l.login_per_ip, l.login_per_account, l.register_per_ip, l.register_per_account] {
        assert!(!r.is_unlimited() && r.burst > 0, "{r:?}");
    }
}
