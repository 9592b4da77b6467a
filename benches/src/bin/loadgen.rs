//! `loadgen`: offers load to the gateway and checks the counts afterwards.
//!
//!   cargo run --release -p benches --bin loadgen -- --rate 2000 --duration 20 \
//!       --query http://127.0.0.1:18081

use std::time::Duration;

use benches::{LoadConfig, Mode};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Open-loop load for the ingest gateway, with a ledger exactness check")]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:18080")]
    gateway: String,
    /// Query service URL; without it, no exactness check.
    #[arg(long)]
    query: Option<String>,
    #[arg(long, value_enum, default_value = "single")]
    mode: Mode,
    /// Requests per second (open loop).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds at the start left out of the latency figures (still in the ledger).
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Most requests in flight.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    #[arg(long, default_value_t = 1000)]
    videos: usize,
    /// Zipf exponent of popularity (0 = uniform).
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Batch mode: occurredAt spread over this many seconds before now.
    #[arg(long, default_value_t = 3600)]
    spread_secs: i64,
    #[arg(long, default_value_t = 60.0)]
    drain_timeout: f64,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let report = benches::run(LoadConfig {
        gateway: a.gateway,
        query: a.query,
        mode: a.mode,
        rate: a.rate,
        duration: Duration::from_secs_f64(a.duration),
        warmup: Duration::from_secs_f64(a.warmup),
        connections: a.connections,
        videos: a.videos,
        zipf: a.zipf,
        batch_size: a.batch_size,
        spread_secs: a.spread_secs,
        drain_timeout: Duration::from_secs_f64(a.drain_timeout),
    })
    .await?;
    println!("{}", report.table());
    if let Some(path) = a.json {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    }
    let exact = report.exactness.as_ref().is_none_or(|e| e.lost == 0 && e.double_counted == 0);
    anyhow::ensure!(exact, "counts differ from the ledger");
    Ok(())
}
