//! The run's figures: JSON (fields are only ever added) and a summary table.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::Mode;
use crate::ledger::Exactness;

/// A latency histogram in microseconds, 1 µs to 10 min.
pub fn histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

#[derive(Debug, Default, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl From<&Histogram<u64>> for Latency {
    fn from(h: &Histogram<u64>) -> Self {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Self { p50_ms: ms(0.5), p99_ms: ms(0.99), p999_ms: ms(0.999), max_ms: h.max() as f64 / 1000.0 }
    }
}

impl Latency {
    fn show(&self) -> String {
        format!("{:.2} / {:.2} / {:.2} / {:.2} ms", self.p50_ms, self.p99_ms, self.p999_ms, self.max_ms)
    }
}

#[derive(Debug, Serialize)]
pub struct Freshness {
    pub probe_videos: usize,
    pub interval_ms: u64,
    pub poll_ms: u64,
    /// Probes acknowledged (they are in the ledger too).
    pub acked: u64,
    /// Probes acknowledged and later seen in getViewsCount.
    pub samples: u64,
    /// Acknowledged probes never seen within the drain timeout.
    pub unresolved: u64,
    pub failed_probes: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct RangeReads {
    pub requests: u64,
    pub errors: u64,
    pub latency: Latency,
}

#[derive(Debug, Serialize)]
pub struct Reads {
    pub offered_qps: f64,
    pub achieved_qps: f64,
    pub one_hour: RangeReads,
    pub thirty_days: RangeReads,
    pub errors: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct ClientFigures {
    pub attempts: u64,
    pub retries: u64,
    pub breaker_refusals: u64,
    pub breaker_trips: u64,
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
    /// Share of events sent to one video on top of the Zipf draw.
    pub hot_share: f64,
    pub batch_size: usize,
    /// Requests (for `batcher`, events submitted).
    pub requests: u64,
    pub requests_ok: u64,
    pub requests_failed: u64,
    pub events_acked: u64,
    /// Events of requests that failed without saying they were not written.
    pub events_unconfirmed: u64,
    /// Every event the load tried to send: acknowledged, refused or unconfirmed.
    pub events_sent: u64,
    pub achieved_requests_per_sec: f64,
    pub acked_events_per_sec: f64,
    pub latency: Latency,
    pub exactness: Option<Exactness>,
    /// The endpoint: `view` (KillrVideo's body-less POST), `events`, `events:batch`.
    pub target: String,
    /// `open`, `ramp` or `closed`.
    pub arrival: String,
    pub ramp_to: Option<f64>,
    pub users: usize,
    pub types: String,
    /// Events the gateway refused one by one (batch items).
    pub events_rejected: u64,
    /// Failed requests and rejected events by kind.
    pub errors: BTreeMap<String, u64>,
    pub client: Option<ClientFigures>,
    pub freshness: Option<Freshness>,
    pub reads: Option<Reads>,
}

impl Report {
    /// A human summary table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let row = |s: &mut String, k: &str, v: String| s.push_str(&format!("  {k:<28} {v}\n"));
        row(&mut s, "mode", format!("{:?} -> {} (batch size {})", self.mode, self.target, self.batch_size));
        let arrival = match (self.arrival.as_str(), self.ramp_to) {
            ("closed", _) => format!("closed loop, {} workers", self.connections),
            (_, Some(to)) => {
                format!("open loop, ramp {:.0} -> {to:.0}/s, {} connections", self.offered_rate, self.connections)
            }
            _ => format!("open loop, {:.0}/s, {} connections", self.offered_rate, self.connections),
        };
        row(&mut s, "offered", format!("{arrival}, {:.1} s", self.duration_secs));
        row(
            &mut s,
            "videos / users / types",
            format!(
                "{} (zipf {}{}) / {} / {}",
                self.videos,
                self.zipf,
                if self.hot_share > 0.0 {
                    format!(", one video {:.0}%", self.hot_share * 100.0)
                } else {
                    String::new()
                },
                self.users,
                self.types
            ),
        );
        row(&mut s, "requests ok / failed", format!("{} / {}", self.requests_ok, self.requests_failed));
        row(
            &mut s,
            "achieved",
            format!("{:.0} req/s, {:.0} events/s acked", self.achieved_requests_per_sec, self.acked_events_per_sec),
        );
        row(&mut s, "latency p50/p99/p99.9/max", self.latency.show());
        let errors = if self.errors.is_empty() {
            "none".to_owned()
        } else {
            self.errors.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
        };
        row(&mut s, "errors", errors);
        if let Some(c) = &self.client {
            row(
                &mut s,
                "client retries / breaker",
                format!(
                    "{} retries in {} attempts / {} trips, {} refusals",
                    c.retries, c.attempts, c.breaker_trips, c.breaker_refusals
                ),
            );
        }
        if let Some(f) = &self.freshness {
            row(
                &mut s,
                "freshness p50/p99/max",
                format!(
                    "{:.0} / {:.0} / {:.0} ms ({} samples, {} unresolved, {} failed probes; poll {} ms)",
                    f.p50_ms, f.p99_ms, f.max_ms, f.samples, f.unresolved, f.failed_probes, f.poll_ms
                ),
            );
        }
        if let Some(r) = &self.reads {
            row(&mut s, "reads", format!("{:.0} of {:.0} QPS", r.achieved_qps, r.offered_qps));
            for (name, rr) in
                [("reads 1 h p50/p99/p99.9/max", &r.one_hour), ("reads 30 d p50/p99/p99.9/max", &r.thirty_days)]
            {
                row(&mut s, name, format!("{} ({} requests, {} errors)", rr.latency.show(), rr.requests, rr.errors));
            }
        }
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
            if e.unconfirmed_events > 0 {
                row(
                    &mut s,
                    "unconfirmed (counted)",
                    format!(
                        "{} ({}): failed requests that may or may not be in the log",
                        e.unconfirmed_events, e.unconfirmed_counted
                    ),
                );
            }
            for r in &e.ranges {
                row(
                    &mut s,
                    &format!("  range {}", r.name),
                    format!(
                        "{} vs {} over {} videos: lost {}, double {}",
                        r.expected, r.counted, r.videos, r.lost, r.double_counted
                    ),
                );
            }
            if let Some(why) = &e.ranges_skipped {
                row(&mut s, "  ranges", format!("not checked: {why}"));
            }
        }
        s
    }
}
