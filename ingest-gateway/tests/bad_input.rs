//! Bad input gets a problem+json 4xx that names the field, and nothing of it
//! reaches Kafka (checked by consuming the real topic afterwards).

mod common;

use ingest_gateway::{Application, GatewayConfig};
use rand::Rng;
use reqwest::{Client, Method};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const VIDEO: &str = "550e8400-e29b-41d4-a716-446655440000";

struct Gw {
    base: String,
    admin: String,
    http: Client,
    topic: String,
    _stop: tokio_util::sync::DropGuard,
}

async fn start(max_body: usize) -> Gw {
    let tag: u32 = rand::rng().random();
    let mut cfg = GatewayConfig::default();
    cfg.http.listen = "127.0.0.1:0".into();
    cfg.admin.listen = "127.0.0.1:0".into();
    cfg.http.max_body_bytes = max_body;
    cfg.events.max_batch_events = 5;
    // Batches need a producer key; this one has no rate limit.
    let (key, sha256) = platform::apikeys::generate();
    cfg.producers.keys = vec![platform::apikeys::ApiKeyConfig { name: "t".into(), sha256, per_second: 0, burst: 0 }];
    cfg.kafka.brokers = common::brokers();
    cfg.kafka.topic_prefix = format!("t-badinput-{tag:08x}.");
    cfg.kafka.partitions = 2;
    let topic = cfg.kafka.events_topic();
    let app = Application::build(cfg).await.expect("gateway starts (is Kafka up?)");
    let base = format!("http://{}", app.local_addr());
    let admin = format!("http://{}", app.admin_addr());
    let stop = CancellationToken::new();
    tokio::spawn(app.run(stop.clone()));
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-api-key", key.parse().unwrap());
    let http = Client::builder().default_headers(headers).build().unwrap();
    Gw { base, admin, http, topic, _stop: stop.drop_guard() }
}

impl Gw {
    async fn call(&self, method: Method, path: &str, body: Option<&str>) -> (u16, String, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_owned());
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let ctype = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let text = res.text().await.unwrap();
        (status, ctype, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Asserts a problem+json answer with `status` naming `field`.
    async fn rejects(&self, method: Method, path: &str, body: Option<&str>, status: u16, field: Option<&str>) {
        let (got, ctype, problem) = self.call(method.clone(), path, body).await;
        let what = format!("{method} {path} {body:?}");
        assert_eq!(got, status, "{what}: {problem}");
        assert_eq!(ctype, "application/problem+json", "{what}");
        assert_eq!(problem["status"], status, "{what}: {problem}");
        for key in ["type", "title", "detail", "instance"] {
            assert!(problem[key].is_string(), "{what}: problem lacks {key}: {problem}");
        }
        assert_eq!(problem["instance"], path.split('?').next().unwrap(), "{what}");
        if let Some(f) = field {
            assert_eq!(problem["field"], f, "{what}: {problem}");
            assert!(problem["detail"].as_str().unwrap().contains(f), "{what}: detail names the field: {problem}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_by_field_and_never_produced() {
    let gw = start(4096).await;
    let post = Method::POST;
    let view = format!("/api/v1/videos/id/{VIDEO}/view");

    gw.rejects(post.clone(), "/api/v1/videos/id/not-a-uuid/view", None, 422, Some("videoId")).await;
    gw.rejects(post.clone(), "/api/v1/videos/id/550e8400e29b41d4a716446655440000/view", None, 422, Some("videoId"))
        .await;
    gw.rejects(Method::GET, &view, None, 405, None).await;
    gw.rejects(Method::DELETE, "/api/v1/events", None, 405, None).await;
    gw.rejects(post.clone(), &view, Some("{}"), 422, Some("body")).await;
    gw.rejects(Method::GET, "/api/v1/nothing-here", None, 404, None).await;

    let ev = |extra: &str| format!(r#"{{"videoId":"{VIDEO}"{extra}}}"#);
    let single = "/api/v1/events";
    gw.rejects(post.clone(), single, Some(&ev(r#","occurredAt":"yesterday""#)), 422, Some("occurredAt")).await;
    gw.rejects(post.clone(), single, Some(&ev(r#","occurredAt":"2001-01-01T00:00:00Z""#)), 422, Some("occurredAt"))
        .await;
    gw.rejects(post.clone(), single, Some(&ev(r#","occurredAt":"2999-01-01T00:00:00Z""#)), 422, Some("occurredAt"))
        .await;
    gw.rejects(post.clone(), single, Some(&ev(r#","occurredAt":12"#)), 422, Some("occurredAt")).await;
    gw.rejects(post.clone(), single, Some(&ev(r#","value":"abc""#)), 422, Some("value")).await;
    gw.rejects(post.clone(), single, Some(&ev(r#","value":-3"#)), 422, Some("value")).await;
    gw.rejects(post.clone(), single, Some(&ev(r#","eventType":"purchase""#)), 422, Some("eventType")).await;
    gw.rejects(post.clone(), single, Some(&ev(r#","color":"red""#)), 422, Some("color")).await;
    gw.rejects(post.clone(), single, Some(r#"{"videoId":"x"}"#), 422, Some("videoId")).await;
    gw.rejects(post.clone(), single, Some(r#"{"eventType":"view"}"#), 422, Some("body")).await;
    gw.rejects(post.clone(), single, Some("{not json"), 422, Some("body")).await;
    let huge = ev(&format!(r#","userId":"{}""#, "a".repeat(5000)));
    gw.rejects(post.clone(), single, Some(&huge), 413, None).await;

    let batch = "/api/v1/events:batch";
    gw.rejects(post.clone(), batch, Some("[]"), 422, Some("body")).await;
    gw.rejects(post.clone(), batch, Some(&format!("[{}]", vec![ev(""); 6].join(","))), 422, Some("body")).await;
    gw.rejects(post.clone(), batch, Some(r#"{"videoId":"x"}"#), 422, Some("body")).await;

    // A batch with good and bad items: the good ones are produced, the bad ones
    // named by index and field.
    let mixed = json!([
        {"videoId": VIDEO},
        {"videoId": "nope"},
        {"videoId": VIDEO, "eventType": "like", "value": 2},
        {"videoId": VIDEO, "occurredAt": "2001-01-01T00:00:00Z"},
        {"videoId": VIDEO, "extra": true},
    ]);
    let (status, _, body) = gw.call(post.clone(), batch, Some(&mixed.to_string())).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 2, "{body}");
    let rejected: Vec<(u64, String)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["field"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        rejected,
        [(1, "[1].videoId".to_owned()), (3, "[3].occurredAt".to_owned()), (4, "[4].extra".to_owned())]
    );

    // One good view, answered 204 with no body.
    let (status, _, _) = gw.call(post.clone(), &view, None).await;
    assert_eq!(status, 204);

    // Kafka holds exactly the 2 good batch items and the 1 view: nothing rejected leaked.
    assert_eq!(common::events_on(&common::brokers(), &gw.topic).len(), 3);

    // The refused timestamps are counted by edge (two from 2001, one from 2999;
    // "yesterday" and 12 never parsed as times), so late data turned away shows.
    let metrics = gw.http.get(format!("{}/metrics", gw.admin)).send().await.unwrap().text().await.unwrap();
    let value = |edge: &str| {
        let series = format!("gateway_events_out_of_window_total{{edge=\"{edge}\"}} ");
        let line =
            metrics.lines().find(|l| l.starts_with(&series)).unwrap_or_else(|| panic!("no {series} in\n{metrics}"));
        line[series.len()..].trim().parse::<f64>().unwrap()
    };
    assert_eq!((value("late"), value("future")), (2.0, 1.0));
}

/// With no Kafka to acknowledge, the gateway sheds: 503 with Retry-After, never 2xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_kafka_acknowledgement_the_answer_is_503_not_2xx() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead); // nothing listens there now
    let mut cfg = GatewayConfig::default();
    cfg.http.listen = "127.0.0.1:0".into();
    cfg.admin.listen = "127.0.0.1:0".into();
    let (key, sha256) = platform::apikeys::generate();
    cfg.producers.keys = vec![platform::apikeys::ApiKeyConfig { name: "t".into(), sha256, per_second: 0, burst: 0 }];
    cfg.kafka.brokers = dead_addr.to_string();
    cfg.kafka.create_topics = false;
    cfg.producer.delivery_timeout_ms = 1_500;
    let app = Application::build(cfg).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let admin = format!("http://{}", app.admin_addr());
    let stop = CancellationToken::new();
    tokio::spawn(app.run(stop.clone()));
    let _guard = stop.drop_guard();
    let http = Client::new();

    let res = http.post(format!("{base}/api/v1/videos/id/{VIDEO}/view")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body = json!([{"videoId": VIDEO}, {"videoId": VIDEO}]).to_string();
    let res = http
        .post(format!("{base}/api/v1/events:batch"))
        .header("content-type", "application/json")
        .header("x-api-key", key)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    // Readiness is on the admin listener, with the reason; the public port has only liveness.
    let ready = http.get(format!("{admin}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("kafka"), "the admin /readyz says why");
    assert_eq!(http.get(format!("{base}/readyz")).send().await.unwrap().status(), 404);
    assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().status(), 200);
}
