//! Views through the whole pipeline, on real Kafka and Cassandra: every range
//! query must equal the ledger of what the gateway acknowledged.

use std::time::Duration;

use e2e::*;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_equal_the_ledger_for_every_range() {
    let mut env = TestEnv::start("e2e", 6).await;
    let videos: Vec<Uuid> = (0..40).map(|_| Uuid::new_v4()).collect();
    let mut ledger = Ledger::default();
    env.spawn_aggregator();

    // 6,000 views with explicit occurredAt over the last three days...
    send_views(&env, &mut ledger, &videos, 6_000, 3 * DAY - HOUR).await;
    // ...some through the body-less KillrVideo endpoint (counted at "now")...
    for video in videos.iter().take(10) {
        for _ in 0..3 {
            let res = env.http.post(env.gateway_url(&format!("/api/v1/videos/id/{video}/view"))).send().await.unwrap();
            assert_eq!(res.status(), 204);
            ledger.record(*video, now_ms());
        }
    }
    // ...and single typed events.
    for video in videos.iter().take(5) {
        let at = now_ms() - 90 * MINUTE;
        let res = env.http.post(env.gateway_url("/api/v1/events")).json(&view(*video, at)).send().await.unwrap();
        assert_eq!(res.status(), 202);
        ledger.record(*video, at);
    }

    // Poison: garbage straight onto the topic must be dead-lettered, not counted,
    // and must not stop the partition.
    let producer: FutureProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", brokers()).create().unwrap();
    let topic = format!("{}video-events", env.topic_prefix);
    for i in 0..3u8 {
        let rec = FutureRecord::to(&topic).key(&videos[i as usize].as_bytes()[..]).payload(&b"\xff\x00garbage"[..]);
        producer.send(rec, Duration::from_secs(5)).await.unwrap();
    }
    send_views(&env, &mut ledger, &videos, 500, 2 * HOUR).await;

    let now = now_ms();
    env.assert_converges(&ledger, &interesting_ranges(now), Duration::from_secs(90)).await;
    env.assert_minute_rows_exact(&ledger).await;

    // The dead letters are on the DLQ topic, with the reason in a header.
    let dlq: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("{}dlq-check", env.topic_prefix))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    dlq.subscribe(&[&format!("{}video-events.dlq", env.topic_prefix)]).unwrap();
    let mut reasons = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while reasons.len() < 3 && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = dlq.poll(Duration::from_millis(500)) {
            use rdkafka::message::Headers;
            let h = m.headers().expect("dead letters carry headers");
            let reason = h
                .iter()
                .find(|h| h.key == "dlq.reason")
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned());
            reasons.push(reason.expect("dlq.reason header"));
        }
    }
    assert_eq!(reasons.len(), 3, "three poison messages dead-lettered");
    assert!(reasons.iter().all(|r| r.contains("protobuf")), "{reasons:?}");

    // The counted ranges say which rollups answered.
    let v = videos[0];
    let body: serde_json::Value = env
        .http
        .get(env.query_url(&format!(
            "/api/v1/videos/{v}/views?from={}&to={}",
            rfc3339(now - 3 * DAY + 17 * MINUTE),
            rfc3339(now)
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["granularity"], "day+hour+minute", "{body}");
    assert_eq!(body["videoId"], v.to_string());

    // Metrics show the traffic.
    let metrics = env.http.get(env.gateway_admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("gateway_events_produced_total"), "{metrics}");
    assert!(metrics.contains("route=\"/api/v1/events:batch\""), "{metrics}");

    env.terminate_aggregator(0);
}
