//! The deployment files, checked without Docker or servers (there is no Docker
//! engine on the project machines): docker-compose.yml, the Dockerfile, the load
//! balancer, Prometheus and Grafana configs, the shared deploy/vcount.env, and the
//! Grafana dashboard against the metrics the services declare (each crate's
//! `metrics::ALL`).
//!
//! The services' environment in compose is loaded through `platform::config::load`,
//! the loader the binaries use, into each service's config struct, so a key the
//! service does not know fails here as it would at start-up.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use e2e::observability::{
    dashboard_exprs, declared_metrics, load_dashboard, promql_jobs, promql_metric_names, queried_family, workspace_root,
};
use platform::metrics::Kind;
use serde_yaml_ng::Value;

// ---------------------------------------------------------------- helpers ----

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(root: &Path, rel: &str) -> Value {
    let mut v: Value = serde_yaml_ng::from_str(&read(root, rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    // Merge keys can chain (`<<: *a` where `a` has its own `<<`); merge until none is left.
    for _ in 0..8 {
        v.apply_merge().unwrap_or_else(|e| panic!("{rel}: {e}"));
        if !serde_yaml_ng::to_string(&v).unwrap().contains("<<") {
            return v;
        }
    }
    panic!("{rel}: merge keys nest too deep");
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("expected a scalar, got {other:?}"),
    }
}

/// A list or a single string (compose accepts both for `env_file`, `command`, ...).
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(items) => items.iter().map(str_of).collect(),
        Value::Null => Vec::new(),
        other => vec![str_of(other)],
    }
}

/// `KEY=VALUE` lines; comments and blank lines skipped. Values must read the same in
/// compose and in bash: no quotes, spaces or `$`.
fn parse_env_file(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (k, v) = line.split_once('=').ok_or_else(|| format!("not KEY=VALUE: {line:?}"))?;
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') {
            return Err(format!("bad variable name {k:?}"));
        }
        if v.contains(['"', '\'', ' ', '\t', '$', '`', '\\']) {
            return Err(format!("{k}: the value {v:?} would read differently in compose and bash"));
        }
        if out.insert(k.to_owned(), v.to_owned()).is_some() {
            return Err(format!("{k} twice"));
        }
    }
    Ok(out)
}

type Env = BTreeMap<String, String>;

/// `environment:` as a map (compose allows a map or a list of `K=V`), with
/// `${VAR:-default}` interpolated as compose does when `VAR` is unset.
fn environment(service: &Value) -> BTreeMap<String, String> {
    let mut env = raw_environment(service);
    for v in env.values_mut() {
        if let Some(default) = v.strip_prefix("${").and_then(|r| r.strip_suffix('}')).and_then(|r| r.split_once(":-")) {
            *v = default.1.to_owned();
        }
    }
    env
}

fn raw_environment(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Mapping(m) => m.iter().map(|(k, v)| (str_of(k), str_of(v))).collect(),
        Value::Sequence(items) => items
            .iter()
            .map(|i| {
                let s = str_of(i);
                let (k, v) = s.split_once('=').unwrap_or((&s, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or_else(|| panic!("no port in {addr:?}"))
}

/// Loads a service config from exactly `env`, with the binaries' own loader.
// figment::Jail's closures must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
fn load_config<T>(prefix: &str, env: &BTreeMap<String, String>) -> Result<T, String>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Default,
{
    let mut out = None;
    figment::Jail::try_with(|jail| {
        jail.clear_env();
        for (k, v) in env {
            jail.set_env(k, v);
        }
        out = Some(platform::config::load::<T>(prefix, None).map_err(|e| format!("{e:#}")));
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    out.expect("the jail ran")
}

/// The services built from our Dockerfile: target stage → env prefix.
const OUR_TARGETS: [(&str, &str); 3] =
    [("ingest-gateway", "GATEWAY"), ("aggregator", "AGGREGATOR"), ("query-service", "QUERY")];

/// Dockerfile stages (`FROM … AS name`) with their ENTRYPOINT and the binaries
/// the build stage builds (`--bin x`) and copies out.
struct Dockerfile {
    entrypoints: BTreeMap<String, String>,
    built: BTreeSet<String>,
    copied: BTreeSet<String>,
    /// Directories copied from the build context as they are (`COPY x x`).
    sources: BTreeSet<String>,
}

fn dockerfile(text: &str) -> Dockerfile {
    let mut stage = String::new();
    let mut entrypoints = BTreeMap::new();
    let mut built = BTreeSet::new();
    let mut copied = BTreeSet::new();
    let mut sources = BTreeSet::new();
    // Join continuation lines first.
    let joined = text.replace("\\\n", " ");
    for line in joined.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first().map(|w| w.to_ascii_uppercase()).as_deref() {
            Some("FROM") => {
                stage = match words.as_slice() {
                    [_, _, as_, name] if as_.eq_ignore_ascii_case("as") => (*name).to_owned(),
                    _ => String::new(),
                }
            }
            Some("ENTRYPOINT") => {
                let json = line["ENTRYPOINT".len()..].trim();
                let argv: Vec<String> = serde_json::from_str(json).expect("ENTRYPOINT in exec form");
                entrypoints.insert(stage.clone(), argv[0].clone());
            }
            Some("COPY") => {
                if let [_, from, to] = words.as_slice()
                    && from == to
                {
                    sources.insert((*from).to_owned());
                }
            }
            Some("RUN") if line.contains("cargo build") => {
                for w in words.windows(2) {
                    if w[0] == "--bin" {
                        built.insert(w[1].to_owned());
                    }
                }
                for w in &words {
                    if let Some(bin) = w.strip_prefix("target/release/") {
                        copied.insert(bin.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    Dockerfile { entrypoints, built, copied, sources }
}

/// The `members` of the root Cargo.toml.
fn workspace_members(root: &Path) -> Vec<String> {
    let manifest = read(root, "Cargo.toml");
    let list = manifest.split("members = [").nth(1).and_then(|rest| rest.split(']').next()).expect("members = [...]");
    list.split(',').map(|m| m.trim().trim_matches('"').to_owned()).filter(|m| !m.is_empty()).collect()
}

// ------------------------------------------------------------------ tests ----

#[test]
fn shared_env_file_is_valid_for_every_service_and_consistent() {
    let root = workspace_root();
    let env = parse_env_file(&read(&root, "deploy/vcount.env")).unwrap();
    for key in env.keys() {
        assert!(OUR_TARGETS.iter().any(|(_, p)| key.starts_with(&format!("{p}__"))), "{key}: no service reads it");
    }
    let gw: ingest_gateway::GatewayConfig = load_config("GATEWAY", &env).unwrap();
    let agg: aggregator::AggregatorConfig = load_config("AGGREGATOR", &env).unwrap();
    let q: query_service::QueryConfig = load_config("QUERY", &env).unwrap();
    // Settings two services must agree on.
    assert_eq!(gw.kafka.topic_prefix, agg.kafka.topic_prefix, "topic prefix");
    assert_eq!(gw.kafka.partitions, agg.kafka.partitions, "partitions");
    assert_eq!(agg.cassandra.keyspace, q.cassandra.keyspace, "keyspace");
    // The aggregator writes TTLs from its retention and the query service reads
    // only what the same section keeps: the whole section must agree, and be valid.
    assert_eq!(agg.retention, q.retention, "retention");
    agg.retention.validate().unwrap();
    for key in ["MINUTE_SECS", "HOUR_SECS", "DAY_SECS"] {
        for prefix in ["AGGREGATOR", "QUERY"] {
            assert!(env.contains_key(&format!("{prefix}__RETENTION__{key}")), "{prefix}__RETENTION__{key} not set");
        }
    }
    // The listen ports are distinct, the gateway's admin port included.
    let ports: BTreeSet<u16> =
        [&gw.http.listen, &gw.admin.listen, &agg.http.listen, &q.http.listen].map(|a| port_of(a)).into();
    assert_eq!(ports.len(), 4, "listen ports collide");

    // The loader really rejects a misspelt key (so the checks above can fail).
    let mut typo = env.clone();
    typo.insert("AGGREGATOR__CONSUMER__GROUPID".into(), "x".into());
    let err = load_config::<aggregator::AggregatorConfig>("AGGREGATOR", &typo).unwrap_err();
    assert!(err.contains("groupid"), "{err}");
    assert!(parse_env_file("A=\"quoted\"\n").is_err());

    // scripts/dev (its supervisor, the xtask) reads the same file.
    let dev = read(&root, "xtask/src/dev.rs");
    assert!(dev.contains("deploy/vcount.env"), "xtask/src/dev.rs does not read deploy/vcount.env");
}

#[test]
fn compose_has_the_topology_and_every_service_accepts_its_environment() {
    let root = workspace_root();
    let compose = yaml(&root, "docker-compose.yml");
    let services = compose["services"].as_mapping().expect("services");
    let names: BTreeSet<String> = services.keys().map(str_of).collect();
    let want = [
        "kafka",
        "scylla",
        "lb",
        "gateway-1",
        "gateway-2",
        "aggregator-1",
        "aggregator-2",
        "query",
        "prometheus",
        "grafana",
    ];
    for s in want {
        assert!(names.contains(s), "docker-compose.yml lacks {s}");
    }
    let svc = |n: &str| &compose["services"][n];

    // Kafka in KRaft mode, ScyllaDB in developer mode on one shard.
    assert!(str_of(&svc("kafka")["image"]).starts_with("apache/kafka:"));
    assert!(environment(svc("kafka"))["KAFKA_PROCESS_ROLES"].contains("controller"), "Kafka without KRaft controller");
    assert!(str_of(&svc("scylla")["image"]).starts_with("scylladb/scylla:"));
    let cmd = strings(&svc("scylla")["command"]).join(" ");
    assert!(cmd.contains("--smp 1") && cmd.contains("--developer-mode 1"), "scylla command: {cmd}");

    let shared = parse_env_file(&read(&root, "deploy/vcount.env")).unwrap();
    let docker = dockerfile(&read(&root, "Dockerfile"));
    // Cargo loads every workspace member before it builds anything, so the build
    // stage must copy them all (a new member forgotten there breaks `docker build`).
    let members = workspace_members(&root);
    assert!(members.len() >= 10 && members.contains(&"e2e".to_string()), "members: {members:?}");
    for m in &members {
        assert!(docker.sources.contains(m), "the Dockerfile does not COPY workspace member {m}/");
    }
    // Build target -> (compose service, its effective environment).
    let mut by_target: BTreeMap<&str, Vec<(String, Env)>> = BTreeMap::new();
    for (name, s) in services {
        let name = str_of(name);
        // Every depends_on names a service, with a healthcheck when it waits for health.
        if let Value::Mapping(deps) = &s["depends_on"] {
            for (dep, cond) in deps {
                let dep = str_of(dep);
                assert!(names.contains(&dep), "{name} depends on unknown {dep}");
                if str_of(&cond["condition"]) == "service_healthy" {
                    assert!(
                        svc(&dep)["healthcheck"]["test"].is_sequence(),
                        "{name} waits for {dep}, which has no healthcheck"
                    );
                }
            }
        }
        // Every file mounted from the repo exists.
        for vol in strings(&s["volumes"]) {
            if let Some(rel) = vol.split(':').next().filter(|p| p.starts_with("./")) {
                assert!(root.join(rel).exists(), "{name} mounts {rel}, which does not exist");
            }
        }
        for f in strings(&s["env_file"]) {
            assert!(root.join(&f).exists(), "{name}: env_file {f} does not exist");
        }
        let target = s["build"]["target"].as_str();
        let Some((target, prefix)) = target.and_then(|t| OUR_TARGETS.iter().find(|(n, _)| *n == t)) else {
            assert!(s["build"].is_null(), "{name}: built from an unknown target");
            continue;
        };
        // Our services: built from a Dockerfile stage whose entrypoint is a binary the build makes.
        let entry = docker.entrypoints.get(*target).unwrap_or_else(|| panic!("{name}: no Dockerfile stage {target}"));
        assert_eq!(entry, &format!("/usr/local/bin/{target}"), "{name}: entrypoint");
        assert!(
            docker.built.contains(*target) && docker.copied.contains(*target),
            "Dockerfile does not build {target}"
        );
        assert!(root.join(format!("{target}/src/main.rs")).exists(), "no binary crate {target}");
        // The shared file, then the service's own environment (which wins, as in compose).
        assert!(
            strings(&s["env_file"]).contains(&"deploy/vcount.env".to_owned()),
            "{name} does not use deploy/vcount.env"
        );
        let mut env = shared.clone();
        let own = environment(s);
        for key in own.keys() {
            assert!(key.starts_with(&format!("{prefix}__")), "{name}: {key} is not a {prefix} setting");
        }
        env.extend(own);
        // The healthcheck asks /readyz on the operational port: the admin listener
        // where the service has one, which is never published on the host.
        let listen = &env[&format!("{prefix}__HTTP__LISTEN")];
        assert!(listen.starts_with("0.0.0.0:"), "{name} listens on {listen}: unreachable from other containers");
        let ops = ops_listen(prefix, &env);
        let check = strings(&s["healthcheck"]["test"]).join(" ");
        assert!(check.contains(&format!("127.0.0.1:{}/readyz", port_of(&ops))), "{name} healthcheck: {check}");
        if let Some(admin) = env.get(&format!("{prefix}__ADMIN__LISTEN")) {
            let published = strings(&s["ports"]);
            assert!(
                !published.iter().any(|p| p.ends_with(&format!(":{}", port_of(admin)))),
                "{name} publishes its admin port: {published:?}"
            );
        }
        by_target.entry(target).or_default().push((name, env));
    }

    // Each service's environment loads into its config, with the compose hosts.
    let gateways = &by_target["ingest-gateway"];
    let aggregators = &by_target["aggregator"];
    let queries = &by_target["query-service"];
    assert_eq!(
        (gateways.len(), aggregators.len(), queries.len()),
        (2, 2, 1),
        "two gateways, two aggregators, one query"
    );
    let mut gateway_ports = BTreeMap::new();
    let mut gateway_configs = Vec::new();
    for (name, env) in gateways {
        let c: ingest_gateway::GatewayConfig = load_config("GATEWAY", env).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(c.kafka.brokers, "kafka:9092", "{name}");
        assert!(!c.limits.trusted_proxies.is_empty(), "{name}: behind HAProxy, X-Forwarded-For must be trusted");
        gateway_ports.insert(name.clone(), (port_of(&c.http.listen), Some(port_of(&c.admin.listen))));
        gateway_configs.push(c);
    }
    let mut groups = BTreeSet::new();
    for (name, env) in aggregators {
        let c: aggregator::AggregatorConfig = load_config("AGGREGATOR", env).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((c.kafka.brokers.as_str(), c.cassandra.nodes.as_str()), ("kafka:9092", "scylla:9042"), "{name}");
        groups.insert(c.consumer.group_id);
    }
    assert_eq!(groups.len(), 1, "the aggregators are in different consumer groups: {groups:?}");
    for (name, env) in queries {
        let c: query_service::QueryConfig = load_config("QUERY", env).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(c.cassandra.nodes, "scylla:9042", "{name}");
    }

    // The load balancer sends to exactly the two gateways, on their port.
    let lb_mounts = strings(&svc("lb")["volumes"]);
    let cfg_path =
        lb_mounts.iter().find_map(|v| v.split(':').next().filter(|p| p.ends_with(".cfg"))).expect("lb config");
    let haproxy = read(&root, cfg_path);
    // server NAME HOST:PORT [check port P] [maxconn N]: (traffic port, check port), maxconn.
    let mut servers = BTreeMap::new();
    let mut server_maxconn = BTreeMap::new();
    for l in haproxy.lines().map(str::trim).filter(|l| l.starts_with("server ")) {
        let words: Vec<&str> = l.split_whitespace().collect();
        let addr = words.get(2).expect("server NAME HOST:PORT");
        let after = |key: &str| words.windows(2).find(|w| w[0] == key).map(|w| w[1].parse::<u32>().unwrap());
        let host = addr.rsplit_once(':').unwrap().0.to_owned();
        servers.insert(host.clone(), (port_of(addr), after("port").map(|p| p as u16)));
        server_maxconn.insert(host, after("maxconn"));
    }
    let query_server = servers.remove("query").expect("haproxy's web frontend has the query service as a server");
    assert_eq!(servers, gateway_ports, "haproxy servers (traffic port, check port on the admin listener) vs gateways");
    assert_eq!(query_server, (18081, Some(18084)), "haproxy's query server port, checked on its admin port");
    assert!(haproxy.contains("GET /readyz"), "haproxy does not check the gateways' readiness");

    // HAProxy's limits agree with what the gateways tolerate (their defaults, as
    // compose sets none): the client must give up on a slow head no later than the
    // gateway would, idle client connections go first, HAProxy waits longer for an
    // answer than the gateway's own request timeout (so clients get the gateway's
    // 503 problem, not a bare 504), and no gateway is sent more requests than it
    // handles at once (HAProxy queues the rest).
    let timeouts = haproxy_timeouts(&haproxy);
    for c in &gateway_configs {
        let ms = |k: &str| timeouts.get(k).copied().unwrap_or_else(|| panic!("haproxy.cfg has no `timeout {k}`"));
        assert!(ms("http-request") <= c.http.header_read_timeout_ms, "timeout http-request vs header_read_timeout_ms");
        assert!(ms("http-keep-alive") < c.http.header_read_timeout_ms, "timeout http-keep-alive vs the idle timeout");
        assert!(ms("server") > c.http.request_timeout_ms, "timeout server vs request_timeout_ms");
        assert!(ms("client") >= c.http.request_timeout_ms, "timeout client vs request_timeout_ms");
        assert!(timeouts.contains_key("queue"), "haproxy.cfg has no `timeout queue`");
        for (host, maxconn) in &server_maxconn {
            if host.starts_with("gateway") {
                let m = maxconn.unwrap_or_else(|| panic!("haproxy server {host} has no maxconn"));
                assert!(m as usize <= c.http.max_in_flight, "{host}: maxconn {m} > http.max_in_flight");
                assert!(m as usize <= c.http.max_connections, "{host}: maxconn {m} > http.max_connections");
            }
        }
    }
    assert!(haproxy.contains("option forwardfor"), "the gateways need the client address for per-IP limits");
    // No admin path is forwarded from any frontend that proxies.
    for frontend in haproxy.split("\nfrontend ").skip(1).filter(|f| !f.starts_with("stats")) {
        let name = frontend.lines().next().unwrap();
        for path in ["/metrics", "/readyz"] {
            assert!(
                frontend.lines().any(|l| l.trim().starts_with("acl admin_path path ") && l.contains(path)),
                "frontend {name} does not match {path} as an admin path"
            );
        }
        assert!(
            frontend.lines().any(|l| l.trim().starts_with("http-request deny") && l.trim().ends_with("if admin_path")),
            "frontend {name} forwards admin paths"
        );
    }
    // The one-origin frontend sends exactly the gateway's routes to the gateways.
    let gateway_routes: Vec<String> = query_service::api::gateway::routes().into_iter().map(|(_, path)| path).collect();
    assert!(gateway_routes.len() >= 5, "the gateway documents its routes: {gateway_routes:?}");
    for route in &gateway_routes {
        let mut regex = String::from("^");
        for (i, part) in route.split('/').enumerate() {
            if i > 0 {
                regex.push('/');
            }
            regex.push_str(if part.starts_with('{') { "[^/]+" } else { part });
        }
        let acl = format!("acl gateway_path path_reg {regex}$");
        assert!(haproxy.contains(&acl), "haproxy.cfg lacks `{acl}`");
    }
    let acls = haproxy.lines().filter(|l| l.trim().starts_with("acl gateway_path")).count();
    assert_eq!(acls, gateway_routes.len(), "haproxy routes more paths to the gateways");
    assert!(strings(&svc("lb")["ports"]).contains(&"8000:8000".to_owned()), "the one origin's port is published");

    // Prometheus (compose) scrapes every service container on its port.
    // ...and the local file scrapes the ports of scripts/dev (deploy/vcount.env).
    let prom = scrape_targets(&yaml(&root, "deploy/prometheus/prometheus.yml"));
    let local = scrape_targets(&yaml(&root, "deploy/prometheus/prometheus.local.yml"));
    for (job, (target, prefix)) in ["gateway", "aggregator", "query"].into_iter().zip(OUR_TARGETS) {
        let want: BTreeSet<String> = by_target[target]
            .iter()
            .map(|(name, env)| format!("{name}:{}", port_of(&ops_listen(prefix, env))))
            .collect();
        assert_eq!(prom.get(job), Some(&want), "prometheus.yml job {job}");
        assert_eq!(
            local.get(job),
            Some(&BTreeSet::from([ops_listen(prefix, &shared)])),
            "prometheus.local.yml job {job}"
        );
    }
    assert!(
        strings(&svc("prometheus")["volumes"]).iter().any(|v| v.starts_with("./deploy/prometheus/prometheus.yml:"))
    );

    // Grafana: provisioning mounted where Grafana reads it, the dashboards where the provider looks.
    let grafana_mounts: BTreeMap<String, String> = strings(&svc("grafana")["volumes"])
        .iter()
        .map(|v| {
            let mut parts = v.split(':');
            (parts.next().unwrap().to_owned(), parts.next().unwrap().to_owned())
        })
        .collect();
    assert_eq!(grafana_mounts["./deploy/grafana/provisioning"], "/etc/grafana/provisioning");
    let provider = yaml(&root, "deploy/grafana/provisioning/dashboards/vcount.yml");
    let path = str_of(&provider["providers"][0]["options"]["path"]);
    assert_eq!(grafana_mounts["./deploy/grafana/dashboards"], path, "dashboard provider path");
    let ds = yaml(&root, "deploy/grafana/provisioning/datasources/vcount.yml");
    let url = str_of(&ds["datasources"][0]["url"]);
    let var = url.trim_start_matches("${").trim_end_matches('}');
    assert_eq!(environment(svc("grafana")).get(var).map(String::as_str), Some("http://prometheus:9090"), "{url}");

    // `docker compose config` where a compose plugin exists (not on the project machines).
    let compose_cli = std::process::Command::new("docker").args(["compose", "version"]).output();
    if compose_cli.is_ok_and(|o| o.status.success()) {
        let out = std::process::Command::new("docker")
            .args(["compose", "-f", "docker-compose.yml", "config", "-q"])
            .current_dir(&root)
            .output()
            .unwrap();
        assert!(out.status.success(), "docker compose config: {}", String::from_utf8_lossy(&out.stderr));
        eprintln!("docker compose config -q: ok");
    } else {
        eprintln!("SKIPPED only `docker compose config -q`: no docker compose on this machine");
    }
}

/// job name → its static targets.
/// Where a service's /metrics and /readyz are: its admin listener if it has one,
/// else its only port.
fn ops_listen(prefix: &str, env: &BTreeMap<String, String>) -> String {
    env.get(&format!("{prefix}__ADMIN__LISTEN"))
        .or_else(|| env.get(&format!("{prefix}__HTTP__LISTEN")))
        .cloned()
        .unwrap()
}

/// `timeout NAME VALUE` lines of haproxy.cfg, in milliseconds (units us, ms, s, m,
/// h, d; none is ms).
fn haproxy_timeouts(cfg: &str) -> BTreeMap<String, u64> {
    cfg.lines()
        .filter_map(|l| l.trim().strip_prefix("timeout "))
        .map(|rest| {
            let mut words = rest.split_whitespace();
            let (name, value) = (words.next().unwrap(), words.next().unwrap());
            let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            let n: u64 = digits.parse().unwrap_or_else(|_| panic!("timeout {name} {value}"));
            let ms = match &value[digits.len()..] {
                "us" => n / 1000,
                "" | "ms" => n,
                "s" => n * 1000,
                "m" => n * 60_000,
                "h" => n * 3_600_000,
                "d" => n * 86_400_000,
                unit => panic!("timeout {name}: unknown unit {unit}"),
            };
            (name.to_owned(), ms)
        })
        .collect()
}

fn scrape_targets(prom: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let jobs = prom["scrape_configs"].as_sequence().expect("scrape_configs");
    jobs.iter()
        .map(|j| {
            let targets = j["static_configs"].as_sequence().into_iter().flatten().flat_map(|s| strings(&s["targets"]));
            (str_of(&j["job_name"]), targets.collect())
        })
        .collect()
}

#[test]
fn dashboard_reads_only_declared_metrics() {
    let root = workspace_root();
    let declared = declared_metrics();
    // Every declared metric is named for its unit, and its labels are snake_case;
    // histograms end in `_seconds`, the suffix platform::telemetry gives buckets to
    // (anything else would be a summary).
    let snake = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    for (name, d) in &declared {
        let m = d.metric;
        assert!(snake(name), "{name} is not snake_case");
        assert!(!m.help.is_empty(), "{name} has no help text");
        assert!(m.labels.iter().all(|l| snake(l) && *l != "le"), "{name}: labels {:?}", m.labels);
        match m.kind {
            Kind::Counter => assert!(name.ends_with("_total"), "counter {name} does not end in _total"),
            Kind::Histogram => assert!(name.ends_with("_seconds"), "histogram {name} has no _seconds buckets"),
            Kind::Gauge => assert!(!name.ends_with("_total"), "gauge {name} ends in _total"),
        }
    }
    let kind_of = |n: &str| declared.get(n).map(|d| d.metric.kind.as_str().to_owned());

    let dashboard = load_dashboard(&root);
    let exprs = dashboard_exprs(&dashboard);
    assert!(exprs.len() >= 15, "only {} queries in the dashboard", exprs.len());
    let mut used = BTreeSet::new();
    let mut wrong = Vec::new();
    let jobs: BTreeSet<String> = scrape_targets(&yaml(&root, "deploy/prometheus/prometheus.yml")).into_keys().collect();
    let local_jobs: BTreeSet<String> =
        scrape_targets(&yaml(&root, "deploy/prometheus/prometheus.local.yml")).into_keys().collect();
    for (title, expr) in &exprs {
        let names = promql_metric_names(expr).unwrap_or_else(|e| panic!("panel {title:?}: {e}"));
        assert!(!names.is_empty(), "panel {title:?} reads no metric: {expr}");
        for name in names {
            match queried_family(&name, kind_of) {
                Ok((family, kind)) => {
                    if kind == "counter" && !expr.contains("rate(") && !expr.contains("increase(") {
                        wrong.push(format!("panel {title:?}: counter {family} without rate() or increase()"));
                    }
                    used.insert(family);
                }
                Err(e) => wrong.push(format!("panel {title:?}: {e}")),
            }
        }
        for job in promql_jobs(expr) {
            if !jobs.contains(&job) || !local_jobs.contains(&job) {
                wrong.push(format!("panel {title:?}: job {job:?} is not scraped by both Prometheus configs"));
            }
        }
    }
    assert!(wrong.is_empty(), "dashboard errors:\n{}", wrong.join("\n"));

    // The golden signals of issue 5 each have a panel.
    let golden = [
        "http_requests_total",
        "http_request_duration_seconds",
        "gateway_events_produced_total",
        "gateway_produce_errors_total",
        "kafka_producer_in_flight_messages",
        "aggregator_messages_total",
        "aggregator_rows_written_total",
        "aggregator_events_flushed_total",
        "aggregator_flush_duration_seconds",
        "aggregator_buffered_keys",
        "aggregator_consumer_lag_messages",
        "aggregator_dead_letters_total",
        "aggregator_cassandra_errors_total",
        "query_cassandra_read_duration_seconds",
        "query_cassandra_errors_total",
    ];
    let missing: Vec<&str> = golden.into_iter().filter(|g| !used.contains(*g)).collect();
    assert!(missing.is_empty(), "no panel shows {missing:?}");

    // Every panel uses the provisioned data source.
    let ds = yaml(&root, "deploy/grafana/provisioning/datasources/vcount.yml");
    let uid = str_of(&ds["datasources"][0]["uid"]);
    for p in dashboard["panels"].as_array().unwrap().iter().filter(|p| p["type"] != "row") {
        assert_eq!(p["datasource"]["uid"], uid.as_str(), "panel {}", p["title"]);
    }
}

/// `rule_files` of a Prometheus config.
fn rule_files(prom: &Value) -> Vec<String> {
    strings(&prom["rule_files"])
}

#[test]
fn prometheus_rules_are_loaded_by_both_configs_and_read_real_metrics() {
    let root = workspace_root();
    let compose = yaml(&root, "docker-compose.yml");
    let local = rule_files(&yaml(&root, "deploy/prometheus/prometheus.local.yml"));
    let prom = rule_files(&yaml(&root, "deploy/prometheus/prometheus.yml"));
    assert!(!local.is_empty(), "prometheus.local.yml loads no rules");
    assert_eq!(local, prom, "both Prometheus configs load the same rules");
    // Relative to each config's directory: deploy/prometheus/ here, /etc/prometheus/ in compose.
    let mounts: Vec<(String, String)> = strings(&compose["services"]["prometheus"]["volumes"])
        .iter()
        .map(|v| {
            let mut parts = v.split(':');
            (parts.next().unwrap().to_owned(), parts.next().unwrap().to_owned())
        })
        .collect();
    let config_mount = mounts.iter().find(|(host, _)| host == "./deploy/prometheus/prometheus.yml").expect("config");
    let config_dir = Path::new(&config_mount.1).parent().unwrap();
    let declared = declared_metrics();
    let kind_of = |n: &str| declared.get(n).map(|d| d.metric.kind.as_str().to_owned());
    for rel in &local {
        assert!(!rel.contains('*'), "{rel}: name rule files exactly, so this test can check them");
        let file = root.join("deploy/prometheus").join(rel);
        assert!(file.exists(), "{rel}: no {}", file.display());
        // The file is inside a directory compose mounts where the config looks.
        let in_container = config_dir.join(rel);
        let mounted = mounts.iter().any(|(host, target)| {
            in_container.strip_prefix(target).is_ok_and(|rest| root.join(host).join(rest) == file)
        });
        assert!(mounted, "compose does not mount {rel} at {}", in_container.display());

        // Every metric a rule reads is declared by a service (names with `:` are the
        // rules' own recordings).
        let rules: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let mut recorded = BTreeSet::new();
        let mut wrong = Vec::new();
        let mut alerts = 0;
        for group in rules["groups"].as_sequence().expect("groups") {
            for rule in group["rules"].as_sequence().expect("rules") {
                let name = rule["record"].as_str().or(rule["alert"].as_str()).expect("record or alert").to_owned();
                if rule["record"].is_string() {
                    recorded.insert(name.clone());
                } else {
                    alerts += 1;
                }
                let expr = str_of(&rule["expr"]);
                for metric in promql_metric_names(&expr).unwrap_or_else(|e| panic!("{name}: {e}")) {
                    if metric.contains(':') {
                        if !recorded.contains(&metric) {
                            wrong.push(format!("{name}: reads {metric}, not recorded above it"));
                        }
                    } else if let Err(e) = queried_family(&metric, kind_of) {
                        wrong.push(format!("{name}: {e}"));
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "{rel}:\n{}", wrong.join("\n"));
        assert!(recorded.len() >= 5 && alerts >= 5, "{rel}: {} recordings, {alerts} alerts", recorded.len());
    }
}
