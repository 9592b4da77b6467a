//! Aggregators that die mid-stream: counts still end exact.

use std::time::Duration;

use e2e::*;

/// Every flush of these aggregators pauses for 2 s after its first write request
/// landed (fault injection), with one request at a time: a SIGKILL in that pause
/// leaves a flush in doubt with some rows written and others not.
pub const PAUSE_MID_WRITE: [(&str, &str); 3] = [
    ("AGGREGATOR__FLUSH__FAULT_PAUSE_AT", "mid_write"),
    ("AGGREGATOR__FLUSH__FAULT_PAUSE_MS", "2000"),
    ("AGGREGATOR__FLUSH__CONCURRENCY", "1"),
];
const PAUSED: &str = "fault injection: pausing mid-flush";

/// SIGKILLs aggregator `i` in the middle of its next flush.
async fn kill_mid_flush(env: &mut TestEnv, i: usize) {
    let n = env.aggregator_log(i).matches(PAUSED).count();
    env.wait_log(i, PAUSED, n + 1, Duration::from_secs(30)).await;
    env.kill_aggregator(i);
}

/// SIGKILL twice while events flow, each time in the middle of a flush (after its
/// first write request landed): each successor must find that flush in doubt,
/// flush exactly at its fence (P2) and skip the rows already written (P7).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_stream_twice_still_exact() {
    let mut env = TestEnv::start("crash", 6).await;
    let first = env.spawn_aggregator_with(&PAUSE_MID_WRITE);
    // Long enough (about a minute) that the second kill lands while events still
    // flow even when a loaded machine slows the first successor's takeover; the
    // load ends by itself, so the test does not wait longer for it.
    const ROUNDS: usize = 400;
    let load = start_load(&env, uuids(30), ROUNDS, 120, Duration::from_millis(150));

    env.wait_active(first).await;
    load.wait_for(8).await;
    kill_mid_flush(&mut env, first).await;

    // The successor gets the partitions once the dead member's session times out.
    let second = env.spawn_aggregator_with(&PAUSE_MID_WRITE);
    env.wait_metric(second, "aggregator_fenced_flushes_total", "", 1.0, Duration::from_secs(60)).await;
    env.wait_metric(second, "aggregator_rows_skipped_total", "", 1.0, Duration::from_secs(30)).await;
    assert!(!load.handle.is_finished(), "the second kill must land while events still flow");
    kill_mid_flush(&mut env, second).await;

    let third = env.spawn_aggregator();
    let fenced = env.wait_metric(third, "aggregator_fenced_flushes_total", "", 1.0, Duration::from_secs(60)).await;
    let skipped = env.wait_metric(third, "aggregator_rows_skipped_total", "", 1.0, Duration::from_secs(30)).await;
    let ledger = load.handle.await.unwrap();
    assert_eq!(ledger.total(), ROUNDS * 120);
    env.assert_converges(&ledger, &failure_ranges(now_ms()), Duration::from_secs(120)).await;
    env.assert_minute_rows_exact(&ledger).await;
    eprintln!(
        "[crash] survivor: {fenced} flushes in doubt completed at their fence, {skipped} rows skipped as already written"
    );
}

/// Dies exactly in the middle of a flush (fault injection: abort after N row
/// writes), so some rows hold the in-doubt offsets and others do not. The
/// successor must replay to the fence, skip the rows already written and
/// complete the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dies_halfway_through_a_flush_and_the_successor_completes_it() {
    let mut env = TestEnv::start("halfway", 6).await;
    let videos = uuids(30);
    let mut ledger = Ledger::default();
    // Everything is in Kafka before the aggregator starts, so its first flush is
    // big and the abort lands inside it.
    send_views(&env, &mut ledger, &videos, 4_000, 2 * DAY).await;
    let doomed = env.spawn_aggregator_with(&[("AGGREGATOR__FLUSH__FAIL_AFTER_WRITES", "300")]);
    assert!(!env.wait_exit(doomed, Duration::from_secs(60)), "the doomed aggregator aborts");

    let successor = env.spawn_aggregator();
    env.assert_converges(&ledger, &interesting_ranges(now_ms()), Duration::from_secs(120)).await;
    env.assert_minute_rows_exact(&ledger).await;
    let skipped = env.aggregator_metric(successor, "aggregator_rows_skipped_total").await;
    let fenced = env.aggregator_metric(successor, "aggregator_fenced_flushes_total").await;
    eprintln!("[halfway] successor skipped {skipped} rows already written, {fenced} fenced flushes");
    assert!(fenced >= 1.0, "the successor flushed at the in-doubt fence");
    assert!(skipped >= 1.0, "rows written before the abort were recognised, not added twice");
}
