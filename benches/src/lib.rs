//! A load generator for the pipeline.
//!
//! Arrivals are open-loop: request `i` is due at `start + i / rate` whether or not
//! earlier ones have answered, and its latency is measured from that due time. When
//! the system falls behind, the queueing shows up in the latencies instead of
//! silently lowering the offered rate (coordinated omission). Concurrency is
//! bounded by `connections`; a request waiting for a free connection is already
//! late, and its latency says so.
//!
//! Every acknowledged event is written in a ledger. After the run, the generator
//! waits for the pipeline to drain and compares each video's all-time count with
//! the ledger: lost and double-counted events are reported, never assumed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::Rng;
use serde::Serialize;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One body-less `POST /api/v1/videos/id/{id}/view` per request.
    Single,
    /// `POST /api/v1/events:batch` with `batch_size` events per request.
    Batch,
}

#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Gateway base URL, e.g. `http://127.0.0.1:18080`.
    pub gateway: String,
    /// Query service base URL; with it, the run ends with an exactness check.
    pub query: Option<String>,
    pub mode: Mode,
    /// Requests per second offered.
    pub rate: f64,
    pub duration: Duration,
    /// Requests due in this first stretch are sent and counted in the ledger, but
    /// left out of the latency histogram (connection set-up, JIT, caches).
    pub warmup: Duration,
    /// Most requests in flight at once.
    pub connections: usize,
    pub videos: usize,
    /// Zipf exponent of video popularity; 0 is uniform.
    pub zipf: f64,
    pub batch_size: usize,
    /// Batch mode: `occurredAt` spread uniformly over this many seconds before now.
    pub spread_secs: i64,
    /// How long the exactness check waits for the pipeline to drain.
    pub drain_timeout: Duration,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct Exactness {
    pub videos: usize,
    pub ledger_events: u64,
    pub counted_events: i64,
    pub lost: i64,
    pub double_counted: i64,
    /// Seconds from the end of the load until every count matched (or the timeout).
    pub drain_secs: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub mode: Mode,
    pub offered_rate: f64,
    pub duration_secs: f64,
    pub warmup_secs: f64,
    pub connections: usize,
    pub videos: usize,
    pub zipf: f64,
    pub batch_size: usize,
    pub requests: u64,
    pub requests_ok: u64,
    pub requests_failed: u64,
    pub events_acked: u64,
    pub achieved_requests_per_sec: f64,
    pub acked_events_per_sec: f64,
    pub latency: Latency,
    pub exactness: Option<Exactness>,
}

/// Picks videos with Zipf-distributed popularity (rank 1 most popular).
struct Popularity {
    videos: Vec<Uuid>,
    cdf: Vec<f64>,
}

impl Popularity {
    fn new(n: usize, s: f64) -> Self {
        let videos: Vec<Uuid> = (0..n.max(1)).map(|_| Uuid::new_v4()).collect();
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (0..videos.len())
            .map(|k| {
                acc += 1.0 / ((k + 1) as f64).powf(s);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Self { videos, cdf }
    }

    fn pick(&self, rng: &mut impl Rng) -> Uuid {
        let u: f64 = rng.random();
        let i = self.cdf.partition_point(|&c| c < u).min(self.videos.len() - 1);
        self.videos[i]
    }
}

/// What one request came to.
struct Outcome {
    latency: Duration,
    /// Due during the warm-up: not in the histogram.
    warmup: bool,
    /// Videos of the events it carried, when acknowledged.
    acked: Option<Vec<Uuid>>,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn send(http: &reqwest::Client, cfg: &LoadConfig, pop: &Popularity) -> Option<Vec<Uuid>> {
    match cfg.mode {
        Mode::Single => {
            let video = pop.pick(&mut rand::rng());
            let url = format!("{}/api/v1/videos/id/{video}/view", cfg.gateway);
            let res = http.post(url).send().await.ok()?;
            (res.status() == 204).then(|| vec![video])
        }
        Mode::Batch => {
            let now = chrono::Utc::now().timestamp_millis();
            let (videos, body): (Vec<Uuid>, Vec<serde_json::Value>) = {
                let mut rng = rand::rng();
                (0..cfg.batch_size)
                    .map(|_| {
                        let v = pop.pick(&mut rng);
                        let at = now - rng.random_range(0..cfg.spread_secs.max(1) * 1000);
                        (v, json!({"videoId": v, "occurredAt": rfc3339(at)}))
                    })
                    .unzip()
            };
            let res = http.post(format!("{}/api/v1/events:batch", cfg.gateway)).json(&body).send().await.ok()?;
            if res.status() != 202 {
                return None;
            }
            let answer: serde_json::Value = res.json().await.ok()?;
            // A partly rejected batch would make the ledger ambiguous: count it as failed.
            (answer["accepted"] == videos.len()).then_some(videos)
        }
    }
}

/// Runs the load, then (with a query URL) the exactness check.
pub async fn run(cfg: LoadConfig) -> anyhow::Result<Report> {
    anyhow::ensure!(cfg.rate > 0.0 && cfg.connections > 0, "rate and connections must be positive");
    let http =
        reqwest::Client::builder().pool_max_idle_per_host(cfg.connections).timeout(Duration::from_secs(30)).build()?;
    let pop = Arc::new(Popularity::new(cfg.videos, cfg.zipf));
    let cfg = Arc::new(cfg);
    let total = (cfg.rate * cfg.duration.as_secs_f64()).round() as u64;
    let permits = Arc::new(Semaphore::new(cfg.connections));
    let (tx, mut rx) = mpsc::unbounded_channel::<Outcome>();
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));

    let progress = {
        let (done, failed) = (done.clone(), failed.clone());
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let d = done.load(Ordering::Relaxed);
                eprintln!("  {d:>9} answered ({:>7}/s), {:>6} failed", d - last, failed.load(Ordering::Relaxed));
                last = d;
            }
        })
    };

    let collector = tokio::spawn(async move {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
        let mut ledger: HashMap<Uuid, u64> = HashMap::new();
        let (mut ok, mut bad, mut events) = (0u64, 0u64, 0u64);
        while let Some(o) = rx.recv().await {
            if !o.warmup {
                hist.saturating_record(o.latency.as_micros().max(1) as u64);
            }
            match o.acked {
                Some(videos) => {
                    ok += 1;
                    events += videos.len() as u64;
                    for v in videos {
                        *ledger.entry(v).or_insert(0) += 1;
                    }
                }
                None => bad += 1,
            }
        }
        (hist, ledger, ok, bad, events)
    });

    let start = tokio::time::Instant::now();
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / cfg.rate);
        tokio::time::sleep_until(due).await;
        let permit = permits.clone().acquire_owned().await.expect("semaphore open");
        let (http, cfg, pop, tx, done, failed) =
            (http.clone(), cfg.clone(), pop.clone(), tx.clone(), done.clone(), failed.clone());
        tokio::spawn(async move {
            let acked = send(&http, &cfg, &pop).await;
            if acked.is_none() {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            done.fetch_add(1, Ordering::Relaxed);
            let warmup = due - start < cfg.warmup;
            let _ = tx.send(Outcome { latency: due.elapsed(), warmup, acked });
            drop(permit);
        });
    }
    drop(tx);
    let (hist, ledger, ok, bad, events) = collector.await?;
    let elapsed = start.elapsed().as_secs_f64();
    progress.abort();

    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let exactness = match &cfg.query {
        Some(q) => Some(check(&http, q, &ledger, cfg.drain_timeout).await?),
        None => None,
    };
    Ok(Report {
        mode: cfg.mode,
        offered_rate: cfg.rate,
        duration_secs: elapsed,
        warmup_secs: cfg.warmup.as_secs_f64(),
        connections: cfg.connections,
        videos: cfg.videos,
        zipf: cfg.zipf,
        batch_size: if cfg.mode == Mode::Batch { cfg.batch_size } else { 1 },
        requests: ok + bad,
        requests_ok: ok,
        requests_failed: bad,
        events_acked: events,
        achieved_requests_per_sec: (ok + bad) as f64 / elapsed,
        acked_events_per_sec: events as f64 / elapsed,
        latency: Latency { p50_ms: ms(0.5), p99_ms: ms(0.99), p999_ms: ms(0.999), max_ms: hist.max() as f64 / 1000.0 },
        exactness,
    })
}

/// Waits until every video's all-time count equals the ledger, or the timeout;
/// then reports what is missing and what is extra.
async fn check(
    http: &reqwest::Client,
    query: &str,
    ledger: &HashMap<Uuid, u64>,
    timeout: Duration,
) -> anyhow::Result<Exactness> {
    let start = Instant::now();
    loop {
        let counts = futures::future::join_all(ledger.keys().map(|v| async move {
            let url = format!("{query}/api/v1/videos/{v}/views");
            let got = async { http.get(url).send().await?.error_for_status()?.json::<serde_json::Value>().await }
                .await
                .ok()
                .and_then(|b| b["views"].as_i64());
            (*v, got)
        }))
        .await;
        let (mut lost, mut double, mut counted) = (0i64, 0i64, 0i64);
        let mut unanswered = 0;
        for (v, got) in &counts {
            let want = ledger[v] as i64;
            match got {
                Some(g) => {
                    counted += g;
                    lost += (want - g).max(0);
                    double += (g - want).max(0);
                }
                None => unanswered += 1,
            }
        }
        let settled = unanswered == 0 && lost == 0 && double == 0;
        if settled || start.elapsed() > timeout {
            anyhow::ensure!(unanswered == 0, "{unanswered} count queries did not answer");
            return Ok(Exactness {
                videos: ledger.len(),
                ledger_events: ledger.values().sum(),
                counted_events: counted,
                lost,
                double_counted: double,
                drain_secs: start.elapsed().as_secs_f64(),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

impl Report {
    /// A human summary table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let row = |s: &mut String, k: &str, v: String| s.push_str(&format!("  {k:<26} {v}\n"));
        row(&mut s, "mode", format!("{:?} (batch size {})", self.mode, self.batch_size));
        row(
            &mut s,
            "offered",
            format!("{:.0} req/s for {:.1} s, {} connections", self.offered_rate, self.duration_secs, self.connections),
        );
        row(&mut s, "videos", format!("{} (zipf {})", self.videos, self.zipf));
        row(&mut s, "requests ok / failed", format!("{} / {}", self.requests_ok, self.requests_failed));
        row(
            &mut s,
            "achieved",
            format!("{:.0} req/s, {:.0} events/s acked", self.achieved_requests_per_sec, self.acked_events_per_sec),
        );
        let l = &self.latency;
        row(
            &mut s,
            "latency p50/p99/p99.9/max",
            format!("{:.2} / {:.2} / {:.2} / {:.2} ms", l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms),
        );
        if let Some(e) = &self.exactness {
            row(
                &mut s,
                "ledger vs counted",
                format!("{} vs {} over {} videos", e.ledger_events, e.counted_events, e.videos),
            );
            row(
                &mut s,
                "lost / double-counted",
                format!("{} / {} (settled after {:.1} s)", e.lost, e.double_counted, e.drain_secs),
            );
        }
        s
    }
}
