//! System tests: the three services together on the real Kafka and Cassandra that
//! `scripts/stack` starts. The gateway and the query service run in the test's
//! process; the aggregator runs as a child process (`e2e-aggregator`, the real
//! aggregator's `main` built inside this crate) so a test can SIGKILL, SIGSTOP or
//! SIGTERM it.
//!
//! - [`env`]: one test's private corner of the shared servers (topic prefix,
//!   keyspace), the services, the load and the ledger checks.
//! - [`broker`]: what an operator or a disaster does to the log (deleted
//!   records, a recreated or grown topic, a topic's settings).
//! - [`contract`]: answers checked against the served OpenAPI document.
//! - [`observability`]: the Prometheus text parser and what the dashboard reads.
//!
//! The tests themselves are in `tests/`, one binary per concern; a test that needs
//! the servers fails, never skips, when they are missing.

pub mod broker;
pub mod contract;
pub mod env;
pub mod observability;

pub use env::*;

use std::path::PathBuf;

/// The target directory of the running test binary (`target/debug`): test
/// executables live in its `deps/` folder, and binaries beside it.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let deps = exe.parent().expect("test binary has a parent directory");
    deps.parent().expect("deps/ has a parent directory").to_path_buf()
}

/// The aggregator binary the tests run as a child process. Cargo builds
/// `e2e-aggregator` whenever it builds this crate's integration tests.
pub fn aggregator_bin() -> PathBuf {
    let bin = target_dir().join(format!("e2e-aggregator{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} is missing: run the tests with `cargo test -p e2e`", bin.display());
    bin
}
