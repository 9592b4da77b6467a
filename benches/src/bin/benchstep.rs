//! `benchstep`: runs `loadgen` once as one step of `scripts/bench`, and measures
//! what that load cost the system under test.
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
use benches::record::{Exact, Percentiles, Record, metric_sum, proc_ticks};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Run loadgen as one benchmark step and measure CPU, store writes and exactness")]
struct Args {
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
    /// Counter of store reads.
    #[arg(long)]
    reads: Option<String>,
    /// A process of the system under test, `name=pid` (repeatable).
    #[arg(long = "proc", value_parser = parse_proc)]
    procs: Vec<(String, u32)>,
    /// Ticks per second of /proc/<pid>/stat (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
    #[arg(long, default_value = "")]
    notes: String,
    /// Arguments for loadgen (after `--`); `--json` is added.
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
    loadgen_ticks: Option<u64>,
    progress: Option<f64>,
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
        loadgen_ticks: proc_ticks(loadgen),
        progress: read(&a.progress),
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
    let mut child = tokio::process::Command::new(&loadgen)
        .args(&a.loadgen_args)
        .arg("--json")
        .arg(&json)
        .spawn()
        .with_context(|| format!("starting {}", loadgen.display()))?;
    let pid = child.id().context("loadgen pid")?;
    let mut samples = vec![sample(&http, &a, pid).await];
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            _ = tokio::time::sleep(Duration::from_millis(250)) => samples.push(sample(&http, &a, pid).await),
        }
    };
    // loadgen is gone: its ticks are in the last sample taken while it ran.
    let last_loadgen = samples.iter().rev().find_map(|s| s.loadgen_ticks);
    samples.push(sample(&http, &a, pid).await);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).with_context(|| format!("reading {}", json.display()))?)?;
    std::fs::remove_file(&json).ok();

    let events = report["events_acked"].as_u64().unwrap_or(0);
    let first = &samples[0];
    // The window closes when the system has done the work for every acknowledged event.
    let end = samples
        .iter()
        .position(|s| delta(first.progress, s.progress).is_some_and(|d| d >= events))
        .unwrap_or(samples.len() - 1);
    let last = &samples[end];
    let tck = a.clk_tck as f64;
    let mut cpu_secs = BTreeMap::new();
    for (i, (name, _)) in a.procs.iter().enumerate() {
        if let (Some(t0), Some(t1)) = (first.ticks[i], last.ticks[i]) {
            *cpu_secs.entry(name.clone()).or_insert(0.0) += (t1 - t0) as f64 / tck;
        }
    }
    let mut cpu_secs_other = BTreeMap::new();
    if let (Some(t0), Some(t1)) = (first.loadgen_ticks, last_loadgen) {
        cpu_secs_other.insert("loadgen".to_owned(), (t1 - t0) as f64 / tck);
    }
    let batch = report["batch_size"].as_f64().unwrap_or(1.0);
    let exactness = report["exactness"].as_object().map(|e| Exact {
        lost: e["lost"].as_i64().unwrap_or(0),
        double_counted: e["double_counted"].as_i64().unwrap_or(0),
    });
    let rec = Record {
        system: a.system.clone(),
        mode: a.mode.clone(),
        offered_per_sec: report["offered_rate"].as_f64().map(|r| r * batch),
        achieved_per_sec: report["acked_events_per_sec"].as_f64().unwrap_or(0.0),
        events,
        latency_ms: percentiles(&report["latency"]),
        read_latency_ms: percentiles(&report["reads"]["one_hour"]["latency"]),
        read_latency_30d_ms: percentiles(&report["reads"]["thirty_days"]["latency"]),
        cpu_secs,
        cpu_secs_other,
        window_secs: last.at.duration_since(first.at).as_secs_f64(),
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
    anyhow::ensure!(status.success(), "loadgen exited with {status}");
    Ok(())
}
