//! `user_activity` (migration 007): users' activity feeds, rows keyed by the
//! event's own UUIDv7, so writing one again changes nothing.

use counting::{Activity, write_timestamp};
use platform::cassandra::{CassandraError, prepare};
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;

use super::RollupStore;

pub(super) struct Statements {
    write: PreparedStatement,
}

impl Statements {
    pub(super) async fn prepare(s: &Session, ks: &str) -> Result<Self, CassandraError> {
        let write = prepare(
            s,
            format!(
                "INSERT INTO {ks}.user_activity (userid, activity_ts, activity_type, activity_id) \
                 VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
            ),
            true,
        )
        .await?;
        Ok(Self { write })
    }
}

impl RollupStore {
    /// Writes activity entries of one user (one Cassandra partition) in one batch.
    pub async fn write_activities(
        &self,
        rows: &[Activity],
        last_offset: i64,
        epoch: i64,
    ) -> Result<(), CassandraError> {
        debug_assert!(rows.windows(2).all(|w| w[0].user_id == w[1].user_id));
        let ts = write_timestamp(epoch, last_offset);
        let mut batch = Batch::new(BatchType::Unlogged);
        batch.set_is_idempotent(true);
        let mut values = Vec::with_capacity(rows.len());
        for a in rows {
            batch.append_statement(self.activity.write.clone());
            values.push((a.user_id, a.activity_ts, a.kind.as_str(), a.activity_id, ts));
        }
        self.session.batch(&batch, values).await?;
        Ok(())
    }
}
