//! `cargo xtask`: the project's dev tooling, in Rust once it outgrew shell.
//!
//! `stack` runs Kafka (KRaft) and Cassandra 5 as plain JVMs for development and tests;
//! `dev` runs the three services on top of it; `faults` runs the fault suite (R1–R7
//! and backpressure, issue 11) on a stack of its own. `scripts/stack`, `scripts/dev`
//! and `scripts/faults` are thin wrappers over these, so every documented call keeps
//! working.
//!
//! Why Rust: the shell version had become a process supervisor (pid files, signals,
//! timeouts, a lock) and a protocol client (it spoke CQL over `/dev/tcp` and started
//! a JVM to list topics). Here readiness is asked of the real drivers the services use
//! (rdkafka metadata, the scylla driver's `SELECT release_version FROM system.local`).
//! Maven still fetches the jars (`infra/*/pom.xml`), and the JVM flags live in
//! `infra/*/jvm.options` where a person tunes them.

mod dev;
mod faults;
mod fetch;
mod jvm;
mod process;
mod ready;
mod stack;

use std::path::PathBuf;
use std::process::ExitCode;

use std::ffi::OsStr;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "xtask", about = "vcount dev tooling: the local Kafka + Cassandra stack and the services")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Local Kafka + Cassandra as plain JVMs (what `scripts/stack` runs).
    Stack {
        #[command(flatten)]
        settings: StackSettings,
        #[command(subcommand)]
        cmd: StackCmd,
    },
    /// The whole pipeline: the stack, then the three services in release mode (what `scripts/dev` runs).
    Dev {
        #[command(flatten)]
        settings: StackSettings,
        #[command(subcommand)]
        cmd: DevCmd,
    },
    /// The fault suite (what `scripts/faults` runs): R1–R7 and backpressure under load,
    /// on its own stack (default home .local/faults, every port + 20000), and the
    /// reliability table.
    Faults {
        #[command(flatten)]
        settings: StackSettings,
        #[command(flatten)]
        options: faults::Options,
    },
}

#[derive(Subcommand, Debug, PartialEq, Eq)]
enum StackCmd {
    /// Fetch the jars via Maven into the cache (once; `start` does it when needed).
    Fetch,
    /// Start and wait until really usable; a running server is left alone.
    Start {
        #[arg(value_enum, default_value_t = Which::All)]
        which: Which,
    },
    /// SIGTERM, then SIGKILL after 30 s; only a JVM this tool started, by its pid file.
    Stop {
        #[arg(value_enum, default_value_t = Which::All)]
        which: Which,
    },
    /// SIGKILL now (outage tests); `start` brings it back with its data.
    Kill {
        #[arg(value_enum)]
        server: Server,
    },
    /// One line per server; exit 0 only if both are up, else 3.
    Status,
    /// Stop both and delete their data (keeps the jar cache).
    Reset,
    /// `export` lines with the addresses tests read: `eval "$(scripts/stack env)"`.
    Env,
}

#[derive(Subcommand, Debug, PartialEq, Eq)]
enum DevCmd {
    /// Start the stack, build the services (release), start them, wait for each /readyz.
    Up,
    /// Stop the services this tool started, then Kafka and Cassandra.
    Down,
    /// What is running.
    Status,
}

/// One of the two servers.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    Kafka,
    Cassandra,
}

impl Server {
    pub const BOTH: [Server; 2] = [Server::Kafka, Server::Cassandra];

    pub fn name(self) -> &'static str {
        match self {
            Server::Kafka => "kafka",
            Server::Cassandra => "cassandra",
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Kafka,
    Cassandra,
    All,
}

impl Which {
    pub fn servers(self) -> &'static [Server] {
        match self {
            Which::Kafka => &[Server::Kafka],
            Which::Cassandra => &[Server::Cassandra],
            Which::All => &Server::BOTH,
        }
    }
}

/// Where things live and which ports and heaps to use. Every setting is also an
/// environment variable (the names `scripts/stack` always read), so a second stack
/// next to the first is only a matter of another `VCOUNT_HOME` and other ports.
#[derive(Args, Debug, Clone)]
pub struct StackSettings {
    /// Data, rendered configs, pid files and logs [default: <repo>/.local].
    #[arg(long, env = "VCOUNT_HOME", global = true)]
    pub home: Option<PathBuf>,
    /// The fetched jars [default: <repo>/.cache].
    #[arg(long, env = "VCOUNT_CACHE", global = true)]
    pub cache: Option<PathBuf>,
    /// Maven's local repository, if not ~/.m2/repository.
    #[arg(long, env = "VCOUNT_M2", global = true)]
    pub m2: Option<PathBuf>,
    #[arg(long, env = "VCOUNT_JAVA", default_value = "java", global = true)]
    pub java: String,
    #[arg(long, env = "VCOUNT_KAFKA_PORT", default_value_t = 19092, global = true)]
    pub kafka_port: u16,
    #[arg(long, env = "VCOUNT_KAFKA_CONTROLLER_PORT", default_value_t = 19093, global = true)]
    pub kafka_controller_port: u16,
    #[arg(long, env = "VCOUNT_CASSANDRA_PORT", default_value_t = 19042, global = true)]
    pub cassandra_port: u16,
    #[arg(long, env = "VCOUNT_CASSANDRA_STORAGE_PORT", default_value_t = 17000, global = true)]
    pub cassandra_storage_port: u16,
    #[arg(long, env = "VCOUNT_CASSANDRA_SSL_STORAGE_PORT", default_value_t = 17001, global = true)]
    pub cassandra_ssl_storage_port: u16,
    #[arg(long, env = "VCOUNT_CASSANDRA_JMX_PORT", default_value_t = 17199, global = true)]
    pub cassandra_jmx_port: u16,
    /// Heap flags replacing the -Xms/-Xmx lines of infra/kafka/jvm.options.
    #[arg(long, env = "VCOUNT_KAFKA_HEAP", allow_hyphen_values = true, global = true)]
    pub kafka_heap: Option<String>,
    /// Heap flags replacing the -Xms/-Xmx lines of infra/cassandra/jvm.options.
    #[arg(long, env = "VCOUNT_CASSANDRA_HEAP", allow_hyphen_values = true, global = true)]
    pub cassandra_heap: Option<String>,
    /// Extra JVM flags, appended last so they win (e.g. a debugger agent).
    #[arg(long, env = "VCOUNT_KAFKA_JVM_OPTS", allow_hyphen_values = true, global = true)]
    pub kafka_jvm_opts: Option<String>,
    #[arg(long, env = "VCOUNT_CASSANDRA_JVM_OPTS", allow_hyphen_values = true, global = true)]
    pub cassandra_jvm_opts: Option<String>,
    /// Seconds `start` waits for Kafka.
    #[arg(long, env = "VCOUNT_KAFKA_TIMEOUT", default_value_t = 90, global = true)]
    pub kafka_timeout: u64,
    /// Seconds `start` waits for Cassandra.
    #[arg(long, env = "VCOUNT_CASSANDRA_TIMEOUT", default_value_t = 240, global = true)]
    pub cassandra_timeout: u64,
    /// Another Kafka release to try; <kafka.version> in infra/kafka/pom.xml by default.
    #[arg(long, env = "VCOUNT_KAFKA_VERSION", global = true)]
    pub kafka_version: Option<String>,
    /// Another Cassandra release to try; <cassandra.version> in infra/cassandra/pom.xml by default.
    #[arg(long, env = "VCOUNT_CASSANDRA_VERSION", global = true)]
    pub cassandra_version: Option<String>,
}

/// A failure that has already been reported on stderr and only sets the exit code.
#[derive(Debug)]
pub struct Reported(pub u8);

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for Reported {}

/// The repository root. `cargo run` sets CARGO_MANIFEST_DIR at run time too, which
/// matters when one target dir serves several checkouts (CI's cache does).
fn repo_root() -> PathBuf {
    let manifest =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// An empty `VCOUNT_*` variable means "unset", as `${VAR:-default}` did in the shell
/// version; clap would take it as an empty (so invalid) value.
fn ignore_empty_env(cmd: clap::Command, is_empty: &dyn Fn(&OsStr) -> bool) -> clap::Command {
    cmd.mut_args(|arg| match arg.get_env() {
        Some(name) if is_empty(name) => arg.env(None),
        _ => arg,
    })
    .mut_subcommands(|sub| ignore_empty_env(sub, is_empty))
}

fn main() -> ExitCode {
    let cmd = ignore_empty_env(Cli::command(), &|name| std::env::var_os(name).is_some_and(|v| v.is_empty()));
    let cli = Cli::from_arg_matches(&cmd.get_matches()).unwrap_or_else(|e| e.exit());
    let root = repo_root();
    let (prefix, result) = match cli.command {
        Command::Stack { settings, cmd } => ("stack", run_stack(settings, root, cmd)),
        Command::Dev { settings, cmd } => ("dev", run_dev(settings, root, cmd)),
        Command::Faults { settings, options } => ("faults", run_faults(settings, root, options)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<Reported>() {
            Some(Reported(code)) => ExitCode::from(*code),
            None => {
                eprintln!("{prefix}: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run_stack(settings: StackSettings, root: PathBuf, cmd: StackCmd) -> anyhow::Result<()> {
    if cmd == StackCmd::Env {
        // No directories are made (or needed) just to print the addresses.
        print!("{}", stack::env_lines(&settings));
        return Ok(());
    }
    let stack = stack::Stack::new(settings, root)?;
    match cmd {
        StackCmd::Fetch => stack.fetch_all(),
        StackCmd::Start { which } => stack.start(which),
        StackCmd::Stop { which } => stack.stop(which),
        StackCmd::Kill { server } => stack.kill(server),
        StackCmd::Status => stack.status(),
        StackCmd::Reset => stack.reset(),
        StackCmd::Env => unreachable!("handled above"),
    }
}

fn run_dev(settings: StackSettings, root: PathBuf, cmd: DevCmd) -> anyhow::Result<()> {
    // Relative paths (VCOUNT_HOME=…) mean the repository, as they always did for dev.
    std::env::set_current_dir(&root)?;
    let stack = stack::Stack::new(settings, root)?;
    match cmd {
        DevCmd::Up => dev::up(&stack),
        DevCmd::Down => dev::down(&stack),
        DevCmd::Status => dev::status(&stack),
    }
}

fn run_faults(settings: StackSettings, root: PathBuf, options: faults::Options) -> anyhow::Result<()> {
    std::env::set_current_dir(&root)?;
    let settings = faults::private(settings, &root);
    let stack = stack::Stack::new(settings, root)?;
    faults::suite(&stack, &options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
    }

    fn stack_cmd(args: &[&str]) -> (StackSettings, StackCmd) {
        match parse(args).unwrap().command {
            Command::Stack { settings, cmd } => (settings, cmd),
            other => panic!("not a stack command: {other:?}"),
        }
    }

    #[test]
    fn start_and_stop_default_to_both_servers() {
        assert_eq!(stack_cmd(&["stack", "start"]).1, StackCmd::Start { which: Which::All });
        assert_eq!(stack_cmd(&["stack", "stop"]).1, StackCmd::Stop { which: Which::All });
        assert_eq!(stack_cmd(&["stack", "start", "cassandra"]).1, StackCmd::Start { which: Which::Cassandra });
        assert_eq!(stack_cmd(&["stack", "stop", "kafka"]).1, StackCmd::Stop { which: Which::Kafka });
        assert_eq!(Which::All.servers(), &[Server::Kafka, Server::Cassandra]);
    }

    #[test]
    fn kill_needs_exactly_one_server() {
        assert_eq!(stack_cmd(&["stack", "kill", "cassandra"]).1, StackCmd::Kill { server: Server::Cassandra });
        assert!(parse(&["stack", "kill"]).is_err());
        assert!(parse(&["stack", "kill", "all"]).is_err());
        assert!(parse(&["stack", "start", "zookeeper"]).is_err());
    }

    #[test]
    fn a_missing_or_unknown_command_is_a_usage_error() {
        // Exit 2, as `scripts/stack` without arguments always was.
        assert_eq!(parse(&["stack"]).unwrap_err().exit_code(), 2);
        assert_eq!(parse(&["stack", "restart"]).unwrap_err().exit_code(), 2);
        assert_eq!(parse(&["dev", "sideways"]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn flags_override_ports_heaps_and_dirs_before_or_after_the_command() {
        let (s, cmd) = stack_cmd(&[
            "stack",
            "--kafka-port",
            "29092",
            "status",
            "--cassandra-port=29042",
            "--cassandra-heap",
            "-Xms256m -Xmx512m",
            "--home",
            "/tmp/h",
        ]);
        assert_eq!(cmd, StackCmd::Status);
        assert_eq!((s.kafka_port, s.cassandra_port), (29092, 29042));
        assert_eq!(s.cassandra_heap.as_deref(), Some("-Xms256m -Xmx512m"));
        assert_eq!(s.home, Some(PathBuf::from("/tmp/h")));
        assert!(parse(&["stack", "--kafka-port", "99999", "status"]).is_err(), "a port is a u16");
    }

    #[test]
    fn an_empty_variable_counts_as_unset() {
        let cmd = ignore_empty_env(Cli::command(), &|name| name == "VCOUNT_KAFKA_PORT" || name == "VCOUNT_HOME");
        let stack = cmd.find_subcommand("stack").unwrap();
        let env_of =
            |id: &str| stack.get_arguments().find(|a| a.get_id() == id).unwrap().get_env().map(|e| e.to_owned());
        assert_eq!(env_of("kafka_port"), None);
        assert_eq!(env_of("home"), None);
        assert_eq!(env_of("cassandra_port").as_deref(), Some(OsStr::new("VCOUNT_CASSANDRA_PORT")));
        let dev = cmd.find_subcommand("dev").unwrap();
        assert!(dev.get_arguments().find(|a| a.get_id() == "kafka_port").unwrap().get_env().is_none());
    }

    #[test]
    fn dev_has_up_down_status() {
        for (arg, want) in [("up", DevCmd::Up), ("down", DevCmd::Down), ("status", DevCmd::Status)] {
            match parse(&["dev", arg]).unwrap().command {
                Command::Dev { cmd, .. } => assert_eq!(cmd, want),
                other => panic!("{other:?}"),
            }
        }
    }
}
