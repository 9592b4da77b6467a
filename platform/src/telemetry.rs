//! Logs (tracing) and metrics (Prometheus text via `metrics`).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info` or `info,aggregator=debug`; `RUST_LOG` wins.
    pub filter: String,
    /// One JSON object per line instead of human-readable text.
    pub json: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { filter: "info".into(), json: false }
    }
}

/// Installs the global subscriber once; later calls (tests) are no-ops.
pub fn init_logging(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.filter));
    // Colours only on a terminal and without NO_COLOR: log files stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = if cfg.json { builder.json().try_init() } else { builder.try_init() };
}

/// Buckets in seconds for every `*_seconds` histogram (anything else would be
/// exported as a summary, which cannot be aggregated across instances): 100 µs to
/// 60 s, with edges at issue 5's latency targets (10 ms and 20 ms p99) so they are
/// read exactly, not interpolated, and room above 10 s for flushes that retry a
/// down Cassandra.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The process-wide Prometheus recorder, installed on first use. Several services
/// in one process (tests, the combined dev binary) share it.
///
/// The recorder keeps each histogram sample until something folds it into the
/// buckets: a scrape, or `run_upkeep`. `install_recorder` starts no upkeep of its
/// own (only the exporter's HTTP listener does), so a service nobody scraped grew
/// by every request it timed (about 20 MB per million requests, measured on the
/// gateway; metrics-rs/metrics#467 describes the same). A thread runs the upkeep
/// every few seconds.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("static buckets are valid")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                })
                .expect("spawning the metrics upkeep thread");
            handle
        })
        .clone()
}
