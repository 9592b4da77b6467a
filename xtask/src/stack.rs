//! Kafka (KRaft, one combined broker and controller) and Cassandra 5 as plain JVMs.
//!
//! Layout under `VCOUNT_HOME` (default `.local`), one directory per server:
//! rendered configs, `data/`, `pid`, `out.log` (the JVM's stdout and stderr) and
//! `out.log.1` (the previous run, kept for post-mortems after a kill). The jars live
//! in `VCOUNT_CACHE` (default `.cache`), fetched by Maven.
//!
//! Every command is safe to call twice: `start` leaves a running server alone (and
//! waits for one that is still starting), `stop` and `kill` only ever signal the JVM
//! whose pid file this stack wrote, after `/proc` confirms it is that JVM. Commands
//! that change state hold `VCOUNT_HOME/.stack.lock`, so tests may call `start` from
//! several processes at once and get one JVM per server; `start` holds it until the
//! servers are ready, so a second caller returns only once they are usable.

use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustix::process::Signal;

use crate::fetch::{path_str, pom_property};
use crate::process::{self, owned_pid};
use crate::{Reported, Server, StackSettings, Which, jvm, ready};

const STOP_GRACE: Duration = Duration::from_secs(30);

/// A server `start` waits for.
enum Starting {
    /// Launched by this call; the child handle says when it exits.
    Launched(Child),
    /// Launched by an earlier call that gave up waiting; found by its pid file.
    Earlier,
}
const LOCK_WAIT: Duration = Duration::from_secs(300);

pub struct Stack {
    pub settings: StackSettings,
    pub root: PathBuf,
    pub infra: PathBuf,
    /// Absolute: the JVMs run in their own directories, and the pid check looks for
    /// this path on a JVM's command line.
    pub home: PathBuf,
    pub cache: PathBuf,
}

/// The lines `scripts/stack env` prints.
pub fn env_lines(s: &StackSettings) -> String {
    format!(
        "export VCOUNT_KAFKA_BROKERS={}\nexport VCOUNT_CASSANDRA_NODES={}\n",
        ready::loopback(s.kafka_port),
        ready::loopback(s.cassandra_port)
    )
}

fn absolute_dir(dir: PathBuf) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let abs = dir.canonicalize()?;
    path_str(&abs)?;
    Ok(abs)
}

impl Stack {
    pub fn new(settings: StackSettings, root: PathBuf) -> anyhow::Result<Self> {
        let home = absolute_dir(settings.home.clone().unwrap_or_else(|| root.join(".local")))?;
        let cache = absolute_dir(settings.cache.clone().unwrap_or_else(|| root.join(".cache")))?;
        Ok(Self { infra: root.join("infra"), settings, root, home, cache })
    }

    pub fn port(&self, server: Server) -> u16 {
        match server {
            Server::Kafka => self.settings.kafka_port,
            Server::Cassandra => self.settings.cassandra_port,
        }
    }

    fn timeout(&self, server: Server) -> Duration {
        Duration::from_secs(match server {
            Server::Kafka => self.settings.kafka_timeout,
            Server::Cassandra => self.settings.cassandra_timeout,
        })
    }

    pub fn version(&self, server: Server) -> anyhow::Result<String> {
        let from_env = match server {
            Server::Kafka => &self.settings.kafka_version,
            Server::Cassandra => &self.settings.cassandra_version,
        };
        if let Some(v) = from_env.as_deref().filter(|v| !v.is_empty()) {
            return Ok(v.to_string());
        }
        let pom = self.infra.join(server.name()).join("pom.xml");
        let text = fs::read_to_string(&pom).with_context(|| format!("reading {}", pom.display()))?;
        pom_property(&text, &format!("{}.version", server.name()))
            .with_context(|| format!("{}: no <{}.version>", pom.display(), server.name()))
    }

    fn dir(&self, server: Server) -> PathBuf {
        self.home.join(server.name())
    }

    fn lib(&self, server: Server) -> anyhow::Result<PathBuf> {
        Ok(self.cache.join(format!("{}-{}", server.name(), self.version(server)?)).join("lib"))
    }

    fn pidfile(&self, server: Server) -> PathBuf {
        self.dir(server).join("pid")
    }

    fn log(&self, server: Server) -> PathBuf {
        self.dir(server).join("out.log")
    }

    /// The server's pid if it is our JVM: alive, `java`, and started from this stack's
    /// directory (its config path is on the command line).
    pub fn our_pid(&self, server: Server) -> Option<u32> {
        let marker = format!("{}/", self.dir(server).display());
        owned_pid(&self.pidfile(server), "java", Some(&marker))
    }

    fn lock(&self) -> anyhow::Result<File> {
        let path = self.home.join(".stack.lock");
        let file = File::options().create(true).truncate(false).write(true).open(&path)?;
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => sleep(Duration::from_millis(100)),
                Err(TryLockError::WouldBlock) => {
                    bail!("another stack command has held {} for {} s", path.display(), LOCK_WAIT.as_secs())
                }
                Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("locking {}", path.display())),
            }
        }
    }

    // ------------------------------------------------------------- commands ----

    pub fn fetch_all(&self) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        for server in Server::BOTH {
            self.fetch(server, false)?;
        }
        Ok(())
    }

    /// Launches every server that is not up first, then waits: the JVMs boot in parallel.
    pub fn start(&self, which: Which) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        let mut waiting = Vec::new();
        for &server in which.servers() {
            let t0 = Instant::now();
            if let Some(starting) = self.begin_start(server)? {
                waiting.push((server, t0, starting));
            }
        }
        let mut failed = Vec::new();
        for (server, t0, mut starting) in waiting {
            if !self.wait_ready(server, t0, &mut starting) {
                failed.push(server.name());
            }
        }
        if failed.is_empty() { Ok(()) } else { bail!("not ready: {}", failed.join(", ")) }
    }

    pub fn stop(&self, which: Which) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        self.stop_locked(which);
        Ok(())
    }

    pub fn kill(&self, server: Server) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        self.stop_one(server, true);
        Ok(())
    }

    /// Prints one line per server; exit 3 unless both are running.
    pub fn status(&self) -> anyhow::Result<()> {
        let mut up = 0;
        for server in Server::BOTH {
            let port = self.port(server);
            let (state, pid) = match self.our_pid(server) {
                Some(pid) if ready::port_open(port) => ("running", pid.to_string()),
                Some(pid) => ("starting", pid.to_string()),
                None => ("stopped", "-".to_string()),
            };
            up += usize::from(state == "running");
            println!(
                "{:<10} {state:<9} pid={pid:<8} port=127.0.0.1:{port:<6} log={}",
                server.name(),
                self.log(server).display()
            );
        }
        if up == 2 { Ok(()) } else { Err(Reported(3).into()) }
    }

    pub fn reset(&self) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        self.stop_locked(Which::All);
        for server in Server::BOTH {
            let dir = self.dir(server);
            if dir.exists() {
                fs::remove_dir_all(&dir).with_context(|| format!("deleting {}", dir.display()))?;
            }
        }
        eprintln!("deleted {} and {}", self.dir(Server::Kafka).display(), self.dir(Server::Cassandra).display());
        Ok(())
    }

    // ---------------------------------------------------------------- start ----

    /// Phase 1 of start: what to wait for if a JVM was launched (or one is still
    /// starting), `None` if it is already up.
    fn begin_start(&self, server: Server) -> anyhow::Result<Option<Starting>> {
        let name = server.name();
        let port = self.port(server);
        if let Some(pid) = self.our_pid(server) {
            if ready::port_open(port) {
                eprintln!("{name}: already running (pid {pid}, 127.0.0.1:{port})");
                return Ok(None);
            }
            eprintln!("{name}: already starting (pid {pid}), waiting");
            return Ok(Some(Starting::Earlier));
        }
        let _ = fs::remove_file(self.pidfile(server));
        if ready::port_open(port) {
            bail!("{name}: port {port} is taken by a process this stack did not start");
        }
        self.fetch(server, true)?;
        let args = match server {
            Server::Kafka => self.prepare_kafka()?,
            Server::Cassandra => self.prepare_cassandra()?,
        };
        let child = self.launch(server, &args)?;
        eprintln!("{name}: launched pid {}, waiting until ready", child.id());
        Ok(Some(Starting::Launched(child)))
    }

    fn launch(&self, server: Server, args: &[String]) -> anyhow::Result<Child> {
        let dir = self.dir(server);
        let _ = fs::remove_file(self.pidfile(server));
        let mut cmd = Command::new(&self.settings.java);
        cmd.args(args).current_dir(&dir);
        let child = process::spawn_detached(&mut cmd, &self.log(server))?;
        fs::write(self.pidfile(server), format!("{}\n", child.id()))?;
        Ok(child)
    }

    /// Phase 2 of start: polls until usable, the process dies, or the timeout.
    fn wait_ready(&self, server: Server, t0: Instant, starting: &mut Starting) -> bool {
        let name = server.name();
        let port = self.port(server);
        let log = self.log(server);
        let mut last_answer = String::from("port closed");
        loop {
            let marker = format!("{}/", self.dir(server).display());
            let state = match starting {
                // Our own child: ask the kernel directly (and reap it). `/proc` is no
                // good here: right after spawn its command line can still be empty,
                // because the parent resumes before exec has laid out the arguments.
                Starting::Launched(child) => match child.try_wait() {
                    Ok(None) => Ok(child.id()),
                    Ok(Some(status)) => Err(status.to_string()),
                    Err(e) => Err(e.to_string()),
                },
                Starting::Earlier => process::check_pid(&self.pidfile(server), "java", Some(&marker)),
            };
            let pid = match state {
                Ok(pid) => pid,
                Err(why) => {
                    eprintln!("{name}: process exited during start ({why}); last 40 lines of {}:", log.display());
                    eprint!("{}", process::tail(&log, 40));
                    let _ = fs::remove_file(self.pidfile(server));
                    return false;
                }
            };
            if ready::port_open(port) {
                let answer = match server {
                    Server::Kafka => ready::kafka(port).map(|n| format!("{n} broker")),
                    Server::Cassandra => ready::cassandra(port).map(|v| format!("Cassandra {v}")),
                };
                match answer {
                    Ok(what) => {
                        eprintln!(
                            "{name}: ready on 127.0.0.1:{port} after {} (pid {pid}, {what})",
                            process::elapsed(t0)
                        );
                        return true;
                    }
                    Err(e) => last_answer = format!("{e:#}"),
                }
            }
            if t0.elapsed() > self.timeout(server) {
                eprintln!(
                    "{name}: not ready after {} s; last 40 lines of {}:",
                    self.timeout(server).as_secs(),
                    log.display()
                );
                eprint!("{}", process::tail(&log, 40));
                eprintln!("{name}: last readiness check: {last_answer}");
                eprintln!("{name}: still running as pid {pid}; 'scripts/stack stop {name}' to stop it");
                return false;
            }
            sleep(Duration::from_secs(1));
        }
    }

    fn render(&self, template: &Path, out: &Path, vars: &[(&str, &str)]) -> anyhow::Result<()> {
        let text = fs::read_to_string(template).with_context(|| format!("reading {}", template.display()))?;
        let rendered = jvm::render(&text, vars).with_context(|| template.display().to_string())?;
        fs::write(out, rendered).with_context(|| format!("writing {}", out.display()))
    }

    fn jvm_options(&self, server: Server, heap: Option<&str>) -> anyhow::Result<Vec<String>> {
        let path = self.infra.join(server.name()).join("jvm.options");
        let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(jvm::with_heap(jvm::parse_options(&text), heap))
    }

    // ---------------------------------------------------------------- kafka ----

    /// Renders the configs, formats storage on first start, and returns the JVM's
    /// arguments: the options file, then the flags naming our files, then the
    /// caller's extra flags (last, so they win), then the classpath and main class.
    fn prepare_kafka(&self) -> anyhow::Result<Vec<String>> {
        let dir = self.dir(Server::Kafka);
        let data = dir.join("data");
        fs::create_dir_all(&data)?;
        let (port, controller) =
            (self.settings.kafka_port.to_string(), self.settings.kafka_controller_port.to_string());
        let kafka_infra = self.infra.join("kafka");
        self.render(
            &kafka_infra.join("server.properties.tmpl"),
            &dir.join("server.properties"),
            &[("KAFKA_PORT", &port), ("KAFKA_CONTROLLER_PORT", &controller), ("KAFKA_DATA_DIR", path_str(&data)?)],
        )?;
        self.render(&kafka_infra.join("log4j2.properties.tmpl"), &dir.join("log4j2.properties"), &[])?;
        // KRaft refuses to start on unformatted storage; format exactly once so a
        // restart keeps topics and offsets.
        if !data.join("meta.properties").exists() {
            self.format_kafka_storage(&dir)?;
        }
        Ok(kafka_args(
            self.jvm_options(Server::Kafka, self.settings.kafka_heap.as_deref())?,
            path_str(&dir)?,
            path_str(&self.lib(Server::Kafka)?)?,
            jvm::words(self.settings.kafka_jvm_opts.as_deref()),
        ))
    }

    fn format_kafka_storage(&self, dir: &Path) -> anyhow::Result<()> {
        // A Kafka cluster id is 16 random bytes in URL-safe base64 without padding.
        let mut id = [0u8; 16];
        std::io::Read::read_exact(&mut File::open("/dev/urandom")?, &mut id)?;
        let cluster_id = URL_SAFE_NO_PAD.encode(id);
        let lib = self.lib(Server::Kafka)?;
        let tools = self.infra.join("kafka");
        let mut cmd = Command::new(&self.settings.java);
        // A client JVM that lives a few seconds: its own small options file.
        cmd.args(jvm::parse_options(&fs::read_to_string(tools.join("tools-jvm.options"))?))
            .arg(format!("-Dlog4j2.configurationFile={}", path_str(&tools.join("tools-log4j2.properties"))?))
            .args(["-cp", &format!("{}/*", path_str(&lib)?), "kafka.tools.StorageTool", "format", "-t", &cluster_id])
            .arg("-c")
            .arg(dir.join("server.properties"));
        let log = dir.join("format.log");
        if !process::run_logged(&mut cmd, &log, Duration::from_secs(120))? {
            eprint!("{}", fs::read_to_string(&log).unwrap_or_default());
            bail!("kafka: storage format failed (log: {})", log.display());
        }
        Ok(())
    }

    // ------------------------------------------------------------ cassandra ----

    fn prepare_cassandra(&self) -> anyhow::Result<Vec<String>> {
        let dir = self.dir(Server::Cassandra);
        let data = dir.join("data");
        // An empty triggers dir: without it every schema change logs a warning.
        fs::create_dir_all(&data)?;
        fs::create_dir_all(dir.join("triggers"))?;
        let s = &self.settings;
        let ports = [s.cassandra_port, s.cassandra_storage_port, s.cassandra_ssl_storage_port].map(|p| p.to_string());
        let infra = self.infra.join("cassandra");
        self.render(
            &infra.join("cassandra.yaml.tmpl"),
            &dir.join("cassandra.yaml"),
            &[
                ("CASSANDRA_PORT", &ports[0]),
                ("CASSANDRA_STORAGE_PORT", &ports[1]),
                ("CASSANDRA_SSL_STORAGE_PORT", &ports[2]),
                ("CASSANDRA_DATA_DIR", path_str(&data)?),
            ],
        )?;
        self.render(&infra.join("logback.xml.tmpl"), &dir.join("logback.xml"), &[])?;
        let lib = self.lib(Server::Cassandra)?;
        // Cassandra measures object sizes with jamm, which must be a java agent.
        let jamm = fs::read_dir(&lib)
            .with_context(|| format!("reading {}", lib.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("jamm-")))
            .with_context(|| format!("cassandra: no jamm jar in {}", lib.display()))?;
        Ok(cassandra_args(
            self.jvm_options(Server::Cassandra, s.cassandra_heap.as_deref())?,
            path_str(&dir)?,
            path_str(&lib)?,
            path_str(&jamm)?,
            s.cassandra_jmx_port,
            jvm::words(s.cassandra_jvm_opts.as_deref()),
        ))
    }

    // ----------------------------------------------------------------- stop ----

    fn stop_locked(&self, which: Which) {
        for &server in which.servers() {
            self.stop_one(server, false);
        }
    }

    fn stop_one(&self, server: Server, kill: bool) {
        let name = server.name();
        let pidfile = self.pidfile(server);
        let Some(pid) = self.our_pid(server) else {
            if pidfile.exists() {
                eprintln!("{name}: removing stale pid file");
            }
            let _ = fs::remove_file(&pidfile);
            eprintln!("{name}: not running");
            return;
        };
        let sig = if kill {
            process::signal(pid, Signal::KILL);
            // Wait for the kernel to reap it so the ports are free when we return.
            process::wait_gone(pid, Duration::from_secs(5));
            "SIGKILL"
        } else {
            process::terminate(pid, STOP_GRACE, name)
        };
        let _ = fs::remove_file(&pidfile);
        eprintln!("{name}: stopped (pid {pid}, {sig})");
    }
}

/// Kafka's command line: the options file, the flags naming our files, the caller's
/// extra flags (last, so they win), the classpath, the main class and its config.
fn kafka_args(options: Vec<String>, dir: &str, lib: &str, extra: Vec<String>) -> Vec<String> {
    let mut args = options;
    args.push(format!("-Dlog4j2.configurationFile={dir}/log4j2.properties"));
    args.extend(extra);
    args.extend(["-cp".into(), format!("{lib}/*"), "kafka.Kafka".into(), format!("{dir}/server.properties")]);
    args
}

/// Cassandra's command line, in the same order as Kafka's.
fn cassandra_args(options: Vec<String>, dir: &str, lib: &str, jamm: &str, jmx: u16, extra: Vec<String>) -> Vec<String> {
    let mut args = options;
    args.extend([
        // Cassandra measures object sizes with jamm, which must be a java agent.
        format!("-javaagent:{jamm}"),
        format!("-Dcassandra.config=file://{dir}/cassandra.yaml"),
        format!("-Dcassandra.storagedir={dir}/data"),
        format!("-Dcassandra.logdir={dir}"),
        format!("-Dcassandra.triggers_dir={dir}/triggers"),
        format!("-Dlogback.configurationFile={dir}/logback.xml"),
        format!("-Dcassandra.jmx.local.port={jmx}"),
    ]);
    args.extend(extra);
    args.extend(["-cp".into(), format!("{lib}/*"), "org.apache.cassandra.service.CassandraDaemon".into()]);
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(name: &str, heap: Option<&str>) -> Vec<String> {
        let text = match name {
            "kafka" => include_str!("../../infra/kafka/jvm.options"),
            _ => include_str!("../../infra/cassandra/jvm.options"),
        };
        jvm::with_heap(jvm::parse_options(text), heap)
    }

    #[test]
    fn kafka_gets_the_options_file_then_its_config_then_the_callers_flags() {
        let extra = jvm::words(Some("-Xmx1g -Dx=1"));
        let args = kafka_args(options("kafka", None), "/h/kafka", "/c/kafka-4.3.1/lib", extra);
        assert_eq!(&args[..2], ["-Xms256m", "-Xmx512m"]);
        assert!(args.contains(&"-XX:+UseG1GC".to_string()));
        let at = |flag: &str| args.iter().position(|a| a == flag).unwrap_or_else(|| panic!("{flag} missing"));
        // The caller's -Xmx comes after the file's, so the JVM takes it.
        assert!(at("-Xmx1g") > at("-Xmx512m"));
        assert!(at("-Dlog4j2.configurationFile=/h/kafka/log4j2.properties") < at("-Dx=1"));
        assert_eq!(
            &args[args.len() - 4..],
            ["-cp", "/c/kafka-4.3.1/lib/*", "kafka.Kafka", "/h/kafka/server.properties"]
        );
    }

    #[test]
    fn cassandra_gets_the_options_file_then_its_wiring_and_the_heap_override() {
        let args = cassandra_args(
            options("cassandra", Some("-Xms256m -Xmx512m")),
            "/h/cassandra",
            "/c/lib",
            "/c/lib/jamm-0.4.0.jar",
            27199,
            vec![],
        );
        assert_eq!(&args[..2], ["-Xms256m", "-Xmx512m"]);
        assert!(!args.iter().any(|a| a == "-Xmx2g" || a == "-Xms1g"), "the file's heap is replaced");
        for want in [
            "-javaagent:/c/lib/jamm-0.4.0.jar",
            "-Dcassandra.config=file:///h/cassandra/cassandra.yaml",
            "-Dcassandra.jmx.local.port=27199",
            "-XX:+ExitOnOutOfMemoryError",
            "java.base/java.lang=ALL-UNNAMED",
        ] {
            assert!(args.iter().any(|a| a == want), "{want} missing");
        }
        // The pid check finds this stack's JVM by its directory on the command line.
        assert!(args.iter().any(|a| a.contains("/h/cassandra/")));
        assert_eq!(args.last().unwrap(), "org.apache.cassandra.service.CassandraDaemon");
    }
}
