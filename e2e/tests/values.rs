//! Value metrics end to end (issue 13): events of varied values posted through the
//! gateway (`POST /api/v1/events` and `/events:batch`, with the producer key that
//! values above 1 need), counted by aggregators of which one is SIGKILLed in the
//! middle of a round; getStats over events (`count`, `sum`, `min`, `max`, `avg`)
//! must then equal a ledger of what was sent, exactly, for every video over minute
//! and hour ranges. An anonymous caller's value above 1 is refused.

use std::time::{Duration, Instant};

use e2e::*;
use rand::Rng;
use serde_json::{Value, json};
use uuid::Uuid;

/// As in `crash.rs`: every round pauses 2 s after its first write request landed,
/// one request at a time, so a SIGKILL in the pause leaves a round in doubt.
const PAUSE_MID_WRITE: [(&str, &str); 3] = [
    ("AGGREGATOR__FLUSH__FAULT_PAUSE_AT", "mid_write"),
    ("AGGREGATOR__FLUSH__FAULT_PAUSE_MS", "2000"),
    ("AGGREGATOR__FLUSH__CONCURRENCY", "1"),
];
const PAUSED: &str = "fault injection: pausing mid-flush";

/// One acknowledged event: video, occurredAt, value.
type Sent = (Uuid, i64, i64);

/// The statistic over the ledger's events of `video` in `[from, to)`, computed
/// the plain way; `None` where getStats answers null (no events).
fn expected(sent: &[Sent], video: Uuid, from: i64, to: i64, function: &str) -> Option<f64> {
    let values: Vec<i64> =
        sent.iter().filter(|(v, at, _)| *v == video && (from..to).contains(at)).map(|(_, _, x)| *x).collect();
    let sum: i64 = values.iter().sum();
    match function {
        "count" => Some(values.len() as f64),
        "sum" => Some(sum as f64),
        "min" => values.iter().min().map(|&m| m as f64),
        "max" => values.iter().max().map(|&m| m as f64),
        "avg" => (!values.is_empty()).then(|| sum as f64 / values.len() as f64),
        _ => unreachable!(),
    }
}

fn play(video: Uuid, at: i64, value: i64) -> Value {
    json!({ "videoId": video, "eventType": "play", "occurredAt": rfc3339(at), "value": value })
}

/// Sends `n` plays of random values (1 to 1,000, and the largest allowed once)
/// over `videos` in the last 50 minutes: the first 10 one by one, the rest in
/// batches. Records only what the gateway acknowledged.
async fn send_plays(env: &TestEnv, sent: &mut Vec<Sent>, videos: &[Uuid], n: usize) {
    let now = now_ms();
    let events: Vec<Sent> = {
        let mut rng = rand::rng();
        (0..n)
            .map(|i| {
                let value = if i == n / 2 { 1_000_000 } else { rng.random_range(1..=1_000) };
                (videos[rng.random_range(0..videos.len())], now - rng.random_range(0..50 * MINUTE), value)
            })
            .collect()
    };
    let singles = n.min(10);
    for &(v, at, value) in &events[..singles] {
        let res = env.http.post(env.gateway_url("/api/v1/events")).json(&play(v, at, value)).send().await.unwrap();
        assert_eq!(res.status(), 202, "{:?}", res.text().await);
        sent.push((v, at, value));
    }
    for chunk in events[singles..].chunks(100) {
        let body: Vec<Value> = chunk.iter().map(|&(v, at, value)| play(v, at, value)).collect();
        env.post_batch(&body).await;
        sent.extend_from_slice(chunk);
    }
}

/// Polls getStats until every (video, range, function) equals the ledger, or
/// fails after `timeout` with the first difference.
async fn assert_stats_converge(env: &TestEnv, sent: &[Sent], videos: &[Uuid], timeout: Duration) {
    let now = now_ms();
    let minute = now - now % MINUTE;
    let hour = now - now % HOUR;
    // Whole buckets, so the effective range is the range asked for.
    let ranges = [
        (minute - 55 * MINUTE, minute + MINUTE, "minute"),
        (minute - 20 * MINUTE, minute - 7 * MINUTE, "minute"),
        (hour - HOUR, hour + HOUR, "hour"),
    ];
    let deadline = Instant::now() + timeout;
    loop {
        let difference = first_difference(env, sent, videos, &ranges).await;
        let Some(difference) = difference else { return };
        assert!(Instant::now() < deadline, "getStats never equalled the ledger: {difference}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The first (video, range, function) whose getStats answer differs from the
/// ledger, described; `None` when every one equals it.
async fn first_difference(
    env: &TestEnv,
    sent: &[Sent],
    videos: &[Uuid],
    ranges: &[(i64, i64, &str)],
) -> Option<String> {
    for &video in videos {
        for &(from, to, step) in ranges {
            for function in ["count", "sum", "min", "max", "avg"] {
                let path = format!(
                    "/api/v1/videos/{video}/stats/play?function={function}&from={}&to={}&step={step}",
                    rfc3339(from),
                    rfc3339(to)
                );
                let res = env.http.get(env.query_url(&path)).send().await.unwrap();
                assert_eq!(res.status(), 200, "{path}");
                let body: Value = res.json().await.unwrap();
                assert_eq!((body["over"].as_str(), body["unrecordedBuckets"].as_i64()), (Some("events"), Some(0)));
                let want = expected(sent, video, from, to, function);
                if body["value"].as_f64() != want {
                    return Some(format!("{path}: got {body}, the ledger says {want:?}"));
                }
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stats_over_event_values_equal_the_ledger_across_a_sigkill() {
    let mut env = TestEnv::start("values", 2).await;
    let first = env.spawn_aggregator_with(&PAUSE_MID_WRITE);
    let videos = uuids(3);
    let mut sent: Vec<Sent> = Vec::new();

    // Without a producer key a value above 1 is refused, naming the field.
    let res =
        env.anonymous.post(env.gateway_url("/api/v1/events")).json(&play(videos[0], now_ms(), 5)).send().await.unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
    let problem: Value = res.json().await.unwrap();
    assert!(problem.to_string().contains("value"), "{problem}");

    // A first few, until the first round is written; then the rest, whose round
    // is the one struck.
    send_plays(&env, &mut sent, &videos, 20).await;
    env.wait_active(first).await;
    let paused = env.aggregator_log(first).matches(PAUSED).count();
    send_plays(&env, &mut sent, &videos, 380).await;
    // SIGKILL in the middle of a round: some of its series written, others not.
    env.wait_log(first, PAUSED, paused + 1, Duration::from_secs(60)).await;
    env.kill_aggregator(first);

    send_plays(&env, &mut sent, &videos, 400).await;
    let second = env.spawn_aggregator();
    // The successor redid the round in doubt (R4) and found what it had written:
    // series written whole (their floor, R2) or rows of others (R5).
    env.wait_metric(second, "aggregator_fenced_flushes_total", "", 1.0, Duration::from_secs(60)).await;
    let landed = env.wait_in_doubt_landed(second, Duration::from_secs(60)).await;
    eprintln!("[values] the successor skipped {landed} series or rows the killed owner had written");
    assert_stats_converge(&env, &sent, &videos, Duration::from_secs(120)).await;

    // The sums are getCount's numbers too.
    for &video in &videos {
        let res = env.http.get(env.query_url(&format!("/api/v1/videos/{video}/counts/play"))).send().await.unwrap();
        let body: Value = res.json().await.unwrap();
        let total: i64 = sent.iter().filter(|(v, _, _)| *v == video).map(|(_, _, x)| x).sum();
        assert_eq!(body["count"].as_i64(), Some(total), "{body}");
    }
    assert_eq!(sent.len(), 800);
}

/// A series counted before value metrics: its rows hold a sum and no event count
/// (`events` null). The aggregator adds new events to them: the sums stay exact
/// (getCount, getStats `sum`), the count stays unknown rather than guessed (getStats
/// `count` is null with `unrecordedBuckets`), and the all-time row's `events` is
/// still null after the write (written unset, not made up).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rows_from_before_value_metrics_keep_exact_sums_and_unknown_counts() {
    let mut env = TestEnv::start("values-legacy", 1).await;
    let cfg = platform::cassandra::CassandraConfig { nodes: cassandra_nodes(), ..Default::default() };
    let session = platform::cassandra::connect(&cfg, Duration::from_secs(30)).await.unwrap();
    let video = Uuid::new_v4();
    let now = now_ms();
    let minute = now - now % MINUTE - 10 * MINUTE;
    let legacy = format!(
        "INSERT INTO {}.counts (video_id, event_type, granularity, bucket, value, last_offset) VALUES (?, 'play', ?, ?, 7, -1) \
         USING TIMESTAMP 1",
        env.keyspace
    );
    // As an older aggregator wrote them: at a fenced timestamp (epoch << 40 | offset),
    // which any later owner's write beats.
    let hour = minute - minute % HOUR;
    let day = minute - minute % DAY;
    for (granularity, bucket) in [("minute", minute), ("hour", hour), ("day", day), ("total", 0)] {
        let ts = scylla::value::CqlTimestamp(bucket);
        session.query_unpaged(legacy.as_str(), (video, granularity, ts)).await.unwrap();
    }
    env.spawn_aggregator();
    let plays: Vec<Value> = [3, 40, 5].iter().map(|&v| play(video, minute + 1_000, v)).collect();
    env.post_batch(&plays).await;
    let sum = 7 + 3 + 40 + 5;

    let stat = |function: &str, step: &str, from: i64, to: i64| {
        env.query_url(&format!(
            "/api/v1/videos/{video}/stats/play?function={function}&from={}&to={}&step={step}",
            rfc3339(from),
            rfc3339(to)
        ))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body: Value =
            env.http.get(stat("sum", "minute", minute, minute + MINUTE)).send().await.unwrap().json().await.unwrap();
        if body["value"].as_f64() == Some(sum as f64) {
            break;
        }
        assert!(Instant::now() < deadline, "the new plays never reached the legacy row: {body}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for (step, from, to) in [("minute", minute, minute + MINUTE), ("hour", hour, hour + HOUR)] {
        let body: Value = env.http.get(stat("sum", step, from, to)).send().await.unwrap().json().await.unwrap();
        assert_eq!((body["value"].as_f64(), body["unrecordedBuckets"].as_i64()), (Some(sum as f64), Some(1)), "{body}");
        for function in ["count", "min", "max", "avg"] {
            let body: Value = env.http.get(stat(function, step, from, to)).send().await.unwrap().json().await.unwrap();
            assert_eq!((body["value"].as_f64(), body["unrecordedBuckets"].as_i64()), (None, Some(1)), "{body}");
        }
    }
    let body: Value = env
        .http
        .get(env.query_url(&format!("/api/v1/videos/{video}/counts/play")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["count"].as_i64(), Some(sum), "{body}");
    // The all-time row: its sum and offset written, its count still unknown.
    let q = format!(
        "SELECT value, last_offset, events FROM {}.counts WHERE video_id = ? AND event_type = 'play' \
         AND granularity = 'total' AND bucket = ?",
        env.keyspace
    );
    // The counts above may come from the owner before its round writes the row
    // (freshness from the owner): wait for the row itself.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (value, last_offset, events) = loop {
        let row = session.query_unpaged(q.clone(), (video, scylla::value::CqlTimestamp(0))).await.unwrap();
        let row = row.into_rows_result().unwrap().single_row::<(Option<i64>, Option<i64>, Option<i64>)>().unwrap();
        if row.0 == Some(sum) || Instant::now() > deadline {
            break row;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!((value, events), (Some(sum), None), "written by the aggregator at offset {last_offset:?}");
    assert!(last_offset >= Some(0), "the aggregator wrote it: {last_offset:?}");
}
