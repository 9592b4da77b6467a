//! `loadgen`: offers load to the gateway and checks the counts afterwards.
//!
//!   cargo run --release -p benches --bin loadgen -- --rate 2000 --duration 20 \
//!       --query http://127.0.0.1:18081

use std::time::Duration;

use benches::{LoadConfig, Mode, Target};
use clap::Parser;

// The services' allocator: the driver's CPU per request is compared with the
// gateway's, so neither pays glibc's malloc while the other does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    about = "Load for the ingest gateway (open or closed loop), with freshness, reads and a ledger exactness check"
)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:18080")]
    gateway: String,
    /// Producer API key (`vcount-admin api-key`): batches, typed events and rates
    /// above the anonymous per-IP limit need one.
    #[arg(long, env = "VCOUNT_API_KEY")]
    api_key: Option<String>,
    /// Query service URL; without it, no exactness check, freshness or reads.
    #[arg(long)]
    query: Option<String>,
    #[arg(long, value_enum, default_value = "single")]
    mode: Mode,
    /// Endpoint of `--mode single`: `view` is KillrVideo's body-less
    /// POST /api/v1/videos/id/{id}/view; `events` is POST /api/v1/events through
    /// the client library (event ids, users, types, occurredAt).
    #[arg(long, value_enum, default_value = "view")]
    target_kind: Target,
    /// Requests per second (open loop; events per second for `--mode batcher`);
    /// with --ramp-to, the starting rate.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Ramp the rate linearly from --rate to this over the duration.
    #[arg(long)]
    ramp_to: Option<f64>,
    /// Closed loop: --connections workers send back to back (latency from the
    /// actual send); --rate is ignored.
    #[arg(long)]
    closed_loop: bool,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds at the start left out of the latency figures (still in the ledger).
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Most requests in flight (closed loop: workers).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    #[arg(long, default_value_t = 1000)]
    videos: usize,
    /// Zipf exponent of popularity (0 = uniform).
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    /// Events per batch (`batch`), or most per batch (`batcher`).
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Events endpoints: occurredAt spread over this many seconds before now.
    #[arg(long, default_value_t = 3600)]
    spread_secs: i64,
    /// Events endpoints: this share of events (0 to 1) happened 1 to 24 hours ago
    /// instead, late arrivals that touch closed hours and days.
    #[arg(long, default_value_t = 0.0)]
    late_share: f64,
    /// Share of all events (0 to 1) that go to one video, the most popular, on top
    /// of the Zipf draw: a hot video whose partition's owner must keep up.
    #[arg(long, default_value_t = 0.0)]
    hot_share: f64,
    /// Events endpoints: user ids drawn from a pool of this many (0 = anonymous).
    #[arg(long, default_value_t = 0)]
    users: usize,
    /// Events endpoints: event types with weights, e.g. view=90,like=5,share=5.
    #[arg(long, default_value = "view")]
    types: String,
    #[arg(long, default_value_t = 60.0)]
    drain_timeout: f64,
    /// Seconds to wait after the load before the exactness check (its reads of
    /// every video's count then stay out of a benchmark's CPU window).
    #[arg(long, default_value_t = 0.0)]
    check_delay: f64,
    /// Per-attempt request timeout, milliseconds.
    #[arg(long, default_value_t = 30_000)]
    request_timeout_ms: u64,
    /// Client library: attempts per request, the first included.
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,
    /// `--mode batcher`: longest wait of an event for its batch, milliseconds.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// One freshness probe this often, milliseconds (0 = off; needs --query).
    #[arg(long, default_value_t = 200)]
    freshness_ms: u64,
    /// Probe videos (each gets only probes, one at a time).
    #[arg(long, default_value_t = 4)]
    probe_videos: usize,
    /// How often a probe video's count is read while a probe is pending, milliseconds.
    #[arg(long, default_value_t = 50)]
    freshness_poll_ms: u64,
    /// getViewsCount reads per second during the load, alternating 1 h and 30 d (0 = none).
    #[arg(long, default_value_t = 0.0)]
    read_qps: f64,
    #[arg(long, default_value_t = 64)]
    read_connections: usize,
    /// Videos whose time ranges are checked against the ledger (events endpoints).
    #[arg(long, default_value_t = 20)]
    range_videos: usize,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let types = benches::parse_types(&a.types).map_err(|e| anyhow::anyhow!("--types: {e}"))?;
    let report = benches::run(LoadConfig {
        gateway: a.gateway,
        api_key: a.api_key,
        query: a.query,
        mode: a.mode,
        target: a.target_kind,
        rate: a.rate,
        ramp_to: a.ramp_to,
        closed_loop: a.closed_loop,
        duration: Duration::from_secs_f64(a.duration),
        warmup: Duration::from_secs_f64(a.warmup),
        connections: a.connections,
        videos: a.videos,
        zipf: a.zipf,
        batch_size: a.batch_size,
        spread_secs: a.spread_secs,
        late_share: a.late_share,
        hot_share: a.hot_share,
        users: a.users,
        types,
        drain_timeout: Duration::from_secs_f64(a.drain_timeout),
        check_delay: Duration::from_secs_f64(a.check_delay.max(0.0)),
        request_timeout: Duration::from_millis(a.request_timeout_ms),
        max_attempts: a.max_attempts,
        linger: Duration::from_millis(a.linger_ms),
        freshness_interval: (a.freshness_ms > 0).then(|| Duration::from_millis(a.freshness_ms)),
        probe_videos: a.probe_videos,
        freshness_poll: Duration::from_millis(a.freshness_poll_ms.max(1)),
        read_qps: a.read_qps,
        read_connections: a.read_connections,
        range_videos: a.range_videos,
    })
    .await?;
    println!("{}", report.table());
    if let Some(path) = a.json {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    }
    let exact = report.exactness.as_ref().is_none_or(|e| e.is_exact());
    anyhow::ensure!(exact, "counts differ from the ledger");
    Ok(())
}
