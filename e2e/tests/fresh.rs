//! Freshness from the owner (issue 15, `counting::fresh`): with rounds once a
//! minute, counts are exact within seconds, read from the rows plus what the
//! owner of each video's partition holds; no answer ever counts an event twice
//! while held events reach the rows (a shutdown writes them all) or after the
//! owner is killed holding them (the rows alone, then its successor's count).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use e2e::env::*;
use serde_json::Value;

const DAY: i64 = 86_400_000;

/// Every (url, ledger count) a reader checks.
fn checks(env: &TestEnv, ledger: &Ledger, ranges: &[Option<(i64, i64)>]) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for (video, _) in ledger.videos() {
        for range in ranges {
            let mut url = env.query_url(&format!("/api/v1/videos/{video}/views"));
            if let Some((from, to)) = range {
                url = format!("{url}?from={}&to={}", rfc3339(*from), rfc3339(*to));
            }
            out.push((url, ledger.count(video, *range)));
        }
    }
    out
}

/// A reader asking every check until `stop`, failing on any answer above the
/// ledger (an event counted twice); returns how many answers were exact and
/// how many below (rows alone while no owner could answer).
fn spawn_reader(
    http: reqwest::Client,
    checks: Vec<(String, i64)>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(usize, usize)> {
    tokio::spawn(async move {
        let (mut exact, mut under) = (0, 0);
        while !stop.load(Ordering::SeqCst) {
            for (url, want) in &checks {
                let Ok(res) = http.get(url).send().await else {
                    under += 1;
                    continue;
                };
                if res.status() != 200 {
                    under += 1;
                    continue;
                }
                let got = res.json::<Value>().await.unwrap()["views"].as_i64().unwrap();
                assert!(got <= *want, "{url}: {got} views, the ledger has {want}: an event counted twice");
                if got == *want {
                    exact += 1;
                } else {
                    under += 1;
                }
            }
        }
        (exact, under)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_are_fresh_from_the_owner_and_never_double_through_its_rounds_and_a_kill() {
    let mut env = TestEnv::start("fresh", 4).await;
    // A series waits a minute for its round, hot or not.
    let slow = [("AGGREGATOR__FLUSH__MAX_AGE_MS", "60000"), ("AGGREGATOR__FLUSH__MIN_AGE_MS", "60000")];
    let a = env.spawn_aggregator_with(&slow);
    let videos = uuids(6);
    let mut ledger = Ledger::default();
    let started = Instant::now();
    send_views(&env, &mut ledger, &videos, 400, 2 * DAY).await;
    let ranges = failure_ranges(now_ms());

    // 1. Exact within seconds, though no round has written a series yet: the
    //    counts came from the owner.
    env.assert_converges(&ledger, &ranges, Duration::from_secs(30)).await;
    let fresh_after = started.elapsed();
    assert_eq!(
        env.aggregator_metric(a, "aggregator_series_written_total").await,
        0.0,
        "a round wrote a series already: this run does not show freshness from the owner"
    );
    eprintln!("[fresh] exact {fresh_after:?} after the first send, with no series written");
    // The owner's own answer: every view of a video is pending in its partition
    // (the others answer that they hold nothing of it).
    let base = env.aggregator_metrics_url(a).trim_end_matches("/metrics").to_owned();
    for video in &videos[..2] {
        let mut pending = 0;
        for p in 0..env.partitions {
            let url = format!("{base}/owner/held?partition={p}&video={video}&type=view");
            let held: Value = env.http.get(url).send().await.unwrap().json().await.unwrap();
            assert_eq!(held["ready"], true, "{held}");
            assert!(held["inFlight"].is_null(), "no round runs: {held}");
            for m in held["pending"]["minutes"].as_array().into_iter().flatten() {
                pending += m["value"].as_i64().unwrap();
            }
        }
        assert_eq!(pending, ledger.count(*video, None), "the owner holds every view of {video}");
    }

    // 2. Shutdown writes every held series while a reader reads: no answer above
    //    the ledger at any moment, and exact from the rows alone afterwards.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = spawn_reader(env.http.clone(), checks(&env, &ledger, &ranges), stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (took, clean) = env.terminate_within(a, Duration::from_secs(60)).expect("stops within a minute");
    assert!(clean, "the aggregator stopped cleanly");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let (exact, under) = reader.await.unwrap();
    eprintln!("[fresh] shutdown took {took:?}; the reader saw {exact} exact answers, {under} short, none above");
    env.assert_converges(&ledger, &ranges, Duration::from_secs(10)).await;

    // 3. A new owner holds new views; killed, its held views are gone from the
    //    answers (rows alone: short, never above), and its successor counts
    //    them from the log.
    let b = env.spawn_aggregator_with(&slow);
    let mut more = Ledger::default();
    send_views(&env, &mut more, &videos, 300, 2 * DAY).await;
    ledger.merge(more);
    env.assert_converges(&ledger, &ranges, Duration::from_secs(30)).await;
    assert_eq!(env.aggregator_metric(b, "aggregator_series_written_total").await, 0.0, "held, not written");
    env.kill_aggregator(b);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = spawn_reader(env.http.clone(), checks(&env, &ledger, &ranges), stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let c = env.spawn_aggregator();
    env.assert_converges(&ledger, &ranges, Duration::from_secs(60)).await;
    stop.store(true, Ordering::SeqCst);
    let (exact, under) = reader.await.unwrap();
    assert!(under > 0, "after the kill some answer must have lacked the held views (the rows alone)");
    eprintln!("[fresh] after the kill: {exact} exact answers, {under} short, none above; aggregator #{c} recounted");
}
