//! Mixed read load: getViewsCount at a fixed open-loop rate while ingesting,
//! alternating a 1 h and a 30 d range, each with its own corrected histogram.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use crate::drive::http_error;
use crate::report::{Latency, RangeReads, Reads, histogram};
use crate::workload::Workload;

const HOUR_MS: i64 = 3_600_000;

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `(from, to)` for the 1 h or the 30 d range ending now, as a dashboard asks. The
/// service moves the 30 d start out to its hour (minute rows that old have
/// expired) and says so in the answer; the rows read are the same.
pub fn range(long: bool, now_ms: i64) -> (String, String) {
    let from = now_ms - if long { 720 * HOUR_MS } else { HOUR_MS };
    (rfc3339(from), rfc3339(now_ms))
}

pub struct ReadLoad {
    pub qps: f64,
    pub connections: usize,
    pub warmup: Duration,
}

/// Reads from `start` until `end`; latencies from each read's due time.
pub async fn run(
    http: reqwest::Client,
    query: String,
    work: Arc<Workload>,
    load: ReadLoad,
    start: Instant,
    end: Instant,
    counter: Arc<AtomicU64>,
) -> Reads {
    let permits = Arc::new(Semaphore::new(load.connections.max(1)));
    let (tx, mut rx) = mpsc::unbounded_channel::<(bool, bool, Duration, Option<String>)>();
    let total = ((end - start).as_secs_f64() * load.qps) as u64;
    let collector = tokio::spawn(async move {
        let mut hists = [histogram(), histogram()];
        let mut counts = [(0u64, 0u64), (0u64, 0u64)];
        let mut errors = BTreeMap::new();
        while let Some((long, warm, latency, err)) = rx.recv().await {
            let i = usize::from(long);
            counts[i].0 += 1;
            if let Some(e) = err {
                counts[i].1 += 1;
                *errors.entry(e).or_insert(0) += 1;
            } else if !warm {
                hists[i].saturating_record(latency.as_micros().max(1) as u64);
            }
        }
        (hists, counts, errors)
    });
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / load.qps);
        tokio::time::sleep_until(due).await;
        let permit = permits.clone().acquire_owned().await.expect("open");
        let long = i % 2 == 1;
        let video = work.popularity.pick(&mut rand::rng());
        let (http, query, tx, counter) = (http.clone(), query.clone(), tx.clone(), counter.clone());
        let warm = due - start < load.warmup;
        tokio::spawn(async move {
            let (from, to) = range(long, chrono::Utc::now().timestamp_millis());
            let res = http
                .get(format!("{query}/api/v1/videos/{video}/views"))
                .query(&[("from", from), ("to", to)])
                .send()
                .await;
            let err = match res {
                Ok(r) if r.status().is_success() => match r.json::<serde_json::Value>().await {
                    Ok(b) if b["views"].is_i64() => None,
                    Ok(_) => Some("bad_body".to_owned()),
                    Err(e) => Some(http_error(&e)),
                },
                Ok(r) => Some(format!("status_{}", r.status().as_u16())),
                Err(e) => Some(http_error(&e)),
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send((long, warm, due.elapsed(), err));
            drop(permit);
        });
    }
    drop(tx);
    let (hists, counts, errors) = collector.await.expect("read collector");
    let elapsed = start.elapsed().as_secs_f64();
    let figures =
        |i: usize| RangeReads { requests: counts[i].0, errors: counts[i].1, latency: Latency::from(&hists[i]) };
    Reads {
        offered_qps: load.qps,
        achieved_qps: (counts[0].0 + counts[1].0) as f64 / elapsed,
        one_hour: figures(0),
        thirty_days: figures(1),
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_end_now() {
        let now = 1_710_072_030_000; // 2024-03-10T12:00:30Z
        assert_eq!(range(false, now), ("2024-03-10T11:00:30Z".into(), "2024-03-10T12:00:30Z".into()));
        assert_eq!(range(true, now), ("2024-02-09T12:00:30Z".into(), "2024-03-10T12:00:30Z".into()));
    }
}
