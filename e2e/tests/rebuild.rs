//! `vcount-admin rebuild` (issue 13) on the real Kafka and Cassandra: everything the
//! log holds, recounted by the aggregator's own code into a fresh keyspace, equals
//! the live counts and the ledger, and the comparison says it is exact; a live
//! count that is wrong (written by hand here, as a bug would) is reported, so the
//! comparison is not one that cannot fail.

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
    assert_eq!(positions, ledger.total() as i64, "the rebuild read every message of the events topic");

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
    platform::cassandra::drop_keyspace(&session, &into).await.unwrap();
}
