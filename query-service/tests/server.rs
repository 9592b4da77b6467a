//! The query service's two listeners and the server loop's limits
//! (`platform::server`), on the real service: operational routes only on the admin
//! port; a client that sends its request head slowly is cut off at
//! `http.header_read_timeout_ms` (under `axum::serve` it kept its socket forever);
//! oversized heads get 431; more requests than `http.max_in_flight` get 503 with
//! `Retry-After` at once.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn metrics_and_readiness_are_on_the_admin_port_only() {
    let s = Service::start(SECRET).await;
    for path in ["/metrics", "/readyz"] {
        let res = reqwest::get(format!("{}{path}", s.base())).await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "public {path}");
        let res = reqwest::get(format!("{}{path}", s.admin)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "admin {path}");
    }
    let ready = reqwest::get(format!("{}/readyz", s.admin)).await.unwrap().text().await.unwrap();
    assert_eq!(ready, "ready\n");
    for base in [s.base(), s.admin.as_str()] {
        let res = reqwest::get(format!("{base}/healthz")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{base}/healthz");
    }
    // The API is not on the admin port.
    let res = reqwest::get(format!("{}/api/v1/videos/latest", s.admin)).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_slow_request_head_is_cut_off_and_a_huge_one_refused() {
    let s = Service::start_with(SECRET, |c| {
        c.http.header_read_timeout_ms = 500;
        c.http.max_header_bytes = 4096;
    })
    .await;
    let addr = s.base().trim_start_matches("http://").to_owned();

    // Slowloris: a head that never ends. The server closes the socket; waiting 20 s
    // (40 times the timeout) for it to do so is the test's only clock.
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /api/v1/videos/latest HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            // A byte now and then would not help: the timer covers the whole head.
            let _ = slow.write_all(b"a").await;
            match tokio::time::timeout(Duration::from_millis(100), slow.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => return, // an error answer, then the close
                Err(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a head still arriving after 20 s keeps its socket");
    eprintln!("[server] slow head closed after {:?}", started.elapsed());

    // A head over http.max_header_bytes: 431.
    let res = reqwest::Client::new()
        .get(format!("{}/api/v1/videos/latest", s.base()))
        .header("x-big", "b".repeat(8192))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // And the service still answers.
    assert_eq!(s.get("/videos/latest").await.0, StatusCode::OK);
}

#[tokio::test]
async fn requests_over_the_in_flight_limit_are_shed_at_once() {
    let s = Service::start_with(SECRET, |c| {
        c.http.max_in_flight = 1;
        c.passwords.hash_workers = 1;
    })
    .await;
    // Logins hold their in-flight slot for a password hash each; send several at once.
    let answers = futures::future::join_all((0..8).map(|i| {
        s.post("/users/login", serde_json::json!({"email": format!("n{i}@example.org"), "password": "password1"}))
    }))
    .await;
    let shed = answers.iter().filter(|(st, p)| *st == StatusCode::SERVICE_UNAVAILABLE && p["status"] == 503).count();
    assert!(shed >= 1, "{answers:?}");
    assert!(s.metric("http_requests_shed_total").await >= shed as f64, "counted");
    assert!(answers.iter().all(|(st, _)| [StatusCode::UNAUTHORIZED, StatusCode::SERVICE_UNAVAILABLE].contains(st)));
}
