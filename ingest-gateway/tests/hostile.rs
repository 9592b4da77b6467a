//! Hostile clients against the real gateway on the real Kafka: slowloris and idle
//! sockets are closed, stalled bodies and floods are bounded, labels never take raw
//! client input, operational routes are not public, producers need credentials for
//! anything but single views, rate limits answer 429 with `Retry-After`, and batch
//! bodies are counted before they are decoded.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ingest_gateway::{Application, GatewayConfig};
use platform::apikeys::ApiKeyConfig;
use platform::ratelimit::Rate;
use prost::Message as _;
use rand::Rng;
use reqwest::{Client, Method};
use schemas::events::{Event, EventBatch};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const VIDEO: &str = "550e8400-e29b-41d4-a716-446655440000";
const KEY: &str = "vck_hostile-test-producer-key";
const SECRET: &str = "the hostile test's secret, 32+ bytes long";

fn config(name: &str) -> GatewayConfig {
    let tag: u32 = rand::rng().random();
    let mut cfg = GatewayConfig::default();
    cfg.http.listen = "127.0.0.1:0".into();
    cfg.admin.listen = "127.0.0.1:0".into();
    cfg.kafka.brokers = common::brokers();
    cfg.kafka.topic_prefix = format!("t-hostile-{name}-{tag:08x}.");
    cfg.kafka.partitions = 1;
    cfg.auth.jwt_secret = SECRET.into();
    cfg.producers.keys = vec![ApiKeyConfig {
        name: "importer".into(),
        sha256: platform::apikeys::sha256_hex(KEY),
        per_second: 0,
        burst: 0,
    }];
    cfg
}

struct Gw {
    addr: SocketAddr,
    base: String,
    admin: String,
    http: Client,
    _stop: tokio_util::sync::DropGuard,
}

async fn start(cfg: GatewayConfig) -> Gw {
    let app = Application::build(cfg).await.expect("gateway starts (is Kafka up?)");
    let addr = app.local_addr();
    let admin = format!("http://{}", app.admin_addr());
    let stop = CancellationToken::new();
    tokio::spawn(app.run(stop.clone()));
    Gw { addr, base: format!("http://{addr}"), admin, http: Client::new(), _stop: stop.drop_guard() }
}

impl Gw {
    async fn metrics(&self) -> String {
        self.http.get(format!("{}/metrics", self.admin)).send().await.unwrap().text().await.unwrap()
    }
}

/// Reads an answer: until the server closes the socket, the problem body ends, or
/// `limit` passes.
async fn read_answer(stream: &mut TcpStream, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.ends_with(b"}") {
        match tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads until the server closes the socket (or `limit` passes); returns when.
async fn wait_closed(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + limit).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_idle_sockets_are_closed_after_the_header_timeout() {
    let mut cfg = config("slowloris");
    cfg.http.header_read_timeout_ms = 600;
    let gw = start(cfg).await;

    // A head sent a byte every 100 ms never completes: the socket is closed at the
    // timeout although bytes keep arriving.
    let mut slow = TcpStream::connect(gw.addr).await.unwrap();
    let head = format!("POST /api/v1/videos/id/{VIDEO}/view HTTP/1.1\r\nHost: x\r\nX-Padding: {}", "a".repeat(100));
    let started = Instant::now();
    let mut sent = 0;
    for byte in head.bytes() {
        if slow.write_all(&[byte]).await.is_err() {
            break;
        }
        sent += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if started.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    let closed_after = started.elapsed();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), slow.read_to_end(&mut rest)).await;
    eprintln!("slowloris: {sent} of {} head bytes sent, socket closed after {closed_after:?}", head.len());
    assert!(sent < head.len(), "the server must close the socket before the head is complete");
    assert!(closed_after < Duration::from_secs(3), "closed after {closed_after:?}, timeout is 600 ms");

    // A keep-alive connection that goes quiet after one request is closed too.
    let mut idle = TcpStream::connect(gw.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let closed = wait_closed(&mut idle, Duration::from_secs(5)).await;
    eprintln!("idle keep-alive connection closed after {closed:?}");
    assert!(closed.is_some_and(|d| d >= Duration::from_millis(500)), "idle socket: {closed:?}");

    // An ordinary client is unaffected.
    assert_eq!(gw.http.post(format!("{}/api/v1/videos/id/{VIDEO}/view", gw.base)).send().await.unwrap().status(), 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_floods_and_big_heads_are_bounded() {
    let mut cfg = config("limits");
    cfg.http.body_timeout_ms = 800;
    cfg.http.request_timeout_ms = 1_600;
    cfg.http.max_in_flight = 2;
    cfg.http.max_connections = 4;
    cfg.http.max_header_bytes = 4096;
    let gw = start(cfg).await;
    // No pooled connections: this test counts the server's connections.
    let http = Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let stalled_head = "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"vid";

    // A body that stops arriving: 408 once it has been silent for the body timeout.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(stalled_head.as_bytes()).await.unwrap();
    let t = Instant::now();
    let answer = read_answer(&mut s, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "stalled body: {answer:?}");
    assert!(t.elapsed() < Duration::from_millis(1_500), "{:?}", t.elapsed());

    // A body trickled a byte at a time (each gap under the body timeout) is cut by
    // the request timeout: 503 with Retry-After.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(stalled_head.as_bytes()).await.unwrap();
    let t = Instant::now();
    let mut answer = Vec::new();
    while t.elapsed() < Duration::from_secs(4) {
        if s.write_all(b" ").await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(150), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if answer.ends_with(b"}") {
            break;
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503") && answer.contains("retry-after: 1"), "trickled body: {answer:?}");
    assert!(answer.contains("\"timeout\"") || answer.contains("/timeout"), "{answer}");

    // Two requests held in flight (their bodies stall): a third is shed at once with
    // 503 and Retry-After instead of queueing.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(stalled_head.as_bytes()).await.unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    let res = http.post(format!("{}/api/v1/videos/id/{VIDEO}/view", gw.base)).send().await.unwrap();
    assert_eq!(res.status(), 503, "over max_in_flight");
    assert_eq!(res.headers()["retry-after"], "1");
    assert!(t.elapsed() < Duration::from_millis(250), "shed at once, not queued: {:?}", t.elapsed());
    assert!(gw.metrics().await.contains("http_requests_shed_total 1"));
    drop(held);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Four open connections that say nothing: a fifth waits in the backlog (no
    // answer), and is served as soon as one of them goes.
    let mut quiet = Vec::new();
    for _ in 0..4 {
        quiet.push(TcpStream::connect(gw.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fifth = TcpStream::connect(gw.addr).await.unwrap();
    fifth.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 256];
    let early = tokio::time::timeout(Duration::from_millis(500), fifth.read(&mut buf)).await;
    assert!(early.is_err(), "the fifth connection must not be served while four are open");
    quiet.pop();
    let n = tokio::time::timeout(Duration::from_secs(3), fifth.read(&mut buf)).await.expect("served").unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    drop(quiet);

    // A head over max_header_bytes: 431.
    let big = http.get(format!("{}/healthz", gw.base)).header("x-junk", "j".repeat(8000)).send().await.unwrap();
    assert_eq!(big.status(), 431);
}

/// Series of `http_requests_total` in a scrape that this test's junk can create:
/// any method but GET and POST, or an unmatched route. (The other tests in this
/// binary share the recorder, but send only GET and POST to routes that exist.)
fn request_series(metrics: &str) -> Vec<String> {
    metrics
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .map(|l| l.rsplit_once(' ').unwrap().0.to_owned())
        .filter(|s| {
            !(s.contains("method=\"GET\"") || s.contains("method=\"POST\"")) || s.contains("route=\"unmatched\"")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_and_paths_fold_into_one_label_value() {
    let gw = start(config("labels")).await;
    let mut rng = rand::rng();
    let mut send_junk = async |n: usize| {
        for _ in 0..n {
            let method: String = (0..8).map(|_| rng.random_range(b'A'..=b'Z') as char).collect();
            let path = format!("/api/v1/{}", rng.random::<u64>());
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            gw.http.request(m.clone(), format!("{}/api/v1/events", gw.base)).send().await.unwrap();
            gw.http.request(m, format!("{}{path}", gw.base)).send().await.unwrap();
            gw.http.get(format!("{}{path}", gw.base)).send().await.unwrap();
        }
    };
    send_junk(5).await;
    let before = request_series(&gw.metrics().await);
    send_junk(30).await;
    let after = request_series(&gw.metrics().await);
    assert_eq!(before.len(), after.len(), "90 more junk requests added series:\n{after:#?}");
    assert!(after.iter().any(|s| s.contains("method=\"other\"") && s.contains("route=\"unmatched\"")), "{after:#?}");
    assert!(
        after.iter().any(|s| s.contains("method=\"other\"") && s.contains("route=\"/api/v1/events\"")),
        "{after:#?}"
    );
    for s in &after {
        let method = s.split("method=\"").nth(1).unwrap().split('"').next().unwrap();
        assert!(["GET", "other"].contains(&method), "{s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operational_routes_are_on_the_admin_listener_only() {
    let gw = start(config("admin")).await;
    for path in ["/metrics", "/readyz"] {
        let res = gw.http.get(format!("{}{path}", gw.base)).send().await.unwrap();
        assert_eq!(res.status(), 404, "public {path}");
    }
    assert_eq!(gw.http.get(format!("{}/healthz", gw.base)).send().await.unwrap().status(), 200);
    // Ready once the producer has reached Kafka: on a loaded machine that can take a
    // moment after start, so wait for it (the point here is where it answers).
    let deadline = Instant::now() + Duration::from_secs(30);
    while gw.http.get(format!("{}/readyz", gw.admin)).send().await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "the admin /readyz never became ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(gw.http.get(format!("{}/healthz", gw.admin)).send().await.unwrap().status(), 200);
    let metrics = gw.metrics().await;
    assert!(metrics.contains("gateway_events_produced_total"), "{metrics}");
    // Scrapes are not requests of the API: the admin routes are not counted.
    assert!(!metrics.contains("route=\"/metrics\""), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_and_batches_need_credentials_and_every_caller_has_a_rate() {
    let mut cfg = config("policy");
    cfg.limits.anonymous = Rate::new(1, 5);
    cfg.limits.user = Rate::new(1, 10);
    cfg.limits.trusted_proxies = vec!["127.0.0.1".into()];
    let gw = start(cfg.clone()).await;
    let events = format!("{}/api/v1/events", gw.base);
    let batch = format!("{}/api/v1/events:batch", gw.base);
    let view = format!("{}/api/v1/videos/id/{VIDEO}/view", gw.base);
    // Each anonymous client below has its own (forwarded) address, so its own bucket.
    let client = |ip: &str| gw.http.post(&events).header("x-forwarded-for", ip);

    // The issue's million-view POST: refused, naming the field.
    let res = client("203.0.113.1")
        .json(&json!({"videoId": VIDEO, "eventType": "view", "value": 1_000_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let p: Value = res.json().await.unwrap();
    assert_eq!(p["field"], "value", "{p}");
    // Anonymous batches too.
    let res = gw
        .http
        .post(&batch)
        .header("x-forwarded-for", "203.0.113.1")
        .json(&json!([{"videoId": VIDEO}]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<Value>().await.unwrap()["field"], "body");
    // A wrong key is a 401, not a fall back to anonymous.
    let res =
        client("203.0.113.1").header("x-api-key", "vck_guess").json(&json!({"videoId": VIDEO})).send().await.unwrap();
    assert_eq!(res.status(), 401);

    // Anonymous single views: the burst (5) passes, then 429 with Retry-After (the
    // bucket refills one a second, so a slow run may let one more through).
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(gw.http.post(&view).header("x-forwarded-for", "203.0.113.2").send().await.unwrap());
    }
    let codes: Vec<u16> = statuses.iter().map(|r| r.status().as_u16()).collect();
    let views_ok = codes.iter().filter(|c| **c == 204).count();
    assert!(codes[..5] == [204; 5] && codes[5..].contains(&429), "{codes:?}");
    assert!(codes.iter().all(|c| [204, 429].contains(c)), "{codes:?}");
    let limited = statuses.iter().find(|r| r.status() == 429).unwrap();
    assert_eq!(limited.headers()["retry-after"], "1");
    assert_eq!(limited.headers()["content-type"], "application/problem+json");
    // Another client is not affected by the first one's bucket.
    assert_eq!(gw.http.post(&view).header("x-forwarded-for", "203.0.113.3").send().await.unwrap().status(), 204);
    assert_eq!(client("203.0.113.3").json(&json!({"videoId": VIDEO})).send().await.unwrap().status(), 202);

    // A signed-in user spends their own budget by value: 7 passes, more than the
    // burst is refused outright (422 naming value), an overdraft waits (429).
    let user = uuid::Uuid::new_v4();
    let tokens = platform::auth::Tokens::new(&cfg.auth).unwrap();
    let bearer = format!("Bearer {}", tokens.issue(user, vec![]).unwrap());
    let signed = |body: Value| gw.http.post(&events).header("authorization", &bearer).json(&body).send();
    assert_eq!(signed(json!({"videoId": VIDEO, "eventType": "like", "value": 7})).await.unwrap().status(), 202);
    let res = signed(json!({"videoId": VIDEO, "value": 50})).await.unwrap();
    assert_eq!(res.status(), 422);
    assert_eq!(res.json::<Value>().await.unwrap()["field"], "value");
    assert_eq!(signed(json!({"videoId": VIDEO, "value": 9})).await.unwrap().status(), 429);

    // A producer key may send values and batches.
    let res = gw
        .http
        .post(&events)
        .header("x-api-key", KEY)
        .json(&json!({"videoId": VIDEO, "value": 1_000_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let res = gw
        .http
        .post(&batch)
        .header("x-api-key", KEY)
        .json(&json!([{"videoId": VIDEO, "value": 3}, {"videoId": VIDEO}]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);

    // Kafka holds exactly what was accepted: the anonymous views and the one
    // anonymous event (value 1 each), the user's 7, and the key's 1,000,000, 3 and 1.
    let mut want = vec![1; views_ok + 1 + 1 + 1];
    want.extend([3, 7, 1_000_000]);
    let mut values: Vec<i64> =
        common::events_on(&cfg.kafka.brokers, &cfg.kafka.events_topic()).iter().map(|e| e.value).collect();
    values.sort_unstable();
    assert_eq!(values, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worst_case_batch_bodies_are_refused_before_decoding() {
    let mut cfg = config("batches");
    cfg.http.max_body_bytes = 1 << 20;
    let gw = start(cfg).await;
    let url = format!("{}/api/v1/events:batch", gw.base);

    // 1 MiB of empty protobuf events: ~520K entries of 2 bytes.
    let entries = (1 << 20) / 2 - 8;
    let body = EventBatch { events: vec![Event::default(); entries] }.encode_to_vec();
    assert!(body.len() <= 1 << 20);
    let t = Instant::now();
    let res = gw
        .http
        .post(&url)
        .header("x-api-key", KEY)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap();
    let took = t.elapsed();
    assert_eq!(res.status(), 422);
    let p: Value = res.json().await.unwrap();
    eprintln!("protobuf worst case ({entries} empty events): {took:?}, {p}");
    assert_eq!(p["field"], "body");
    // "more than 1000": the count stopped at the cap, instead of decoding every entry
    // and reporting how many there were.
    assert!(p["detail"].as_str().unwrap().contains("got more than 1000"), "{p}");

    // The JSON worst case: 1 MiB of `{}` elements. The parse stops at element 1001.
    let body = format!("[{}{{}}]", "{},".repeat((1 << 20) / 3 - 10));
    let t = Instant::now();
    let res = gw
        .http
        .post(&url)
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let took = t.elapsed();
    assert_eq!(res.status(), 422);
    let p: Value = res.json().await.unwrap();
    eprintln!("JSON worst case: {took:?}, {p}");
    assert!(p["detail"].as_str().unwrap().contains("got more than 1000"), "{p}");

    // Exactly at the cap is accepted.
    let body = EventBatch {
        events: vec![
            Event { video_id: uuid::Uuid::new_v4().as_bytes().to_vec(), event_type: 1, ..Default::default() };
            1000
        ],
    }
    .encode_to_vec();
    let res = gw
        .http
        .post(&url)
        .header("x-api-key", KEY)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(res.json::<Value>().await.unwrap()["accepted"], 1000);
}
