//! The aggregator, as the system tests run it: the same `main` as
//! `aggregator/src/main.rs`, built inside this crate so cargo builds it with the
//! tests (a test can only find binaries of its own package).

fn main() -> anyhow::Result<()> {
    aggregator::main()
}
