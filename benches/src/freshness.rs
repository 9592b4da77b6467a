//! Freshness: how long after its 2xx an event shows in getViewsCount.
//!
//! A few probe videos get nothing but probes. Each probe video is sent one view
//! at a time, so after its k-th acknowledgement its all-time count must reach
//! k; a poller reads the count and, when it does, records the time since that
//! acknowledgement. The resolution is the poll interval plus one read.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use crate::drive::Driver;
use crate::report::{Freshness, histogram};
use crate::workload::Record;
use vcount_client::EventKind;

pub struct Probes {
    pub videos: usize,
    pub interval: Duration,
    pub poll: Duration,
}

/// Probes until `load_end`, then waits up to `drain` for the last ones to show.
/// Returns the figures and the acknowledged probes for the ledger.
pub async fn run(
    driver: Arc<Driver>,
    http: reqwest::Client,
    query: String,
    p: Probes,
    load_end: Instant,
    drain: Duration,
    counter: Arc<std::sync::atomic::AtomicU64>,
) -> (Freshness, Vec<Record>) {
    let n = p.videos.max(1);
    let period = p.interval * n as u32;
    let mut tasks = Vec::new();
    for k in 0..n {
        let (driver, http, query, counter) = (driver.clone(), http.clone(), query.clone(), counter.clone());
        let first = Instant::now() + p.interval * k as u32;
        tasks.push(tokio::spawn(async move {
            probe_video(driver, http, query, first, period, p.poll, load_end, load_end + drain, counter).await
        }));
    }
    let mut hist = histogram();
    let (mut unresolved, mut failed) = (0, 0);
    let mut records = Vec::new();
    for t in tasks {
        let r = t.await.expect("probe task");
        for d in r.delays {
            hist.saturating_record(d.as_micros().max(1) as u64);
        }
        unresolved += r.unresolved;
        failed += r.failed;
        records.extend((0..r.acked).map(|_| Record { video: r.video, kind: EventKind::View, at_ms: None }));
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let figures = Freshness {
        probe_videos: n,
        interval_ms: p.interval.as_millis() as u64,
        poll_ms: p.poll.as_millis() as u64,
        acked: records.len() as u64,
        samples: hist.len(),
        unresolved,
        failed_probes: failed,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        max_ms: hist.max() as f64 / 1000.0,
    };
    (figures, records)
}

struct VideoResult {
    video: Uuid,
    acked: u64,
    delays: Vec<Duration>,
    unresolved: u64,
    failed: u64,
}

#[allow(clippy::too_many_arguments)]
async fn probe_video(
    driver: Arc<Driver>,
    http: reqwest::Client,
    query: String,
    first: Instant,
    period: Duration,
    poll: Duration,
    load_end: Instant,
    give_up: Instant,
    counter: Arc<std::sync::atomic::AtomicU64>,
) -> VideoResult {
    let video = Uuid::new_v4();
    // (acknowledged at, count that shows it)
    let pending: Arc<Mutex<VecDeque<(Instant, u64)>>> = Arc::default();
    let sending = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sender = {
        let (pending, sending) = (pending.clone(), sending.clone());
        tokio::spawn(async move {
            let (mut acked, mut failed) = (0u64, 0u64);
            let mut next = first;
            while next < load_end {
                tokio::time::sleep_until(next).await;
                match driver.probe(video).await {
                    Ok(()) => {
                        acked += 1;
                        pending.lock().unwrap().push_back((Instant::now(), acked));
                        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    // Did it count or not? The video's expected count is unknown
                    // from here on, so it probes no more.
                    Err(_) => {
                        failed += 1;
                        break;
                    }
                }
                next += period;
            }
            sending.store(false, std::sync::atomic::Ordering::Relaxed);
            (acked, failed)
        })
    };
    let url = format!("{query}/api/v1/videos/{video}/views");
    let mut delays = Vec::new();
    loop {
        tokio::time::sleep(poll).await;
        let done_sending = !sending.load(std::sync::atomic::Ordering::Relaxed);
        if pending.lock().unwrap().is_empty() {
            if done_sending {
                break;
            }
            continue;
        }
        if Instant::now() > give_up {
            break;
        }
        let views = async { http.get(&url).send().await?.error_for_status()?.json::<serde_json::Value>().await }
            .await
            .ok()
            .and_then(|b| b["views"].as_i64());
        let Some(views) = views else { continue };
        let now = Instant::now();
        let mut p = pending.lock().unwrap();
        while p.front().is_some_and(|(_, want)| *want as i64 <= views) {
            let (acked_at, _) = p.pop_front().expect("non-empty");
            delays.push(now - acked_at);
        }
    }
    let (acked, failed) = sender.await.expect("probe sender");
    let unresolved = pending.lock().unwrap().len() as u64;
    VideoResult { video, acked, delays, unresolved, failed }
}
