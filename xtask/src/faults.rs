//! `cargo xtask faults` (`scripts/faults`): the fault suite of issue 11, R1–R7 and
//! backpressure, each under sustained load from `loadgen`, whose ledger decides
//! every outcome: events sent, acknowledged, counted, lost, double-counted.
//!
//! It runs on a stack of its own (`VCOUNT_HOME` defaults to `.local/faults` and
//! every port to the usual one plus 20000), because it kills and restarts Kafka
//! and Cassandra; it never signals a server it did not start (the stack's pid
//! files). Each scenario gets fresh topics, keyspace and consumer group, starts
//! the three release binaries as child processes, runs `loadgen` against them,
//! strikes while the load runs, and records:
//!
//! - from `loadgen`'s JSON report: events sent, acknowledged (2xx), unconfirmed
//!   (a request failed without saying the events were not written: counting them
//!   or not is exact), counted, lost (acknowledged but not counted) and doubled
//!   (counted beyond acknowledged plus unconfirmed);
//! - recovery: from the end of the fault until what it says (the aggregators have
//!   committed everything in the log at that moment, or the gateway accepts again);
//! - what proves the fault hit the case it names (in the notes): in-doubt flushes
//!   completed at their fence, refused P5s, statuses seen during an outage,
//!   committed offsets frozen while Cassandra was down, exit codes, memory.
//!
//! Results go to `target/faults/<time>/` (report.md, report.json, every log), and
//! the table is printed. Exit 1 if any scenario lost or doubled an event or broke
//! its own promise.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, TopicPartitionList};
use rustix::process::Signal;

use crate::stack::Stack;
use crate::{Reported, Server, Which, process, ready};

/// The scenarios, in the order they run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// SIGKILL the aggregator five times under load.
    R1,
    /// SIGKILL the gateway under load, restart it.
    R2,
    /// Restart the Kafka broker under load.
    R3,
    /// Stop Cassandra for 60 s under load.
    R4,
    /// Aggregators join and leave under load: 1 → 3 → 1.
    R5,
    /// SIGTERM every service under load, then start them again.
    R6,
    /// SIGSTOP a live aggregator past its session timeout, then SIGCONT it.
    R7,
    /// Twice the sustainable rate (measured first, closed loop).
    Backpressure,
}

impl Scenario {
    pub const ALL: [Scenario; 8] = [
        Scenario::R1,
        Scenario::R2,
        Scenario::R3,
        Scenario::R4,
        Scenario::R5,
        Scenario::R6,
        Scenario::R7,
        Scenario::Backpressure,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::R1 => "r1",
            Scenario::R2 => "r2",
            Scenario::R3 => "r3",
            Scenario::R4 => "r4",
            Scenario::R5 => "r5",
            Scenario::R6 => "r6",
            Scenario::R7 => "r7",
            Scenario::Backpressure => "backpressure",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Scenario::R1 => "R1 SIGKILL the aggregator 5× under load",
            Scenario::R2 => "R2 SIGKILL the gateway under load",
            Scenario::R3 => "R3 restart the Kafka broker under load",
            Scenario::R4 => "R4 Cassandra down 60 s under load",
            Scenario::R5 => "R5 aggregators 1 → 3 → 1 under load",
            Scenario::R6 => "R6 SIGTERM every service under load",
            Scenario::R7 => "R7 SIGSTOP/SIGCONT a live owner",
            Scenario::Backpressure => "Backpressure: 2× the sustainable rate",
        }
    }
}

/// `xtask faults` options.
#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    /// Scenarios to run (default: all, in order).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Scenario>,
    /// Events per second of the load (single events through the client library).
    #[arg(long, default_value_t = 800.0)]
    pub rate: f64,
    /// Seconds of load per scenario (the faults are placed inside it).
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// R4: seconds Cassandra stays down.
    #[arg(long, default_value_t = 60)]
    pub cassandra_down: u64,
    /// Leave the stack running afterwards.
    #[arg(long)]
    pub keep_stack: bool,
    /// Run the dev-profile binaries (what `cargo build --workspace` already made;
    /// CI's fast subset) instead of building release ones. Rates are lower.
    #[arg(long)]
    pub debug: bool,
}

/// The release binaries the suite runs.
struct Bins {
    aggregator: PathBuf,
    gateway: PathBuf,
    query: PathBuf,
    loadgen: PathBuf,
}

/// `cargo build` (release unless `debug`) of the services and the load generator;
/// where cargo put them.
fn build(root: &Path, debug: bool) -> anyhow::Result<Bins> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let names = ["aggregator", "ingest-gateway", "query-service", "loadgen"];
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).args(["build", "--message-format=json-render-diagnostics"]);
    if !debug {
        cmd.arg("--release");
    }
    for n in names {
        cmd.args(["--bin", n]);
    }
    let mut child = cmd.stdout(Stdio::piped()).spawn().context("running cargo build")?;
    let mut bins = BTreeMap::new();
    for line in BufReader::new(child.stdout.take().context("cargo's stdout")?).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line?) else { continue };
        if msg["reason"] == "compiler-artifact"
            && let (Some(name), Some(exe)) = (msg["target"]["name"].as_str(), msg["executable"].as_str())
        {
            bins.insert(name.to_string(), PathBuf::from(exe));
        }
    }
    anyhow::ensure!(child.wait()?.success(), "cargo build --release failed");
    let mut get = |n: &str| bins.remove(n).with_context(|| format!("cargo reported no executable for {n}"));
    Ok(Bins {
        aggregator: get("aggregator")?,
        gateway: get("ingest-gateway")?,
        query: get("query-service")?,
        loadgen: get("loadgen")?,
    })
}

const GATEWAY_PORT: u16 = 28180;
/// The gateway's admin listener (`/metrics`, `/readyz`).
const GATEWAY_ADMIN_PORT: u16 = 28190;
/// The query service's admin listener.
const QUERY_ADMIN_PORT: u16 = 28191;
const QUERY_PORT: u16 = 28181;
const AGGREGATOR_PORT: u16 = 28182;
const PARTITIONS: i32 = 6;
const SESSION_TIMEOUT_MS: u64 = 6000;

/// One row of the reliability table.
#[derive(Debug, Default, serde::Serialize)]
struct Row {
    scenario: String,
    sent: u64,
    acknowledged: u64,
    unconfirmed: u64,
    unconfirmed_counted: i64,
    counted: i64,
    lost: i64,
    doubled: i64,
    /// Seconds from the end of the fault to `recovered`.
    recovery_secs: Option<f64>,
    recovered: String,
    notes: Vec<String>,
    /// The scenario's own promise held (besides exactness).
    promise_kept: bool,
    /// What the load generator saw fail, by kind.
    errors: BTreeMap<String, u64>,
}

impl Row {
    fn exact(&self) -> bool {
        self.lost == 0 && self.doubled == 0
    }
}

/// A service process of a scenario.
struct Proc {
    child: Child,
    log: PathBuf,
    /// Where it serves `/metrics` and `/readyz`.
    port: u16,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: Signal) {
        process::signal(self.pid(), sig);
    }

    /// SIGTERM; returns (seconds to exit, exit 0) or None past `grace` (then SIGKILL).
    fn terminate(&mut self, grace: Duration) -> Option<(f64, bool)> {
        let t0 = Instant::now();
        self.signal(Signal::TERM);
        while t0.elapsed() < grace {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some((t0.elapsed().as_secs_f64(), status.success()));
            }
            sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// Resident memory of `pid` in MiB, from /proc.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// One scenario's world: its names, its processes, its clients.
struct World<'a> {
    stack: &'a Stack,
    bins: &'a Bins,
    dir: PathBuf,
    prefix: String,
    keyspace: String,
    group: String,
    gateway: Option<Proc>,
    query: Option<Proc>,
    aggregators: Vec<Option<Proc>>,
    starts: usize,
    /// The gateway's `http.max_in_flight`.
    gateway_max_in_flight: usize,
    /// The load generator's producer API key, and its SHA-256 for the gateway.
    api_key: String,
    api_key_sha256: String,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

const SECRET: &str = "the fault suite's sign-in secret, 32+ bytes";

impl<'a> World<'a> {
    fn new(stack: &'a Stack, bins: &'a Bins, dir: &Path, scenario: Scenario) -> anyhow::Result<Self> {
        let tag =
            format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() % 0xffffff);
        let dir = dir.join(scenario.name());
        fs::create_dir_all(&dir)?;
        let mut w = Self {
            stack,
            bins,
            prefix: format!("f-{}-{tag}.", scenario.name()),
            keyspace: format!("f_{}_{tag}", scenario.name()),
            group: format!("f-{}-{tag}-aggregator", scenario.name()),
            dir,
            gateway: None,
            query: None,
            aggregators: Vec::new(),
            starts: 0,
            gateway_max_in_flight: 1024,
            api_key: uuid_like(),
            api_key_sha256: String::new(),
            rt: tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?,
            http: reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?,
        };
        w.api_key_sha256 = sha256_hex(&w.api_key);
        Ok(w)
    }

    fn kafka(&self) -> String {
        ready::loopback(self.stack.port(Server::Kafka)).to_string()
    }

    fn cassandra(&self) -> String {
        ready::loopback(self.stack.port(Server::Cassandra)).to_string()
    }

    fn events_topic(&self) -> String {
        format!("{}video-events", self.prefix)
    }

    fn env(&self, service: &str, port: u16) -> Vec<(String, String)> {
        let listen = format!("127.0.0.1:{port}");
        let mut env: Vec<(&str, String)> = vec![("NO_COLOR", "1".into())];
        match service {
            "aggregator" => env.extend([
                ("AGGREGATOR__HTTP__LISTEN", listen),
                ("AGGREGATOR__KAFKA__BROKERS", self.kafka()),
                ("AGGREGATOR__KAFKA__TOPIC_PREFIX", self.prefix.clone()),
                ("AGGREGATOR__KAFKA__PARTITIONS", PARTITIONS.to_string()),
                ("AGGREGATOR__CONSUMER__GROUP_ID", self.group.clone()),
                ("AGGREGATOR__CONSUMER__SESSION_TIMEOUT_MS", SESSION_TIMEOUT_MS.to_string()),
                ("AGGREGATOR__CASSANDRA__NODES", self.cassandra()),
                ("AGGREGATOR__CASSANDRA__KEYSPACE", self.keyspace.clone()),
                ("AGGREGATOR__FLUSH__INTERVAL_MS", "1000".into()),
                // A minute's tail, not the default four: "recovered" waits for the
                // commit to reach the log's end, which the tail delays by design,
                // and the figures stay comparable with the suite's earlier runs
                // (README, Reliability). The protocol is the same for any tail.
                ("AGGREGATOR__FLUSH__MAX_AGE_MS", "60000".into()),
            ]),
            "gateway" => env.extend([
                ("GATEWAY__HTTP__LISTEN", listen),
                ("GATEWAY__HTTP__MAX_IN_FLIGHT", self.gateway_max_in_flight.to_string()),
                ("GATEWAY__ADMIN__LISTEN", format!("127.0.0.1:{GATEWAY_ADMIN_PORT}")),
                (
                    "GATEWAY__PRODUCERS__KEYS",
                    format!(r#"[{{name="faults",sha256="{}",per_second=0,burst=0}}]"#, self.api_key_sha256),
                ),
                ("GATEWAY__KAFKA__BROKERS", self.kafka()),
                ("GATEWAY__KAFKA__TOPIC_PREFIX", self.prefix.clone()),
                ("GATEWAY__KAFKA__PARTITIONS", PARTITIONS.to_string()),
                ("GATEWAY__AUTH__JWT_SECRET", SECRET.into()),
            ]),
            _ => env.extend([
                ("QUERY__HTTP__LISTEN", listen),
                ("QUERY__ADMIN__LISTEN", format!("127.0.0.1:{QUERY_ADMIN_PORT}")),
                ("QUERY__CASSANDRA__NODES", self.cassandra()),
                ("QUERY__CASSANDRA__KEYSPACE", self.keyspace.clone()),
                ("QUERY__KAFKA__BROKERS", self.kafka()),
                ("QUERY__KAFKA__TOPIC_PREFIX", self.prefix.clone()),
                ("QUERY__KAFKA__PARTITIONS", PARTITIONS.to_string()),
                ("QUERY__AUTH__JWT_SECRET", SECRET.into()),
            ]),
        }
        env.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// Starts `service` on `port` and waits for its /readyz.
    fn spawn(&mut self, service: &str, port: u16) -> anyhow::Result<Proc> {
        anyhow::ensure!(!ready::port_open(port), "port {port} is taken; the fault suite needs 28180-28190");
        let bin = match service {
            "aggregator" => &self.bins.aggregator,
            "gateway" => &self.bins.gateway,
            _ => &self.bins.query,
        };
        self.starts += 1;
        let log = self.dir.join(format!("{service}-{port}-{}.log", self.starts));
        let out = fs::File::create(&log)?;
        let child = Command::new(bin)
            .envs(self.env(service, port))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {service}"))?;
        let port = match service {
            "gateway" => GATEWAY_ADMIN_PORT,
            "aggregator" => port,
            _ => QUERY_ADMIN_PORT,
        };
        let mut p = Proc { child, log, port };
        let deadline = Instant::now() + Duration::from_secs(90);
        let url = format!("http://127.0.0.1:{port}");
        while !ready::http_ready(&self.rt, &self.http, &url) {
            if !p.alive() || Instant::now() > deadline {
                eprint!("{}", process::tail(&p.log, 20));
                bail!("{service} did not become ready on {port}; log {}", p.log.display());
            }
            sleep(Duration::from_millis(200));
        }
        Ok(p)
    }

    fn start_aggregator(&mut self, slot: usize) -> anyhow::Result<()> {
        while self.aggregators.len() <= slot {
            self.aggregators.push(None);
        }
        let p = self.spawn("aggregator", AGGREGATOR_PORT + slot as u16)?;
        self.aggregators[slot] = Some(p);
        Ok(())
    }

    /// The aggregator first (it creates the topics and the schema), then the rest.
    fn start_all(&mut self, aggregators: usize) -> anyhow::Result<()> {
        for i in 0..aggregators {
            self.start_aggregator(i)?;
        }
        self.gateway = Some(self.spawn("gateway", GATEWAY_PORT)?);
        self.query = Some(self.spawn("query-service", QUERY_PORT)?);
        Ok(())
    }

    fn stop_all(&mut self) {
        for p in self.aggregators.iter_mut().flatten().chain(self.gateway.iter_mut()).chain(self.query.iter_mut()) {
            if p.alive() {
                p.terminate(Duration::from_secs(30));
            }
        }
    }

    /// A metric of the aggregator in `slot`, summed over label sets (0 if absent).
    fn metric(&self, slot: usize, name: &str) -> f64 {
        let Some(Some(p)) = self.aggregators.get(slot) else { return 0.0 };
        self.metric_at(p.port, name)
    }

    /// A metric of the service on `port`, summed over label sets (0 if absent).
    fn metric_at(&self, port: u16, name: &str) -> f64 {
        let url = format!("http://127.0.0.1:{port}/metrics");
        let text = self.rt.block_on(async {
            match self.http.get(url).send().await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            }
        });
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Starts `loadgen` for `seconds` at `rate` (extra flags appended).
    fn start_load(&self, rate: f64, seconds: u64, extra: &[&str]) -> anyhow::Result<(Child, PathBuf)> {
        let json = self.dir.join(format!("loadgen-{}.json", self.starts));
        let log = self.dir.join(format!("loadgen-{}.log", self.starts));
        let out = fs::File::create(&log)?;
        let mut args: Vec<String> = [
            "--gateway",
            &format!("http://127.0.0.1:{GATEWAY_PORT}"),
            "--query",
            &format!("http://127.0.0.1:{QUERY_PORT}"),
            "--mode",
            "single",
            "--target-kind",
            "events",
            "--duration",
            &seconds.to_string(),
            "--warmup",
            "0",
            "--videos",
            "2000",
            "--spread-secs",
            "3600",
            "--freshness-ms",
            "0",
            "--drain-timeout",
            "300",
            "--request-timeout-ms",
            "5000",
            "--max-attempts",
            "6",
            "--json",
            &json.display().to_string(),
            "--api-key",
            &self.api_key,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if !extra.contains(&"--closed-loop") {
            args.extend(["--rate".to_string(), rate.to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(&self.bins.loadgen)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting loadgen")?;
        Ok((child, json))
    }

    /// Waits for `loadgen` and reads its report into `row`.
    fn finish_load(&self, mut child: Child, json: &Path, row: &mut Row) -> anyhow::Result<()> {
        let status = child.wait()?;
        let text = fs::read_to_string(json)
            .with_context(|| format!("loadgen wrote no report ({status}); see {}", self.dir.display()))?;
        let r: serde_json::Value = serde_json::from_str(&text)?;
        let n = |v: &serde_json::Value| v.as_i64().unwrap_or(0);
        row.sent = n(&r["events_sent"]) as u64;
        row.acknowledged = n(&r["events_acked"]) as u64;
        row.unconfirmed = n(&r["events_unconfirmed"]) as u64;
        let e = &r["exactness"];
        row.counted = n(&e["counted_events"]);
        row.lost = n(&e["lost"]);
        row.doubled = n(&e["double_counted"]);
        row.unconfirmed_counted = n(&e["unconfirmed_counted"]);
        for c in e["ranges"].as_array().into_iter().flatten() {
            row.lost += n(&c["lost"]);
            row.doubled += n(&c["double_counted"]);
        }
        if let Some(errors) = r["errors"].as_object() {
            row.errors = errors.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect();
        }
        Ok(())
    }

    /// Committed offsets of the aggregators' group and the log's end, per partition.
    fn offsets(&self) -> anyhow::Result<Vec<(i64, i64)>> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.kafka())
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .create()?;
        let topic = self.events_topic();
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition(&topic, p);
        }
        let committed = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
        let mut out = Vec::new();
        for p in 0..PARTITIONS {
            let c = committed.find_partition(&topic, p).and_then(|e| e.offset().to_raw()).unwrap_or(0).max(0);
            let (_, high) = consumer.fetch_watermarks(&topic, p, Duration::from_secs(10))?;
            out.push((c, high));
        }
        Ok(out)
    }

    /// Seconds from `since` until the aggregators have committed everything that
    /// was in the log at `since` (`None` after `limit`).
    fn caught_up(&self, since: Instant, limit: Duration) -> Option<f64> {
        let target: Vec<i64> = loop {
            match self.offsets() {
                Ok(o) => break o.into_iter().map(|(_, h)| h).collect(),
                Err(_) if since.elapsed() < limit => sleep(Duration::from_millis(500)),
                Err(_) => return None,
            }
        };
        while since.elapsed() < limit {
            if let Ok(o) = self.offsets()
                && o.iter().zip(&target).all(|((c, _), t)| c >= t)
            {
                return Some(since.elapsed().as_secs_f64());
            }
            sleep(Duration::from_millis(250));
        }
        None
    }

    /// Seconds from `since` until the gateway's /readyz answers 2xx.
    fn gateway_back(&self, since: Instant, limit: Duration) -> Option<f64> {
        let url = format!("http://127.0.0.1:{GATEWAY_ADMIN_PORT}");
        while since.elapsed() < limit {
            if ready::http_ready(&self.rt, &self.http, &url) {
                return Some(since.elapsed().as_secs_f64());
            }
            sleep(Duration::from_millis(100));
        }
        None
    }
}

/// Samples the largest resident memory of some processes until stopped.
struct RssWatch {
    stop: Arc<AtomicBool>,
    max_kib: Vec<Arc<AtomicU64>>,
    handle: std::thread::JoinHandle<()>,
}

impl RssWatch {
    fn start(pids: Vec<u32>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let max_kib: Vec<Arc<AtomicU64>> = pids.iter().map(|_| Arc::new(AtomicU64::new(0))).collect();
        let (s, m) = (stop.clone(), max_kib.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                for (pid, max) in pids.iter().zip(&m) {
                    if let Some(mib) = rss_mib(*pid) {
                        max.fetch_max((mib * 1024.0) as u64, Ordering::Relaxed);
                    }
                }
                sleep(Duration::from_millis(250));
            }
        });
        Self { stop, max_kib, handle }
    }

    fn finish(self) -> Vec<f64> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
        self.max_kib.iter().map(|m| m.load(Ordering::Relaxed) as f64 / 1024.0).collect()
    }
}

/// Polls `url` (a GET, or a POST of `post`) every 200 ms until stopped; tallies
/// the answers (`status_503+retry-after`, `status_500`, `connect`, `timeout`, ...)
/// and keeps the longest wait for one. A request gives up after 15 s: longer than
/// any hold the services promise.
struct Probe {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(BTreeMap<String, u64>, f64)>,
}

impl Probe {
    fn start(url: String, post: Option<String>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().expect("client");
            let mut seen = BTreeMap::new();
            let mut longest = 0.0f64;
            while !s.load(Ordering::Relaxed) {
                let t = Instant::now();
                let answer = rt.block_on(async {
                    let req = match &post {
                        Some(body) => http.post(&url).header("content-type", "application/json").body(body.clone()),
                        None => http.get(&url),
                    };
                    match req.send().await {
                        Ok(r) => {
                            let retry = if r.headers().contains_key("retry-after") { "+retry-after" } else { "" };
                            format!("status_{}{retry}", r.status().as_u16())
                        }
                        Err(e) if e.is_timeout() => "timeout".to_string(),
                        Err(e) if e.is_connect() => "connect".to_string(),
                        Err(_) => "transport".to_string(),
                    }
                });
                longest = longest.max(t.elapsed().as_secs_f64());
                *seen.entry(answer).or_insert(0) += 1;
                sleep(Duration::from_millis(200));
            }
            (seen, longest)
        });
        Self { stop, handle }
    }

    /// The answers by kind, and the longest wait in seconds.
    fn finish(self) -> (BTreeMap<String, u64>, f64) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

fn tally(seen: &BTreeMap<String, u64>) -> String {
    seen.iter().map(|(k, v)| format!("{k}×{v}")).collect::<Vec<_>>().join(", ")
}

/// Runs one scenario and returns its row.
fn run(stack: &Stack, bins: &Bins, dir: &Path, s: Scenario, opts: &Options) -> anyhow::Result<Row> {
    let mut w = World::new(stack, bins, dir, s)?;
    let mut row = Row { scenario: s.title().to_string(), promise_kept: true, ..Row::default() };
    let d = opts.duration;
    let at = |fraction: f64| Duration::from_secs_f64(d as f64 * fraction);
    let result = (|| -> anyhow::Result<()> {
        match s {
            Scenario::R1 => {
                w.start_all(1)?;
                let (load, json) = w.start_load(opts.rate, d, &[])?;
                let t0 = Instant::now();
                let mut completed = 0.0;
                let mut skipped = 0.0;
                let mut last_restart = Instant::now();
                // Events in the log the killed member had not committed: its
                // successor must fold them again, exactly once. The proof each
                // kill struck under load is that this was never zero.
                let mut uncommitted = Vec::new();
                for k in 1..=5 {
                    sleep(at(0.12 * k as f64).saturating_sub(t0.elapsed()));
                    if k > 1 {
                        completed += w.metric(0, "aggregator_fenced_flushes_total");
                        skipped += w.metric(0, "aggregator_rows_skipped_total");
                    }
                    if let Some(p) = w.aggregators[0].as_mut() {
                        p.kill();
                    }
                    let o = w.offsets()?;
                    uncommitted.push(o.iter().map(|(c, h)| h - c).sum::<i64>());
                    w.start_aggregator(0)?;
                    last_restart = Instant::now();
                }
                row.recovery_secs = w.caught_up(last_restart, Duration::from_secs(300));
                completed += w.metric(0, "aggregator_fenced_flushes_total");
                skipped += w.metric(0, "aggregator_rows_skipped_total");
                row.recovered = "last restart → committed the log end".into();
                row.notes.push(format!(
                    "5 SIGKILLs; events in the log not yet committed at each kill: {uncommitted:?}; successors completed {completed} flushes in doubt at their fence, skipping {skipped} rows already written"
                ));
                row.promise_kept &= uncommitted.iter().all(|&n| n > 0);
                w.finish_load(load, &json, &mut row)?;
            }
            Scenario::R2 => {
                w.start_all(1)?;
                let (load, json) = w.start_load(opts.rate, d, &[])?;
                sleep(at(0.2));
                // Kill again (at most four times) until a kill has landed between a
                // log write and its answer: the aggregator then drops the retried
                // repeat. (A repeat lost to the client's breaker shows up instead as
                // an unconfirmed event counted, known only at the end.)
                let mut kills = 0;
                let mut back = Vec::new();
                let dropped = loop {
                    w.gateway.as_mut().expect("gateway").kill();
                    kills += 1;
                    sleep(Duration::from_secs(2));
                    let t = Instant::now();
                    w.gateway = Some(w.spawn("gateway", GATEWAY_PORT)?);
                    back.push(w.gateway_back(t, Duration::from_secs(60)));
                    sleep(Duration::from_secs(3));
                    let dropped = w.metric(0, "aggregator_duplicates_dropped_total");
                    if dropped >= 1.0 || kills == 4 {
                        break dropped;
                    }
                };
                row.recovery_secs = back.iter().copied().try_fold(0.0f64, |m, b| b.map(|b| m.max(b)));
                row.recovered = "restart → gateway ready (slowest of the restarts)".into();
                w.finish_load(load, &json, &mut row)?;
                let refused: u64 = row
                    .errors
                    .iter()
                    .filter(|(k, _)| k.contains("connect") || k.contains("transport") || k.contains("timeout"))
                    .map(|(_, v)| v)
                    .sum();
                row.notes.push(format!(
                    "gateway SIGKILLed {kills} time(s), restarted 2 s after each; requests that gave up on connection errors: {refused}; retried repeats the aggregator dropped: {dropped}; unconfirmed events counted: {}",
                    row.unconfirmed_counted
                ));
                // The case R2 names: a kill between a log write and its answer.
                row.promise_kept &= dropped >= 1.0 || row.unconfirmed_counted > 0;
            }
            Scenario::R3 => {
                w.start_all(1)?;
                let (load, json) = w.start_load(opts.rate, d, &[])?;
                sleep(at(0.3));
                let body = format!(r#"{{"videoId":"{}","eventType":"view"}}"#, uuid_like());
                let probe = Probe::start(format!("http://127.0.0.1:{GATEWAY_PORT}/api/v1/events"), Some(body));
                stack.stop(Which::Kafka)?;
                sleep(Duration::from_secs(5));
                stack.start(Which::Kafka)?;
                let broker_back = Instant::now();
                row.recovery_secs = first_2xx(&w, broker_back, Duration::from_secs(120));
                let (seen, longest) = probe.finish();
                row.recovered = "broker ready → gateway answers 2xx".into();
                // While the broker is away, a request is held (bounded) and then
                // answered 503 with Retry-After; nothing else is acceptable.
                let honest = seen.keys().all(|k| k.starts_with("status_2") || k == "status_503+retry-after");
                row.notes.push(format!(
                    "broker stopped (SIGTERM) for 5 s; a probe POST every 200 ms saw {} (longest answer {longest:.1} s)",
                    tally(&seen)
                ));
                row.promise_kept &= honest
                    && seen.contains_key("status_503+retry-after")
                    && longest <= 12.0
                    && row.recovery_secs.is_some_and(|r| r <= 10.0);
                w.finish_load(load, &json, &mut row)?;
            }
            Scenario::R4 => {
                w.start_all(1)?;
                let (load, json) = w.start_load(opts.rate, d.max(opts.cassandra_down + 30), &[])?;
                sleep(Duration::from_secs(15));
                let agg_pid = w.aggregators[0].as_ref().expect("aggregator").pid();
                let rss_before = rss_mib(agg_pid).unwrap_or(0.0);
                let watch = RssWatch::start(vec![agg_pid]);
                let probe =
                    Probe::start(format!("http://127.0.0.1:{QUERY_PORT}/api/v1/videos/{}/views", uuid_like()), None);
                stack.stop(Which::Cassandra)?;
                sleep(Duration::from_secs(5));
                let frozen = w.offsets()?;
                sleep(Duration::from_secs(opts.cassandra_down.saturating_sub(10)));
                let still = w.offsets()?;
                sleep(Duration::from_secs(5));
                stack.start(Which::Cassandra)?;
                let back = Instant::now();
                let (answers, _) = probe.finish();
                row.recovery_secs = w.caught_up(back, Duration::from_secs(600));
                let peak = watch.finish()[0];
                row.recovered = "Cassandra ready → committed the log end".into();
                let committed_frozen = frozen.iter().zip(&still).all(|((a, _), (b, _))| a == b);
                let lag: i64 = still.iter().map(|(c, h)| h - c).sum();
                row.notes.push(format!(
                    "Cassandra stopped {} s; committed offsets frozen during the outage: {committed_frozen} (lag {lag} at its end); aggregator RSS {rss_before:.0} → peak {peak:.0} MiB; query probes saw {}",
                    opts.cassandra_down,
                    tally(&answers)
                ));
                row.promise_kept &= committed_frozen
                    && lag > 0
                    && answers.keys().any(|k| k.starts_with("status_503"))
                    && !answers.keys().any(|k| k.starts_with("status_500"));
                w.finish_load(load, &json, &mut row)?;
            }
            Scenario::R5 => {
                w.start_all(1)?;
                let (load, json) = w.start_load(opts.rate, d, &[])?;
                sleep(at(0.2));
                w.start_aggregator(1)?;
                w.start_aggregator(2)?;
                sleep(at(0.3));
                let owned: Vec<f64> = (0..3).map(|i| w.metric(i, "aggregator_assigned_partitions")).collect();
                let mut exits = Vec::new();
                for slot in [1, 2] {
                    let p = w.aggregators[slot].as_mut().expect("started");
                    exits.push(p.terminate(Duration::from_secs(60)));
                }
                let t = Instant::now();
                row.recovery_secs = w.caught_up(t, Duration::from_secs(300));
                row.recovered = "last leave → committed the log end".into();
                let clean = exits.iter().all(|e| e.is_some_and(|(_, ok)| ok));
                row.notes.push(format!(
                    "two members joined (partitions owned by the three: {owned:?}), then left with SIGTERM: {exits:?} (seconds, exit 0)"
                ));
                row.promise_kept &= clean && owned.iter().all(|&n| n >= 1.0);
                w.finish_load(load, &json, &mut row)?;
            }
            Scenario::R6 => {
                w.start_all(1)?;
                let (load, json) = w.start_load(opts.rate, d, &[])?;
                sleep(at(0.35));
                let grace = Duration::from_secs(30);
                // The aggregator first, while events still flow. Everything it
                // had consumed before the signal (its messages counter; it
                // started on empty topics) must be committed when it has exited;
                // that some of it was not yet committed at the signal proves the
                // shutdown itself flushed and committed.
                // Committed first, then consumed, then the signal at once: what was
                // consumed after the last commit is what the shutdown must commit.
                let before: i64 = w.offsets()?.iter().map(|(c, _)| c).sum();
                let consumed = w.metric(0, "aggregator_messages_total") as i64;
                let mut exits = Vec::new();
                let agg = w.aggregators[0].as_mut().expect("started").terminate(grace);
                exits.push(("aggregator", agg));
                let after: i64 = w.offsets()?.iter().map(|(c, _)| c).sum();
                for which in ["gateway", "query-service"] {
                    let p = if which == "gateway" { w.gateway.as_mut() } else { w.query.as_mut() };
                    exits.push((which, p.expect("started").terminate(grace)));
                }
                sleep(Duration::from_secs(3));
                let t = Instant::now();
                w.start_all(1)?;
                row.recovery_secs = w.caught_up(t, Duration::from_secs(300));
                row.recovered = "restart → committed the log end".into();
                let clean = exits.iter().all(|(_, e)| e.is_some_and(|(_, ok)| ok));
                let said: Vec<String> = exits
                    .iter()
                    .map(|(n, e)| match e {
                        Some((secs, ok)) => {
                            format!("{n} {}{secs:.1} s", if *ok { "exit 0 in " } else { "FAILED exit in " })
                        }
                        None => format!("{n} did not exit within {} s", grace.as_secs()),
                    })
                    .collect();
                row.notes.push(format!(
                    "SIGTERM to every service: {}; the aggregator had consumed {consumed} events at the signal, {before} committed then, {after} after it exited",
                    said.join(", ")
                ));
                row.promise_kept &= clean && before < consumed && after >= consumed;
                w.finish_load(load, &json, &mut row)?;
            }
            Scenario::R7 => {
                w.start_all(2)?;
                let (load, json) = w.start_load(opts.rate, d, &[])?;
                sleep(at(0.3));
                let paused = w.aggregators[0].as_ref().expect("started");
                paused.signal(Signal::STOP);
                sleep(Duration::from_millis(SESSION_TIMEOUT_MS * 2 + 3000));
                w.aggregators[0].as_ref().expect("started").signal(Signal::CONT);
                let t = Instant::now();
                row.recovery_secs = w.caught_up(t, Duration::from_secs(300));
                row.recovered = "SIGCONT → committed the log end".into();
                let refused = w.metric(0, "aggregator_fenced_out_total");
                let completed = w.metric(1, "aggregator_fenced_flushes_total");
                row.notes.push(format!(
                    "aggregator stopped {} s (session timeout {} s); the woken owner's P5 refused {refused} times; its successor completed {completed} flushes in doubt",
                    (SESSION_TIMEOUT_MS * 2 + 3000) / 1000,
                    SESSION_TIMEOUT_MS / 1000
                ));
                row.promise_kept &= refused + completed >= 1.0;
                w.finish_load(load, &json, &mut row)?;
            }
            Scenario::Backpressure => {
                // A gateway that serves at most 128 requests at once, offered 512
                // at a time: what it cannot take it must shed, not queue.
                w.gateway_max_in_flight = 128;
                w.start_all(1)?;
                // The sustainable rate: what the gateway answers, closed loop.
                let (probe, probe_json) = w.start_load(0.0, 10, &["--closed-loop", "--connections", "64"])?;
                let mut measured = Row::default();
                w.finish_load(probe, &probe_json, &mut measured)?;
                let sustainable = measured.acknowledged as f64 / 10.0;
                let rate = (2.0 * sustainable).max(1.0);
                let gw_pid = w.gateway.as_ref().expect("gateway").pid();
                let watch = RssWatch::start(vec![gw_pid]);
                let (load, json) = w.start_load(rate, d.min(30), &["--connections", "512"])?;
                w.finish_load(load, &json, &mut row)?;
                let t = Instant::now();
                let peak = watch.finish()[0];
                row.recovery_secs = w.caught_up(t, Duration::from_secs(600));
                row.recovered = "load end → committed the log end".into();
                let gave_up: u64 =
                    row.errors.iter().filter(|(k, _)| k.contains("429") || k.contains("503")).map(|(_, v)| v).sum();
                let shed = w.metric_at(GATEWAY_ADMIN_PORT, "http_requests_shed_total");
                row.notes.push(format!(
                    "sustainable {sustainable:.0} events/s (closed loop, 64 connections); offered {rate:.0}/s with up to 512 requests in flight to a gateway serving 128 at once; requests shed (503 + Retry-After) {shed}, events given up after retries on 429/503 {gave_up}; gateway RSS peak {peak:.0} MiB"
                ));
                row.promise_kept &= shed >= 1.0;
                // Both loads' ledgers were checked; the row adds them up.
                row.sent += measured.sent;
                row.acknowledged += measured.acknowledged;
                row.unconfirmed += measured.unconfirmed;
                row.unconfirmed_counted += measured.unconfirmed_counted;
                row.counted += measured.counted;
                row.lost += measured.lost;
                row.doubled += measured.doubled;
            }
        }
        Ok(())
    })();
    w.stop_all();
    if let Err(e) = result {
        row.promise_kept = false;
        row.notes.push(format!("scenario failed: {e:#}"));
    }
    Ok(row)
}

/// Seconds from `since` until a POST of a view is answered 2xx.
fn first_2xx(w: &World<'_>, since: Instant, limit: Duration) -> Option<f64> {
    let url = format!("http://127.0.0.1:{GATEWAY_PORT}/api/v1/videos/id/{}/view", uuid_like());
    while since.elapsed() < limit {
        let ok = w.rt.block_on(async { w.http.post(&url).send().await.is_ok_and(|r| r.status().is_success()) });
        if ok {
            return Some(since.elapsed().as_secs_f64());
        }
        sleep(Duration::from_millis(100));
    }
    None
}

/// Lower-case hex SHA-256 of `text` (how the gateway holds API keys).
fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A random UUID in text, for probe videos (no uuid crate here).
fn uuid_like() -> String {
    let mut b = [0u8; 16];
    let _ = std::io::Read::read_exact(&mut fs::File::open("/dev/urandom").expect("urandom"), &mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| scenario | sent | acknowledged | counted | unconfirmed (counted) | lost | doubled | recovery | held |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |\n",
    );
    for r in rows {
        let recovery = match r.recovery_secs {
            Some(secs) => format!("{secs:.1} s ({})", r.recovered),
            None => format!("not within the limit ({})", r.recovered),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} ({}) | {} | {} | {recovery} | {} |\n",
            r.scenario,
            r.sent,
            r.acknowledged,
            r.counted,
            r.unconfirmed,
            r.unconfirmed_counted,
            r.lost,
            r.doubled,
            if r.exact() && r.promise_kept { "yes" } else { "NO" }
        ));
    }
    s.push('\n');
    for r in rows {
        s.push_str(&format!("- **{}**: {}", r.scenario, r.notes.join("; ")));
        if !r.errors.is_empty() {
            s.push_str(&format!("; load generator failures by kind: {}", tally(&r.errors)));
        }
        s.push('\n');
    }
    s
}

/// The suite's own stack: `.local/faults` and ports 20000 above the usual ones
/// (+10000 collided with a CI run's stack on the shared machine),
/// unless the caller chose a home.
pub fn private(mut settings: crate::StackSettings, root: &Path) -> crate::StackSettings {
    if settings.home.is_none() {
        settings.home = Some(root.join(".local").join("faults"));
        settings.kafka_port += 20000;
        settings.kafka_controller_port += 20000;
        settings.cassandra_port += 20000;
        settings.cassandra_storage_port += 20000;
        settings.cassandra_ssl_storage_port += 20000;
        settings.cassandra_jmx_port += 20000;
    }
    settings
}

pub fn suite(stack: &Stack, opts: &Options) -> anyhow::Result<()> {
    let scenarios = if opts.only.is_empty() { Scenario::ALL.to_vec() } else { opts.only.clone() };
    println!("faults: building the {} binaries…", if opts.debug { "dev-profile" } else { "release" });
    let bins = build(&stack.root, opts.debug)?;
    println!(
        "faults: starting a private stack in {} (kafka :{}, cassandra :{})…",
        stack.home.display(),
        stack.port(Server::Kafka),
        stack.port(Server::Cassandra)
    );
    stack.start(Which::All)?;
    let stamp = chrono_like();
    let dir = stack.root.join("target").join("faults").join(&stamp);
    fs::create_dir_all(&dir)?;
    let mut rows = Vec::new();
    for s in scenarios {
        println!("faults: {} …", s.title());
        let t = Instant::now();
        let row = run(stack, &bins, &dir, s, opts)?;
        println!(
            "faults: {} done in {:.0} s: sent {}, acknowledged {}, counted {}, lost {}, doubled {}",
            s.title(),
            t.elapsed().as_secs_f64(),
            row.sent,
            row.acknowledged,
            row.counted,
            row.lost,
            row.doubled
        );
        rows.push(row);
        // Whatever a scenario did to the servers, the next one starts with both up.
        stack.start(Which::All)?;
    }
    if !opts.keep_stack {
        stack.stop(Which::All)?;
    }
    let report = table(&rows);
    fs::write(dir.join("report.md"), &report)?;
    fs::write(dir.join("report.json"), serde_json::to_vec_pretty(&rows)?)?;
    println!("\n{report}\nlogs and reports: {}", dir.display());
    if rows.iter().all(|r| r.exact() && r.promise_kept) { Ok(()) } else { Err(Reported(1).into()) }
}

/// `YYYYmmdd-HHMMSS` in UTC, for the report's folder (no chrono here).
fn chrono_like() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_says_held_only_when_exact_and_the_promise_held() {
        let good = Row {
            scenario: "a".into(),
            sent: 10,
            acknowledged: 9,
            counted: 9,
            promise_kept: true,
            recovery_secs: Some(1.5),
            recovered: "x".into(),
            ..Row::default()
        };
        let lost = Row { scenario: "b".into(), lost: 1, promise_kept: true, ..Row::default() };
        let broken = Row { scenario: "c".into(), promise_kept: false, ..Row::default() };
        let t = table(&[good, lost, broken]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[2].starts_with("| a | 10 | 9 | 9 |") && lines[2].ends_with("| 1.5 s (x) | yes |"),
            "{}",
            lines[2]
        );
        assert!(lines[3].ends_with("| NO |") && lines[4].ends_with("| NO |"));
    }

    #[test]
    fn the_suite_runs_on_its_own_stack_unless_told_otherwise() {
        use clap::Parser;
        let cli = crate::Cli::try_parse_from(["xtask", "faults", "--only", "r1,r7"]).unwrap();
        let crate::Command::Faults { mut settings, options } = cli.command else { panic!("not faults") };
        assert_eq!(options.only, [Scenario::R1, Scenario::R7]);
        settings.home = None; // as when VCOUNT_HOME is unset
        let s = private(settings.clone(), Path::new("/repo"));
        assert_eq!(s.home, Some(PathBuf::from("/repo/.local/faults")));
        assert_eq!((s.kafka_port, s.cassandra_port), (settings.kafka_port + 20000, settings.cassandra_port + 20000));
        let chosen = crate::StackSettings { home: Some("/elsewhere".into()), ..settings.clone() };
        assert_eq!(private(chosen, Path::new("/repo")).kafka_port, settings.kafka_port);
    }

    #[test]
    fn the_report_folder_is_named_by_utc_time() {
        let s = chrono_like();
        assert_eq!(s.len(), 15);
        assert!(s.starts_with("20") && s.as_bytes()[8] == b'-');
    }
}
