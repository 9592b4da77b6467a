//! One step of `scripts/bench`, as stored in `benches/results/<date>/NN-name.json`:
//! what was offered and achieved, latencies, the CPU seconds of each process of
//! the system under test over the step's window, and the store writes it cost.
//! Written by `benchstep` (load steps) and `aggbench` (the aggregator alone), read
//! by `plot`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Exact {
    pub lost: i64,
    pub double_counted: i64,
}

/// Consumer lag over a load: bounded (slope near 0) means the pipeline kept up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Lag {
    /// Highest lag seen during the load, in messages.
    pub max: f64,
    /// Least-squares slope of the lag over the load's last `window_secs`, messages/s.
    pub slope_per_sec: f64,
    pub window_secs: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Record {
    /// What sent the load: `loadgen` or `wrk` (empty in records older than the field: loadgen).
    pub driver: String,
    /// e.g. `pipeline`, `gateway (null sink)`, `peer A: Cassandra counter`.
    pub system: String,
    /// e.g. `single`, `batch 100`, `consume`.
    pub mode: String,
    /// Events per second offered (requests/s × events per request).
    pub offered_per_sec: Option<f64>,
    /// Events per second acknowledged (load steps) or processed (aggregator).
    pub achieved_per_sec: f64,
    /// Events the step counted (acknowledged, or consumed and flushed).
    pub events: u64,
    /// Ingest latency in milliseconds.
    pub latency_ms: Option<Percentiles>,
    /// getViewsCount latency over a 1 h range in milliseconds, where the step also read.
    pub read_latency_ms: Option<Percentiles>,
    /// The same over a 30 d range.
    pub read_latency_30d_ms: Option<Percentiles>,
    /// CPU seconds per process of the system under test over the step's window.
    pub cpu_secs: BTreeMap<String, f64>,
    /// CPU seconds of processes that are not the system under test (the load generator).
    pub cpu_secs_other: BTreeMap<String, f64>,
    /// For the processes asked for (`benchstep --threads`), their CPU seconds by
    /// thread name (trailing numbers dropped: `ReadStage-3` is `ReadStage`), over
    /// the same window; `(exited)` is the time of threads that ended within it.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub cpu_secs_threads: BTreeMap<String, BTreeMap<String, f64>>,
    /// The largest resident set of each process sampled over the window, in
    /// bytes (`VmRSS`, read with the CPU).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub rss_max_bytes: BTreeMap<String, u64>,
    /// Wall seconds of the window the CPU figures cover.
    pub window_secs: f64,
    /// Consumer lag during the load, where the step sampled it.
    pub lag: Option<Lag>,
    pub db_writes: Option<u64>,
    pub db_reads: Option<u64>,
    pub exactness: Option<Exact>,
    pub notes: String,
    /// The load generator's own report, verbatim.
    pub loadgen: Option<serde_json::Value>,
}

impl Record {
    /// CPU seconds of the system under test per 1,000 events.
    pub fn cpu_per_1k(&self) -> Option<f64> {
        let cpu: f64 = self.cpu_secs.values().sum();
        (self.events > 0 && !self.cpu_secs.is_empty()).then(|| cpu * 1000.0 / self.events as f64)
    }

    pub fn writes_per_event(&self) -> Option<f64> {
        let w = self.db_writes?;
        (self.events > 0).then(|| w as f64 / self.events as f64)
    }

    /// The load driver's name: `loadgen` for load steps recorded before drivers
    /// were named, `–` for steps without one (the aggregator bench).
    pub fn driver(&self) -> &str {
        match self.driver.as_str() {
            "" if self.cpu_secs_other.contains_key("loadgen") => "loadgen",
            "" => "–",
            d => d,
        }
    }

    /// CPU seconds the load driver spent per 1,000 events, to compare with the system's.
    pub fn driver_cpu_per_1k(&self) -> Option<f64> {
        let cpu = self.cpu_secs_other.get(self.driver()).copied()?;
        (self.events > 0).then(|| cpu * 1000.0 / self.events as f64)
    }

    /// A short name for plots and tables: system and mode.
    pub fn label(&self) -> String {
        if self.mode.is_empty() { self.system.clone() } else { format!("{} / {}", self.system, self.mode) }
    }
}

/// CPU ticks (user + system, all threads) a process has used so far, from
/// `/proc/<pid>/stat`; `None` when the process is gone.
pub fn proc_ticks(pid: u32) -> Option<u64> {
    stat_ticks(std::path::Path::new(&format!("/proc/{pid}/stat")))
}

/// A process's resident set in bytes (`VmRSS` of `/proc/PID/status`).
pub fn proc_rss(pid: u32) -> Option<u64> {
    rss_of(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

fn rss_of(status: &str) -> Option<u64> {
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().strip_suffix("kB")?.trim();
    Some(kb.parse::<u64>().ok()? * 1024)
}

/// utime + stime of a `/proc/…/stat` file (a process's or one thread's).
fn stat_ticks(path: &std::path::Path) -> Option<u64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of proc(5); `rest` starts at field 3.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Each live thread of `pid`: its id, its pool name (the thread's name with its
/// trailing number dropped: `ReadStage-12`, `GC Thread#3`: a pool is one name)
/// and its CPU ticks. Empty if the process is gone.
pub fn thread_ticks(pid: u32) -> BTreeMap<u32, (String, u64)> {
    let mut threads = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return threads };
    for task in tasks.flatten() {
        let path = task.path();
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else { continue };
        let (Ok(comm), Some(ticks)) = (std::fs::read_to_string(path.join("comm")), stat_ticks(&path.join("stat")))
        else {
            continue; // ended between the listing and the read
        };
        threads.insert(tid, (thread_pool(comm.trim()).to_owned(), ticks));
    }
    threads
}

/// CPU ticks by pool name between two `thread_ticks` snapshots of one process
/// whose own ticks grew by `process` meanwhile. Each thread's ticks go to the
/// name it has at the end: a JVM's shared pool workers (Cassandra's SEP) take the
/// name of the stage they run at the moment, so only their sum over those names
/// means anything. A thread born in between counts whole; what threads that
/// ended in between spent is `(exited)`.
pub fn thread_deltas(
    before: &BTreeMap<u32, (String, u64)>,
    after: &BTreeMap<u32, (String, u64)>,
    process: u64,
) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for (tid, (name, ticks)) in after {
        let d = ticks.saturating_sub(before.get(tid).map_or(0, |(_, t)| *t));
        if d > 0 {
            *out.entry(name.clone()).or_insert(0) += d;
        }
    }
    let named: u64 = out.values().sum();
    if process > named {
        out.insert("(exited)".to_owned(), process - named);
    }
    out
}

/// A thread's name without its number within a pool.
fn thread_pool(name: &str) -> &str {
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit());
    match base.trim_end_matches(['-', '#', ':', ' ']) {
        "" => name,
        b => b,
    }
}

/// Sum of every series of `name` in a Prometheus text page (labels ignored).
pub fn metric_sum(page: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in page.lines() {
        let Some(rest) = line.strip_prefix(name) else { continue };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{proc_rss, rss_of, thread_deltas, thread_pool, thread_ticks};

    #[test]
    fn rss_is_read_in_bytes() {
        assert_eq!(rss_of("Name:\tx\nVmHWM:\t  900 kB\nVmRSS:\t  812 kB\n"), Some(812 * 1024));
        assert_eq!(rss_of("Name:\tkthreadd\n"), None, "a kernel thread has no VmRSS");
        assert!(proc_rss(std::process::id()).is_some_and(|b| b > 1024 * 1024), "this test's own process");
    }

    #[test]
    fn a_pool_is_one_name() {
        assert_eq!(thread_pool("ReadStage-12"), "ReadStage");
        assert_eq!(thread_pool("GC Thread#3"), "GC Thread");
        assert_eq!(thread_pool("C2 CompilerThre"), "C2 CompilerThre");
        assert_eq!(thread_pool("G1 Conc#0"), "G1 Conc");
        assert_eq!(thread_pool("ScheduledTasks:1"), "ScheduledTasks");
        assert_eq!(thread_pool("tokio-runtime-w"), "tokio-runtime-w");
        assert_eq!(thread_pool("42"), "42");
    }

    #[test]
    fn deltas_by_thread_under_its_last_name_and_what_exited_threads_took() {
        let map = |v: &[(u32, &str, u64)]| {
            v.iter().map(|(id, n, t)| (*id, ((*n).to_owned(), *t))).collect::<BTreeMap<_, _>>()
        };
        // Thread 1 ran 10 ticks as a ReadStage worker, then 20 more and now runs
        // the MutationStage (one pool worker, renamed); 2 ran 60; 3 ended; 4 is new.
        let before = map(&[(1, "ReadStage", 100), (2, "Native-Transport", 50), (3, "Gone", 30)]);
        let after = map(&[(1, "MutationStage", 120), (2, "Native-Transport", 110), (4, "New", 5)]);
        let d = thread_deltas(&before, &after, 95);
        let want: BTreeMap<String, u64> =
            [("MutationStage", 20), ("Native-Transport", 60), ("New", 5), ("(exited)", 10)]
                .iter()
                .map(|(k, t)| ((*k).to_owned(), *t))
                .collect();
        assert_eq!(d, want);
    }

    #[test]
    fn this_process_has_named_threads() {
        // The name is set by the new thread itself: wait until it runs.
        let (started, running) = std::sync::mpsc::channel();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let t = std::thread::Builder::new()
            .name("probe-7".into())
            .spawn(move || {
                started.send(()).expect("send");
                stopped.recv().ok();
            })
            .expect("spawn");
        running.recv().expect("started");
        let threads = thread_ticks(std::process::id());
        assert!(threads.values().any(|(name, _)| name == "probe"), "{threads:?}");
        drop(stop);
        t.join().expect("join");
    }
}
