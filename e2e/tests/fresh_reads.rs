//! Freshness from the owner (issue 15) on the real pipeline: the query service
//! asks the aggregator that owns a video's partition what it holds and has not
//! written, and adds it to the rows by the `last_offset` rule.
//!
//! - With rounds a long way off (`flush.max_age_ms` 10 min), views are exact in
//!   every range while Cassandra holds no row of them: the answers came from the
//!   owner. After SIGTERM (the aggregator writes what it holds and leaves) the
//!   rows alone answer, still exact.
//! - With rounds landing all the time (the suite's 300 ms / 2 s ages), a reader
//!   polls every video while views flow: no answer ever exceeds what the gateway
//!   had acknowledged by the time the answer came back (a double count would),
//!   and at the end every range is exact.
//!
//! The query service's metrics are the process' own, so the two run one at a
//! time ([`SERIAL`]) and compare their own before and after.

use std::time::Duration;

use e2e::*;
use uuid::Uuid;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `query_owner_reads_total` by outcome, from the in-process query service.
async fn owner_reads(env: &TestEnv, outcome: &str) -> f64 {
    let text = reqwest::get(env.query_admin_url("/metrics")).await.unwrap().text().await.unwrap();
    let want = format!("query_owner_reads_total{{outcome=\"{outcome}\"}} ");
    text.lines().filter_map(|l| l.strip_prefix(&want)?.parse::<f64>().ok()).sum()
}

/// Rows of `video`'s views in `counts`.
async fn rows_of(env: &TestEnv, video: Uuid) -> usize {
    let cfg = platform::cassandra::CassandraConfig { nodes: cassandra_nodes(), ..Default::default() };
    let cql = platform::cassandra::connect(&cfg, Duration::from_secs(10)).await.unwrap();
    let rows = cql
        .query_unpaged(
            format!("SELECT bucket FROM {}.counts WHERE video_id = ? AND event_type = 'view'", env.keyspace),
            (video,),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    rows.rows_num()
}

#[tokio::test]
async fn counts_are_exact_from_the_owner_before_any_round_writes_them() {
    let _serial = SERIAL.lock().await;
    let mut env = TestEnv::start("fresh-held", 4).await;
    let agg = env.spawn_aggregator_with(&[
        ("AGGREGATOR__FLUSH__MAX_AGE_MS", "600000"),
        ("AGGREGATOR__FLUSH__MIN_AGE_MS", "600000"),
        ("AGGREGATOR__FLUSH__HOT_EVENTS", "1000000"),
        ("AGGREGATOR__FLUSH__CACHE_IDLE_FLUSHES", "10000"),
    ]);
    let videos = uuids(12);
    let mut ledger = Ledger::default();
    send_views(&env, &mut ledger, &videos, 600, 2 * DAY).await;
    env.wait_consuming(agg).await;

    let ranges = interesting_ranges(now_ms());
    let fresh = owner_reads(&env, "fresh").await;
    env.assert_converges(&ledger, &ranges, Duration::from_secs(60)).await;
    for v in &videos {
        assert_eq!(rows_of(&env, *v).await, 0, "video {v}: a round wrote rows, so the test proves nothing");
    }
    assert!(owner_reads(&env, "fresh").await - fresh >= (videos.len() * ranges.len()) as f64);

    // What it held reaches the rows at shutdown; the owner is gone, the rows answer.
    env.terminate_aggregator(agg);
    for v in &videos {
        assert!(rows_of(&env, *v).await > 0, "video {v}: nothing written at shutdown");
    }
    let rows_only = owner_reads(&env, "error").await + owner_reads(&env, "backoff").await;
    env.assert_converges(&ledger, &ranges, Duration::from_secs(30)).await;
    assert!(owner_reads(&env, "error").await + owner_reads(&env, "backoff").await > rows_only);
}

#[tokio::test]
async fn fresh_reads_never_count_twice_while_rounds_land() {
    let _serial = SERIAL.lock().await;
    let mut env = TestEnv::start("fresh-landing", 4).await;
    let agg = env.spawn_aggregator();
    let videos = uuids(6);
    let mut ledger = Ledger::default();
    send_views(&env, &mut ledger, &videos, 50, MINUTE).await;
    env.wait_active(agg).await;

    // Batches of 40 views every ~100 ms for about 15 s; between batches every
    // video is read, so each answer can only count what was acknowledged.
    let fresh = owner_reads(&env, "fresh").await;
    let landed = owner_reads(&env, "landed").await;
    let started = std::time::Instant::now();
    let mut reads = 0;
    let mut exact = 0;
    while started.elapsed() < Duration::from_secs(15) {
        send_views(&env, &mut ledger, &videos, 40, 10 * MINUTE).await;
        for v in &videos {
            let got = env.views(*v, None).await.expect("views answered");
            let acked = ledger.count(*v, None);
            assert!(got <= acked, "video {v}: {got} views counted, {acked} acknowledged: counted twice");
            reads += 1;
            exact += usize::from(got == acked);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let landed = owner_reads(&env, "landed").await - landed;
    let fresh = owner_reads(&env, "fresh").await - fresh;
    eprintln!(
        "{reads} reads while rounds landed, {exact} equal to the acknowledged count; fresh {fresh}, landed twice {landed}"
    );
    assert!(fresh > 0.0, "no read took the owner's answer");
    assert!(env.aggregator_metric(agg, "aggregator_rows_written_total").await > 0.0);

    let ranges = interesting_ranges(now_ms());
    env.assert_converges(&ledger, &ranges, Duration::from_secs(60)).await;
    env.terminate_aggregator(agg);
}
