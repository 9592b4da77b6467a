//! Password work, counted rather than timed (timings on a shared two-core box
//! prove nothing either way): every login runs exactly one argon2 hash, whether
//! the email has an account or not, so the time an answer takes cannot tell
//! accounts apart; registering a taken email and over-long passwords run none.
//! The count is `query_password_hashes_total` on the admin listener, and this
//! binary holds this one test, so nothing else moves it.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

const HASHES: &str = "query_password_hashes_total";

/// The hashes `request` ran.
async fn hashes<F: Future<Output = (StatusCode, serde_json::Value)>>(s: &Service, request: F) -> (StatusCode, u64) {
    let before = s.metric(HASHES).await;
    let (status, _) = request.await;
    (status, (s.metric(HASHES).await - before) as u64)
}

#[tokio::test]
async fn every_login_costs_one_hash_and_refusals_cost_none() {
    let s = Service::start(SECRET).await;
    let email = format!("{}@example.org", uuid::Uuid::new_v4().simple());
    let body = json!({"firstName": "Ann", "lastName": "Lee", "email": email, "password": "correct horse"});
    assert_eq!(hashes(&s, s.post("/users/register", body.clone())).await, (StatusCode::CREATED, 1));

    let login = |email: &str, password: &str| s.post("/users/login", json!({"email": email, "password": password}));
    let unknown = format!("{}@example.org", uuid::Uuid::new_v4().simple());
    // The three outcomes a client can see, each after exactly one hash.
    assert_eq!(hashes(&s, login(&email, "correct horse")).await, (StatusCode::OK, 1), "right password");
    assert_eq!(hashes(&s, login(&email, "wrong horse")).await, (StatusCode::UNAUTHORIZED, 1), "wrong password");
    assert_eq!(hashes(&s, login(&unknown, "correct horse")).await, (StatusCode::UNAUTHORIZED, 1), "unknown email");
    // Repeated, in any order: still one each.
    for _ in 0..3 {
        assert_eq!(hashes(&s, login(&unknown, "x")).await.1, 1);
        assert_eq!(hashes(&s, login(&email, "x")).await.1, 1);
    }

    // A taken email is found before hashing: 409 after no hash at all.
    let mut again = body.clone();
    again["email"] = json!(email.to_uppercase());
    assert_eq!(hashes(&s, s.post("/users/register", again)).await, (StatusCode::CONFLICT, 0));
    // Over-long passwords are refused unhashed, at login and at registration.
    let long = "x".repeat(1025);
    let (status, n) = hashes(&s, login(&email, &long)).await;
    assert_eq!((status, n), (StatusCode::UNPROCESSABLE_ENTITY, 0));
    let mut big = body;
    big["email"] = json!(format!("{}@example.org", uuid::Uuid::new_v4().simple()));
    big["password"] = json!(long);
    assert_eq!(hashes(&s, s.post("/users/register", big)).await, (StatusCode::UNPROCESSABLE_ENTITY, 0));
    // 1024 bytes is still a password.
    assert_eq!(hashes(&s, login(&email, &"y".repeat(1024))).await, (StatusCode::UNAUTHORIZED, 1));
}
