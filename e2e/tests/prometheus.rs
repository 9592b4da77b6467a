//! The Grafana board and the alerting rules against a real Prometheus (Debian's
//! `prometheus` and `promtool`, installed by `scripts/install-prometheus`).
//!
//! The live test starts the three services on the shared stack, then Prometheus
//! with the project's local scrape config (`deploy/prometheus/prometheus.local.yml`,
//! its targets rewritten to the ports this test's services got, its rule files kept),
//! sends traffic through every kind of route, and evaluates every query of every
//! panel of `deploy/grafana/dashboards/vcount.json` through Prometheus's HTTP API, as
//! Grafana would: a query that errors, returns no series, or only NaN fails the
//! test. Every recording rule must produce data and every rule evaluate without
//! error. `promtool check config`, `check metrics` (each service's /metrics),
//! `check rules` and `test rules` (the rules' unit tests) run here too.
//!
//! Without `prometheus` or `promtool` these tests fail, never skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use e2e::observability::{dashboard_exprs, load_dashboard, workspace_root};
use e2e::*;
use serde_json::{Value, json};
use serde_yaml_ng::Value as Yaml;
use uuid::Uuid;

const LOCAL_CONFIG: &str = "deploy/prometheus/prometheus.local.yml";
const RULES: &str = "deploy/prometheus/rules/vcount.rules.yml";
const RULE_TESTS: &str = "deploy/prometheus/rules/vcount.rules.test.yml";

fn require(bin: &str) {
    let found = Command::new(bin).arg("--version").output();
    assert!(found.is_ok_and(|o| o.status.success()), "{bin} is not installed: run scripts/install-prometheus");
}

/// Runs promtool; returns its combined output, panicking (with it) on failure.
fn promtool(args: &[&str], stdin: Option<&[u8]>) -> String {
    require("promtool");
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(workspace_root())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_rules_pass_promtool_and_their_unit_tests() {
    let checked = promtool(&["check", "rules", RULES], None);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&["test", "rules", RULE_TESTS], None);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Every golden signal has an alert.
    let rules: Yaml = serde_yaml_ng::from_str(&std::fs::read_to_string(workspace_root().join(RULES)).unwrap()).unwrap();
    let exprs: Vec<String> = rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap())
        .filter(|r| r["alert"].is_string())
        .map(|r| r["expr"].as_str().unwrap().to_owned())
        .collect();
    for signal in [
        "http_requests_5xx",
        "http_request_duration_seconds",
        "aggregator_consumer_lag_messages",
        "aggregator_dead_letters",
        "aggregator_halted_partitions",
    ] {
        assert!(exprs.iter().any(|e| e.contains(signal)), "no alert reads {signal}");
    }
}

#[test]
fn both_scrape_configs_pass_promtool() {
    for config in [LOCAL_CONFIG, "deploy/prometheus/prometheus.yml"] {
        let out = promtool(&["check", "config", config], None);
        // The rule file is found and checked through the config, relative to it.
        assert!(out.contains("1 rule files found") && out.contains("vcount.rules.yml"), "{config}:\n{out}");
    }
}

// ------------------------------------------------------------------ live ----

/// The Prometheus child process, killed with the test.
struct Prometheus {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The local config with each job's target replaced by this test's service, and
/// rule files made absolute (the written copy lives elsewhere).
fn local_config(root: &Path, targets: &BTreeMap<&str, String>) -> String {
    let mut cfg: Yaml = serde_yaml_ng::from_str(&std::fs::read_to_string(root.join(LOCAL_CONFIG)).unwrap()).unwrap();
    for job in cfg["scrape_configs"].as_sequence_mut().expect("scrape_configs") {
        let name = job["job_name"].as_str().unwrap().to_owned();
        let target =
            targets.get(name.as_str()).unwrap_or_else(|| panic!("{LOCAL_CONFIG}: job {name} has no service here"));
        job["static_configs"] = serde_yaml_ng::from_str(&format!("[{{targets: [\"{target}\"]}}]")).unwrap();
    }
    let dir = root.join(LOCAL_CONFIG).parent().unwrap().to_path_buf();
    let rules = cfg["rule_files"].as_sequence_mut().expect("the local config loads the rules");
    for r in rules.iter_mut() {
        *r = Yaml::String(dir.join(r.as_str().unwrap()).display().to_string());
    }
    serde_yaml_ng::to_string(&cfg).unwrap()
}

async fn start_prometheus(config: &str, name: &str) -> Prometheus {
    require("prometheus");
    let dir = target_dir().join("tmp").join(format!("prometheus-{name}-{}", &Uuid::new_v4().simple().to_string()[..8]));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("prometheus.yml");
    std::fs::write(&file, config).unwrap();
    let checked = promtool(&["check", "config", file.to_str().unwrap()], None);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let port = free_port();
    let log = dir.join("prometheus.log");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", file.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("prometheus starts");
    let p = Prometheus { child, url: format!("http://127.0.0.1:{port}"), log };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http.get(format!("{}/-/ready", p.url)).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "prometheus not ready in 30 s; see {}", p.log.display());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("[prometheus] {} with {} (log {})", p.url, file.display(), p.log.display());
    p
}

/// Requests through every kind of route of the gateway and the query service, until
/// stopped: views (single and batched), a refused event (422), unknown paths (404),
/// ranged reads over every granularity, series, trending and ratings.
fn start_traffic(env: &TestEnv, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<usize> {
    let (http, gw, q) = (env.http.clone(), env.gateway_url(""), env.query_url(""));
    tokio::spawn(async move {
        let videos = uuids(4);
        let mut rounds = 0;
        while !stop.load(Ordering::SeqCst) {
            let now = now_ms();
            let batch: Vec<Value> =
                (0..20).map(|i| view(videos[i % videos.len()], now - (i as i64) * 7 * MINUTE)).collect();
            let v = videos[rounds % videos.len()];
            let ok = |r: reqwest::Response, want: u16| assert_eq!(r.status(), want, "{}", r.url());
            ok(http.post(format!("{gw}/api/v1/events:batch")).json(&batch).send().await.unwrap(), 202);
            ok(http.post(format!("{gw}/api/v1/videos/id/{v}/view")).send().await.unwrap(), 204);
            ok(http.post(format!("{gw}/api/v1/events")).json(&json!({"videoId": "nope"})).send().await.unwrap(), 422);
            ok(http.get(format!("{gw}/no/such/route")).send().await.unwrap(), 404);
            let (from, to) = (rfc3339(now - 2 * DAY - 3 * HOUR - 7 * MINUTE), rfc3339(now));
            let ranged = format!("{q}/api/v1/videos/{v}/views?from={from}&to={to}");
            ok(http.get(ranged).send().await.unwrap(), 200);
            ok(http.get(format!("{q}/api/v1/videos/{v}/views")).send().await.unwrap(), 200);
            let series = format!("{q}/api/v1/videos/{v}/counts/view?from={}&to={to}&step=minute", rfc3339(now - HOUR));
            ok(http.get(series).send().await.unwrap(), 200);
            ok(http.get(format!("{q}/api/v1/trending?window=1h")).send().await.unwrap(), 200);
            ok(http.get(format!("{q}/api/v1/videos/{v}/ratings")).send().await.unwrap(), 404);
            ok(http.get(format!("{q}/no/such/route")).send().await.unwrap(), 404);
            rounds += 1;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        rounds
    })
}

/// `$__rate_interval` as Grafana computes it for this data source: four scrape
/// intervals (the data source's `timeInterval`), which must equal the configs'.
fn rate_interval(root: &Path) -> String {
    let ds: Yaml = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/provisioning/datasources/vcount.yml")).unwrap(),
    )
    .unwrap();
    let scrape = ds["datasources"][0]["jsonData"]["timeInterval"].as_str().expect("timeInterval").to_owned();
    let cfg: Yaml = serde_yaml_ng::from_str(&std::fs::read_to_string(root.join(LOCAL_CONFIG)).unwrap()).unwrap();
    assert_eq!(cfg["global"]["scrape_interval"].as_str(), Some(scrape.as_str()), "Grafana's timeInterval");
    let secs: u64 = scrape.strip_suffix('s').and_then(|s| s.parse().ok()).expect("timeInterval in seconds");
    format!("{}s", 4 * secs)
}

/// One instant query: Ok(samples as (labels, value)) or Err(what went wrong).
async fn query(http: &reqwest::Client, prom: &str, expr: &str) -> Result<Vec<(String, f64)>, String> {
    let res =
        http.post(format!("{prom}/api/v1/query")).form(&[("query", expr)]).send().await.map_err(|e| e.to_string())?;
    let body: Value = res.json().await.map_err(|e| e.to_string())?;
    if body["status"] != "success" {
        return Err(format!("{}: {}", body["errorType"], body["error"]));
    }
    let data = &body["data"];
    let result = match data["resultType"].as_str() {
        Some("vector") => data["result"].as_array().cloned().unwrap_or_default(),
        Some("scalar") => vec![json!({"metric": {}, "value": data["result"]})],
        other => return Err(format!("unexpected result type {other:?}")),
    };
    Ok(result
        .iter()
        .map(|s| {
            let v = s["value"][1].as_str().unwrap_or("NaN");
            (s["metric"].to_string(), v.parse::<f64>().unwrap_or(f64::NAN))
        })
        .collect())
}

/// What is wrong with an answer, for a query that must show data.
fn empty_or_nan(answer: &Result<Vec<(String, f64)>, String>) -> Option<String> {
    match answer {
        Err(e) => Some(format!("error: {e}")),
        Ok(s) if s.is_empty() => Some("no series".into()),
        Ok(s) if s.iter().all(|(_, v)| !v.is_finite()) => Some(format!("{} series, all NaN or infinite", s.len())),
        Ok(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_panel_query_and_rule_answers_on_a_real_prometheus() {
    require("prometheus");
    require("promtool");
    let root = workspace_root();
    let mut env = TestEnv::start("prometheus", 2).await;
    let agg = env.spawn_aggregator();
    let agg_target =
        env.aggregator_metrics_url(agg).trim_start_matches("http://").split('/').next().unwrap().to_owned();
    let targets = BTreeMap::from([
        ("gateway", env.gateway_admin.to_string()),
        ("query", env.query_admin.to_string()),
        ("aggregator", agg_target),
    ]);
    let prom = start_prometheus(&local_config(&root, &targets), "dash").await;
    let started = Instant::now();

    let stop = Arc::new(AtomicBool::new(false));
    let traffic = start_traffic(&env, stop.clone());
    env.wait_active(agg).await;

    // Every service's exposition passes promtool's own checks.
    for (job, target) in &targets {
        let text = env.http.get(format!("http://{target}/metrics")).send().await.unwrap().bytes().await.unwrap();
        let out = promtool(&["check", "metrics"], Some(&text));
        eprintln!("[prometheus] promtool check metrics {job}: ok {}", out.trim());
    }

    // Each panel's query, with Grafana's variables as Grafana would fill them.
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let panels = dashboard_exprs(&load_dashboard(&root));
    assert!(panels.len() >= 15, "only {} panel queries", panels.len());
    let rate = rate_interval(&root);
    let rules_yaml: Yaml = serde_yaml_ng::from_str(&std::fs::read_to_string(root.join(RULES)).unwrap()).unwrap();
    let records: Vec<String> = rules_yaml["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap())
        .filter_map(|r| r["record"].as_str().map(str::to_owned))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let range = format!("{}s", started.elapsed().as_secs().max(30));
        let mut wrong = Vec::new();
        let mut shown = Vec::new();
        // All three targets scraped and up.
        let t: Value = http.get(format!("{}/api/v1/targets", prom.url)).send().await.unwrap().json().await.unwrap();
        let active = t["data"]["activeTargets"].as_array().cloned().unwrap_or_default();
        let up = active.iter().filter(|a| a["health"] == "up").count();
        if up != targets.len() {
            wrong.push(format!("{up} of {} targets up", targets.len()));
        }
        for (title, expr) in &panels {
            let q = expr.replace("$__rate_interval", &rate).replace("$__range", &range);
            let answer = query(&http, &prom.url, &q).await;
            match empty_or_nan(&answer) {
                Some(why) => wrong.push(format!("panel {title:?}: {why}\n    {q}")),
                None => shown.push(format!("{title}: {} series", answer.unwrap().len())),
            }
        }
        for record in &records {
            if let Some(why) = empty_or_nan(&query(&http, &prom.url, record).await) {
                wrong.push(format!("recording rule {record}: {why}"));
            }
        }
        // Every rule evaluated, none with an error.
        let r: Value = http.get(format!("{}/api/v1/rules", prom.url)).send().await.unwrap().json().await.unwrap();
        let rules: Vec<&Value> =
            r["data"]["groups"].as_array().unwrap().iter().flat_map(|g| g["rules"].as_array().unwrap()).collect();
        if rules.len() != 13 {
            wrong.push(format!("{} rules loaded", rules.len()));
        }
        for rule in rules {
            if rule["health"] != "ok" {
                wrong.push(format!("rule {}: health {} {}", rule["name"], rule["health"], rule["lastError"]));
            }
        }
        if wrong.is_empty() {
            eprintln!("[prometheus] {} panel queries answer:\n  {}", panels.len(), shown.join("\n  "));
            eprintln!("[prometheus] {} recording rules have data; every rule evaluates", records.len());
            break;
        }
        if Instant::now() > deadline {
            panic!(
                "after {:?}, {} problems:\n{}\ntargets: {t}\nprometheus log: {}",
                started.elapsed(),
                wrong.len(),
                wrong.join("\n"),
                prom.log.display()
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let rounds = traffic.await.unwrap();
    eprintln!("[prometheus] {rounds} rounds of traffic in {:?}", started.elapsed());
    env.terminate_aggregator(agg);
}
