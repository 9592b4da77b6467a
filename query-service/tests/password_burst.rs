//! A burst of parallel logins against a small hashing pool: the ones it cannot
//! take get 503 with `Retry-After` at once, the memory stays at a few hashes'
//! worth, and nothing piles up. Without the bound every login would hash at once
//! on Tokio's blocking pool: 64 argon2 hashes of 19 MiB each, over 1 GiB.
//!
//! Memory is the process's peak resident set (`VmHWM`): this binary holds this
//! one test, so the service's start-up is the only earlier peak, and the burst's
//! peak is compared with it.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

/// The process's peak resident set, in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_logins_is_refused_not_queued() {
    let (workers, queue) = (1, 1);
    let s = Service::start_with(SECRET, |c| {
        c.passwords.hash_workers = workers;
        c.passwords.hash_queue = queue;
    })
    .await;
    let (_, _) = signed_in(&s, "Ann").await; // one registration and one login: warm
    let before_hashes = s.metric("query_password_hashes_total").await;
    let before_refused = s.metric("query_password_hashes_refused_total").await;
    let before_peak = peak_rss_mib();

    // 64 logins at once, each for an unknown email (each costs a hash, like any login).
    let burst = 64;
    let client = reqwest::Client::new();
    let url = s.url("/users/login");
    let answers = futures::future::join_all((0..burst).map(|i| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let body = json!({"email": format!("nobody{i}@example.org"), "password": "guess guess"});
            let res = client.post(url).json(&body).send().await.unwrap();
            let retry = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            (res.status(), retry)
        }
    }))
    .await;

    let refused: Vec<_> = answers.iter().filter(|(st, _)| *st == StatusCode::SERVICE_UNAVAILABLE).collect();
    let checked = answers.iter().filter(|(st, _)| *st == StatusCode::UNAUTHORIZED).count();
    assert_eq!(refused.len() + checked, burst, "only 401 (checked) and 503 (refused): {answers:?}");
    assert!(refused.iter().all(|(_, retry)| retry.as_deref() == Some("1")), "503s carry Retry-After: {answers:?}");
    // The pool admits at most workers + queue at a time; the burst arrives far faster
    // than a hash takes, so most of it is refused.
    assert!(refused.len() >= burst / 2, "{} of {burst} refused: {answers:?}", refused.len());
    // Each admitted login ran exactly one hash; the refused ones ran none.
    let hashed = s.metric("query_password_hashes_total").await - before_hashes;
    assert_eq!(hashed as usize, checked, "hashes vs admitted logins");
    let counted = s.metric("query_password_hashes_refused_total").await - before_refused;
    assert_eq!(counted as usize, refused.len());

    let grew = peak_rss_mib().saturating_sub(before_peak);
    eprintln!(
        "[password_burst] {burst} logins: {checked} checked, {} refused with 503; peak RSS grew {grew} MiB",
        refused.len()
    );
    // One running hash is 19 MiB; 64 at once would be over 1 GiB.
    assert!(grew < 200, "peak RSS grew {grew} MiB during the burst");

    // Afterwards the service answers normally.
    let (status, _) = s.post("/users/login", json!({"email": "nobody@example.org", "password": "x"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
