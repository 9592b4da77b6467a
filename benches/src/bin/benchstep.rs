//! `benchstep`: runs a load driver once as one step of `scripts/bench`, and
//! measures what that load cost the system under test.
//!
//! The driver is `loadgen` (open or closed loop, the ledger's exactness check) or
//! Debian's `wrk` with `benches/wrk/views.lua` (closed loop, no ledger): a C
//! driver that costs less CPU per request than any service it drives, so a
//! ceiling it finds is the service's. Every record names its driver and what the
//! driver itself spent, so a table can show when the driver was the limit.
//!
//! Every 250 ms it reads the CPU ticks of each named process from `/proc` and
//! scrapes the system's `/metrics`. The CPU window opens when loadgen starts and
//! closes at the first sample where the system's own progress counter (events
//! discarded, flushed to Cassandra, or written by a peer) has grown by the
//! events loadgen saw acknowledged: for the pipeline that includes the
//! aggregator draining its buffers, not just the gateway answering. Store writes
//! and reads are the growth of the named counters over the same window.
//!
//!   benchstep --system pipeline --mode single --out 03-pipeline.json \
//!       --metrics http://127.0.0.1:28082/metrics --progress aggregator_events_flushed_total \
//!       --writes aggregator_rows_written_total --proc ingest-gateway=123 --proc kafka=45 \
//!       -- --gateway http://127.0.0.1:28080 --rate 1000 --duration 20

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use benches::record::{Exact, Lag, Percentiles, Record, metric_sum, proc_rss, proc_ticks, thread_deltas, thread_ticks};
use clap::Parser;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Driver {
    Loadgen,
    Wrk,
}

impl Driver {
    fn name(self) -> &'static str {
        match self {
            Driver::Loadgen => "loadgen",
            Driver::Wrk => "wrk",
        }
    }
}

#[derive(Parser)]
#[command(about = "Run a load driver as one benchmark step and measure CPU, store writes and exactness")]
struct Args {
    /// What sends the load: loadgen, or wrk (its arguments after `--`; the script
    /// `benches/wrk/views.lua` must be among them).
    #[arg(long, value_enum, default_value = "loadgen")]
    driver: Driver,
    #[arg(long)]
    system: String,
    #[arg(long, default_value = "")]
    mode: String,
    /// Where the step's record (JSON) goes.
    #[arg(long)]
    out: PathBuf,
    /// The loadgen binary; default: next to this one.
    #[arg(long)]
    loadgen: Option<PathBuf>,
    /// Prometheus page of the system under test (counters below are read from it).
    #[arg(long)]
    metrics: Option<String>,
    /// Counter that reaches loadgen's acknowledged events once the system has done all the work.
    #[arg(long)]
    progress: Option<String>,
    /// Counter of store writes.
    #[arg(long)]
    writes: Option<String>,
    /// Gauge of consumer lag (summed over its series): "sustained" means it stays
    /// bounded, so the record keeps its peak and its slope over the load's last 60 s.
    #[arg(long)]
    lag: Option<String>,
    /// Counter of store reads.
    #[arg(long)]
    reads: Option<String>,
    /// Once the driver is done, keep sampling up to this many seconds until the
    /// progress counter has caught up: the driver may finish first, e.g. when
    /// its counts are exact from the owner's memory long before the rounds write
    /// them (with `flush.max_age_ms` 60 s), and the writes still belong to the step.
    #[arg(long, default_value_t = 300)]
    settle_secs: u64,
    /// The CPU window lasts at least this long from the driver's start (and
    /// sampling goes on until then): arms of an A/B whose work ends at different
    /// times are compared over one window, idle costs included alike.
    #[arg(long, default_value_t = 0)]
    min_window_secs: u64,
    /// A process of the system under test, `name=pid` (repeatable).
    #[arg(long = "proc", value_parser = parse_proc)]
    procs: Vec<(String, u32)>,
    /// Of these `--proc` names, also record the CPU by thread name (e.g. a
    /// JVM's pools: where Cassandra's time goes). Repeatable.
    #[arg(long = "threads")]
    threads: Vec<String>,
    /// Ticks per second of /proc/<pid>/stat (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
    #[arg(long, default_value = "")]
    notes: String,
    /// Arguments for the driver (after `--`); for loadgen, `--json` is added.
    #[arg(last = true)]
    loadgen_args: Vec<String>,
}

fn parse_proc(s: &str) -> Result<(String, u32), String> {
    let (name, pid) = s.split_once('=').ok_or("expected name=pid")?;
    Ok((name.to_owned(), pid.parse().map_err(|e| format!("pid {pid:?}: {e}"))?))
}

struct Sample {
    at: Instant,
    ticks: Vec<Option<u64>>,
    rss: Vec<Option<u64>>,
    /// Each thread (id → pool name, ticks), for each `--proc` (empty unless named by `--threads`).
    threads: Vec<BTreeMap<u32, (String, u64)>>,
    loadgen_ticks: Option<u64>,
    progress: Option<f64>,
    lag: Option<f64>,
    writes: Option<f64>,
    reads: Option<f64>,
}

async fn sample(http: &reqwest::Client, a: &Args, loadgen: u32) -> Sample {
    let page = match &a.metrics {
        Some(url) => async { http.get(url).send().await?.error_for_status()?.text().await }.await.ok(),
        None => None,
    };
    let read = |name: &Option<String>| Some(metric_sum(page.as_deref()?, name.as_deref()?).unwrap_or(0.0));
    Sample {
        at: Instant::now(),
        ticks: a.procs.iter().map(|(_, pid)| proc_ticks(*pid)).collect(),
        rss: a.procs.iter().map(|(_, pid)| proc_rss(*pid)).collect(),
        threads: a
            .procs
            .iter()
            .map(|(name, pid)| if a.threads.contains(name) { thread_ticks(*pid) } else { BTreeMap::new() })
            .collect(),
        loadgen_ticks: proc_ticks(loadgen),
        progress: read(&a.progress),
        lag: read(&a.lag),
        writes: read(&a.writes),
        reads: read(&a.reads),
    }
}

fn delta(a: Option<f64>, b: Option<f64>) -> Option<u64> {
    Some((b? - a?).max(0.0).round() as u64)
}

fn percentiles(v: &serde_json::Value) -> Option<Percentiles> {
    Some(Percentiles { p50: v["p50_ms"].as_f64()?, p99: v["p99_ms"].as_f64()?, p999: v["p999_ms"].as_f64()? })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let loadgen = match &a.loadgen {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("loadgen"),
    };
    let json = a.out.with_extension("loadgen.json");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let mut command = match a.driver {
        Driver::Loadgen => {
            let mut c = tokio::process::Command::new(&loadgen);
            c.args(&a.loadgen_args).arg("--json").arg(&json);
            c
        }
        Driver::Wrk => {
            let mut c = tokio::process::Command::new("wrk");
            c.args(&a.loadgen_args).stderr(std::process::Stdio::piped());
            c
        }
    };
    let mut child = command.spawn().with_context(|| format!("starting {}", a.driver.name()))?;
    let pid = child.id().context("driver pid")?;
    // wrk's summary line arrives on stderr; read it while the run goes on.
    let wrk_summary = child.stderr.take().map(|err| {
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut out = String::new();
            let mut err = err;
            err.read_to_string(&mut out).await.map(|_| out)
        })
    });
    let mut samples = vec![sample(&http, &a, pid).await];
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            _ = tokio::time::sleep(Duration::from_millis(250)) => samples.push(sample(&http, &a, pid).await),
        }
    };
    // The driver is gone: its ticks are in the last sample taken while it ran.
    let last_loadgen = samples.iter().rev().find_map(|s| s.loadgen_ticks);
    samples.push(sample(&http, &a, pid).await);
    let report: serde_json::Value = match wrk_summary {
        None => {
            let report =
                serde_json::from_slice(&std::fs::read(&json).with_context(|| format!("reading {}", json.display()))?)?;
            std::fs::remove_file(&json).ok();
            report
        }
        Some(task) => wrk_report(&task.await??)?,
    };

    let events = report["events_acked"].as_u64().unwrap_or(0);
    if a.progress.is_some() {
        let deadline = Instant::now() + Duration::from_secs(a.settle_secs);
        while Instant::now() < deadline
            && delta(samples[0].progress, samples.last().and_then(|s| s.progress)).is_none_or(|d| d < events)
        {
            tokio::time::sleep(Duration::from_millis(250)).await;
            samples.push(sample(&http, &a, pid).await);
        }
    }
    let min_window = Duration::from_secs(a.min_window_secs);
    while samples[0].at.elapsed() < min_window {
        tokio::time::sleep(Duration::from_millis(250)).await;
        samples.push(sample(&http, &a, pid).await);
    }
    let first = &samples[0];
    // The window closes when the system has done the work for every acknowledged
    // event, and not before `min_window_secs`.
    let end = samples
        .iter()
        .position(|s| {
            delta(first.progress, s.progress).is_some_and(|d| d >= events)
                && s.at.duration_since(first.at) >= min_window
        })
        .unwrap_or(samples.len() - 1);
    let last = &samples[end];
    let tck = a.clk_tck as f64;
    let mut cpu_secs = BTreeMap::new();
    for (i, (name, _)) in a.procs.iter().enumerate() {
        if let (Some(t0), Some(t1)) = (first.ticks[i], last.ticks[i]) {
            *cpu_secs.entry(name.clone()).or_insert(0.0) += (t1 - t0) as f64 / tck;
        }
    }
    let mut cpu_secs_threads = BTreeMap::new();
    for (i, (name, _)) in a.procs.iter().enumerate().filter(|(_, (n, _))| a.threads.contains(n)) {
        let (Some(t0), Some(t1)) = (first.ticks[i], last.ticks[i]) else { continue };
        let by_thread = thread_deltas(&first.threads[i], &last.threads[i], t1.saturating_sub(t0));
        cpu_secs_threads.insert(name.clone(), by_thread.into_iter().map(|(k, t)| (k, t as f64 / tck)).collect());
    }
    let mut rss_max_bytes = BTreeMap::new();
    for (i, (name, _)) in a.procs.iter().enumerate() {
        if let Some(max) = samples[..=end].iter().filter_map(|s| s.rss[i]).max() {
            rss_max_bytes.insert(name.clone(), max);
        }
    }
    let mut cpu_secs_other = BTreeMap::new();
    if let (Some(t0), Some(t1)) = (first.loadgen_ticks, last_loadgen) {
        cpu_secs_other.insert(a.driver.name().to_owned(), (t1 - t0) as f64 / tck);
    }
    let batch = report["batch_size"].as_f64().unwrap_or(1.0);
    let exactness = report["exactness"].as_object().map(|e| Exact {
        lost: e["lost"].as_i64().unwrap_or(0),
        double_counted: e["double_counted"].as_i64().unwrap_or(0),
    });
    let rec = Record {
        driver: a.driver.name().to_owned(),
        system: a.system.clone(),
        mode: a.mode.clone(),
        // A closed loop offers whatever the system takes: no offered rate.
        offered_per_sec: report["offered_rate"].as_f64().filter(|_| report["arrival"] != "closed").map(|r| r * batch),
        achieved_per_sec: report["acked_events_per_sec"].as_f64().unwrap_or(0.0),
        events,
        latency_ms: percentiles(&report["latency"]),
        read_latency_ms: percentiles(&report["reads"]["one_hour"]["latency"]),
        read_latency_30d_ms: percentiles(&report["reads"]["thirty_days"]["latency"]),
        cpu_secs,
        cpu_secs_other,
        cpu_secs_threads,
        rss_max_bytes,
        window_secs: last.at.duration_since(first.at).as_secs_f64(),
        lag: lag_figures(&samples, report["duration_secs"].as_f64().unwrap_or(0.0)),
        db_writes: delta(first.writes, last.writes),
        db_reads: delta(first.reads, last.reads),
        exactness,
        notes: a.notes.clone(),
        loadgen: Some(report),
    };
    std::fs::write(&a.out, serde_json::to_vec_pretty(&rec)?)?;
    eprintln!(
        "{}: {:.0} events/s, CPU {:.3} s per 1K events, {} store writes, window {:.1} s",
        rec.label(),
        rec.achieved_per_sec,
        rec.cpu_per_1k().unwrap_or(f64::NAN),
        rec.db_writes.map_or("no".into(), |w| w.to_string()),
        rec.window_secs
    );
    // The record is kept either way; the step fails like loadgen did (e.g. inexact counts).
    anyhow::ensure!(status.success(), "{} exited with {status}", a.driver.name());
    Ok(())
}

/// Peak consumer lag over the load, and its least-squares slope (messages per
/// second) over the load's last 60 s: bounded lag means the pipeline kept up.
fn lag_figures(samples: &[Sample], load_secs: f64) -> Option<Lag> {
    let t0 = samples.first()?.at;
    let points: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| Some((s.at.duration_since(t0).as_secs_f64(), s.lag?)))
        .filter(|(t, _)| *t <= load_secs)
        .collect();
    let max = points.iter().map(|p| p.1).fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))?;
    let tail: Vec<&(f64, f64)> = points.iter().filter(|(t, _)| *t >= load_secs - 60.0).collect();
    let n = tail.len() as f64;
    let (mt, ml) = (tail.iter().map(|p| p.0).sum::<f64>() / n, tail.iter().map(|p| p.1).sum::<f64>() / n);
    let var: f64 = tail.iter().map(|p| (p.0 - mt).powi(2)).sum();
    let cov: f64 = tail.iter().map(|p| (p.0 - mt) * (p.1 - ml)).sum();
    Some(Lag { max, slope_per_sec: if var > 0.0 { cov / var } else { 0.0 }, window_secs: load_secs.min(60.0) })
}

/// wrk's run as loadgen's report shapes it: `views.lua` prints one JSON line to
/// stderr at the end. Only 2xx answers count as events.
fn wrk_report(stderr: &str) -> anyhow::Result<serde_json::Value> {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("{\"requests\""))
        .with_context(|| format!("no summary from wrk (is benches/wrk/views.lua the script?): {stderr}"))?;
    let w: serde_json::Value = serde_json::from_str(line)?;
    let n = |k: &str| w[k].as_f64().unwrap_or(0.0);
    let socket_errors = n("connect") + n("read") + n("write") + n("timeout");
    let ok = (n("requests") - n("status")).max(0.0);
    let secs = n("duration_us") / 1e6;
    Ok(serde_json::json!({
        "events_acked": ok as u64,
        "offered_rate": null,
        "batch_size": 1,
        "acked_events_per_sec": if secs > 0.0 { ok / secs } else { 0.0 },
        "latency": { "p50_ms": n("p50_us") / 1e3, "p99_ms": n("p99_us") / 1e3, "p999_ms": n("p999_us") / 1e3 },
        "requests": n("requests") as u64,
        "non_2xx": n("status") as u64,
        "socket_errors": socket_errors as u64,
        "arrival": "closed",
        "duration_secs": secs,
    }))
}
