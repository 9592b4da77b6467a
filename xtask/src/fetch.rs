//! The jars, fetched by Maven: `infra/<server>/pom.xml` lists the runtime and
//! `mvn dependency:copy-dependencies` copies its whole classpath into the cache.
//!
//! A marker holds the version and a hash of the pom, so an unchanged pom costs
//! nothing (not even a Maven start) and an edited one refetches. The marker's format
//! is the one `scripts/stack` always wrote, so caches filled before keep working.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::Server;
use crate::stack::Stack;

/// The value of the first line holding `<name>value</name>` in a pom; the poms are the
/// one place versions live. Line by line, so a comment that mentions `<name>` in
/// passing is not taken for the property.
pub fn pom_property(pom: &str, name: &str) -> Option<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    pom.lines().find_map(|line| {
        let start = line.find(&open)? + open.len();
        let end = start + line[start..].find(&close)?;
        Some(line[start..end].trim().to_string())
    })
}

/// `<version> <sha256 of the pom>`, as `sha256sum` printed it.
pub fn stamp(version: &str, pom: &[u8]) -> String {
    let hex: String = Sha256::digest(pom).iter().map(|b| format!("{b:02x}")).collect();
    format!("{version} {hex}")
}

impl Stack {
    /// Copies the runtime classpath of `infra/<server>/pom.xml` into the cache, unless
    /// the marker says it is already there. `quiet` skips the "already fetched" line.
    pub fn fetch(&self, server: Server, quiet: bool) -> anyhow::Result<()> {
        let name = server.name();
        let version = self.version(server)?;
        let pom = self.infra.join(name).join("pom.xml");
        let dir = self.cache.join(format!("{name}-{version}"));
        let lib = dir.join("lib");
        let stamp = stamp(&version, &fs::read(&pom).with_context(|| format!("reading {}", pom.display()))?);
        let marker = dir.join(".fetched");
        if lib.is_dir() && fs::read_to_string(&marker).is_ok_and(|m| m.trim_end() == stamp) {
            if !quiet {
                eprintln!("{name} {version}: already fetched ({})", lib.display());
            }
            return Ok(());
        }
        let tmp = dir.join("lib.tmp");
        let mut args: Vec<String> = ["-B", "-q", "-Dstyle.color=never", "-f"].map(String::from).into_iter().collect();
        args.push(path_str(&pom)?.into());
        args.push(format!("-D{name}.version={version}"));
        if let Some(m2) = &self.settings.m2 {
            args.push(format!("-Dmaven.repo.local={}", path_str(m2)?));
        }
        args.push("dependency:copy-dependencies".into());
        args.push("-DincludeScope=runtime".into());
        args.push(format!("-DoutputDirectory={}", path_str(&tmp)?));
        remove_dir(&tmp)?;
        fs::create_dir_all(&dir)?;
        eprintln!("{name} {version}: fetching with Maven into {}", lib.display());
        // Offline first: with ~/.m2 already filled this needs no network at all.
        // Maven's output goes to a file, shown only on failure: even with -B -q,
        // Maven 3.8 prints stray ANSI reset codes.
        let log = dir.join("mvn.log");
        if !mvn(&args, true, &log, name)? {
            remove_dir(&tmp)?;
            if !mvn(&args, false, &log, name)? {
                eprint!("{}", fs::read_to_string(&log).unwrap_or_default());
                bail!("maven could not fetch {name} {version} (log: {})", log.display());
            }
        }
        remove_dir(&lib)?;
        fs::rename(&tmp, &lib)?;
        fs::write(&marker, format!("{stamp}\n"))?;
        let jars = fs::read_dir(&lib)?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".jar"))
            .count();
        eprintln!("{name} {version}: {jars} jars");
        Ok(())
    }
}

fn mvn(args: &[String], offline: bool, log: &Path, name: &str) -> anyhow::Result<bool> {
    let out = fs::File::create(log)?;
    let mut cmd = Command::new("mvn");
    if offline {
        cmd.arg("-o");
    }
    let status = cmd.args(args).stdout(out.try_clone()?).stderr(out).status();
    match status {
        Ok(s) => Ok(s.success()),
        Err(e) if e.kind() == ErrorKind::NotFound => bail!("mvn not found (needed once, to fetch {name})"),
        Err(e) => Err(e).context("running mvn"),
    }
}

fn remove_dir(dir: &Path) -> anyhow::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e).with_context(|| format!("removing {}", dir.display())),
        _ => Ok(()),
    }
}

pub fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str().with_context(|| format!("path is not UTF-8: {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_the_poms() {
        let kafka = pom_property(include_str!("../../infra/kafka/pom.xml"), "kafka.version").unwrap();
        let cassandra = pom_property(include_str!("../../infra/cassandra/pom.xml"), "cassandra.version").unwrap();
        for v in [&kafka, &cassandra] {
            assert!(v.split('.').count() == 3 && v.split('.').all(|p| p.parse::<u32>().is_ok()), "{v}");
        }
        assert_eq!(pom_property("<a>1</a><b> 2 </b><b>3</b>", "b").as_deref(), Some("2"));
        assert_eq!(pom_property("reads <b> from here\n<b>4</b>", "b").as_deref(), Some("4"));
        assert_eq!(pom_property("<a>1</a>", "b"), None);
    }

    #[test]
    fn the_marker_is_what_sha256sum_gave_the_shell_version() {
        // `printf 'abc' | sha256sum`
        assert_eq!(stamp("4.3.1", b"abc"), "4.3.1 ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
