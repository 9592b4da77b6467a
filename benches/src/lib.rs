//! A load generator for the pipeline.
//!
//! Arrivals are open-loop by default: request `i` is due at its scheduled time
//! (a constant rate, or a linear ramp) whether or not earlier ones have answered,
//! and its latency is measured from that due time. When the system falls behind,
//! the queueing shows up in the latencies instead of silently lowering the
//! offered rate (coordinated omission). Concurrency is bounded by `connections`;
//! a request waiting for a free connection is already late, and its latency says
//! so. The closed-loop mode instead runs `connections` workers back to back and
//! measures from each actual send: it finds the throughput ceiling, not latency
//! under a given load.
//!
//! Every acknowledged event is written in a ledger. After the run, the generator
//! waits for the pipeline to drain and compares each video's all-time count (per
//! event type) and, for a sample of videos, a few time ranges with the ledger:
//! lost and double-counted events are reported, never assumed. While the load
//! runs, probe videos measure freshness and an optional read load measures
//! getViewsCount latency.

mod drive;
mod freshness;
mod ledger;
mod reads;
pub mod record;
mod report;
mod workload;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use vcount_client::{BatcherConfig, BreakerConfig, Client, ClientConfig, EventKind, RetryPolicy};

pub use ledger::{Exactness, RangeCheck};
pub use report::{ClientFigures, Freshness, Latency, RangeReads, Reads, Report};
pub use workload::{Schedule, parse_types};

use drive::{Driver, Sent};
use ledger::Ledger;
use workload::{Popularity, Workload};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One event per request: by default KillrVideo's body-less
    /// `POST /api/v1/videos/id/{id}/view`; with `--target-kind events`,
    /// `POST /api/v1/events` through the client library.
    Single,
    /// `POST /api/v1/events:batch` with `batch_size` events per request, through
    /// the client library.
    Batch,
    /// One event per arrival, handed to the client library's batcher, which
    /// groups them (at most `batch_size`, `linger`); latency per event.
    Batcher,
}

/// The endpoint `--mode single` posts to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// `POST {gateway}/api/v1/videos/id/{id}/view`, no body, no event id; what
    /// the peers implement.
    #[default]
    View,
    /// `POST {gateway}/api/v1/events` through the client library, with event
    /// ids, users, types and `occurredAt`.
    Events,
}

#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Gateway base URL, e.g. `http://127.0.0.1:18080`.
    pub gateway: String,
    /// Producer API key for the gateway (batches and typed events need one).
    pub api_key: Option<String>,
    /// Query service base URL; with it, the run ends with an exactness check,
    /// and freshness and reads can be measured.
    pub query: Option<String>,
    pub mode: Mode,
    pub target: Target,
    /// Requests per second offered (events per second for `batcher`); with
    /// `ramp_to`, the rate at the start.
    pub rate: f64,
    /// Ramp the rate linearly to this by the end of the run.
    pub ramp_to: Option<f64>,
    /// `connections` workers sending back to back instead of a schedule.
    pub closed_loop: bool,
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
    /// Events endpoints: `occurredAt` spread uniformly over this many seconds before now.
    pub spread_secs: i64,
    /// Events endpoints: share of events that happened 1 to 24 hours ago.
    pub late_share: f64,
    /// Share of all events that go to one video (the most popular), on top of the Zipf draw.
    pub hot_share: f64,
    /// Events endpoints: user ids drawn from a pool this big (0: anonymous).
    pub users: usize,
    /// Events endpoints: event types and their weights.
    pub types: Vec<(EventKind, u32)>,
    /// How long the exactness check waits for the pipeline to drain.
    pub drain_timeout: Duration,
    /// Wait this long after the load before the exactness check starts (it reads
    /// every video's count, repeatedly until they match): keeps its reads out of
    /// a benchmark's CPU window that ends before then.
    pub check_delay: Duration,
    /// Per-attempt request timeout.
    pub request_timeout: Duration,
    /// Client library: attempts per request, the first included.
    pub max_attempts: u32,
    /// Batcher: longest wait of an event for its batch.
    pub linger: Duration,
    /// One probe view this often (with a query URL); `None` turns freshness off.
    pub freshness_interval: Option<Duration>,
    pub probe_videos: usize,
    pub freshness_poll: Duration,
    /// getViewsCount reads per second during the load (0: none).
    pub read_qps: f64,
    pub read_connections: usize,
    /// Videos whose time ranges are checked against the ledger.
    pub range_videos: usize,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            gateway: "http://127.0.0.1:18080".into(),
            api_key: None,
            query: None,
            mode: Mode::Single,
            target: Target::View,
            rate: 1000.0,
            ramp_to: None,
            closed_loop: false,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(3),
            connections: 64,
            videos: 1000,
            zipf: 1.0,
            batch_size: 100,
            spread_secs: 3600,
            late_share: 0.0,
            hot_share: 0.0,
            users: 0,
            types: vec![(EventKind::View, 1)],
            drain_timeout: Duration::from_secs(60),
            check_delay: Duration::ZERO,
            request_timeout: Duration::from_secs(30),
            max_attempts: 3,
            linger: Duration::from_millis(5),
            freshness_interval: Some(Duration::from_millis(200)),
            probe_videos: 4,
            freshness_poll: Duration::from_millis(50),
            read_qps: 0.0,
            read_connections: 64,
            range_videos: 20,
        }
    }
}

impl LoadConfig {
    fn uses_view_endpoint(&self) -> bool {
        self.mode == Mode::Single && self.target == Target::View
    }

    fn target_name(&self) -> &'static str {
        match (self.mode, self.target) {
            (Mode::Single, Target::View) => "view",
            (Mode::Single, Target::Events) => "events",
            (Mode::Batch | Mode::Batcher, _) => "events:batch",
        }
    }

    fn client(&self) -> anyhow::Result<Client> {
        let mut c = ClientConfig::new(&self.gateway);
        c.request_timeout = self.request_timeout;
        c.pool_max_idle_per_host = self.connections;
        c.api_key = self.api_key.clone();
        c.retry = RetryPolicy { max_attempts: self.max_attempts.max(1), ..RetryPolicy::default() };
        // A load test wants the breaker's verdict to be about the gateway, not
        // about a few unlucky requests among thousands in flight.
        c.breaker = BreakerConfig { failure_threshold: 50, cooldown: Duration::from_secs(1) };
        Ok(Client::new(c)?)
    }
}

/// Counters for the progress line.
#[derive(Default)]
struct Progress {
    done: AtomicU64,
    failed: AtomicU64,
    reads: Arc<AtomicU64>,
    probes: Arc<AtomicU64>,
}

/// What one unit of load came to, for the collector.
struct Outcome {
    latency: Duration,
    /// Due during the warm-up: not in the histogram.
    warmup: bool,
    sent: Sent,
}

/// Runs the load, then (with a query URL) the exactness check.
pub async fn run(cfg: LoadConfig) -> anyhow::Result<Report> {
    anyhow::ensure!(cfg.rate > 0.0 && cfg.connections > 0, "rate and connections must be positive");
    anyhow::ensure!(cfg.ramp_to.is_none_or(|r| r >= 0.0), "--ramp-to must not be negative");
    anyhow::ensure!((0.0..=1.0).contains(&cfg.late_share), "--late-share must be within 0 and 1");
    anyhow::ensure!((0.0..=1.0).contains(&cfg.hot_share), "--hot-share must be within 0 and 1");
    anyhow::ensure!(!(cfg.closed_loop && cfg.ramp_to.is_some()), "a ramp needs an open loop");
    anyhow::ensure!(
        !cfg.uses_view_endpoint() || (cfg.types.len() == 1 && cfg.types[0].0 == EventKind::View),
        "the view endpoint counts views only: event types need --target-kind events or a batch mode"
    );
    let http = drive::http(cfg.connections, cfg.request_timeout, cfg.api_key.as_deref())?;
    let (driver, client) = if cfg.uses_view_endpoint() {
        (Driver::View(drive::ViewConns::new(&cfg.gateway, cfg.request_timeout, cfg.api_key.as_deref())?), None)
    } else {
        let client = cfg.client()?;
        let batcher = (cfg.mode == Mode::Batcher).then(|| {
            client.batcher(BatcherConfig {
                max_batch: cfg.batch_size.max(1),
                linger: cfg.linger,
                max_in_flight: cfg.connections,
                queue_capacity: cfg.connections * cfg.batch_size.max(1) * 2,
            })
        });
        (Driver::Client { client: client.clone(), batcher }, Some(client))
    };
    let driver = Arc::new(driver);
    let work = Arc::new(
        Workload::new(
            Popularity::new(cfg.videos, cfg.zipf).with_hot_share(cfg.hot_share),
            cfg.users,
            cfg.types.clone(),
            cfg.spread_secs,
        )
        .with_late_share(cfg.late_share),
    );
    let mut ledger = Ledger::new(work.popularity.sample(cfg.range_videos));
    let cfg = Arc::new(cfg);
    let progress = Arc::new(Progress::default());
    let (tx, mut rx) = mpsc::unbounded_channel::<Outcome>();

    let ticker = {
        let p = progress.clone();
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let d = p.done.load(Ordering::Relaxed);
                eprintln!(
                    "  {d:>9} answered ({:>7}/s), {:>6} failed, {:>6} reads, {:>4} probes",
                    d - last,
                    p.failed.load(Ordering::Relaxed),
                    p.reads.load(Ordering::Relaxed),
                    p.probes.load(Ordering::Relaxed),
                );
                last = d;
            }
        })
    };

    let collector = tokio::spawn(async move {
        let mut hist = report::histogram();
        let mut acked = Vec::new();
        let mut unconfirmed = Vec::new();
        let mut errors: BTreeMap<String, u64> = BTreeMap::new();
        let (mut ok, mut bad, mut rejected) = (0u64, 0u64, 0u64);
        while let Some(o) = rx.recv().await {
            if !o.warmup {
                hist.saturating_record(o.latency.as_micros().max(1) as u64);
            }
            if o.sent.ok {
                ok += 1
            } else {
                bad += 1
            }
            rejected += o.sent.rejected;
            for e in o.sent.errors {
                *errors.entry(e).or_insert(0) += 1;
            }
            acked.extend(o.sent.acked);
            unconfirmed.extend(o.sent.unconfirmed);
        }
        (hist, acked, unconfirmed, errors, ok, bad, rejected)
    });

    let start = Instant::now();
    let load_end = start + cfg.duration;
    let side = {
        let query = cfg.query.clone();
        let freshness = match (&query, cfg.freshness_interval) {
            (Some(q), Some(interval)) => Some(tokio::spawn(freshness::run(
                driver.clone(),
                http.clone(),
                q.clone(),
                freshness::Probes { videos: cfg.probe_videos, interval, poll: cfg.freshness_poll },
                load_end,
                cfg.drain_timeout,
                progress.probes.clone(),
            ))),
            _ => None,
        };
        let reads = match &query {
            Some(q) if cfg.read_qps > 0.0 => {
                let reads_http = drive::http(cfg.read_connections, cfg.request_timeout, None)?;
                Some(tokio::spawn(reads::run(
                    reads_http,
                    q.clone(),
                    work.clone(),
                    reads::ReadLoad { qps: cfg.read_qps, connections: cfg.read_connections, warmup: cfg.warmup },
                    start,
                    load_end,
                    progress.reads.clone(),
                )))
            }
            _ => None,
        };
        (freshness, reads)
    };

    // A batcher event holds no connection while it waits for its batch.
    let in_flight = if cfg.mode == Mode::Batcher { cfg.connections * cfg.batch_size.max(1) } else { cfg.connections };
    if cfg.closed_loop {
        let mut workers = Vec::new();
        for _ in 0..in_flight {
            let (driver, work, cfg, tx, progress) =
                (driver.clone(), work.clone(), cfg.clone(), tx.clone(), progress.clone());
            workers.push(tokio::spawn(async move {
                while Instant::now() < load_end {
                    let sent_at = Instant::now();
                    let sent = driver.send(cfg.mode, cfg.batch_size, &work).await;
                    report_one(&progress, &tx, sent_at.elapsed(), sent_at - start < cfg.warmup, sent);
                }
            }));
        }
        for w in workers {
            w.await?;
        }
    } else {
        let schedule = Schedule::new(cfg.rate, cfg.ramp_to.unwrap_or(cfg.rate), cfg.duration);
        let permits = Arc::new(Semaphore::new(in_flight));
        for i in 0..schedule.total() {
            let due = start + schedule.at(i);
            tokio::time::sleep_until(due).await;
            let permit = permits.clone().acquire_owned().await.expect("semaphore open");
            let (driver, work, cfg, tx, progress) =
                (driver.clone(), work.clone(), cfg.clone(), tx.clone(), progress.clone());
            tokio::spawn(async move {
                let sent = driver.send(cfg.mode, cfg.batch_size, &work).await;
                report_one(&progress, &tx, due.elapsed(), due - start < cfg.warmup, sent);
                drop(permit);
            });
        }
    }
    drop(tx);
    let (hist, acked, unconfirmed, errors, ok, bad, rejected) = collector.await?;
    unconfirmed.iter().for_each(|r| ledger.add_unconfirmed(r));
    let load_done = std::time::Instant::now();
    let elapsed = start.elapsed().as_secs_f64();
    let reads = match side.1 {
        Some(t) => Some(t.await?),
        None => None,
    };
    let freshness = match side.0 {
        Some(t) => {
            let (figures, probes) = t.await?;
            acked.iter().chain(&probes).for_each(|r| ledger.add(r));
            Some(figures)
        }
        None => {
            acked.iter().for_each(|r| ledger.add(r));
            None
        }
    };
    ticker.abort();

    let events: u64 = acked.len() as u64;
    if cfg.query.is_some() {
        tokio::time::sleep(cfg.check_delay).await;
    }
    let exactness = match &cfg.query {
        Some(q) => Some(ledger::check(&http, q, &ledger, cfg.spread_secs, load_done, cfg.drain_timeout).await?),
        None => None,
    };
    let client_figures = client.map(|c| {
        let s = c.stats();
        ClientFigures {
            attempts: s.attempts,
            retries: s.retries,
            breaker_refusals: s.breaker_refusals,
            breaker_trips: s.breaker_trips,
        }
    });
    Ok(Report {
        mode: cfg.mode,
        offered_rate: cfg.rate,
        duration_secs: elapsed,
        warmup_secs: cfg.warmup.as_secs_f64(),
        connections: cfg.connections,
        videos: cfg.videos,
        zipf: cfg.zipf,
        hot_share: cfg.hot_share,
        batch_size: if cfg.mode == Mode::Single { 1 } else { cfg.batch_size },
        requests: ok + bad,
        requests_ok: ok,
        requests_failed: bad,
        events_acked: events,
        events_unconfirmed: unconfirmed.len() as u64,
        events_sent: events + rejected + unconfirmed.len() as u64,
        achieved_requests_per_sec: (ok + bad) as f64 / elapsed,
        acked_events_per_sec: events as f64 / elapsed,
        latency: Latency::from(&hist),
        exactness,
        target: cfg.target_name().into(),
        arrival: if cfg.closed_loop {
            "closed"
        } else if cfg.ramp_to.is_some() {
            "ramp"
        } else {
            "open"
        }
        .into(),
        ramp_to: cfg.ramp_to,
        users: if cfg.uses_view_endpoint() { 0 } else { cfg.users },
        types: workload::format_types(&cfg.types),
        events_rejected: rejected,
        errors,
        client: client_figures,
        freshness,
        reads,
    })
}

fn report_one(progress: &Progress, tx: &mpsc::UnboundedSender<Outcome>, latency: Duration, warmup: bool, sent: Sent) {
    if !sent.ok {
        progress.failed.fetch_add(1, Ordering::Relaxed);
    }
    progress.done.fetch_add(1, Ordering::Relaxed);
    let _ = tx.send(Outcome { latency, warmup, sent });
}
