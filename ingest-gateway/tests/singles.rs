//! `producer.pack_singles_ms` on the real Kafka: single views of concurrent
//! requests go out together, one message per partition, and every one answered
//! 204 is on the topic exactly once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ingest_gateway::{Application, GatewayConfig};
use platform::ratelimit::Rate;
use prost::Message as _;
use rand::Rng;
use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use schemas::events::Event;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const PARTITIONS: i32 = 3;

/// (messages, events by id) on every partition of `topic`, once `expect` events
/// are in and a little longer to catch extras. Each event is checked to sit in
/// its own video's partition.
fn read(topic: &str, expect: usize) -> (usize, HashMap<Vec<u8>, usize>) {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", std::env::var("VCOUNT_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into()))
        .set("group.id", format!("{topic}-check"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let (mut messages, mut events) = (0, HashMap::new());
    let mut deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            messages += 1;
            for e in Event::decode(m.payload().unwrap()).unwrap().into_events() {
                let home = platform::kafka::murmur2_partition(&e.video_id, PARTITIONS);
                assert_eq!(home, m.partition(), "an event in another video's partition");
                *events.entry(e.event_id).or_default() += 1;
            }
            if events.len() == expect {
                deadline = Instant::now() + Duration::from_secs(3);
            }
        }
    }
    (messages, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_single_views_go_out_together_and_each_exactly_once() {
    let tag: u32 = rand::rng().random();
    let mut cfg = GatewayConfig::default();
    cfg.http.listen = "127.0.0.1:0".into();
    cfg.admin.listen = "127.0.0.1:0".into();
    cfg.limits.anonymous = Rate::UNLIMITED;
    cfg.kafka.brokers = std::env::var("VCOUNT_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into());
    cfg.kafka.topic_prefix = format!("t-singles-{tag:08x}.");
    cfg.kafka.partitions = PARTITIONS;
    // A wide window, so that the concurrent views below surely share it.
    cfg.producer.pack_singles_ms = 200;
    let topic = cfg.kafka.events_topic();
    let app = Application::build(cfg).await.expect("gateway starts (is Kafka up?)");
    let base = format!("http://{}", app.local_addr());
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    tokio::spawn(app.run(stop.clone()));

    let http = reqwest::Client::new();
    let videos: Vec<Uuid> = (0..12).map(|_| Uuid::new_v4()).collect();
    let n = 60;
    let started = Instant::now();
    let views = (0..n).map(|i| {
        let url = format!("{base}/api/v1/videos/id/{}/view", videos[i % videos.len()]);
        let http = http.clone();
        async move { http.post(url).send().await.unwrap().status().as_u16() }
    });
    let statuses = futures::future::join_all(views).await;
    assert!(statuses.iter().all(|s| *s == 204), "{statuses:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "answered within the windows: {:?}", started.elapsed());

    let (messages, events) = read(&topic, n);
    assert_eq!(events.len(), n, "every view answered 204 is on the topic");
    assert!(events.values().all(|c| *c == 1), "none twice: {events:?}");
    // 60 views in a few 200 ms windows over 3 partitions: far fewer messages.
    assert!(messages < n / 2, "{messages} messages for {n} views");
    eprintln!("[singles] {n} views in {messages} messages");
}
