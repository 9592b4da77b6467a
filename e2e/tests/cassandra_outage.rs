//! Cassandra dies (SIGKILL) while the aggregator flushes, and comes back: the
//! aggregator retries, never commits past what is written, and ends exact.
//!
//! Alone in its test binary on purpose: it restarts the shared Cassandra, and
//! cargo runs test binaries one at a time.

use std::process::Command;
use std::time::Duration;

use e2e::*;

fn stack(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/stack");
    let status = Command::new("bash").arg(script).args(args).status().expect("scripts/stack runs");
    assert!(status.success(), "scripts/stack {args:?} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cassandra_killed_and_restarted_mid_flush_stays_exact() {
    let mut env = TestEnv::start("outage", 6).await;
    env.spawn_aggregator();
    let load = start_load(&env, uuids(30), 40, 250, Duration::from_millis(150));

    load.wait_for(12).await;
    stack(&["kill", "cassandra"]);
    // Kafka is still up: the gateway keeps acknowledging while flushes fail.
    load.wait_for(24).await;
    stack(&["start", "cassandra"]);

    let ledger = load.handle.await.unwrap();
    env.assert_converges(&ledger, &failure_ranges(now_ms()), Duration::from_secs(180)).await;
    env.assert_minute_rows_exact(&ledger).await;
}
