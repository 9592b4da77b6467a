//! The null sink (`producer.sink = "null"`, for benchmarks) answers exactly like
//! the Kafka sink, still rejects bad input, and produces nothing; the default
//! sink is Kafka and does produce. Checked against the real Kafka topic.

use std::time::Duration;

use ingest_gateway::config::Sink;
use ingest_gateway::{Application, GatewayConfig};
use rand::Rng;
use rdkafka::consumer::{BaseConsumer, Consumer};
use reqwest::Client;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const VIDEO: &str = "550e8400-e29b-41d4-a716-446655440000";

/// The producer key the test gateways accept (batches need one).
const KEY: &str = "vck_null-sink-test-key";

fn config(prefix: &str) -> GatewayConfig {
    let mut cfg = GatewayConfig::default();
    cfg.http.listen = "127.0.0.1:0".into();
    cfg.admin.listen = "127.0.0.1:0".into();
    cfg.producers.keys = vec![platform::apikeys::ApiKeyConfig {
        name: "t".into(),
        sha256: platform::apikeys::sha256_hex(KEY),
        per_second: 0,
        burst: 0,
    }];
    cfg.kafka.brokers = std::env::var("VCOUNT_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into());
    cfg.kafka.topic_prefix = prefix.to_owned();
    cfg.kafka.partitions = 2;
    cfg
}

/// Starts a gateway; returns its public and admin base URLs (it stops when `stop`
/// is cancelled).
async fn start(cfg: GatewayConfig, stop: &CancellationToken) -> (String, String) {
    let app = Application::build(cfg).await.expect("gateway starts");
    let base = format!("http://{}", app.local_addr());
    let admin = format!("http://{}", app.admin_addr());
    tokio::spawn(app.run(stop.clone()));
    (base, admin)
}

/// Messages in the topic: the sum of its partitions' high watermarks.
fn messages_in(cfg: &GatewayConfig) -> i64 {
    let consumer: BaseConsumer =
        cfg.kafka.client_config().set("group.id", "t-null-sink").create().expect("kafka consumer");
    let topic = cfg.kafka.events_topic();
    (0..cfg.kafka.partitions)
        .map(|p| consumer.fetch_watermarks(&topic, p, Duration::from_secs(10)).expect("watermarks (is Kafka up?)").1)
        .sum()
}

/// One of each accepted request; returns the statuses.
async fn post_each(http: &Client, base: &str) -> Vec<u16> {
    let view = http.post(format!("{base}/api/v1/videos/id/{VIDEO}/view")).send().await.unwrap();
    let event = http.post(format!("{base}/api/v1/events")).json(&json!({"videoId": VIDEO})).send().await.unwrap();
    let batch = post_batch(http, base).await;
    vec![view.status().as_u16(), event.status().as_u16(), batch.status().as_u16()]
}

/// A batch of two events, with the producer key.
async fn post_batch(http: &Client, base: &str) -> reqwest::Response {
    http.post(format!("{base}/api/v1/events:batch"))
        .header("x-api-key", KEY)
        .json(&json!([{"videoId": VIDEO}, {"videoId": VIDEO, "eventType": "like"}]))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_sink_answers_as_usual_and_produces_nothing() {
    let tag: u32 = rand::rng().random();
    let prefix = format!("t-nullsink-{tag:08x}.");
    let http = Client::new();
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();

    // The key parses from a config file as the services read it.
    let dir = std::env::temp_dir().join(format!("t-nullsink-{tag:08x}"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gateway.toml");
    std::fs::write(&file, "[producer]\nsink = \"null\"\n").unwrap();
    let loaded: GatewayConfig = platform::config::load("T_NULL_SINK_UNUSED", Some(&file)).expect("config loads");
    assert_eq!(loaded.producer.sink, Sink::Null);
    assert_eq!(GatewayConfig::default().producer.sink, Sink::Kafka, "Kafka is the default sink");

    // The default sink creates the topic and produces: 1 + 1 + 2 events.
    let normal = config(&prefix);
    let (base, _) = start(normal.clone(), &stop).await;
    assert_eq!(post_each(&http, &base).await, [204, 202, 202]);
    assert_eq!(messages_in(&normal), 3, "the Kafka sink produced every event, the batch's two as one pack");

    // The null sink on the same topic: same answers, bad input still refused, nothing produced.
    let mut null = config(&prefix);
    null.producer.sink = Sink::Null;
    let (base, admin) = start(null.clone(), &stop).await;
    assert_eq!(post_each(&http, &base).await, [204, 202, 202]);
    let bad = http.post(format!("{base}/api/v1/videos/id/not-a-uuid/view")).send().await.unwrap();
    assert_eq!(bad.status(), 422);
    let problem: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(problem["field"], "videoId");
    let metrics = http.get(format!("{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("gateway_events_discarded_total"), "{metrics}");
    assert_eq!(messages_in(&null), 3, "the null sink produced nothing");
    assert_eq!(http.get(format!("{admin}/readyz")).send().await.unwrap().status(), 200);
    std::fs::remove_dir_all(&dir).ok();
}

/// A Kafka that never acknowledges (nothing listens at the broker address): every
/// kind of request is answered 503 with `Retry-After` once its messages time out
/// (`producer.delivery_timeout_ms`), none hangs, and the failures are counted as
/// timeouts. The delivery reports that say so are served by the gateway's own
/// poller, as every other report is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_that_never_acknowledges_is_answered_503() {
    let mut cfg = config("t-unacked.");
    cfg.kafka.brokers = "127.0.0.1:9".into(); // discard: refused on loopback
    cfg.kafka.create_topics = false;
    cfg.producer.delivery_timeout_ms = 1_500;
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    let (base, admin) = start(cfg, &stop).await;
    let http = Client::new();

    let started = std::time::Instant::now();
    let answers = tokio::time::timeout(Duration::from_secs(20), async {
        let view = http.post(format!("{base}/api/v1/videos/id/{VIDEO}/view")).send().await.unwrap();
        [view, post_batch(&http, &base).await]
    })
    .await
    .expect("answered, not hung");
    for res in answers {
        assert_eq!(res.status(), 503);
        assert!(res.headers().contains_key("retry-after"), "{:?}", res.headers());
    }
    assert!(started.elapsed() >= Duration::from_millis(1_400), "answered only once the messages timed out");
    let metrics = http.get(format!("{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    let timed_out = metrics
        .lines()
        .find(|l| l.starts_with("gateway_produce_errors_total{") && l.contains("timed_out"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert_eq!(timed_out, Some(2.0), "{metrics}");
}
