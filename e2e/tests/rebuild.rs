//! `vcount-admin rebuild` (issue 13) on the real Kafka and Cassandra: everything the
//! log holds, recounted by the aggregator's own code into a fresh keyspace, equals
//! the live counts and the ledger, and the comparison says it is exact; a live
//! count that is wrong (written by hand here, as a bug would) is reported, so the
//! comparison is not one that cannot fail. Then readers move onto the rebuilt
//! keyspace the way its report says, and the answers stay exact.

use std::sync::Arc;
use std::time::Duration;

use counting::{EventKind, Granularity};
use e2e::*;
use vcount_admin::rebuild::{Difference, Rebuild, rebuild};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_from_the_log_equals_the_live_counts_and_finds_a_wrong_one() {
    let mut env = TestEnv::start("rebuild", 3).await;
    env.spawn_aggregator();
    let videos = uuids(4);
    let mut ledger = Ledger::default();
    send_views(&env, &mut ledger, &videos, 400, 3 * HOUR).await;
    env.wait_active(0).await;
    let now = now_ms();
    let ranges = [None, Some((now - 2 * HOUR, now + MINUTE)), Some((now - 150 * MINUTE, now - 70 * MINUTE))];
    env.assert_converges(&ledger, &ranges, Duration::from_secs(90)).await;

    // The live aggregator's settings, as its environment gives them (e2e/src/env.rs).
    let mut live = aggregator::AggregatorConfig::default();
    live.kafka.brokers = brokers();
    live.kafka.topic_prefix = env.topic_prefix.clone();
    live.kafka.partitions = env.partitions;
    live.consumer.group_id = env.group();
    live.consumer.session_timeout_ms = 6000;
    live.cassandra.nodes = cassandra_nodes();
    live.cassandra.keyspace = env.keyspace.clone();
    live.flush.interval_ms = 300;
    let into = format!("{}_rb", env.keyspace);
    let r = Rebuild {
        live,
        into: into.clone(),
        group: format!("{}rebuild", env.topic_prefix),
        timeout: Duration::from_secs(180),
    };
    let report = rebuild(&r).await.unwrap();
    assert!(report.exact, "a quiet log, both groups at its end: {:?}", report.caveats);
    assert_eq!(report.differences, Vec::<Difference>::new());
    assert_eq!(report.series, videos.len(), "one view series per video");
    let positions: i64 =
        report.rebuilt_through.iter().filter(|((t, _), _)| *t == env.events_topic()).map(|(_, o)| o).sum();
    // Messages, not events: a batch's events of one partition are one pack.
    let consumer: rdkafka::consumer::BaseConsumer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", brokers()).create().unwrap();
    let ends: i64 = (0..env.partitions)
        .map(|p| {
            let (_, high) = rdkafka::consumer::Consumer::fetch_watermarks(
                &consumer,
                &env.events_topic(),
                p,
                Duration::from_secs(10),
            )
            .unwrap();
            high
        })
        .sum();
    assert_eq!(positions, ends, "the rebuild read every message of the events topic");

    // The rebuilt rows themselves equal the ledger: all time and every minute.
    let cfg = platform::cassandra::CassandraConfig { nodes: cassandra_nodes(), ..Default::default() };
    let session = Arc::new(platform::cassandra::connect(&cfg, Duration::from_secs(30)).await.unwrap());
    let rebuilt = query_service::store::rollups::Rollups::new(session.clone(), &into).await.unwrap();
    let first = (now - 3 * HOUR - MINUTE).div_euclid(MINUTE) * MINUTE;
    let minutes: Vec<i64> = (first..now + MINUTE).step_by(MINUTE as usize).collect();
    for v in &videos {
        assert_eq!(rebuilt.total(*v, EventKind::View).await.unwrap(), ledger.count(*v, None));
        let got = rebuilt.series(*v, EventKind::View, Granularity::Minute, &minutes).await.unwrap();
        let want: Vec<i64> = minutes.iter().map(|m| ledger.count_exact(*v, *m, m + MINUTE)).collect();
        assert_eq!(got, want, "minute rows of {v}");
    }

    // A live all-time row a bug got wrong: the comparison names it. (The rebuild
    // resumes where it stopped: nothing new to count.)
    let wrong = ledger.count(videos[0], None) + 5;
    let q = format!(
        "UPDATE {}.counts SET value = ? WHERE video_id = ? AND event_type = 'view' AND granularity = 'total' AND bucket = ?",
        env.keyspace
    );
    session.query_unpaged(q, (wrong, videos[0], scylla::value::CqlTimestamp(0))).await.unwrap();
    let again = rebuild(&r).await.unwrap();
    assert_eq!(
        again.differences,
        vec![Difference {
            video: videos[0],
            kind: EventKind::View,
            live: wrong,
            rebuilt: ledger.count(videos[0], None)
        }]
    );

    // Readers move onto the rebuilt keyspace, as the rebuild's report says: an
    // aggregator of the rebuild's group counts on into it (feed entries still go to
    // the catalog's keyspace), the query service reads counts from it, the old
    // aggregator stops. Every later answer equals the ledger, not the live
    // keyspace's wrong row, and a signed-in view reaches the catalog's feed.
    let catalog = env.keyspace.clone();
    let feed = [
        ("AGGREGATOR__CASSANDRA__KEYSPACE", into.as_str()),
        ("AGGREGATOR__CONSUMER__GROUP_ID", r.group.as_str()),
        ("AGGREGATOR__FEED__KEYSPACE", catalog.as_str()),
    ];
    let moved = env.spawn_aggregator_with(&feed);
    env.wait_metric(moved, "aggregator_assigned_partitions", "", 3.0, Duration::from_secs(60)).await;
    env.switch_query_service(|q| q.counts.keyspace = into.clone()).await;
    env.terminate_aggregator(0);
    send_views(&env, &mut ledger, &videos, 300, HOUR).await;
    let email = format!("{}@example.org", uuid::Uuid::new_v4().simple());
    let reg = serde_json::json!({"firstName": "Re", "lastName": "Built", "email": email, "password": "password123"});
    let res = env.http.post(env.query_url("/api/v1/users/register")).json(&reg).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let viewer: uuid::Uuid =
        res.json::<serde_json::Value>().await.unwrap()["userId"].as_str().unwrap().parse().unwrap();
    let res = env
        .anonymous
        .post(env.gateway_url(&format!("/api/v1/videos/id/{}/view", videos[1])))
        .bearer_auth(token_for(viewer))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
    ledger.record(videos[1], now_ms());
    let now = now_ms();
    let ranges = [None, Some((now - 2 * HOUR, now + MINUTE))];
    env.assert_converges(&ledger, &ranges, Duration::from_secs(90)).await;
    let activity = env.query_url(&format!("/api/v1/users/{viewer}/activity?pageSize=10"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let res = env.anonymous.get(&activity).bearer_auth(token_for(viewer)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{:?}", res.text().await);
        let body: serde_json::Value = res.json().await.unwrap();
        let items = body["data"].as_array().unwrap().clone();
        if items.iter().any(|a| a["activityType"] == "view" && a["activityId"] == videos[1].to_string()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the view never reached the catalog's feed: {body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    platform::cassandra::drop_keyspace(&session, &into).await.unwrap();
}
