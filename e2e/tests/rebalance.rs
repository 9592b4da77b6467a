//! Two aggregators share the partitions; one leaves mid-stream (its partitions
//! move to the other), then a third joins: counts still end exact. Gracefully
//! (SIGTERM: the revoke flushes and commits, P10, so nothing is left in doubt) and
//! hard (SIGKILL in the middle of a flush: the survivor finds it in doubt).

use std::time::Duration;

use e2e::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebalances_while_events_flow_stay_exact() {
    let mut env = TestEnv::start("rebalance", 6).await;
    let a = env.spawn_aggregator();
    env.spawn_aggregator();
    let load = start_load(&env, uuids(30), 40, 250, Duration::from_millis(150));

    load.wait_for(14).await;
    env.terminate_aggregator(a); // graceful: flush and commit on revoke, then leave
    load.wait_for(26).await;
    env.spawn_aggregator(); // and a newcomer takes some partitions back

    let ledger = load.handle.await.unwrap();
    env.assert_converges(&ledger, &failure_ranges(now_ms()), Duration::from_secs(120)).await;
    env.assert_minute_rows_exact(&ledger).await;
    // A graceful hand-off flushes and commits what it gives up (P10): the members
    // that took partitions over found nothing in doubt.
    for i in [1, 2] {
        assert_eq!(env.aggregator_metric(i, "aggregator_fenced_flushes_total").await, 0.0, "member #{i}");
    }
}

/// R5's hard case: two members under load, one SIGKILLed in the middle of a flush
/// (fault injection: a pause after its first write request). The survivor takes
/// its partitions after the session timeout, finds the flush in doubt, completes
/// it at the fence and skips what it had written; then a third member joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_killed_mid_flush_hands_its_partitions_over_exactly() {
    let mut env = TestEnv::start("hard-rebalance", 6).await;
    let pause = [
        ("AGGREGATOR__FLUSH__FAULT_PAUSE_AT", "mid_write"),
        ("AGGREGATOR__FLUSH__FAULT_PAUSE_MS", "2000"),
        ("AGGREGATOR__FLUSH__CONCURRENCY", "1"),
    ];
    let victim = env.spawn_aggregator_with(&pause);
    let survivor = env.spawn_aggregator();
    // About 30 s of load: the hand-off (a pause, the session timeout, the census)
    // must land inside it on a loaded box.
    let load = start_load(&env, uuids(30), 150, 200, Duration::from_millis(150));
    env.wait_active(victim).await;
    env.wait_active(survivor).await;
    load.wait_for(10).await;
    let needle = "fault injection: pausing mid-flush";
    let n = env.aggregator_log(victim).matches(needle).count();
    env.wait_log(victim, needle, n + 1, Duration::from_secs(30)).await;
    env.kill_aggregator(victim);

    let fenced = env.wait_metric(survivor, "aggregator_fenced_flushes_total", "", 1.0, Duration::from_secs(60)).await;
    let landed = env.wait_in_doubt_landed(survivor, Duration::from_secs(30)).await;
    assert!(!load.handle.is_finished(), "the hand-off happened under load");
    env.spawn_aggregator();
    let ledger = load.handle.await.unwrap();
    env.assert_converges(&ledger, &failure_ranges(now_ms()), Duration::from_secs(120)).await;
    env.assert_minute_rows_exact(&ledger).await;
    eprintln!(
        "[hard-rebalance] survivor: {fenced} flushes in doubt completed at their fence, {landed} series or rows \
         found written by them"
    );
}
