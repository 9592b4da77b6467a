//! `rowmodel`: the rows and mutations per event a flush policy implies, from the
//! workload alone (an estimate, not a measurement).
//!
//! Under Zipf(`s`) popularity over `videos` at `rate` events/s, video `k` sees
//! Poisson arrivals at `λ_k = rate · k^-s / H`. The expected distinct videos in a
//! window `T` is `Σ (1 − e^{−λ_k T})`. Policies:
//!
//! - `every flush`: today's protocol, every touched video's minute, hour, day and
//!   all-time rows every `interval` (one minute row per video per flush, as the
//!   view endpoint stamps the time);
//! - `rounds`: `counting::rounds` with `Cadence` (`min_age`, `hot_events`,
//!   `max_age`): a series with `hot_events` pending within `min_age` is written
//!   every `max(min_age, hot_events/λ)`, any other about every `max_age + 1/λ`,
//!   each write being its distinct minutes plus hour, day and all-time rows;
//! - `rounds, lazy coarse rows`: the same cadence, but only the minutes (packed in
//!   one hour row) and the all-time row per write.
//!
//!   rowmodel --videos 100000 --zipf 1 --rates 10000,20000,40000,80000

use clap::Parser;

#[derive(Parser)]
#[command(about = "Rows and mutations per event implied by a flush policy (an estimate)")]
struct Args {
    #[arg(long, default_value_t = 100_000)]
    videos: usize,
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,20000,40000,80000")]
    rates: Vec<f64>,
    #[arg(long, default_value_t = 5.0)]
    interval_secs: f64,
    #[arg(long, default_value_t = 5.0)]
    min_age_secs: f64,
    #[arg(long, default_value_t = 64.0)]
    hot_events: f64,
    #[arg(long, value_delimiter = ',', default_value = "60,300")]
    max_age_secs: Vec<f64>,
}

fn main() {
    let a = Args::parse();
    let weights: Vec<f64> = (1..=a.videos).map(|k| (k as f64).powf(-a.zipf)).collect();
    let h: f64 = weights.iter().sum();
    println!(
        "| events/s | policy | distinct videos per write window | rows per event | mutations per event (one partition per series) |"
    );
    println!("| ---: | --- | ---: | ---: | ---: |");
    for &rate in &a.rates {
        let lambda: Vec<f64> = weights.iter().map(|w| rate * w / h).collect();
        let distinct = |t: f64| lambda.iter().map(|l| 1.0 - (-l * t).exp()).sum::<f64>();
        let d = distinct(a.interval_secs);
        let per_sec = d / a.interval_secs;
        println!(
            "| {rate:.0} | every flush ({:.0} s) | {d:.0} | {:.3} | {:.4} |",
            a.interval_secs,
            per_sec * 4.0 / rate,
            per_sec / rate
        );
        for &max_age in &a.max_age_secs {
            let (mut rows, mut lazy_rows, mut writes) = (0.0, 0.0, 0.0);
            for &l in &lambda {
                let period = if l * a.min_age_secs >= a.hot_events {
                    a.min_age_secs.max(a.hot_events / l)
                } else {
                    max_age + 1.0 / l
                };
                // Distinct minutes a write covers: about period/60 + 1 for busy
                // series, fewer when the events in the period are fewer.
                let events = l * period;
                let minutes = (period / 60.0 + 1.0).min(events.max(1.0));
                writes += 1.0 / period;
                rows += (minutes + 3.0) / period;
                lazy_rows += 2.0 / period;
            }
            let wd = distinct(max_age);
            println!(
                "| {rate:.0} | rounds, max_age {max_age:.0} s | {wd:.0} | {:.3} | {:.4} |",
                rows / rate,
                writes / rate
            );
            println!(
                "| {rate:.0} | rounds, max_age {max_age:.0} s, lazy coarse rows | {wd:.0} | {:.3} | {:.4} |",
                lazy_rows / rate,
                writes / rate
            );
        }
    }
}
