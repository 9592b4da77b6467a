//! Processes this tool starts and later finds again by their pid files.
//!
//! A pid file alone proves nothing: the process may have died and its pid been
//! reused, by anything. So a pid is only ever signalled after `/proc` confirms it is
//! alive (not a zombie), runs the expected executable and, for the JVMs, carries this
//! stack's own directory on its command line (another stack's JVM is someone else's).

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::Context;
use rustix::process::{Pid, Signal, kill_process};

pub fn read_pid(pidfile: &Path) -> Option<u32> {
    fs::read_to_string(pidfile).ok()?.trim().parse().ok().filter(|p| *p > 0)
}

/// Alive and not a zombie: a dead child we have not reaped yet still has a
/// `/proc` entry and answers `kill -0`, but it is gone for every purpose here.
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state follows the command name, which is in parentheses and may hold anything.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
    matches!(state, Some(s) if s != 'Z' && s != 'X')
}

/// The file name of the process's executable (`java`, `aggregator`), also after the
/// file was replaced on disk (a rebuild), which the kernel marks " (deleted)".
pub fn exe_name(pid: u32) -> Option<String> {
    let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let name = exe.file_name()?.to_string_lossy().into_owned();
    Some(name.strip_suffix(" (deleted)").map(String::from).unwrap_or(name))
}

fn cmdline(pid: u32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&raw).replace('\0', " "))
}

/// The pid in `pidfile` if that process is alive, runs `exe` and (when given) has
/// `marker` on its command line; `None` for a stale or foreign pid.
pub fn owned_pid(pidfile: &Path, exe: &str, marker: Option<&str>) -> Option<u32> {
    check_pid(pidfile, exe, marker).ok()
}

/// Like [`owned_pid`], saying why a pid is not ours (for messages).
pub fn check_pid(pidfile: &Path, exe: &str, marker: Option<&str>) -> Result<u32, String> {
    let pid = read_pid(pidfile).ok_or_else(|| format!("no pid in {}", pidfile.display()))?;
    if !alive(pid) {
        return Err(format!("pid {pid} is gone"));
    }
    match exe_name(pid) {
        Some(name) if name == exe => {}
        other => return Err(format!("pid {pid} runs {other:?}, not {exe}")),
    }
    if let Some(marker) = marker
        && !cmdline(pid).is_some_and(|c| c.contains(marker))
    {
        return Err(format!("pid {pid} has no {marker} on its command line"));
    }
    Ok(pid)
}

pub fn signal(pid: u32, sig: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        // ESRCH (already gone) is the outcome we wanted anyway.
        let _ = kill_process(pid, sig);
    }
}

/// Polls until the process is gone; false if it outlived `timeout`.
pub fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(100));
    }
    true
}

/// SIGTERM, up to `grace` for it to exit, then SIGKILL; returns the signal that ended
/// it. Waits until the kernel has reaped it, so its ports are free on return.
pub fn terminate(pid: u32, grace: Duration, name: &str) -> &'static str {
    signal(pid, Signal::TERM);
    let sig = if wait_gone(pid, grace) {
        "SIGTERM"
    } else {
        eprintln!("{name}: still alive {} s after SIGTERM, sending SIGKILL", grace.as_secs());
        signal(pid, Signal::KILL);
        "SIGKILL"
    };
    wait_gone(pid, Duration::from_secs(5));
    sig
}

/// Starts `cmd` detached: its own process group (so the caller's Ctrl-C does not
/// reach it and it outlives this process), stdin from /dev/null, stdout and stderr
/// into `log`. The previous log is kept as `<log>.1`: after a crash or a `kill` it is
/// the evidence. Nothing of ours is inherited: Rust opens every file close-on-exec,
/// the stack lock included, and the caller's stdout is not passed on, so
/// `scripts/stack start | grep …` sees EOF.
pub fn spawn_detached(cmd: &mut Command, log: &Path) -> anyhow::Result<Child> {
    if log.exists() {
        let mut old = log.as_os_str().to_owned();
        old.push(".1");
        fs::rename(log, old).with_context(|| format!("keeping {}", log.display()))?;
    }
    let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))
}

/// Runs `cmd` to completion with its output in `log`, killing it after `limit` so a
/// wedged tool cannot hang the caller.
pub fn run_logged(cmd: &mut Command, log: &Path, limit: Duration) -> anyhow::Result<bool> {
    let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status.success());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("{:?} did not finish in {} s, killed", cmd.get_program(), limit.as_secs());
            return Ok(false);
        }
        sleep(Duration::from_millis(100));
    }
}

/// The last `n` lines of a log, read from its end (a long-lived server's log is big).
pub fn tail(path: &Path, n: usize) -> String {
    let Ok(mut f) = File::open(path) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    let mut out = lines[lines.len().saturating_sub(n)..].join("\n");
    out.push('\n');
    out
}

/// "7.4 s", like the ready lines in infra/NOTES.md.
pub fn elapsed(since: Instant) -> String {
    format!("{:.1} s", since.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_owned_only_with_the_right_exe_and_marker() {
        let me = std::process::id();
        assert!(alive(me));
        let exe = exe_name(me).unwrap();
        let dir = std::env::temp_dir().join(format!("xtask-pid-{me}"));
        fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("pid");
        fs::write(&pidfile, format!("{me}\n")).unwrap();
        assert_eq!(owned_pid(&pidfile, &exe, None), Some(me));
        assert_eq!(owned_pid(&pidfile, "java", None), None, "another executable");
        assert_eq!(owned_pid(&pidfile, &exe, Some("/no/such/stack/kafka/")), None, "another stack");
        fs::write(&pidfile, "not a pid").unwrap();
        assert_eq!(owned_pid(&pidfile, &exe, None), None);
        fs::write(&pidfile, "0").unwrap();
        assert_eq!(read_pid(&pidfile), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unreaped_child_counts_as_dead() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        // `true` exits at once; until we wait() it is a zombie with a /proc entry.
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) && Instant::now() < deadline {
            sleep(Duration::from_millis(10));
        }
        assert!(Path::new(&format!("/proc/{pid}")).exists(), "still unreaped");
        assert!(!alive(pid));
        child.wait().unwrap();
    }

    #[test]
    fn terminate_ends_a_process_with_sigterm() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        assert!(alive(pid));
        assert_eq!(terminate(pid, Duration::from_secs(5), "sleep"), "SIGTERM");
        assert!(!alive(pid));
        assert!(!child.wait().unwrap().success(), "ended by the signal");
    }

    #[test]
    fn tail_returns_the_last_lines() {
        let path = std::env::temp_dir().join(format!("xtask-tail-{}", std::process::id()));
        let text: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        fs::write(&path, text).unwrap();
        assert_eq!(tail(&path, 2), "line 99\nline 100\n");
        fs::remove_file(&path).unwrap();
        assert_eq!(tail(&path, 2), "");
    }
}
