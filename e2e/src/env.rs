//! Test harness for the end-to-end suites: real Kafka and Cassandra (started by
//! `scripts/stack`), a topic prefix and keyspace per test, the gateway and query
//! service in-process, and the aggregator as a child process so it can be killed.
//!
//! Missing servers make these tests fail, never skip.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use platform::ratelimit::Rate;
use rand::Rng;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const MINUTE: i64 = 60_000;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;

pub fn brokers() -> String {
    std::env::var("VCOUNT_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into())
}

pub fn cassandra_nodes() -> String {
    std::env::var("VCOUNT_CASSANDRA_NODES").unwrap_or_else(|_| "127.0.0.1:19042".into())
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The sign-in secret the test's gateway and query service share.
pub const JWT_SECRET: &str = "the test environment's secret, 32+ bytes";

/// A token for `user`, as the query service would issue at login.
pub fn token_for(user: Uuid) -> String {
    let cfg = platform::auth::AuthConfig { jwt_secret: JWT_SECRET.into(), token_ttl_secs: 3600 };
    platform::auth::Tokens::new(&cfg).unwrap().issue(user, vec![]).unwrap()
}

/// Makes `cfg` a test gateway: both listeners on free ports, and a producer API
/// key without a rate limit (batches need a key; tests send far faster than the
/// anonymous per-IP limit allows). Returns the key, for `X-Api-Key`.
pub fn test_gateway(cfg: &mut ingest_gateway::GatewayConfig) -> String {
    cfg.http.listen = "127.0.0.1:0".into();
    cfg.admin.listen = "127.0.0.1:0".into();
    let (key, sha256) = platform::apikeys::generate();
    cfg.producers.keys =
        vec![platform::apikeys::ApiKeyConfig { name: "tests".into(), sha256, per_second: 0, burst: 0 }];
    key
}

/// A client whose every request carries `api_key`.
pub fn http_with_key(api_key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(ingest_gateway::policy::API_KEY_HEADER, api_key.parse().expect("a header value"));
    reqwest::Client::builder().default_headers(headers).timeout(Duration::from_secs(30)).build().unwrap()
}

/// One test's private corner of the shared servers.
pub struct TestEnv {
    pub name: String,
    pub topic_prefix: String,
    pub keyspace: String,
    pub partitions: i32,
    pub gateway: SocketAddr,
    /// The gateway's admin listener (`/metrics`, `/readyz`).
    pub gateway_admin: SocketAddr,
    pub query: SocketAddr,
    /// The query service's admin listener (`/metrics`, `/readyz`).
    pub query_admin: SocketAddr,
    /// Sends the gateway's producer key on every request (see [`test_gateway`]).
    pub http: reqwest::Client,
    /// A client without credentials: what an anonymous browser sends.
    pub anonymous: reqwest::Client,
    /// The test gateway's producer key.
    pub api_key: String,
    stop: CancellationToken,
    children: Vec<Child>,
    /// Where each aggregator serves /metrics.
    metrics: Vec<String>,
    /// Each aggregator's log file.
    logs: Vec<PathBuf>,
    /// The query service's configuration, for [`switch_query_service`](Self::switch_query_service).
    query_config: query_service::QueryConfig,
}

/// Builds and runs a query service until `stop`; its public and admin addresses.
async fn spawn_query_service(q: query_service::QueryConfig, stop: &CancellationToken) -> (SocketAddr, SocketAddr) {
    let query = query_service::Application::build(q).await.expect("query service starts (is Cassandra up?)");
    let addrs = (query.local_addr(), query.admin_addr());
    tokio::spawn(query.run(stop.clone()));
    addrs
}

impl TestEnv {
    /// Starts a gateway and a query service for a fresh topic prefix and keyspace.
    pub async fn start(name: &str, partitions: i32) -> TestEnv {
        Self::start_with(name, partitions, false, |_, _| {}).await
    }

    /// Same, with the query service also answering the gateway's routes (one origin).
    pub async fn start_one_origin(name: &str, partitions: i32) -> TestEnv {
        Self::start_with(name, partitions, true, |_, _| {}).await
    }

    /// Same as [`start`](Self::start), with the two in-process services' configs
    /// adjusted by `adjust` first (the aggregator's through `spawn_aggregator_with`).
    pub async fn start_configured(
        name: &str,
        partitions: i32,
        adjust: impl FnOnce(&mut ingest_gateway::GatewayConfig, &mut query_service::QueryConfig),
    ) -> TestEnv {
        Self::start_with(name, partitions, false, adjust).await
    }

    async fn start_with(
        name: &str,
        partitions: i32,
        one_origin: bool,
        adjust: impl FnOnce(&mut ingest_gateway::GatewayConfig, &mut query_service::QueryConfig),
    ) -> TestEnv {
        platform::telemetry::init_logging(&platform::telemetry::LogConfig { filter: "warn".into(), json: false });
        let tag: u32 = rand::rng().random();
        let topic_prefix = format!("t-{name}-{tag:08x}.");
        let keyspace = format!("t_{}_{tag:08x}", name.replace('-', "_"));
        let stop = CancellationToken::new();

        let mut gw = ingest_gateway::GatewayConfig::default();
        let api_key = test_gateway(&mut gw);
        gw.kafka.brokers = brokers();
        gw.kafka.topic_prefix = topic_prefix.clone();
        gw.kafka.partitions = partitions;
        gw.auth.jwt_secret = JWT_SECRET.into();
        let mut q = query_service::QueryConfig::default();
        adjust(&mut gw, &mut q);
        let gateway = ingest_gateway::Application::build(gw).await.expect("gateway starts (is Kafka up?)");
        let gateway_addr = gateway.local_addr();
        let gateway_admin = gateway.admin_addr();
        tokio::spawn(gateway.run(stop.clone()));

        q.http.listen = "127.0.0.1:0".into();
        q.admin.listen = "127.0.0.1:0".into();
        // Tests sign users in from one address faster than people do.
        let l = &mut q.limits;
        (l.login_per_ip, l.login_per_account, l.register_per_ip, l.register_per_account) =
            (Rate::UNLIMITED, Rate::UNLIMITED, Rate::UNLIMITED, Rate::UNLIMITED);
        q.cassandra.nodes = cassandra_nodes();
        q.cassandra.keyspace = keyspace.clone();
        q.auth.jwt_secret = JWT_SECRET.into();
        q.kafka.brokers = brokers();
        q.kafka.topic_prefix = topic_prefix.clone();
        q.kafka.partitions = partitions;
        if one_origin {
            q.web.gateway_url = format!("http://{gateway_addr}");
        }
        let (query_addr, query_admin) = spawn_query_service(q.clone(), &stop).await;

        TestEnv {
            name: name.to_owned(),
            topic_prefix,
            keyspace,
            partitions,
            gateway: gateway_addr,
            gateway_admin,
            query: query_addr,
            query_admin,
            http: http_with_key(&api_key),
            anonymous: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
            api_key,
            stop,
            children: Vec::new(),
            metrics: Vec::new(),
            logs: Vec::new(),
            query_config: q,
        }
    }

    /// Starts another query service, with this test's configuration adjusted by
    /// `adjust`, and sends every later query to it (the first one keeps running
    /// until the test ends): what restarting the query services with a new setting
    /// does.
    pub async fn switch_query_service(&mut self, adjust: impl FnOnce(&mut query_service::QueryConfig)) {
        let mut q = self.query_config.clone();
        adjust(&mut q);
        (self.query, self.query_admin) = spawn_query_service(q.clone(), &self.stop).await;
        self.query_config = q;
    }

    /// Environment for an aggregator process of this test.
    pub fn aggregator_env(&self) -> Vec<(String, String)> {
        [
            ("AGGREGATOR__KAFKA__BROKERS", brokers()),
            ("AGGREGATOR__KAFKA__TOPIC_PREFIX", self.topic_prefix.clone()),
            ("AGGREGATOR__KAFKA__PARTITIONS", self.partitions.to_string()),
            ("AGGREGATOR__CONSUMER__GROUP_ID", format!("{}aggregator", self.topic_prefix)),
            ("AGGREGATOR__CONSUMER__SESSION_TIMEOUT_MS", "6000".into()),
            ("AGGREGATOR__CASSANDRA__NODES", cassandra_nodes()),
            ("AGGREGATOR__CASSANDRA__KEYSPACE", self.keyspace.clone()),
            ("AGGREGATOR__FLUSH__INTERVAL_MS", "300".into()),
            // Rounds on a test's time scale: a series with 20 events pending is
            // written after 300 ms, any other after 2 s, so series of one partition
            // are written at different offsets and the commit trails the oldest.
            ("AGGREGATOR__FLUSH__TICK_MS", "100".into()),
            ("AGGREGATOR__FLUSH__MIN_AGE_MS", "300".into()),
            ("AGGREGATOR__FLUSH__HOT_EVENTS", "20".into()),
            ("AGGREGATOR__FLUSH__MAX_AGE_MS", "2000".into()),
            ("AGGREGATOR__FLUSH__RETRY_MAX_MS", "1000".into()),
            ("AGGREGATOR__HTTP__LISTEN", "127.0.0.1:0".into()),
            ("AGGREGATOR__LOG__FILTER", "info".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// An aggregator process with this test's environment plus `extra`, its stderr
    /// in `aggregator-logs/<test>-<tag><n>.log`; returns it and the log's path.
    fn aggregator_process(&self, extra: &[(&str, &str)], tag: &str, stdout: Stdio) -> (Child, PathBuf) {
        let log_dir = crate::target_dir().join("tmp").join("aggregator-logs");
        std::fs::create_dir_all(&log_dir).unwrap();
        let log = log_dir.join(format!("{}-{tag}{}.log", self.name, self.children.len()));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(crate::aggregator_bin())
            .envs(self.aggregator_env())
            .envs(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .env("NO_COLOR", "1")
            .stdout(stdout)
            .stderr(file)
            .spawn()
            .expect("aggregator binary starts");
        (child, log)
    }

    /// Starts an aggregator process; returns its index for `kill`/`terminate`.
    pub fn spawn_aggregator(&mut self) -> usize {
        self.spawn_aggregator_with(&[])
    }

    /// Same, with extra environment (config overrides).
    pub fn spawn_aggregator_with(&mut self, extra: &[(&str, &str)]) -> usize {
        use std::io::BufRead;
        let (mut child, log) = self.aggregator_process(extra, "", Stdio::piped());
        // Its first stdout line says where /metrics is.
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().rsplit(' ').next().unwrap_or_default().to_owned();
        assert!(url.starts_with("http://"), "aggregator did not start; see {}", log.display());
        eprintln!(
            "[{}] aggregator #{} pid {} at {url}, logs in {}",
            self.name,
            self.children.len(),
            child.id(),
            log.display()
        );
        self.children.push(child);
        self.metrics.push(url);
        self.logs.push(log);
        self.children.len() - 1
    }

    /// Starts an aggregator process that may fail to start; returns its exit
    /// status and log when it exits within `timeout` (`None`: it is running).
    pub fn try_aggregator(&mut self, extra: &[(&str, &str)], timeout: Duration) -> Option<(bool, String)> {
        let (mut child, log) = self.aggregator_process(extra, "try-", Stdio::null());
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                return Some((status.success(), std::fs::read_to_string(&log).unwrap_or_default()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Aggregator `i`'s log so far.
    pub fn aggregator_log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.logs[i]).unwrap_or_default()
    }

    /// Waits until aggregator `i`'s log has `needle` at least `times` times.
    pub async fn wait_log(&self, i: usize, needle: &str, times: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.aggregator_log(i).matches(needle).count() < times {
            assert!(Instant::now() < deadline, "aggregator #{i} never logged {needle:?} {times} times");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until aggregator `i`, a successor, has found what the round in doubt
    /// of a killed owner wrote, and returns how much: series it had written whole
    /// (their floor is the round's offset: the census saw them, R2) and rows of
    /// series it had not finished (the fenced round skipped them, R5). Either
    /// proves the kill left a round in doubt with something written.
    pub async fn wait_in_doubt_landed(&self, i: usize, timeout: Duration) -> f64 {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self.aggregator_metric(i, "aggregator_census_in_doubt_series_total").await
                + self.aggregator_metric(i, "aggregator_rows_skipped_total").await;
            if found >= 1.0 {
                return found;
            }
            assert!(Instant::now() < deadline, "aggregator #{i} found nothing the round in doubt wrote");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGSTOP (`stop`) or SIGCONT aggregator `i`: a process paused past its
    /// session timeout, then woken.
    pub fn signal_aggregator(&mut self, i: usize, signal: &str) {
        let c = &mut self.children[i];
        eprintln!("[{}] SIG{signal} aggregator #{i} (pid {})", self.name, c.id());
        let ok = Command::new("kill").arg(format!("-{signal}")).arg(c.id().to_string()).status().unwrap();
        assert!(ok.success());
    }

    /// A metric of aggregator `i`, summed over the label sets whose text contains
    /// `labels` (e.g. `reason="dead_letter"`), 0 when absent.
    pub async fn aggregator_metric_where(&self, i: usize, name: &str, labels: &str) -> f64 {
        let Ok(res) = self.http.get(&self.metrics[i]).send().await else { return 0.0 };
        let text = res.text().await.unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{') && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .fold(0.0, |a, b| a + b)
    }

    /// Waits (up to `timeout`) until a metric of aggregator `i` reaches `at_least`.
    pub async fn wait_metric(&self, i: usize, name: &str, labels: &str, at_least: f64, timeout: Duration) -> f64 {
        let deadline = Instant::now() + timeout;
        loop {
            let v = if labels.is_empty() {
                self.aggregator_metric(i, name).await
            } else {
                self.aggregator_metric_where(i, name, labels).await
            };
            if v >= at_least {
                return v;
            }
            assert!(Instant::now() < deadline, "aggregator #{i}: {name}{{{labels}}} = {v}, never reached {at_least}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The consumer group the aggregators of this test join.
    pub fn group(&self) -> String {
        format!("{}aggregator", self.topic_prefix)
    }

    pub fn events_topic(&self) -> String {
        format!("{}video-events", self.topic_prefix)
    }

    /// The operator's view of this test's partitions (`vcount-admin partitions`).
    pub async fn admin(&self) -> platform::admin::PartitionAdmin {
        let cfg = platform::cassandra::CassandraConfig { nodes: cassandra_nodes(), ..Default::default() };
        let session = platform::cassandra::connect(&cfg, Duration::from_secs(30)).await.unwrap();
        platform::admin::PartitionAdmin::new(session, &self.keyspace, &self.group(), &brokers()).unwrap()
    }

    /// SIGTERM and wait up to `deadline` for the exit; returns how long it took
    /// and whether it exited cleanly, or `None` if it was still running (then it
    /// is killed).
    pub fn terminate_within(&mut self, i: usize, deadline: Duration) -> Option<(Duration, bool)> {
        let c = &mut self.children[i];
        eprintln!("[{}] SIGTERM aggregator #{i} (pid {})", self.name, c.id());
        let started = Instant::now();
        Command::new("kill").arg("-TERM").arg(c.id().to_string()).status().unwrap();
        while started.elapsed() < deadline {
            if let Some(status) = c.try_wait().unwrap() {
                return Some((started.elapsed(), status.success()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// Where aggregator `i` serves /metrics.
    pub fn aggregator_metrics_url(&self, i: usize) -> &str {
        &self.metrics[i]
    }

    /// A metric of aggregator `i` (sum over label sets), 0 when absent.
    pub async fn aggregator_metric(&self, i: usize, name: &str) -> f64 {
        let Ok(res) = self.http.get(&self.metrics[i]).send().await else { return 0.0 };
        let text = res.text().await.unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .fold(0.0, |a, b| a + b)
    }

    /// Waits until aggregator `i` owns partitions and has flushed rows.
    pub async fn wait_active(&self, i: usize) {
        self.wait_metrics(i, &["aggregator_assigned_partitions", "aggregator_rows_written_total"]).await;
    }

    /// Waits until aggregator `i` owns partitions and has consumed messages.
    pub async fn wait_consuming(&self, i: usize) {
        self.wait_metrics(i, &["aggregator_assigned_partitions", "aggregator_messages_total"]).await;
    }

    /// Waits (up to a minute) until every named metric of aggregator `i` is at least 1.
    async fn wait_metrics(&self, i: usize, names: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut all = true;
            for name in names {
                all &= self.aggregator_metric(i, name).await >= 1.0;
            }
            if all {
                return;
            }
            assert!(Instant::now() < deadline, "aggregator #{i} never reached {names:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for aggregator `i` to exit by itself; returns whether it succeeded.
    pub fn wait_exit(&mut self, i: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.children[i].try_wait().unwrap() {
                return status.success();
            }
            assert!(Instant::now() < deadline, "aggregator #{i} did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill_aggregator(&mut self, i: usize) {
        let c = &mut self.children[i];
        eprintln!("[{}] SIGKILL aggregator #{i} (pid {})", self.name, c.id());
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// SIGTERM and wait for a graceful exit; panics if it does not exit cleanly.
    pub fn terminate_aggregator(&mut self, i: usize) {
        let c = &mut self.children[i];
        eprintln!("[{}] SIGTERM aggregator #{i} (pid {})", self.name, c.id());
        let ok = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status().unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                assert!(status.success(), "aggregator #{i} exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "aggregator #{i} did not stop within 60 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn gateway_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway)
    }

    /// On the gateway's admin listener: `/metrics`, `/readyz`.
    pub fn gateway_admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway_admin)
    }

    pub fn query_admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.query_admin)
    }

    pub fn query_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.query)
    }

    /// Posts a JSON batch; asserts every event was accepted.
    pub async fn post_batch(&self, events: &[Value]) {
        let res = self.http.post(self.gateway_url("/api/v1/events:batch")).json(&events).send().await.unwrap();
        assert_eq!(res.status(), 202, "{:?}", res.text().await);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["accepted"], events.len(), "{body}");
    }

    /// The views answer, or the status when the query service did not answer 200.
    pub async fn views(&self, video: Uuid, range: Option<(i64, i64)>) -> Result<i64, u16> {
        let mut url = self.query_url(&format!("/api/v1/videos/{video}/views"));
        if let Some((from, to)) = range {
            url = format!("{url}?from={}&to={}", rfc3339(from), rfc3339(to));
        }
        let res = self.http.get(url).send().await.map_err(|_| 0u16)?;
        if res.status() != 200 {
            return Err(res.status().as_u16());
        }
        Ok(res.json::<Value>().await.unwrap()["views"].as_i64().unwrap())
    }

    /// Polls until every video's count over every range equals the ledger, or
    /// fails after `timeout` saying what was lost and what was counted twice.
    pub async fn assert_converges(&self, ledger: &Ledger, ranges: &[Option<(i64, i64)>], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            // (video, range, answer, ledger); an answer of Err(status) is no answer yet.
            let mut diffs = Vec::new();
            for (video, _) in ledger.videos() {
                for range in ranges {
                    let want = ledger.count(video, *range);
                    let got = self.views(video, *range).await;
                    if got != Ok(want) {
                        diffs.push((video, *range, got, want));
                    }
                }
            }
            if diffs.is_empty() {
                eprintln!(
                    "[{}] exact: {} videos x {} ranges match the ledger ({} events)",
                    self.name,
                    ledger.videos().count(),
                    ranges.len(),
                    ledger.total()
                );
                return;
            }
            if Instant::now() > deadline {
                let over = diffs.iter().filter(|(_, _, got, want)| matches!(got, Ok(g) if g > want)).count();
                let under = diffs.iter().filter(|(_, _, got, want)| matches!(got, Ok(g) if g < want)).count();
                let listing: Vec<String> = diffs
                    .iter()
                    .take(20)
                    .map(|(v, r, got, want)| format!("video {v} range {r:?}: answer {got:?}, ledger {want}"))
                    .collect();
                panic!(
                    "counts did not converge within {timeout:?}: {} mismatches ({under} short, {over} double-counted):\n{}",
                    diffs.len(),
                    listing.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl TestEnv {
    /// Checks the rows a ledger range rarely touches: every minute row. Windows
    /// `[h:30, h+1:30)` contain no whole hour, so they are answered from minute rows
    /// only; tiled over the whole spread of the ledger, each must equal the ledger.
    /// Minute rows are mostly written once, so a lost write there stays visible,
    /// where hour, day and all-time rows are rewritten (and healed) by later flushes.
    ///
    /// A window above the ledger fails at once. One below it may be a read that had
    /// the rows alone (its owner busy, timed out or backing off) while a round
    /// was still to land: allowed only if such reads happened during the check
    /// (`query_owner_reads_total` other than `fresh`: a short count with every
    /// answer fresh is a bug), and then only until the window matches, within a
    /// minute (a lost write never heals: it stays short and fails).
    pub async fn assert_minute_rows_exact(&self, ledger: &Ledger) {
        let (Some(first), Some(last)) = (ledger.earliest(), ledger.latest()) else { return };
        let start = first.div_euclid(HOUR) * HOUR - 30 * MINUTE;
        let degraded_before = self.rows_alone_reads().await;
        let mut wrong = Vec::new();
        let mut short = Vec::new();
        let mut windows = 0;
        for (video, _) in ledger.videos() {
            let mut from = start;
            while from <= last {
                let range = Some((from, from + HOUR));
                let want = ledger.count(video, range);
                let got = self.views(video, range).await;
                match got {
                    Ok(g) if g == want => {}
                    Ok(g) if g > want => wrong.push(format!(
                        "video {video} minutes from {}: answer {g}, ledger {want} (counted twice)",
                        rfc3339(from)
                    )),
                    _ => short.push((video, from, want, got)),
                }
                windows += 1;
                from += HOUR;
            }
        }
        let listing = |short: &[(Uuid, i64, i64, Result<i64, u16>)]| {
            let lines = short.iter().take(20).map(|(video, from, want, got)| {
                format!("video {video} minutes from {}: answer {got:?}, ledger {want}", rfc3339(*from))
            });
            lines.collect::<Vec<_>>().join("\n")
        };
        assert!(
            wrong.is_empty(),
            "{} of {windows} minute-row windows are above the ledger:\n{}",
            wrong.len(),
            wrong.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
        );
        if !short.is_empty() {
            let degraded = self.rows_alone_reads().await - degraded_before;
            assert!(
                degraded > 0.0,
                "{} of {windows} minute-row windows below the ledger while every owner answer was fresh:\n{}",
                short.len(),
                listing(&short)
            );
            eprintln!(
                "[{}] {} of {windows} minute-row windows short at the first read, with {degraded} reads from the \
                 rows alone meanwhile: reading them again until they match\n{}",
                self.name,
                short.len(),
                listing(&short)
            );
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let mut still = Vec::new();
                for (video, from, want, _) in short {
                    let got = self.views(video, Some((from, from + HOUR))).await;
                    assert!(
                        !matches!(got, Ok(g) if g > want),
                        "video {video} minutes from {}: answer {got:?}, ledger {want} (counted twice)",
                        rfc3339(from)
                    );
                    if got != Ok(want) {
                        still.push((video, from, want, got));
                    }
                }
                short = still;
                if short.is_empty() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} of {windows} minute-row windows still below the ledger after a minute (a lost write):\n{}",
                    short.len(),
                    listing(&short)
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        eprintln!("[{}] exact: {windows} minute-row windows match the ledger", self.name);
    }

    /// Reads of this process' query services that had the rows alone: every
    /// `query_owner_reads_total` outcome but `fresh`.
    async fn rows_alone_reads(&self) -> f64 {
        let text = self.http.get(self.query_admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
        text.lines()
            .filter(|l| l.starts_with("query_owner_reads_total{") && !l.contains("outcome=\"fresh\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.stop.cancel();
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // A passing test leaves nothing behind; a failing one keeps its keyspace to
        // look at (`scripts/test` drops the leftovers of earlier runs).
        if !std::thread::panicking()
            && let Err(e) = platform::cassandra::drop_keyspace_blocking(&cassandra_nodes(), &self.keyspace)
        {
            eprintln!("[{}] could not drop keyspace {}: {e}", self.name, self.keyspace);
        }
    }
}

/// What the test sent and the gateway acknowledged: the truth counts are checked against.
#[derive(Default)]
pub struct Ledger {
    events: HashMap<Uuid, Vec<i64>>,
}

impl Ledger {
    pub fn record(&mut self, video: Uuid, occurred_at_ms: i64) {
        self.events.entry(video).or_default().push(occurred_at_ms);
    }

    /// Adds another ledger's events (two loads of one test).
    pub fn merge(&mut self, other: Ledger) {
        for (video, events) in other.events {
            self.events.entry(video).or_default().extend(events);
        }
    }

    pub fn videos(&self) -> impl Iterator<Item = (Uuid, &Vec<i64>)> {
        self.events.iter().map(|(v, e)| (*v, e))
    }

    pub fn earliest(&self) -> Option<i64> {
        self.events.values().flatten().min().copied()
    }

    pub fn latest(&self) -> Option<i64> {
        self.events.values().flatten().max().copied()
    }

    pub fn total(&self) -> usize {
        self.events.values().map(Vec::len).sum()
    }

    /// Views of `video` in `[from, to)` rounded out to whole minutes, as the API
    /// answers a range whose minute rows are kept (the default retention keeps
    /// them 8 days; see `count_exact` for any other answer).
    pub fn count(&self, video: Uuid, range: Option<(i64, i64)>) -> i64 {
        match range {
            None => self.events.get(&video).map_or(0, |e| e.len() as i64),
            Some((from, to)) => self.count_exact(video, from.div_euclid(MINUTE) * MINUTE, ceil_minute(to)),
        }
    }

    /// Takes `video`'s events in `[from, to)` out (what a correction zeroed);
    /// returns how many there were.
    pub fn remove(&mut self, video: Uuid, from: i64, to: i64) -> usize {
        let Some(all) = self.events.get_mut(&video) else { return 0 };
        let before = all.len();
        all.retain(|&t| t < from || t >= to);
        before - all.len()
    }

    /// Views of `video` in exactly `[from, to)`.
    pub fn count_exact(&self, video: Uuid, from: i64, to: i64) -> i64 {
        let all = self.events.get(&video).map(Vec::as_slice).unwrap_or_default();
        all.iter().filter(|&&t| t >= from && t < to).count() as i64
    }
}

fn ceil_minute(t: i64) -> i64 {
    -(-t).div_euclid(MINUTE) * MINUTE
}

/// A view event JSON for the batch endpoint.
pub fn view(video: Uuid, at_ms: i64) -> Value {
    json!({ "videoId": video, "eventType": "view", "occurredAt": rfc3339(at_ms) })
}

/// Ranges that exercise every stitching shape: all time, ragged multi-day, a
/// single hour, sub-hour, whole days, and an open end.
pub fn interesting_ranges(now: i64) -> Vec<Option<(i64, i64)>> {
    let day0 = now.div_euclid(DAY) * DAY;
    vec![
        None,
        Some((now - 3 * DAY + 17 * MINUTE + 5_000, now - 7 * HOUR - 3 * MINUTE)),
        Some((now - 2 * DAY + 13 * MINUTE, now + MINUTE)),
        Some((day0 - 2 * DAY, day0)),
        Some((now - 5 * HOUR, now - 4 * HOUR)),
        Some((now - 50 * MINUTE, now - 10 * MINUTE + 30_000)),
        Some((day0 - DAY + 5 * HOUR, day0 + HOUR + 7 * MINUTE)),
    ]
}

/// Sends `n` views over `videos`, spread over the last `spread_ms`, in batches,
/// recording each acknowledged batch in the ledger.
pub async fn send_views(env: &TestEnv, ledger: &mut Ledger, videos: &[Uuid], n: usize, spread_ms: i64) {
    let now = now_ms();
    let mut rng = rand::rng();
    let mut batch = Vec::new();
    let mut pending = Vec::new();
    for i in 0..n {
        let video = videos[rng.random_range(0..videos.len())];
        let at = now - rng.random_range(0..spread_ms.max(1));
        batch.push(view(video, at));
        pending.push((video, at));
        if batch.len() == 200 || i == n - 1 {
            env.post_batch(&batch).await;
            for (v, t) in pending.drain(..) {
                ledger.record(v, t);
            }
            batch.clear();
        }
    }
}

/// A background load: `rounds` batches of `per_round` views every `pause`, over
/// `videos`, with occurredAt spread over the last two days. `progress` counts
/// acknowledged rounds so the test can strike at chosen moments.
pub struct Load {
    pub progress: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub handle: tokio::task::JoinHandle<Ledger>,
}

pub fn start_load(env: &TestEnv, videos: Vec<Uuid>, rounds: usize, per_round: usize, pause: Duration) -> Load {
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = env.gateway_url("/api/v1/events:batch");
    let http = env.http.clone();
    let p = progress.clone();
    let handle = tokio::spawn(async move {
        let mut ledger = Ledger::default();
        for _ in 0..rounds {
            let now = now_ms();
            let batch: Vec<(Uuid, i64)> = {
                let mut rng = rand::rng();
                (0..per_round)
                    .map(|_| (videos[rng.random_range(0..videos.len())], now - rng.random_range(0..2 * DAY)))
                    .collect()
            };
            let body: Vec<Value> = batch.iter().map(|(v, t)| view(*v, *t)).collect();
            let res = http.post(&url).json(&body).send().await.expect("gateway answers");
            assert_eq!(res.status(), 202, "{:?}", res.text().await);
            for (v, t) in batch {
                ledger.record(v, t);
            }
            p.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(pause).await;
        }
        ledger
    });
    Load { progress, handle }
}

impl Load {
    pub async fn wait_for(&self, rounds: usize) {
        while self.progress.load(std::sync::atomic::Ordering::SeqCst) < rounds {
            assert!(!self.handle.is_finished(), "load stopped early");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The ranges checked after a failure test: all time and a few stitched ones.
pub fn failure_ranges(now: i64) -> Vec<Option<(i64, i64)>> {
    vec![
        None,
        Some((now - 2 * DAY - HOUR + 7 * MINUTE, now + MINUTE)),
        Some((now - 30 * HOUR, now - 3 * HOUR - 31 * MINUTE)),
    ]
}

pub fn uuids(n: usize) -> Vec<Uuid> {
    (0..n).map(|_| Uuid::new_v4()).collect()
}

/// A protobuf event for the events topic, as the gateway encodes it, with any
/// wire type (a newer producer's, say).
pub fn encoded_event(video: Uuid, wire_type: i32, occurred_at_ms: i64) -> Vec<u8> {
    use prost::Message;
    schemas::events::Event {
        event_id: Uuid::now_v7().as_bytes().to_vec(),
        video_id: video.as_bytes().to_vec(),
        event_type: wire_type,
        occurred_at_ms,
        received_at_ms: now_ms(),
        value: 1,
        user_id: vec![],
        client_event_id: false,
        user_verified: false,
        correction: false,
        event_type_name: String::new(),
        correction_events: 0,
        packed: vec![],
    }
    .encode_to_vec()
}

/// Produces `payload` keyed by `video` onto `topic` with the gateway's
/// partitioner, so it lands in the video's partition; returns (partition, offset).
pub async fn produce_raw(topic: &str, video: Uuid, payload: &[u8]) -> (i32, i64) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    let rec = FutureRecord::to(topic).key(&video.as_bytes()[..]).payload(payload);
    let delivered = producer.send(rec, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
    (delivered.partition, delivered.offset)
}
