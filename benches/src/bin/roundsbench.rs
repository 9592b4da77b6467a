//! `roundsbench`: `counting::rounds` in process, on a simulated clock: what its
//! cadence writes per event, how fast an owner decodes and folds, and the memory
//! per pending key. No Kafka, no Cassandra.
//!
//! Events (protobuf, as the gateway produces them) are drawn with Zipf popularity
//! and stamped with a simulated time advancing at `--rate` events/s; each is
//! decoded and folded into the `PartitionCounts` of its partition, and every
//! simulated second each partition takes its due round. Reported: series writes
//! (one single-partition mutation each in the `counts` layout) and rows per event
//! after the first `--warmup-secs`, decode+fold events per CPU-second of this
//! thread, and the growth of resident memory per pending (series, minute) key at
//! the peak.
//!
//!   roundsbench --events 4000000 --rate 40000 --videos 100000 --zipf 1

use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use counting::{Cadence, CountedEvent, EventKind, PartitionCounts};
use prost::Message;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use schemas::events::{Event, EventType};
use uuid::Uuid;

#[derive(Parser)]
#[command(about = "counting::rounds in process: writes per event, fold speed, memory per key")]
struct Args {
    #[arg(long, default_value_t = 4_000_000)]
    events: usize,
    /// Simulated arrival rate, events/s: sets the clock the cadence sees.
    #[arg(long, default_value_t = 40_000.0)]
    rate: f64,
    #[arg(long, default_value_t = 100_000)]
    videos: usize,
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    #[arg(long, default_value_t = 12)]
    partitions: usize,
    /// Share of events that happened 1 to 24 hours before their arrival.
    #[arg(long, default_value_t = 0.0)]
    late_share: f64,
    #[arg(long, default_value_t = 5_000)]
    min_age_ms: i64,
    #[arg(long, default_value_t = 64)]
    hot_events: u64,
    #[arg(long, default_value_t = 60_000)]
    max_age_ms: i64,
    #[arg(long, default_value_t = 256)]
    max_rows: usize,
    /// Simulated seconds left out of the write figures (the buffers filling up).
    #[arg(long, default_value_t = 120.0)]
    warmup_secs: f64,
}

fn rss_bytes() -> anyhow::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm.split_whitespace().nth(1).context("statm")?.parse()?;
    Ok(pages * 4096)
}

/// CPU seconds of this thread (user + system), from /proc.
fn thread_cpu_secs() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat")?;
    let rest = &stat[stat.rfind(')').context("stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    Ok(ticks as f64 / 100.0)
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let cadence =
        Cadence { min_age_ms: a.min_age_ms, hot_events: a.hot_events, max_age_ms: a.max_age_ms, max_rows: a.max_rows };
    let videos: Vec<Uuid> = (0..a.videos.max(1)).map(|_| Uuid::new_v4()).collect();
    let weights: Vec<f64> = (1..=videos.len()).map(|k| (k as f64).powf(-a.zipf)).collect();
    let zipf = WeightedIndex::new(&weights)?;
    let mut rng = rand::rng();
    let t0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let at = |i: usize| t0 + (i as f64 * 1000.0 / a.rate) as i64;
    eprintln!("encoding {} events", a.events);
    let encoded: Vec<(usize, Vec<u8>)> = (0..a.events)
        .map(|i| {
            let v = zipf.sample(&mut rng);
            let late = a.late_share > 0.0 && rand::Rng::random::<f64>(&mut rng) < a.late_share;
            let ago = if late { rand::Rng::random_range(&mut rng, 3_600_000..86_400_000) } else { 0 };
            let e = Event {
                event_id: Uuid::now_v7().as_bytes().to_vec(),
                video_id: videos[v].as_bytes().to_vec(),
                event_type: EventType::View as i32,
                occurred_at_ms: at(i) - ago,
                received_at_ms: at(i),
                value: 1,
                user_id: vec![],
                client_event_id: false,
                user_verified: false,
                correction: false,
                event_type_name: String::new(),
                correction_events: 0,
                packed: vec![],
            };
            (v % a.partitions.max(1), e.encode_to_vec())
        })
        .collect();
    let mut parts: Vec<PartitionCounts> = (0..a.partitions.max(1)).map(|_| PartitionCounts::new(None)).collect();
    let rss_before = rss_bytes()?;
    let (mut series_writes, mut rows, mut counted) = (0u64, 0u64, 0u64);
    let (mut peak_keys, mut rss_at_peak) = (0usize, rss_before);
    let per_tick = a.rate.max(1.0) as usize;
    let warm_until = (a.warmup_secs * a.rate) as usize;
    let cpu0 = thread_cpu_secs()?;
    let started = Instant::now();
    for (i, (p, bytes)) in encoded.iter().enumerate() {
        let e = Event::decode(bytes.as_slice())?;
        let event = CountedEvent {
            video_id: Uuid::from_slice(&e.video_id)?,
            kind: EventKind::View,
            occurred_at_ms: e.occurred_at_ms,
            value: e.value,
            correction: None,
        };
        let _ = parts[*p].fold(i as i64, Some(&event), e.received_at_ms)?;
        if (i + 1) % per_tick == 0 {
            let keys: usize = parts.iter().map(|c| c.buffered_keys()).sum();
            if keys > peak_keys {
                (peak_keys, rss_at_peak) = (keys, rss_bytes()?);
            }
            for c in &mut parts {
                let Some(round) = c.take_due(at(i), &cadence) else { continue };
                if i >= warm_until {
                    series_writes += round.series.len() as u64;
                    rows += round.series.iter().map(|s| s.rows.len() as u64).sum::<u64>();
                }
            }
            if i >= warm_until {
                counted += per_tick as u64;
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = (thread_cpu_secs()? - cpu0).max(wall.min(0.01));
    let per_key = (rss_at_peak.saturating_sub(rss_before)) as f64 / peak_keys.max(1) as f64;
    println!(
        "| events/s (simulated) | videos, zipf | late share | cadence (min_age, hot, max_age) | series writes per event | rows per event | decode+fold events per CPU-s | peak pending keys | RSS growth per key |"
    );
    println!("| ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {:.0} | {}, {} | {} | {} s, {}, {} s | {:.4} | {:.3} | {:.2}M | {} | {:.0} B |",
        a.rate,
        a.videos,
        a.zipf,
        a.late_share,
        a.min_age_ms / 1000,
        a.hot_events,
        a.max_age_ms / 1000,
        series_writes as f64 / counted.max(1) as f64,
        rows as f64 / counted.max(1) as f64,
        a.events as f64 / cpu / 1e6,
        peak_keys,
        per_key
    );
    Ok(())
}
