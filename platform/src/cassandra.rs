//! The Cassandra (or ScyllaDB) session and schema set-up, and the error every
//! Cassandra adapter returns. Adapters return [`CassandraError`]; a service maps
//! it to an HTTP answer (or a retry) once, at its edge, and logs the cause there.

use std::time::Duration;

use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{
    DeserializationError, ExecutionError, FirstRowError, IntoRowsResultError, MaybeFirstRowError, NewSessionError,
    NextRowError, PagerExecutionError, PrepareError, RowsError, SchemaAgreementError, TypeCheckError,
};
use scylla::response::query_result::QueryResult;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::unprepared::Statement;
use scylla::statement::{Consistency, SerialConsistency};
use scylla::value::Row;
use serde::{Deserialize, Serialize};

/// What can go wrong talking to Cassandra: set-up (config, connecting, the schema,
/// preparing), and a request or the decoding of its answer. The driver's own error
/// is kept as the source (boxed: some are hundreds of bytes, and every `Result`
/// of an adapter carries this type).
#[derive(Debug, thiserror::Error)]
pub enum CassandraError {
    #[error("cassandra.consistency: unknown consistency {0:?}")]
    UnknownConsistency(String),
    #[error("cassandra.keyspace must be 1-48 characters of [A-Za-z0-9_], got {0:?}")]
    BadKeyspace(String),
    #[error("connecting to cassandra at {nodes:?}")]
    Connect {
        nodes: String,
        #[source]
        source: Box<NewSessionError>,
    },
    /// A schema statement: what it was doing, e.g. `creating keyspace`.
    #[error("{what}")]
    Schema {
        what: String,
        #[source]
        source: Box<ExecutionError>,
    },
    #[error("waiting for schema agreement")]
    SchemaAgreement(#[source] Box<SchemaAgreementError>),
    #[error("preparing {cql}")]
    Prepare {
        cql: String,
        #[source]
        source: Box<PrepareError>,
    },
    #[error("lightweight transaction answer without [applied]")]
    NoApplied,
    #[error(transparent)]
    Request(Box<ExecutionError>),
    #[error(transparent)]
    Pager(Box<PagerExecutionError>),
    #[error(transparent)]
    NextRow(Box<NextRowError>),
    #[error(transparent)]
    TypeCheck(Box<TypeCheckError>),
    #[error(transparent)]
    NotRows(Box<IntoRowsResultError>),
    #[error(transparent)]
    Rows(Box<RowsError>),
    #[error(transparent)]
    FirstRow(Box<FirstRowError>),
    #[error(transparent)]
    MaybeFirstRow(Box<MaybeFirstRowError>),
    #[error(transparent)]
    Deserialize(Box<DeserializationError>),
}

/// `?` on the driver's errors.
macro_rules! from_driver {
    ($($variant:ident($error:ty)),* $(,)?) => {
        $(impl From<$error> for CassandraError {
            fn from(e: $error) -> Self {
                Self::$variant(Box::new(e))
            }
        })*
    };
}

from_driver!(
    Request(ExecutionError),
    Pager(PagerExecutionError),
    NextRow(NextRowError),
    TypeCheck(TypeCheckError),
    NotRows(IntoRowsResultError),
    Rows(RowsError),
    FirstRow(FirstRowError),
    MaybeFirstRow(MaybeFirstRowError),
    Deserialize(DeserializationError),
);

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
    fn consistency(&self) -> Result<Consistency, CassandraError> {
        Ok(match self.consistency.as_str() {
            "one" => Consistency::One,
            "local_one" => Consistency::LocalOne,
            "local_quorum" => Consistency::LocalQuorum,
            "quorum" => Consistency::Quorum,
            "all" => Consistency::All,
            other => return Err(CassandraError::UnknownConsistency(other.to_owned())),
        })
    }
}

/// Connects, retrying for up to `wait` while the cluster is still starting.
pub async fn connect(cfg: &CassandraConfig, wait: Duration) -> Result<Session, CassandraError> {
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
            Err(e) => return Err(CassandraError::Connect { nodes: cfg.nodes.clone(), source: Box::new(e) }),
        }
    }
}

/// A schema change waits for schema agreement and, for a drop, its tables' flushes:
/// on a loaded machine that takes far longer than the data requests' timeout.
const SCHEMA_TIMEOUT: Duration = Duration::from_secs(120);

/// A schema statement, with [`SCHEMA_TIMEOUT`].
fn ddl(cql: impl Into<String>) -> Statement {
    let mut stmt = Statement::new(cql.into());
    stmt.set_request_timeout(Some(SCHEMA_TIMEOUT));
    stmt
}

/// Creates the keyspace and applies every migration not yet recorded. Statements
/// are idempotent, so two services starting at once do no harm.
pub async fn migrate(session: &Session, cfg: &CassandraConfig) -> Result<(), CassandraError> {
    let ks = &cfg.keyspace;
    check_keyspace(ks)?;
    let schema = |what: String| move |e| CassandraError::Schema { what, source: Box::new(e) };
    session
        .query_unpaged(ddl(schemas::cql::create_keyspace(ks, &cfg.replication)), &[])
        .await
        .map_err(schema("creating keyspace".into()))?;
    session
        .query_unpaged(ddl(schemas::cql::create_migrations_table(ks)), &[])
        .await
        .map_err(schema("creating schema_migrations".into()))?;
    for m in schemas::cql::MIGRATIONS {
        for stmt in m.statements(ks) {
            session
                .query_unpaged(ddl(stmt.as_str()), &[])
                .await
                .map_err(schema(format!("migration {} ({}): {stmt}", m.version, m.name)))?;
        }
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {ks}.schema_migrations (version, name, applied_at) VALUES (?, ?, toTimestamp(now()))"
                ),
                (m.version as i32, m.name),
            )
            .await
            .map_err(schema("recording migration".into()))?;
    }
    session.await_schema_agreement().await.map_err(|e| CassandraError::SchemaAgreement(Box::new(e)))?;
    Ok(())
}

/// Drops `keyspace` if it exists.
pub async fn drop_keyspace(session: &Session, keyspace: &str) -> Result<(), CassandraError> {
    check_keyspace(keyspace)?;
    session.query_unpaged(ddl(format!("DROP KEYSPACE IF EXISTS {keyspace}")), &[]).await?;
    Ok(())
}

/// Drops `keyspace` and waits for it, from a thread with a runtime of its own, so a
/// test's `Drop` (which may run on a runtime that must not block on itself) can
/// clean up after itself. Every test makes a keyspace of about twenty tables, and a
/// long-lived local Cassandra shared by several developers runs out of heap with a
/// few hundred of them. Errors are returned, not raised: cleaning up is best effort.
pub fn drop_keyspace_blocking(nodes: &str, keyspace: &str) -> Result<(), CassandraError> {
    check_keyspace(keyspace)?;
    let (nodes, keyspace) = (nodes.to_owned(), keyspace.to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async {
            let cfg = CassandraConfig { nodes, ..Default::default() };
            let session = connect(&cfg, Duration::from_secs(10)).await?;
            drop_keyspace(&session, &keyspace).await
        })
    })
    .join()
    .expect("the clean-up thread does not panic")
}

/// A keyspace name is spliced into CQL text, so it must be a plain identifier.
pub fn check_keyspace(ks: &str) -> Result<(), CassandraError> {
    if ks.is_empty() || ks.len() > 48 || !ks.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(CassandraError::BadKeyspace(ks.to_owned()));
    }
    Ok(())
}

/// Prepares `cql`, saying which statement failed. `idempotent` lets the driver
/// retry it on its own; never for counters or lightweight transactions.
pub async fn prepare(session: &Session, cql: String, idempotent: bool) -> Result<PreparedStatement, CassandraError> {
    let mut stmt = match session.prepare(cql.clone()).await {
        Ok(stmt) => stmt,
        Err(e) => return Err(CassandraError::Prepare { cql, source: Box::new(e) }),
    };
    stmt.set_is_idempotent(idempotent);
    Ok(stmt)
}

/// The `[applied]` column of a lightweight transaction's answer.
pub fn applied(res: QueryResult) -> Result<bool, CassandraError> {
    let rows = res.into_rows_result()?;
    let row: Row = rows.first_row()?;
    row.columns.first().and_then(|c| c.as_ref()).and_then(|v| v.as_boolean()).ok_or(CassandraError::NoApplied)
}

/// Readiness: a trivial query against `system.local`.
pub async fn ping(session: &Session) -> Result<(), CassandraError> {
    session.query_unpaged("SELECT release_version FROM system.local", &[]).await?;
    Ok(())
}
