//! "Ready" means a real client got a real answer, through the drivers the services
//! themselves use: an open port only says the JVM has bound a socket, and Kafka and
//! Cassandra both bind theirs before they can serve.
//!
//! - Kafka: a metadata request through rdkafka that lists at least one broker (the
//!   broker registered with its controller and serves clients).
//! - Cassandra: the scylla driver connects and `SELECT release_version FROM
//!   system.local` returns a row (the native transport serves queries).
//! - A service: `GET /readyz` answers 2xx.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use scylla::client::session_builder::SessionBuilder;

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A cheap first check before asking a driver: is anything listening?
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&loopback(port), Duration::from_secs(2)).is_ok()
}

/// Kafka answers a metadata request naming at least one broker; returns how many.
pub fn kafka(port: u16) -> anyhow::Result<usize> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", loopback(port).to_string())
        // One broker, and we ask again in a second: no reconnect storms meanwhile.
        .set("reconnect.backoff.max.ms", "1000")
        .create()
        .context("creating a kafka client")?;
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(5)).context("kafka metadata")?;
    anyhow::ensure!(!metadata.brokers().is_empty(), "kafka metadata lists no broker yet");
    Ok(metadata.brokers().len())
}

/// Cassandra serves a query; returns its `release_version`.
pub fn cassandra(port: u16) -> anyhow::Result<String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let query = async {
            let session = SessionBuilder::new()
                .known_node_addr(loopback(port))
                .connection_timeout(Duration::from_secs(3))
                .build()
                .await
                .context("connecting")?;
            let rows = session
                .query_unpaged("SELECT release_version FROM system.local", &[])
                .await
                .context("SELECT release_version FROM system.local")?
                .into_rows_result()?;
            let (version,) = rows.single_row::<(String,)>()?;
            anyhow::Ok(version)
        };
        tokio::time::timeout(Duration::from_secs(10), query).await.context("no answer in 10 s")?
    })
}

/// `GET <base>/readyz` answers 2xx.
pub fn http_ready(rt: &tokio::runtime::Runtime, client: &reqwest::Client, base: &str) -> bool {
    rt.block_on(async {
        match client.get(format!("{base}/readyz")).timeout(Duration::from_secs(2)).send().await {
            Ok(resp) => resp.status().is_success(),
            Err(_) => false,
        }
    })
}
