//! A client retrying with the same `eventId` counts once, also when the retry
//! reaches a new owner of the partition; events without a client id are never
//! merged, however alike.

use std::time::Duration;

use e2e::*;
use serde_json::{Value, json};
use uuid::Uuid;

fn with_id(video: Uuid, at: i64, id: Uuid) -> Value {
    json!({ "videoId": video, "occurredAt": rfc3339(at), "eventId": id })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retried_event_ids_count_once_across_owners() {
    let mut env = TestEnv::start("dedup", 4).await;
    let videos = uuids(10);
    let now = now_ms();
    let mut ledger = Ledger::default();
    // 200 events with client ids; each is also sent again (a retry) in a later batch.
    let events: Vec<(Uuid, i64, Uuid)> =
        (0..200).map(|i| (videos[i % videos.len()], now - (i as i64) * 7 * MINUTE, Uuid::now_v7())).collect();
    for (v, at, _) in &events {
        ledger.record(*v, *at);
    }
    let first = env.spawn_aggregator();
    for chunk in events.chunks(50) {
        env.post_batch(&chunk.iter().map(|(v, at, id)| with_id(*v, *at, *id)).collect::<Vec<_>>()).await;
    }
    for chunk in events.chunks(40) {
        env.post_batch(&chunk.iter().map(|(v, at, id)| with_id(*v, *at, *id)).collect::<Vec<_>>()).await;
    }
    // Without a client id, identical-looking events are distinct views.
    for _ in 0..3 {
        env.post_batch(&[view(videos[0], now - HOUR)]).await;
        ledger.record(videos[0], now - HOUR);
    }
    env.assert_converges(&ledger, &interesting_ranges(now_ms()), Duration::from_secs(90)).await;
    let dropped_by_first = env.aggregator_metric(first, "aggregator_duplicates_dropped_total").await;
    assert_eq!(dropped_by_first, 200.0);

    // The owner changes; retries of the first 60 ids arrive at the new owner, which
    // must recognise them from the log it re-read when it took the partitions.
    env.terminate_aggregator(first);
    for chunk in events[..60].chunks(30) {
        env.post_batch(&chunk.iter().map(|(v, at, id)| with_id(*v, *at, *id)).collect::<Vec<_>>()).await;
    }
    let second = env.spawn_aggregator();
    env.wait_consuming(second).await;
    env.assert_converges(&ledger, &interesting_ranges(now_ms()), Duration::from_secs(90)).await;
    env.assert_minute_rows_exact(&ledger).await;
    assert_eq!(env.aggregator_metric(second, "aggregator_duplicates_dropped_total").await, 60.0);
}
