//! Two aggregators share the partitions; one stops mid-stream (its partitions
//! move to the other), then a third joins: counts still end exact.

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
}
