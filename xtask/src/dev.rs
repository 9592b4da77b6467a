//! The whole pipeline on this machine: the stack, then the aggregator, the ingest
//! gateway and the query service, built in release mode, each started detached with
//! its log and pid file in `VCOUNT_HOME/services/` and awaited on its `/readyz`.
//!
//! The services get `deploy/vcount.env` (the settings docker-compose shares), except
//! what the caller's environment already sets, plus what only this machine knows: the
//! stack's addresses (so a second stack on other ports gets its own services), one
//! sign-in secret kept in `VCOUNT_HOME/jwt-secret` for the query service (which issues
//! tokens) and the gateway (which checks them), and the gateway's URL for the query
//! service's one origin. Start order matters: the aggregator creates the topics and
//! the schema first. Only processes whose pid files this wrote, still running the
//! service's own executable, are ever stopped.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::process::{self, owned_pid};
use crate::stack::Stack;
use crate::{Server, Which, ready};

struct Service {
    /// The binary's and the log's name.
    name: &'static str,
    /// The config key (as an environment variable) of its listen address.
    listen_key: &'static str,
    /// Where its `/readyz` and `/metrics` are: the admin listener where it has one.
    ops_key: &'static str,
}

/// In start order.
const SERVICES: [Service; 3] = [
    Service { name: "aggregator", listen_key: "AGGREGATOR__HTTP__LISTEN", ops_key: "AGGREGATOR__HTTP__LISTEN" },
    Service { name: "ingest-gateway", listen_key: "GATEWAY__HTTP__LISTEN", ops_key: "GATEWAY__ADMIN__LISTEN" },
    Service { name: "query-service", listen_key: "QUERY__HTTP__LISTEN", ops_key: "QUERY__ADMIN__LISTEN" },
];

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(30);

/// `KEY=VALUE` lines of `deploy/vcount.env`; comments and anything that is not an
/// upper-case variable name are skipped. The value is taken as written (no quotes).
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(k, _)| {
            let mut chars = k.chars();
            chars.next().is_some_and(|c| c.is_ascii_uppercase())
                && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What the services get on top of the caller's environment (`caller` reads it).
/// Caller's values always win; for the secret and the gateway URL an empty value
/// counts as unset, as it did in the shell version.
pub fn service_env(
    shared: &str,
    caller: &dyn Fn(&str) -> Option<String>,
    kafka: SocketAddr,
    cassandra: SocketAddr,
    new_secret: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    let default = |env: &mut BTreeMap<String, String>, key: &str, value: String| {
        if caller(key).is_none() {
            env.insert(key.to_string(), value);
        }
    };
    for (key, value) in parse_env_file(shared) {
        default(&mut env, &key, value);
    }
    for key in ["GATEWAY__KAFKA__BROKERS", "AGGREGATOR__KAFKA__BROKERS", "QUERY__KAFKA__BROKERS"] {
        default(&mut env, key, kafka.to_string());
    }
    for key in ["AGGREGATOR__CASSANDRA__NODES", "QUERY__CASSANDRA__NODES"] {
        default(&mut env, key, cassandra.to_string());
    }
    let non_empty = |key: &str| caller(key).filter(|v| !v.is_empty());
    let secret = match non_empty("QUERY__AUTH__JWT_SECRET") {
        Some(s) => s,
        None => {
            let s = new_secret()?;
            env.insert("QUERY__AUTH__JWT_SECRET".into(), s.clone());
            s
        }
    };
    if non_empty("GATEWAY__AUTH__JWT_SECRET").is_none() {
        env.insert("GATEWAY__AUTH__JWT_SECRET".into(), secret);
    }
    if non_empty("QUERY__WEB__GATEWAY_URL").is_none() {
        let listen = caller("GATEWAY__HTTP__LISTEN")
            .or_else(|| env.get("GATEWAY__HTTP__LISTEN").cloned())
            .context("GATEWAY__HTTP__LISTEN is set neither in the environment nor in deploy/vcount.env")?;
        env.insert("QUERY__WEB__GATEWAY_URL".into(), format!("http://{listen}"));
        // The query service forwards browsers' gateway routes from loopback with
        // the client's address in X-Forwarded-For; unless the gateway trusts that
        // hop, every browser shares one anonymous rate-limit bucket (20 views/s).
        default(&mut env, "GATEWAY__LIMITS__TRUSTED_PROXIES", r#"["127.0.0.1/32"]"#.into());
    }
    env.insert("NO_COLOR".into(), "1".into());
    Ok(env)
}

/// The gateway's producer keys for this checkout: one key, made once and kept in
/// `VCOUNT_HOME/producer-key` (loadgen reads it from `VCOUNT_API_KEY`); the gateway
/// gets only its SHA-256. `None` when the caller configures keys itself.
fn producer_keys(home: &Path) -> anyhow::Result<Option<String>> {
    if std::env::var("GATEWAY__PRODUCERS__KEYS").is_ok_and(|v| !v.is_empty()) {
        return Ok(None);
    }
    let path = home.join("producer-key");
    let key = match fs::read_to_string(&path) {
        Ok(k) if !k.trim().is_empty() => k.trim().to_string(),
        _ => {
            let mut bytes = [0u8; 32];
            std::io::Read::read_exact(&mut fs::File::open("/dev/urandom")?, &mut bytes)?;
            let key = format!("vck_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
            fs::write(&path, &key).with_context(|| format!("writing {}", path.display()))?;
            key
        }
    };
    let sha: String =
        <sha2::Sha256 as sha2::Digest>::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    Ok(Some(format!(r#"[{{name="dev",sha256="{sha}",per_second=0,burst=0}}]"#)))
}

/// One secret per checkout (per `VCOUNT_HOME`), made once: tokens survive restarts.
fn stored_secret(home: &Path) -> anyhow::Result<String> {
    let path = home.join("jwt-secret");
    if let Ok(s) = fs::read_to_string(&path)
        && !s.trim().is_empty()
    {
        return Ok(s.trim().to_string());
    }
    let mut bytes = [0u8; 32];
    std::io::Read::read_exact(&mut fs::File::open("/dev/urandom")?, &mut bytes)?;
    let secret = STANDARD.encode(bytes);
    fs::write(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    Ok(secret)
}

struct Dev<'a> {
    stack: &'a Stack,
    env: BTreeMap<String, String>,
    dir: PathBuf,
}

impl Dev<'_> {
    fn new(stack: &Stack) -> anyhow::Result<Dev<'_>> {
        let shared_path = stack.root.join("deploy/vcount.env");
        let shared = fs::read_to_string(&shared_path).with_context(|| format!("reading {}", shared_path.display()))?;
        let env = service_env(
            &shared,
            &|k| std::env::var(k).ok(),
            ready::loopback(stack.port(Server::Kafka)),
            ready::loopback(stack.port(Server::Cassandra)),
            || stored_secret(&stack.home),
        )?;
        let mut env = env;
        if let Some(keys) = producer_keys(&stack.home)? {
            env.insert("GATEWAY__PRODUCERS__KEYS".into(), keys);
        }
        let dir = stack.home.join("services");
        fs::create_dir_all(&dir)?;
        Ok(Dev { stack, env, dir })
    }

    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().or_else(|| self.env.get(key).cloned())
    }

    fn url(&self, svc: &Service) -> String {
        format!("http://{}", self.get(svc.listen_key).unwrap_or_default())
    }

    /// Where `/readyz` and `/metrics` are.
    fn ops_url(&self, svc: &Service) -> String {
        format!("http://{}", self.get(svc.ops_key).unwrap_or_default())
    }

    fn pidfile(&self, svc: &Service) -> PathBuf {
        self.dir.join(format!("{}.pid", svc.name))
    }

    fn log(&self, svc: &Service) -> PathBuf {
        self.dir.join(format!("{}.log", svc.name))
    }

    fn pid(&self, svc: &Service) -> Option<u32> {
        owned_pid(&self.pidfile(svc), svc.name, None)
    }

    fn start(
        &self,
        svc: &Service,
        bin: &Path,
        rt: &tokio::runtime::Runtime,
        http: &reqwest::Client,
    ) -> anyhow::Result<()> {
        let name = svc.name;
        let url = self.ops_url(svc);
        if let Some(pid) = self.pid(svc) {
            println!("{name}: already running (pid {pid})");
            return Ok(());
        }
        let log = self.log(svc);
        let mut child = process::spawn_detached(Command::new(bin).envs(&self.env).current_dir(&self.stack.root), &log)?;
        let pid = child.id();
        fs::write(self.pidfile(svc), format!("{pid}\n"))?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if ready::http_ready(rt, http, &url) {
                println!("{name}: ready at {url} (pid {pid})");
                return Ok(());
            }
            if let Some(status) = child.try_wait()? {
                eprint!("{}", process::tail(&log, 30));
                let _ = fs::remove_file(self.pidfile(svc));
                bail!("{name} exited during start-up ({status}); log: {}", log.display());
            }
            if Instant::now() >= deadline {
                eprint!("{}", process::tail(&log, 30));
                bail!("{name} not ready after {} s; log: {}", READY_TIMEOUT.as_secs(), log.display());
            }
            sleep(Duration::from_millis(500));
        }
    }

    fn stop(&self, svc: &Service) {
        let pidfile = self.pidfile(svc);
        if let Some(pid) = self.pid(svc) {
            let sig = process::terminate(pid, STOP_GRACE, svc.name);
            println!("{}: stopped (pid {pid}, {sig})", svc.name);
        }
        let _ = fs::remove_file(pidfile);
    }
}

/// `cargo build --release` of the three binaries; returns where cargo put each one
/// (from its JSON messages, so a `build.target-dir` anywhere is found).
fn build_release(root: &Path) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).args(["build", "--release", "--message-format=json-render-diagnostics"]);
    for svc in &SERVICES {
        cmd.args(["--bin", svc.name]);
    }
    let mut child = cmd.stdout(Stdio::piped()).spawn().context("running cargo build")?;
    let mut bins = BTreeMap::new();
    for line in BufReader::new(child.stdout.take().context("cargo's stdout")?).lines() {
        let msg: serde_json::Value = match serde_json::from_str(&line?) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if msg["reason"] == "compiler-artifact"
            && let (Some(name), Some(exe)) = (msg["target"]["name"].as_str(), msg["executable"].as_str())
        {
            bins.insert(name.to_string(), PathBuf::from(exe));
        }
    }
    anyhow::ensure!(child.wait()?.success(), "cargo build --release failed");
    for svc in &SERVICES {
        anyhow::ensure!(bins.contains_key(svc.name), "cargo build reported no executable for {}", svc.name);
    }
    Ok(bins)
}

pub fn up(stack: &Stack) -> anyhow::Result<()> {
    stack.start(Which::All)?;
    println!("building the services (release)…");
    let bins = build_release(&stack.root)?;
    let dev = Dev::new(stack)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let http = reqwest::Client::new();
    for svc in &SERVICES {
        dev.start(svc, &bins[svc.name], &rt, &http)?;
    }
    let [agg, gw, q] = SERVICES.each_ref().map(|s| dev.url(s));
    let gw_admin = dev.ops_url(&SERVICES[1]);
    let q_admin = dev.ops_url(&SERVICES[2]);
    let key_file = stack.home.join("producer-key").display().to_string();
    let (kafka, cassandra) =
        (ready::loopback(stack.port(Server::Kafka)), ready::loopback(stack.port(Server::Cassandra)));
    let id = "550e8400-e29b-41d4-a716-446655440000";
    println!(
        "
The pipeline is up.
  ingest gateway  {gw}        (metrics: {gw_admin}/metrics, the admin port)
  producer key    VCOUNT_API_KEY=$(cat {key_file})  (X-Api-Key: batches and values other than 1)
  query service   {q}        (metrics: {q_admin}/metrics, the admin port)
  counts page     {q}/dashboard
  aggregator      {agg}/metrics
  Kafka           {kafka}    Cassandra {cassandra}
Try:
  curl -i -X POST {gw}/api/v1/videos/id/{id}/view
  sleep 6; curl -s {q}/api/v1/videos/{id}/views
Stop everything with: scripts/dev down"
    );
    Ok(())
}

pub fn down(stack: &Stack) -> anyhow::Result<()> {
    let dev = Dev::new(stack)?;
    for svc in SERVICES.iter().rev() {
        dev.stop(svc);
    }
    stack.stop(Which::All)
}

pub fn status(stack: &Stack) -> anyhow::Result<()> {
    let dev = Dev::new(stack)?;
    for svc in &SERVICES {
        match dev.pid(svc) {
            Some(pid) => println!("{}: running (pid {pid}) {}", svc.name, dev.url(svc)),
            None => println!("{}: stopped", svc.name),
        }
    }
    // The stack's own lines; its "not both up" exit code is not ours.
    let _ = stack.status();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHARED: &str = include_str!("../../deploy/vcount.env");

    fn addr(port: u16) -> SocketAddr {
        ready::loopback(port)
    }

    fn env_with(caller: &[(&str, &str)]) -> BTreeMap<String, String> {
        let caller: BTreeMap<String, String> = caller.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        service_env(SHARED, &|k| caller.get(k).cloned(), addr(29092), addr(29042), || Ok("s".repeat(44))).unwrap()
    }

    #[test]
    fn the_shared_file_is_read_and_comments_are_skipped() {
        let pairs = parse_env_file(SHARED);
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        for svc in &SERVICES {
            assert!(keys.contains(&svc.listen_key), "{} missing from deploy/vcount.env", svc.listen_key);
        }
        assert!(keys.contains(&"GATEWAY__KAFKA__TOPIC_PREFIX"), "an empty value is still a setting");
        assert!(keys.iter().all(|k| !k.starts_with('#')));
        assert_eq!(
            parse_env_file("# A=1\nB=2=3\nlower=x\n9X=1\nC=\n"),
            [("B".to_string(), "2=3".to_string()), ("C".to_string(), String::new())]
        );
    }

    #[test]
    fn services_get_the_shared_settings_and_this_stacks_addresses() {
        let env = env_with(&[]);
        assert_eq!(env["AGGREGATOR__CASSANDRA__KEYSPACE"], "vcount");
        assert_eq!(env["GATEWAY__KAFKA__TOPIC_PREFIX"], "");
        for key in ["GATEWAY__KAFKA__BROKERS", "AGGREGATOR__KAFKA__BROKERS", "QUERY__KAFKA__BROKERS"] {
            assert_eq!(env[key], "127.0.0.1:29092", "{key}");
        }
        for key in ["AGGREGATOR__CASSANDRA__NODES", "QUERY__CASSANDRA__NODES"] {
            assert_eq!(env[key], "127.0.0.1:29042", "{key}");
        }
        assert_eq!(env["QUERY__WEB__GATEWAY_URL"], format!("http://{}", env["GATEWAY__HTTP__LISTEN"]));
        assert_eq!(env["GATEWAY__LIMITS__TRUSTED_PROXIES"], r#"["127.0.0.1/32"]"#, "the one-origin hop is trusted");
        assert_eq!(env["QUERY__AUTH__JWT_SECRET"], env["GATEWAY__AUTH__JWT_SECRET"]);
        assert_eq!(env["NO_COLOR"], "1");
    }

    #[test]
    fn the_callers_environment_wins() {
        let env = env_with(&[
            ("GATEWAY__HTTP__LISTEN", "127.0.0.1:28080"),
            ("QUERY__CASSANDRA__NODES", "10.0.0.1:9042"),
            ("AGGREGATOR__CASSANDRA__KEYSPACE", ""),
            ("QUERY__AUTH__JWT_SECRET", "mine, at least thirty-two bytes long"),
        ]);
        // Inherited from the caller, so not in the set added on top.
        for key in ["GATEWAY__HTTP__LISTEN", "QUERY__CASSANDRA__NODES", "AGGREGATOR__CASSANDRA__KEYSPACE"] {
            assert!(!env.contains_key(key), "{key}");
        }
        assert!(!env.contains_key("QUERY__AUTH__JWT_SECRET"));
        assert_eq!(env["GATEWAY__AUTH__JWT_SECRET"], "mine, at least thirty-two bytes long");
        assert_eq!(env["QUERY__WEB__GATEWAY_URL"], "http://127.0.0.1:28080");
    }

    #[test]
    fn an_empty_secret_or_gateway_url_counts_as_unset() {
        let env = env_with(&[("QUERY__AUTH__JWT_SECRET", ""), ("QUERY__WEB__GATEWAY_URL", "")]);
        assert_eq!(env["QUERY__AUTH__JWT_SECRET"], "s".repeat(44));
        assert_eq!(env["GATEWAY__AUTH__JWT_SECRET"], "s".repeat(44));
        assert!(env["QUERY__WEB__GATEWAY_URL"].starts_with("http://127.0.0.1:"));
    }
}
