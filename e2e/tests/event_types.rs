//! Configured event types (issue 13) on the real Kafka and Cassandra: KillrVideo's
//! watch time and a custom type sent through the gateway are counted exactly (the
//! query service's answers equal the ledger of what was sent); a type not listed is
//! refused at the gateway, and one produced straight to Kafka is dead-lettered by
//! the aggregator (the partition keeps counting). Then the documented rollout: an
//! aggregator that lists the type replaces the old one, `dlq replay` with the new
//! list sends the dead letters back, and they are counted exactly once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aggregator::replay::{ReplayOptions, replay};
use e2e::*;
use prost::Message as _;
use rand::Rng;
use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers as _;
use schemas::events::Event;
use serde_json::{Value, json};
use uuid::Uuid;

/// The gateway's and the first aggregator's list.
const LISTED: [&str; 2] = ["watch_seconds", "e2e_clicks"];
/// Listed by the query service from the start, by the aggregators only later.
const LATE: &str = "e2e_late";

async fn count(env: &TestEnv, video: Uuid, kind: &str) -> (u16, Value) {
    let res = env.anonymous.get(env.query_url(&format!("/api/v1/videos/{video}/counts/{kind}"))).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

/// Waits (up to a minute) until every video's all-time count of `kind` is `want`'s.
async fn converge(env: &TestEnv, kind: &str, want: &HashMap<Uuid, i64>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for (video, n) in want {
        loop {
            let (status, body) = count(env, *video, kind).await;
            assert_eq!(status, 200, "{kind} of {video}: {body}");
            if body["count"].as_i64() == Some(*n) {
                break;
            }
            assert!(Instant::now() < deadline, "{kind} of {video}: {body}, want {n}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// An event of a configured type as a producer past the gateway writes it.
fn named(video: Uuid, name: &str, value: i64) -> Vec<u8> {
    Event {
        event_id: Uuid::now_v7().as_bytes().to_vec(),
        video_id: video.as_bytes().to_vec(),
        occurred_at_ms: now_ms(),
        received_at_ms: now_ms(),
        value,
        event_type_name: name.into(),
        ..Default::default()
    }
    .encode_to_vec()
}

/// The `dlq.reason` of every message on the dead-letter topic (until `expect`).
fn dead_letter_reasons(env: &TestEnv, expect: usize) -> Vec<String> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("{}dlq-check", env.topic_prefix))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&format!("{}video-events.dlq", env.topic_prefix)]).unwrap();
    let mut reasons = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while reasons.len() < expect && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            let reason = m.headers().and_then(|h| h.iter().find(|h| h.key == "dlq.reason")).and_then(|h| h.value);
            reasons.push(String::from_utf8_lossy(reason.unwrap_or_default()).into_owned());
        }
    }
    reasons
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_time_and_configured_types_count_exactly_and_unlisted_ones_wait_in_the_dead_letters() {
    let mut env = TestEnv::start_configured("types", 2, |gw, q| {
        gw.event_types = LISTED.map(String::from).to_vec();
        q.event_types = [LISTED[0], LISTED[1], LATE].map(String::from).to_vec();
    })
    .await;
    let listed = format!(r#"["{}","{}"]"#, LISTED[0], LISTED[1]);
    env.spawn_aggregator_with(&[("AGGREGATOR__EVENT_TYPES", &listed)]);
    let videos = uuids(3);
    let mut rng = rand::rng();

    // Watch time: anonymous reports, and signed-in ones (each user their own budget).
    let mut watch: HashMap<Uuid, i64> = videos.iter().map(|v| (*v, 0)).collect();
    let mut sent_watch = 0;
    for i in 0..30 {
        let video = videos[i % 3];
        let seconds: i64 = rng.random_range(1..=2500);
        let mut req = env
            .anonymous
            .post(env.gateway_url(&format!("/api/v1/videos/id/{video}/watch-time")))
            .json(&json!({ "watch_duration_seconds": seconds }));
        if i % 3 == 1 {
            req = req.bearer_auth(token_for(Uuid::new_v4()));
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
        *watch.get_mut(&video).unwrap() += seconds;
        sent_watch += seconds;
    }
    // A custom type through `/events`: values with the producer key, 1 anonymously.
    let mut clicks: HashMap<Uuid, i64> = videos.iter().map(|v| (*v, 0)).collect();
    for i in 0..20 {
        let video = videos[(i * 7) % 3];
        let (client, value) = if i % 2 == 0 { (&env.http, rng.random_range(1..=50)) } else { (&env.anonymous, 1) };
        let body = json!({ "videoId": video, "eventType": "e2e_clicks", "value": value });
        let res = client.post(env.gateway_url("/api/v1/events")).json(&body).send().await.unwrap();
        assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
        *clicks.get_mut(&video).unwrap() += value;
    }

    // Not listed at the gateway: refused, naming the field; not listed at the
    // query service: the same.
    let body = json!({ "videoId": videos[0], "eventType": LATE });
    let res = env.http.post(env.gateway_url("/api/v1/events")).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 422);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["field"], "eventType", "{problem}");
    let (status, problem) = count(&env, videos[0], "e2e_nowhere").await;
    assert_eq!((status, problem["field"].as_str()), (422, Some("eventType")), "{problem}");

    // Straight to Kafka: a type this aggregator does not list is dead-lettered,
    // and the partition goes on counting (views sent after it are counted).
    let topic = env.events_topic();
    let mut late: HashMap<Uuid, i64> = HashMap::new();
    for (i, video) in videos.iter().enumerate() {
        let value = 5 + i as i64;
        produce_raw(&topic, *video, &named(*video, LATE, value)).await;
        late.insert(*video, value);
    }
    let mut ledger = Ledger::default();
    send_views(&env, &mut ledger, &videos, 30, 10 * MINUTE).await;
    env.wait_metric(0, "aggregator_dead_letters_total", "", 3.0, Duration::from_secs(60)).await;
    let reasons = dead_letter_reasons(&env, 3);
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    for r in &reasons {
        assert!(r.contains(r#""e2e_late" is not in this aggregator's event_types"#), "{r}");
    }

    converge(&env, "watch_seconds", &watch).await;
    converge(&env, "e2e_clicks", &clicks).await;
    env.assert_converges(&ledger, &[None], Duration::from_secs(60)).await;
    assert_eq!(watch.values().sum::<i64>(), sent_watch);
    assert_eq!(env.aggregator_metric(0, "aggregator_partitions_halted").await, 0.0, "dead letters, not halts");
    // Dead-lettered: not counted yet.
    converge(&env, LATE, &videos.iter().map(|v| (*v, 0)).collect()).await;

    // The rollout: aggregators list the type first, then the dead letters go back.
    env.terminate_aggregator(0);
    let longer = format!(r#"["{}","{}","{LATE}"]"#, LISTED[0], LISTED[1]);
    env.spawn_aggregator_with(&[("AGGREGATOR__EVENT_TYPES", &longer)]);
    let mut kafka = platform::kafka::KafkaConfig { brokers: brokers(), ..Default::default() };
    kafka.topic_prefix = env.topic_prefix.clone();
    let mut opts = ReplayOptions::new(kafka);
    opts.group = format!("{}dlq-replay", env.topic_prefix);
    // A replay with the old list leaves them where they are.
    opts.dry_run = true;
    let old = replay(&opts).await.unwrap();
    assert_eq!((old.read, old.replayed), (3, 0), "{old:?}");
    opts.types = counting::EventTypes::new(&[LISTED[0], LISTED[1], LATE]).unwrap();
    opts.dry_run = false;
    let done = replay(&opts).await.unwrap();
    assert_eq!((done.read, done.replayed), (3, 3), "{done:?}");
    converge(&env, LATE, &late).await;
    // Everything else unchanged by the handover and the replay.
    converge(&env, "watch_seconds", &watch).await;
    converge(&env, "e2e_clicks", &clicks).await;
    env.assert_converges(&ledger, &[None], Duration::from_secs(60)).await;
}
