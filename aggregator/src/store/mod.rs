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
//! - [`viewers`]: viewer sketches and who viewed (P8, beside the activities).
//! - [`halts`]: halted partitions and each topic's recorded partition count (P11).
//!
//! Methods return [`CassandraError`]; the flush retries on any of them.

pub mod activity;
pub mod halts;
pub mod partition_state;
pub mod ratings;
pub mod rollups;
pub mod viewers;

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
    viewers: viewers::Statements,
    retention: Retention,
    /// How long a who-viewed row lives after its view (`viewers.list_ttl_secs`).
    viewer_list_ttl_secs: u64,
    keyspace: String,
}

impl RollupStore {
    /// `feed_keyspace`: where activity entries go (`feed.keyspace`; `keyspace` when empty).
    pub async fn new(
        session: Session,
        keyspace: &str,
        feed_keyspace: &str,
        retention: Retention,
    ) -> Result<Self, CassandraError> {
        let feed_keyspace = if feed_keyspace.is_empty() { keyspace } else { feed_keyspace };
        platform::cassandra::check_keyspace(feed_keyspace)?;
        Ok(Self {
            state: partition_state::Statements::prepare(&session, keyspace).await?,
            rollups: rollups::Statements::prepare(&session, keyspace).await?,
            ratings: ratings::Statements::prepare(&session, keyspace).await?,
            activity: activity::Statements::prepare(&session, feed_keyspace).await?,
            halts: halts::Statements::prepare(&session, keyspace).await?,
            viewers: viewers::Statements::prepare(&session, keyspace).await?,
            viewer_list_ttl_secs: crate::config::ViewersConfig::default().list_ttl_secs,
            session,
            retention,
            keyspace: keyspace.to_owned(),
        })
    }

    /// Sets how long a who-viewed row lives after its view.
    pub fn with_viewers(mut self, cfg: &crate::config::ViewersConfig) -> Self {
        self.viewer_list_ttl_secs = cfg.list_ttl_secs;
        self
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn keyspace(&self) -> &str {
        &self.keyspace
    }
}
