//! The real binary, as `scripts/stack` runs it, on a private empty data dir and ports
//! nothing listens on: exit codes, messages, and that a pid file never gets a process
//! signalled that this stack did not start. No JVM is started here (that costs
//! ~20 s; `.ci/run` starts the real stack through the same binary anyway).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("xtask-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn stack(home: &Path, kafka_port: u16, cassandra_port: u16, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("stack")
        .args(args)
        .arg(format!("--home={}", home.join("home").display()))
        .arg(format!("--cache={}", home.join("cache").display()))
        .arg(format!("--kafka-port={kafka_port}"))
        .arg(format!("--cassandra-port={cassandra_port}"))
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn an_empty_stack_is_stopped_and_stop_and_kill_are_no_ops() {
    let dir = Scratch::new("empty");
    let (k, c) = (free_port(), free_port());
    let status = stack(&dir.0, k, c, &["status"]);
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));
    let lines = String::from_utf8(status.stdout).unwrap();
    assert!(lines.starts_with(&format!("kafka      stopped   pid=-        port=127.0.0.1:{k}")), "{lines}");
    assert!(lines.contains(&format!("cassandra  stopped   pid=-        port=127.0.0.1:{c}")), "{lines}");

    let stop = stack(&dir.0, k, c, &["stop"]);
    assert!(stop.status.success(), "{}", text(&stop));
    assert!(text(&stop).contains("kafka: not running") && text(&stop).contains("cassandra: not running"));
    assert!(stack(&dir.0, k, c, &["kill", "cassandra"]).status.success());

    let env = stack(&dir.0, k, c, &["env"]);
    assert_eq!(
        String::from_utf8(env.stdout).unwrap(),
        format!("export VCOUNT_KAFKA_BROKERS=127.0.0.1:{k}\nexport VCOUNT_CASSANDRA_NODES=127.0.0.1:{c}\n")
    );
    assert_eq!(stack(&dir.0, k, c, &["kill", "all"]).status.code(), Some(2), "usage error");
}

#[test]
fn a_pid_file_naming_a_foreign_process_is_stale_and_that_process_is_left_alone() {
    let dir = Scratch::new("foreign");
    let (k, c) = (free_port(), free_port());
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    for server in ["kafka", "cassandra"] {
        let d = dir.0.join("home").join(server);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("pid"), format!("{}\n", sleeper.id())).unwrap();
    }
    let status = stack(&dir.0, k, c, &["status"]);
    assert_eq!(status.status.code(), Some(3), "a sleep is not our JVM: {}", text(&status));
    let kill = stack(&dir.0, k, c, &["kill", "kafka"]);
    let stop = stack(&dir.0, k, c, &["stop", "cassandra"]);
    for out in [&kill, &stop] {
        assert!(out.status.success(), "{}", text(out));
        assert!(text(out).contains("removing stale pid file"), "{}", text(out));
    }
    assert!(sleeper.try_wait().unwrap().is_none(), "the foreign process was signalled");
    assert!(!dir.0.join("home/kafka/pid").exists());
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

#[test]
fn start_refuses_a_port_another_process_holds_before_fetching_anything() {
    let dir = Scratch::new("taken");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let k = taken.local_addr().unwrap().port();
    let out = stack(&dir.0, k, free_port(), &["start", "kafka"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("kafka: port {k} is taken by a process this stack did not start")),
        "{}",
        text(&out)
    );
    assert!(!dir.0.join("home/kafka/pid").exists(), "nothing launched");
    assert!(std::fs::read_dir(dir.0.join("cache")).unwrap().next().is_none(), "nothing fetched");
}
