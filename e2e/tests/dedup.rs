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

/// A KillrVideo client that retries a `/view` (or an event without an `eventId`)
/// with the same `Idempotency-Key` counts once; another key, another video or no
/// key at all counts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_keys_make_retried_views_count_once() {
    // One origin: the query service forwards the gateway's routes, header included.
    let mut env = TestEnv::start_one_origin("idemkey", 2).await;
    let (v0, v1) = (Uuid::new_v4(), Uuid::new_v4());
    let mut ledger = Ledger::default();
    let agg = env.spawn_aggregator();
    let view_path = |v: Uuid| env.gateway_url(&format!("/api/v1/videos/id/{v}/view"));
    let start = now_ms();
    // Anonymous, like a browser (`env.http` carries a producer key, which the query
    // service does not forward: the two routes would be two callers, two scopes).
    let anonymous = reqwest::Client::new();
    // (video, key, times sent, times counted)
    let sends: [(Uuid, Option<&str>, usize, usize); 5] = [
        (v0, Some("retry-a"), 3, 1),
        (v0, Some("retry-b"), 2, 1),
        (v0, None, 2, 2),
        (v1, Some("retry-a"), 1, 1),
        (v1, None, 1, 1),
    ];
    for (video, key, sent, counted) in sends {
        for i in 0..sent {
            // Every second copy goes through the query service's origin.
            let url =
                if i % 2 == 1 { env.query_url(&format!("/api/v1/videos/id/{video}/view")) } else { view_path(video) };
            let mut req = anonymous.post(url);
            if let Some(k) = key {
                req = req.header("Idempotency-Key", k);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
        }
        for _ in 0..counted {
            ledger.record(video, now_ms());
        }
    }
    // /events without an eventId: the key names the retry; with both, a 422 naming the header.
    let event = json!({ "videoId": v1 });
    for _ in 0..2 {
        let res =
            env.http.post(env.gateway_url("/api/v1/events")).header("Idempotency-Key", "retry-c").json(&event).send();
        assert_eq!(res.await.unwrap().status(), 202);
    }
    ledger.record(v1, now_ms());
    let both = json!({ "videoId": v1, "eventId": Uuid::now_v7() });
    let res = env.http.post(env.gateway_url("/api/v1/events")).header("Idempotency-Key", "x").json(&both).send().await;
    let res = res.unwrap();
    assert_eq!(res.status(), 422);
    assert_eq!(res.json::<Value>().await.unwrap()["field"], "Idempotency-Key");
    let res = env.http.post(view_path(v0)).header("Idempotency-Key", "").send().await.unwrap();
    assert_eq!(res.status(), 422, "an empty key is refused, not ignored");

    let ranges = [None, Some((start - HOUR, now_ms() + 2 * MINUTE))];
    env.assert_converges(&ledger, &ranges, Duration::from_secs(60)).await;
    // The repeats were dropped by the dedup window, not lost on the way.
    assert_eq!(env.aggregator_metric(agg, "aggregator_duplicates_dropped_total").await, 4.0);
}

/// With `events.view_once_per_user_secs`, a signed-in user's views of a video
/// count once per window; other videos, other users and anonymous views count.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_signed_in_users_views_count_once_per_window() {
    const WINDOW_SECS: i64 = 3600;
    let mut env =
        TestEnv::start_configured("oncewin", 2, |gw, _| gw.events.view_once_per_user_secs = WINDOW_SECS as u64).await;
    // The decision is the aggregator's dedup window, which must cover the view window.
    let agg = env.spawn_aggregator_with(&[("AGGREGATOR__DEDUP__WINDOW_SECS", "3700")]);
    // Stay clear of a window's end, so each user's views fall in one window.
    let to_end = WINDOW_SECS * 1000 - now_ms().rem_euclid(WINDOW_SECS * 1000);
    if to_end < 30_000 {
        tokio::time::sleep(Duration::from_millis(to_end as u64 + 1_000)).await;
    }
    let (v0, v1) = (Uuid::new_v4(), Uuid::new_v4());
    let (u1, u2) = (Uuid::new_v4(), Uuid::new_v4());
    let anonymous = reqwest::Client::new();
    let mut ledger = Ledger::default();
    let start = now_ms();
    // (video, viewer, views sent, views counted)
    let sends = [(v0, Some(u1), 3, 1), (v1, Some(u1), 1, 1), (v0, Some(u2), 2, 1), (v0, None, 2, 2)];
    for (video, user, sent, counted) in sends {
        for _ in 0..sent {
            let mut req = anonymous.post(env.gateway_url(&format!("/api/v1/videos/id/{video}/view")));
            if let Some(u) = user {
                req = req.bearer_auth(token_for(u));
            }
            assert_eq!(req.send().await.unwrap().status(), 204);
        }
        for _ in 0..counted {
            ledger.record(video, now_ms());
        }
    }
    env.assert_converges(&ledger, &[None, Some((start - HOUR, now_ms() + 2 * MINUTE))], Duration::from_secs(60)).await;
    assert_eq!(env.aggregator_metric(agg, "aggregator_duplicates_dropped_total").await, 3.0);
}

/// A retry that reaches a new owner long after the previous one stopped is still
/// dropped (issue 11 item 1): the window is read back from the log time of the
/// last message before the committed offset, not from the wall clock. Here the new
/// owner starts 70 s after the originals, more than the 8 s window plus the 60 s
/// margin the old wall-clock priming read, which then counted every retry twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_after_a_long_outage_still_counts_once() {
    let mut env = TestEnv::start("dedup-outage", 2).await;
    let window = [("AGGREGATOR__DEDUP__WINDOW_SECS", "8")];
    let videos = uuids(6);
    let now = now_ms();
    let events: Vec<(Uuid, i64, Uuid)> =
        (0..40).map(|i| (videos[i % videos.len()], now - (i as i64) * MINUTE, Uuid::now_v7())).collect();
    let mut ledger = Ledger::default();
    for (v, at, _) in &events {
        ledger.record(*v, *at);
    }
    let first = env.spawn_aggregator_with(&window);
    env.wait_metric(first, "aggregator_assigned_partitions", "", 1.0, Duration::from_secs(60)).await;
    env.post_batch(&events.iter().map(|(v, at, id)| with_id(*v, *at, *id)).collect::<Vec<_>>()).await;
    env.wait_metric(first, "aggregator_events_flushed_total", "", 40.0, Duration::from_secs(30)).await;
    env.terminate_aggregator(first);
    // The client retries right away (inside the window, in log time) ...
    env.post_batch(&events.iter().map(|(v, at, id)| with_id(*v, *at, *id)).collect::<Vec<_>>()).await;
    let sent = std::time::Instant::now();
    // ... but the next owner only starts much later.
    tokio::time::sleep(Duration::from_secs(70)).await;
    let second = env.spawn_aggregator_with(&window);
    // Counts already equal the ledger before the new owner reads anything: wait
    // until it has taken every retry and flushed, then compare.
    env.wait_metric(second, "aggregator_events_total", "", 40.0, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.assert_converges(&ledger, &[None], Duration::from_secs(5)).await;
    assert_eq!(env.aggregator_metric(second, "aggregator_duplicates_dropped_total").await, 40.0);
    eprintln!("[dedup-outage] the new owner started {:?} after the retries", sent.elapsed());
}
