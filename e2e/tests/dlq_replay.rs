//! `vcount-admin dlq replay` (issue 13) on the real Kafka and Cassandra: dead
//! letters the current aggregator can count go back to their partitions and are
//! counted exactly once, also when a replay dies between sending a batch and
//! committing it (the test proves the resent copies reached the log and were
//! dropped); what it still cannot count, ratings, foreign topics and keys that are
//! not the video stay behind, listed.
//!
//! Countable dead letters need an aggregator older than today's (one that did not
//! check what today's does): the test writes those into the dead-letter topic as
//! that aggregator would have, with its headers. The ones today's aggregator
//! refuses are real: it dead-letters them itself while the test runs.

use std::time::{Duration, Instant};

use aggregator::replay::{ReplayOptions, replay};
use e2e::*;
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use schemas::events::{Event, EventType};
use uuid::Uuid;

const DROPPED: &str = "aggregator_duplicates_dropped_total";

/// Writes `payload` into the dead-letter topic as an aggregator dead-lettering a
/// message of `source_topic`'s `partition` would.
async fn dead_letter(env: &TestEnv, source_topic: &str, partition: i32, key: Uuid, payload: &[u8]) {
    let producer: FutureProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", brokers()).create().unwrap();
    let partition = partition.to_string();
    let headers = OwnedHeaders::new()
        .insert(Header { key: "dlq.reason", value: Some("unknown event type 3") })
        .insert(Header { key: "dlq.source.topic", value: Some(source_topic) })
        .insert(Header { key: "dlq.source.partition", value: Some(partition.as_str()) })
        .insert(Header { key: "dlq.source.offset", value: Some("0") });
    let dlq = format!("{}video-events.dlq", env.topic_prefix);
    let rec = FutureRecord::to(&dlq).key(&key.as_bytes()[..]).payload(payload).headers(headers);
    producer.send(rec, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
}

/// An event as the gateway encodes it (its own event id, not a client's).
fn event(video: Uuid, kind: EventType, value: i64, at: i64) -> Vec<u8> {
    Event {
        event_id: Uuid::now_v7().as_bytes().to_vec(),
        video_id: video.as_bytes().to_vec(),
        event_type: kind as i32,
        occurred_at_ms: at,
        received_at_ms: now_ms(),
        value,
        user_id: vec![],
        client_event_id: false,
        user_verified: false,
        correction: false,
        event_type_name: String::new(),
        correction_events: 0,
        packed: vec![],
    }
    .encode_to_vec()
}

async fn likes(env: &TestEnv, video: Uuid) -> Option<i64> {
    let url = env.query_url(&format!("/api/v1/videos/{video}/counts/like"));
    let body: serde_json::Value = reqwest::get(url).await.ok()?.json().await.ok()?;
    body["count"].as_i64()
}

async fn wait_likes(env: &TestEnv, video: Uuid, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = likes(env, video).await;
        if got == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "likes of {video}: {got:?}, want {want}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replaying_dead_letters_counts_each_once_and_leaves_the_rest_listed() {
    let mut env = TestEnv::start("dlq-replay", 2).await;
    env.spawn_aggregator();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let topic = env.events_topic();
    let mut ledger = Ledger::default();
    send_views(&env, &mut ledger, &[a, b], 40, 30 * MINUTE).await;
    env.wait_active(0).await;

    // One real view each, straight to the topic: counted, and it says which
    // partition each video's key maps to.
    let now = now_ms();
    let (pa, _) = produce_raw(&topic, a, &encoded_event(a, EventType::View as i32, now)).await;
    let (pb, _) = produce_raw(&topic, b, &encoded_event(b, EventType::View as i32, now)).await;
    ledger.record(a, now);
    ledger.record(b, now);
    // Two that today's aggregator dead-letters itself (a newer event type would
    // halt the partition instead: issue 11).
    produce_raw(&topic, a, b"not protobuf").await;
    produce_raw(&topic, b, &event(b, EventType::View, 0, now)).await;
    env.wait_metric(0, "aggregator_dead_letters_total", "", 2.0, Duration::from_secs(60)).await;

    // What an older aggregator left: 3 likes of a (values 2), 2 views of b, all
    // countable today; a rating, a foreign topic's message, a key that is not the
    // video: never replayed.
    for i in 0..3 {
        dead_letter(&env, &topic, pa, a, &event(a, EventType::Like, 2, now - i * MINUTE)).await;
    }
    for i in 0..2 {
        let at = now - 7 * MINUTE - i * HOUR;
        dead_letter(&env, &topic, pb, b, &event(b, EventType::View, 1, at)).await;
        ledger.record(b, at);
    }
    let ratings = format!("{}video-ratings", env.topic_prefix);
    dead_letter(&env, &ratings, pa, a, &event(a, EventType::View, 1, now)).await;
    dead_letter(&env, "someone-elses.video-events", pa, a, &event(a, EventType::View, 1, now)).await;
    dead_letter(&env, &topic, pa, b, &event(a, EventType::View, 1, now)).await;

    let mut kafka = platform::kafka::KafkaConfig { brokers: brokers(), ..Default::default() };
    kafka.topic_prefix = env.topic_prefix.clone();
    let mut opts = ReplayOptions::new(kafka);
    opts.group = format!("{}dlq-replay", env.topic_prefix);
    opts.batch = 2; // several batches, several commits

    // A dry run lists and changes nothing.
    opts.dry_run = true;
    let dry = replay(&opts).await.unwrap();
    assert_eq!((dry.read, dry.replayed, dry.skipped.len()), (10, 5, 5), "{dry:?}");
    let reasons: Vec<&str> = dry.skipped.iter().map(|s| s.why.as_str()).collect();
    assert!(reasons.iter().filter(|r| r.starts_with("still not countable")).count() == 2, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.starts_with("a rating")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("not this deployment's")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("key is not its video id")), "{reasons:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(likes(&env, a).await, Some(0), "a dry run sent nothing");

    // The replay: counted once.
    opts.dry_run = false;
    let done = replay(&opts).await.unwrap();
    assert_eq!((done.read, done.replayed, &done.skipped), (10, 5, &dry.skipped), "{done:?}");
    assert_eq!(done.by_partition.values().sum::<u64>(), 5);
    wait_likes(&env, a, 6).await;
    env.assert_converges(&ledger, &[None, Some((now - 2 * HOUR, now + MINUTE))], Duration::from_secs(60)).await;
    let again = replay(&opts).await.unwrap();
    assert_eq!((again.read, again.replayed), (0, 0), "the group's offset moved past everything: {again:?}");

    // A replay that died after sending, before committing: the group's offset is
    // where the run started, so the next run sends every event again. The
    // aggregator must drop each copy (the dedup window), and say so.
    let dropped_before = env.aggregator_metric(0, DROPPED).await;
    let rewind: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", &opts.group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&format!("{}video-events.dlq", env.topic_prefix), 0, Offset::Offset(0)).unwrap();
    rewind.commit(&tpl, rdkafka::consumer::CommitMode::Sync).unwrap();
    let resent = replay(&opts).await.unwrap();
    assert_eq!((resent.read, resent.replayed), (10, 5), "{resent:?}");
    let dropped = env.wait_metric(0, DROPPED, "", dropped_before + 5.0, Duration::from_secs(60)).await;
    assert_eq!(dropped - dropped_before, 5.0, "each resent copy reached the log and was dropped");
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_likes(&env, a, 6).await;
    env.assert_converges(&ledger, &[None, Some((now - 2 * HOUR, now + MINUTE))], Duration::from_secs(30)).await;
}
