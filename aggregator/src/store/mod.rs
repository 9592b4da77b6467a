//! The aggregator's Cassandra adapter: one file per table family, each with its
//! prepared statements and its rows as named structs. Every statement is prepared
//! once at start-up; every write carries the fenced timestamp
//! `counting::write_timestamp(epoch, last_offset)` (protocol step P8), so a stale
//! owner's late write loses whatever the order of arrival.
//!
//! - [`partition_state`]: the fencing token and `attempted` (steps P1, P2, P5).
//! - [`rollups`]: rollup rows and their by-bucket copies (P6, P8).
//! - [`ratings`]: each user's latest rating and a video's totals (P8).
//! - [`activity`]: users' activity feeds (P8).
//! - [`halts`]: halted partitions and each topic's recorded partition count (P11).
//!
//! Methods return [`CassandraError`]; the flush retries on any of them.

pub mod activity;
pub mod halts;
pub mod partition_state;
pub mod ratings;
pub mod rollups;

use counting::Retention;
use platform::cassandra::CassandraError;
use scylla::client::session::Session;

pub use halts::HaltRow;
pub use partition_state::{Claim, ClaimError};

pub struct RollupStore {
    session: Session,
    state: partition_state::Statements,
    rollups: rollups::Statements,
    ratings: ratings::Statements,
    activity: activity::Statements,
    halts: halts::Statements,
    retention: Retention,
    keyspace: String,
}

impl RollupStore {
    pub async fn new(session: Session, keyspace: &str, retention: Retention) -> Result<Self, CassandraError> {
        Ok(Self {
            state: partition_state::Statements::prepare(&session, keyspace).await?,
            rollups: rollups::Statements::prepare(&session, keyspace).await?,
            ratings: ratings::Statements::prepare(&session, keyspace).await?,
            activity: activity::Statements::prepare(&session, keyspace).await?,
            halts: halts::Statements::prepare(&session, keyspace).await?,
            session,
            retention,
            keyspace: keyspace.to_owned(),
        })
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn keyspace(&self) -> &str {
        &self.keyspace
    }
}
