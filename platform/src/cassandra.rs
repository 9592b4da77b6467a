//! The Cassandra (or ScyllaDB) session and schema set-up.

use std::time::Duration;

use anyhow::Context;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::response::query_result::QueryResult;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};
use scylla::value::Row;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CassandraConfig {
    /// Contact points, `host:port`, comma-separated.
    pub nodes: String,
    pub keyspace: String,
    /// CQL replication map used when the keyspace is created.
    pub replication: String,
    /// `one`, `local_quorum` or `quorum`: for every read and write.
    pub consistency: String,
    /// Create the keyspace and apply migrations at start-up.
    pub create_schema: bool,
    /// Per-request timeout.
    pub request_timeout_ms: u64,
}

impl Default for CassandraConfig {
    fn default() -> Self {
        Self {
            nodes: "127.0.0.1:19042".into(),
            keyspace: "vcount".into(),
            replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".into(),
            consistency: "local_quorum".into(),
            create_schema: true,
            request_timeout_ms: 5_000,
        }
    }
}

impl CassandraConfig {
    fn consistency(&self) -> anyhow::Result<Consistency> {
        Ok(match self.consistency.as_str() {
            "one" => Consistency::One,
            "local_one" => Consistency::LocalOne,
            "local_quorum" => Consistency::LocalQuorum,
            "quorum" => Consistency::Quorum,
            "all" => Consistency::All,
            other => anyhow::bail!("cassandra.consistency: unknown consistency {other:?}"),
        })
    }
}

/// Connects, retrying for up to `wait` while the cluster is still starting.
pub async fn connect(cfg: &CassandraConfig, wait: Duration) -> anyhow::Result<Session> {
    let profile = ExecutionProfile::builder()
        .consistency(cfg.consistency()?)
        .serial_consistency(Some(SerialConsistency::LocalSerial))
        .request_timeout(Some(Duration::from_millis(cfg.request_timeout_ms)))
        .build()
        .into_handle();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let attempt = SessionBuilder::new()
            .known_nodes(cfg.nodes.split(',').map(str::trim).filter(|n| !n.is_empty()))
            .connection_timeout(Duration::from_secs(3))
            .default_execution_profile_handle(profile.clone())
            .build()
            .await;
        match attempt {
            Ok(session) => return Ok(session),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, nodes = ?cfg.nodes, "cassandra not reachable yet, retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("connecting to cassandra at {:?}", cfg.nodes)),
        }
    }
}

/// Creates the keyspace and applies every migration not yet recorded. Statements
/// are idempotent, so two services starting at once do no harm.
pub async fn migrate(session: &Session, cfg: &CassandraConfig) -> anyhow::Result<()> {
    let ks = &cfg.keyspace;
    check_keyspace(ks)?;
    session
        .query_unpaged(schemas::cql::create_keyspace(ks, &cfg.replication), &[])
        .await
        .context("creating keyspace")?;
    session
        .query_unpaged(schemas::cql::create_migrations_table(ks), &[])
        .await
        .context("creating schema_migrations")?;
    for m in schemas::cql::MIGRATIONS {
        for stmt in m.statements(ks) {
            session
                .query_unpaged(stmt.as_str(), &[])
                .await
                .with_context(|| format!("migration {} ({}): {stmt}", m.version, m.name))?;
        }
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {ks}.schema_migrations (version, name, applied_at) VALUES (?, ?, toTimestamp(now()))"
                ),
                (m.version as i32, m.name),
            )
            .await
            .context("recording migration")?;
    }
    session.await_schema_agreement().await.context("waiting for schema agreement")?;
    Ok(())
}

/// A keyspace name is spliced into CQL text, so it must be a plain identifier.
pub fn check_keyspace(ks: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !ks.is_empty() && ks.len() <= 48 && ks.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "cassandra.keyspace must be 1-48 characters of [A-Za-z0-9_], got {ks:?}"
    );
    Ok(())
}

/// Prepares `cql`, saying which statement failed. `idempotent` lets the driver
/// retry it on its own; never for counters or lightweight transactions.
pub async fn prepare(session: &Session, cql: String, idempotent: bool) -> anyhow::Result<PreparedStatement> {
    let mut stmt = session.prepare(cql.clone()).await.with_context(|| format!("preparing {cql}"))?;
    stmt.set_is_idempotent(idempotent);
    Ok(stmt)
}

/// The `[applied]` column of a lightweight transaction's answer.
pub fn applied(res: QueryResult) -> anyhow::Result<bool> {
    let rows = res.into_rows_result()?;
    let row: Row = rows.first_row()?;
    row.columns
        .first()
        .and_then(|c| c.as_ref())
        .and_then(|v| v.as_boolean())
        .context("lightweight transaction answer without [applied]")
}

/// Readiness: a trivial query against `system.local`.
pub async fn ping(session: &Session) -> Result<(), String> {
    session
        .query_unpaged("SELECT release_version FROM system.local", &[])
        .await
        .map(|_| ())
        .map_err(|e| format!("cassandra: {e}"))
}
