//! Strict mode on the real Kafka: the gateway reads `VideoAdded` catalog events from
//! the beginning of the topic at start-up, then follows it; views, events, batch
//! items and ratings of other videos get 404 naming the field, and nothing of them
//! reaches the events topic.

mod common;

use std::time::{Duration, Instant};

use ingest_gateway::{Application, GatewayConfig};
use platform::apikeys::ApiKeyConfig;
use prost::Message as _;
use rand::Rng;
use rdkafka::producer::{FutureProducer, FutureRecord};
use reqwest::Client;
use schemas::catalog::catalog_event::Change;
use schemas::catalog::{CatalogEvent, UserCreated, VideoAdded};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const KEY: &str = "vck_strict-test-producer-key";
const SECRET: &str = "the strict test's secret, 32+ bytes long";

async fn announce(producer: &FutureProducer, topic: &str, change: Change) {
    let id = Uuid::now_v7();
    let event = CatalogEvent { event_id: id.as_bytes().to_vec(), at_ms: 1, change: Some(change) };
    let payload = event.encode_to_vec();
    producer
        .send(FutureRecord::to(topic).key(id.as_bytes().as_slice()).payload(&payload), Duration::from_secs(10))
        .await
        .expect("catalog event produced");
}

fn video_added(id: Uuid) -> Change {
    Change::VideoAdded(VideoAdded { video_id: id.as_bytes().to_vec(), title: "t".into(), ..Default::default() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_counts_only_videos_the_catalog_announced() {
    let tag: u32 = rand::rng().random();
    let mut cfg = GatewayConfig::default();
    cfg.http.listen = "127.0.0.1:0".into();
    cfg.admin.listen = "127.0.0.1:0".into();
    cfg.kafka.brokers = common::brokers();
    cfg.kafka.topic_prefix = format!("t-strict-{tag:08x}.");
    cfg.kafka.partitions = 3;
    cfg.auth.jwt_secret = SECRET.into();
    cfg.producers.keys =
        vec![ApiKeyConfig { name: "t".into(), sha256: platform::apikeys::sha256_hex(KEY), per_second: 0, burst: 0 }];
    cfg.strict.enabled = true;
    platform::kafka::ensure_topics(&cfg.kafka).await.expect("topics (is Kafka up?)");
    let catalog = cfg.kafka.catalog_topic();
    let producer: FutureProducer = cfg.kafka.client_config().create().unwrap();

    // Announced before the gateway starts: it must read them from the beginning.
    let (early, late, unknown) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    announce(&producer, &catalog, video_added(early)).await;
    // Other catalog events and garbage on the topic are passed over.
    announce(
        &producer,
        &catalog,
        Change::UserCreated(UserCreated { user_id: unknown.as_bytes().to_vec(), ..Default::default() }),
    )
    .await;
    producer
        .send(FutureRecord::to(&catalog).key("x").payload(&b"\xff\xffnot protobuf"[..]), Duration::from_secs(10))
        .await
        .unwrap();

    let app = Application::build(cfg.clone()).await.expect("gateway starts");
    let (base, admin) = (format!("http://{}", app.local_addr()), format!("http://{}", app.admin_addr()));
    let stop = CancellationToken::new();
    tokio::spawn(app.run(stop.clone()));
    let _guard = stop.drop_guard();
    let http = Client::new();
    let view = |v: Uuid| http.post(format!("{base}/api/v1/videos/id/{v}/view")).send();

    // Ready once it has read the catalog up to where it stood at start-up.
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{admin}/readyz")).send().await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "strict mode never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(view(early).await.unwrap().status(), 204, "announced before start-up");
    let res = view(unknown).await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(res.json::<Value>().await.unwrap()["field"], "videoId");

    // Announced while running: learned within moments.
    assert_eq!(view(late).await.unwrap().status(), 404);
    announce(&producer, &catalog, video_added(late)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = view(late).await.unwrap().status();
        if status == 204 {
            break;
        }
        assert_eq!(status, 404);
        assert!(Instant::now() < deadline, "a video added while running was never learned");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Typed events, batch items and ratings follow the same rule.
    let res = http.post(format!("{base}/api/v1/events")).json(&json!({"videoId": unknown})).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let res = http
        .post(format!("{base}/api/v1/events:batch"))
        .header("x-api-key", KEY)
        .json(&json!([{"videoId": early}, {"videoId": unknown}, {"videoId": late, "eventType": "like"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["accepted"], 2, "{body}");
    assert_eq!(body["rejected"][0]["index"], 1, "{body}");
    assert_eq!(body["rejected"][0]["field"], "[1].videoId", "{body}");
    let tokens = platform::auth::Tokens::new(&cfg.auth).unwrap();
    let bearer = format!("Bearer {}", tokens.issue(Uuid::new_v4(), vec![]).unwrap());
    let rate = |v: Uuid| {
        http.post(format!("{base}/api/v1/videos/{v}/ratings"))
            .header("authorization", &bearer)
            .json(&json!({"rating": 4}))
            .send()
    };
    assert_eq!(rate(unknown).await.unwrap().status(), 404);
    assert_eq!(rate(early).await.unwrap().status(), 200);

    // The events topic holds only the known videos' events: the views of `early`
    // and `late`, and the batch's 2.
    let metrics = http.get(format!("{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    let refused = metrics
        .lines()
        .find_map(|l| l.strip_prefix("gateway_strict_refused_total "))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("refusals counted");
    assert!(refused >= 5.0, "{refused}");
    // Events, not messages: the batch's two may travel as one pack.
    let produced = common::events_on(&cfg.kafka.brokers, &cfg.kafka.events_topic());
    assert_eq!(produced.len(), 4, "only known videos' events were produced");
}
