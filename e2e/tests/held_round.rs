//! Rounds are written beside the poll loop (issue 15): while a partition's round
//! is held in the middle of its writes, the aggregator goes on folding that
//! partition's new events, takes no second round of it (R4: one round in flight
//! per partition), and the counts end exact once the round is let go.
//!
//! The hold is the fault injection `mid_write` (after the round's `mark_attempted`
//! and its first write request). An aggregator whose poll loop waits for its
//! rounds folds nothing while the round is held, so the events sent during the
//! hold are folded only after a "pause over" line: the test then fails.

use std::time::Duration;

use e2e::*;

const PAUSED: &str = "fault injection: pausing mid-flush";
const PAUSE_OVER: &str = "fault injection: pause over";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_round_does_not_stop_the_poll_loop() {
    // One partition: the events folded during the hold are the held partition's own.
    let mut env = TestEnv::start("held-round", 1).await;
    let hold = [("AGGREGATOR__FLUSH__FAULT_PAUSE_AT", "mid_write"), ("AGGREGATOR__FLUSH__FAULT_PAUSE_MS", "20000")];
    let agg = env.spawn_aggregator_with(&hold);
    let events = format!("topic=\"{}\"", env.events_topic());
    env.wait_metric(agg, "aggregator_assigned_partitions", &events, 1.0, Duration::from_secs(60)).await;
    let videos = uuids(20);
    let mut ledger = Ledger::default();
    send_views(&env, &mut ledger, &videos, 200, 60_000).await;

    // Its first round is held after its first write.
    env.wait_log(agg, PAUSED, 1, Duration::from_secs(60)).await;
    let folded = env.aggregator_metric(agg, "aggregator_events_total").await;
    let rounds = env.aggregator_metric(agg, "aggregator_rounds_total").await;
    assert_eq!(env.aggregator_log(agg).matches(PAUSE_OVER).count(), 0, "the hold just began");

    // Events of the same partition, sent while the round is held, are folded.
    send_views(&env, &mut ledger, &videos, 400, 60_000).await;
    let now = env.wait_metric(agg, "aggregator_events_total", "", folded + 400.0, Duration::from_secs(15)).await;
    let log = env.aggregator_log(agg);
    assert_eq!(log.matches(PAUSE_OVER).count(), 0, "folded {} messages, but only after the hold", now - folded);
    // R4: no other round of the partition started, none settled, while one is in flight.
    assert_eq!(log.matches(PAUSED).count(), 1, "a second round of the partition started during the hold");
    assert_eq!(env.aggregator_metric(agg, "aggregator_rounds_total").await, rounds, "no round settled");
    eprintln!("[held-round] folded {} messages while the round was held", now - folded);

    // Let go, the held round and the next ones (each held in turn) write it all.
    env.wait_log(agg, PAUSE_OVER, 1, Duration::from_secs(60)).await;
    env.assert_converges(&ledger, &failure_ranges(now_ms()), Duration::from_secs(180)).await;
    env.assert_minute_rows_exact(&ledger).await;
    // The counts can be whole before the last round settles: its batches land
    // concurrently and its hold comes after the first one.
    env.wait_metric(agg, "aggregator_rounds_total", "", rounds + 2.0, Duration::from_secs(60)).await;
}
