//! Storage: one repository per table family, each holding the statements it
//! prepared once at start-up, answering rows as named structs
//! (`#[derive(DeserializeRow)]`), never positional tuples.
//!
//! Two parts, like the API: [`rollups`] and [`viewers`] read what the aggregator
//! writes for the counts API (rollups by range, by bucket; viewer sketches and who
//! viewed); every other module is the catalog's
//! (users, videos, ratings, the catalog's indexes, comments and activity, flags
//! and moderation state, the moderation audit log).
//!
//! Repositories return [`StoreError`] and know nothing of HTTP: the one mapping to
//! a problem+json answer is `api::common::error`, which logs the cause and answers
//! without it.

pub mod audit;
pub mod comments;
pub mod flags;
pub mod indexes;
pub mod listing;
pub mod owners;
pub mod ratings;
pub mod rollups;
pub mod rows_cache;
pub mod users;
pub mod videos;
pub mod viewers;

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a repository could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Cassandra did not answer, or answered with an error: worth retrying.
    #[error("cassandra request failed: {0}")]
    Request(#[source] BoxError),
    /// Cassandra answered something this code cannot read (a schema mismatch).
    #[error("unexpected answer from cassandra: {0}")]
    Answer(#[source] BoxError),
    /// Stored data breaks an invariant the code relies on.
    #[error("stored data is inconsistent: {0}")]
    Inconsistent(String),
}

macro_rules! store_errors {
    ($variant:ident: $($t:ty),+) => {
        $(impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                Self::$variant(Box::new(e))
            }
        })+
    };
}

store_errors!(Request: scylla::errors::ExecutionError, scylla::errors::PagerExecutionError, scylla::errors::NextRowError);
store_errors!(
    Answer: scylla::errors::IntoRowsResultError,
    scylla::errors::FirstRowError,
    scylla::errors::MaybeFirstRowError,
    scylla::errors::RowsError,
    scylla::errors::TypeCheckError,
    scylla::errors::DeserializationError
);

impl From<platform::cassandra::CassandraError> for StoreError {
    /// `platform::cassandra::applied` reads a lightweight transaction's answer.
    fn from(e: platform::cassandra::CassandraError) -> Self {
        use platform::cassandra::CassandraError as E;
        match e {
            E::Request(_) | E::Pager(_) | E::NextRow(_) => Self::Request(e.into()),
            _ => Self::Answer(e.into()),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Prepares `cql` once, at start-up; `idempotent` lets the driver retry it.
async fn prepare(session: &Session, cql: String, idempotent: bool) -> anyhow::Result<PreparedStatement> {
    Ok(platform::cassandra::prepare(session, cql, idempotent).await?)
}

/// `SELECT COUNT(*)` answers one column named `count`.
#[derive(scylla::DeserializeRow)]
struct CountRow {
    count: i64,
}
