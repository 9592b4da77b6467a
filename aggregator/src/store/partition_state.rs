//! `partition_state`: per (topic, partition), the owner's `epoch` (the fencing
//! token) and `attempted` (the last offset of the newest flush any owner started).
//! Both change only through lightweight transactions, and are read at SERIAL.

use platform::cassandra::{CassandraError, applied, prepare};
use scylla::DeserializeRow;
use scylla::client::session::Session;
use scylla::statement::Consistency;
use scylla::statement::prepared::PreparedStatement;

use super::RollupStore;

/// How often a claim re-reads and retries when another member's claim won.
const CLAIM_ATTEMPTS: usize = 100;

pub(super) struct Statements {
    read: PreparedStatement,
    create: PreparedStatement,
    bump_epoch: PreparedStatement,
    mark_attempted: PreparedStatement,
    record_owner: PreparedStatement,
}

impl Statements {
    pub(super) async fn prepare(s: &Session, ks: &str) -> Result<Self, CassandraError> {
        let mut read = prepare(
            s,
            format!("SELECT epoch, attempted FROM {ks}.partition_state WHERE topic = ? AND kafka_partition = ?"),
            true,
        )
        .await?;
        // Linearizable with the lightweight transactions below.
        read.set_consistency(Consistency::Serial);
        let create = prepare(
            s,
            format!("INSERT INTO {ks}.partition_state (topic, kafka_partition, epoch) VALUES (?, ?, 1) IF NOT EXISTS"),
            false,
        )
        .await?;
        let bump_epoch = prepare(
            s,
            format!("UPDATE {ks}.partition_state SET epoch = ? WHERE topic = ? AND kafka_partition = ? IF epoch = ?"),
            false,
        )
        .await?;
        let mark_attempted = prepare(
            s,
            format!(
                "UPDATE {ks}.partition_state SET attempted = ? WHERE topic = ? AND kafka_partition = ? IF epoch = ?"
            ),
            false,
        )
        .await?;
        // A hint for readers (`counting::fresh`), at the epoch's timestamp: a
        // replaced owner's late write loses to its successor's.
        let record_owner = prepare(
            s,
            format!(
                "INSERT INTO {ks}.partition_owners (topic, kafka_partition, epoch, address, claimed_at) \
                 VALUES (?, ?, ?, ?, toTimestamp(now())) USING TIMESTAMP ?"
            ),
            false,
        )
        .await?;
        Ok(Self { read, create, bump_epoch, mark_attempted, record_owner })
    }
}

#[derive(DeserializeRow)]
struct StateRow {
    epoch: Option<i64>,
    attempted: Option<i64>,
}

/// The partition state as a new owner finds it after claiming the partition.
#[derive(Clone, Copy, Debug)]
pub struct Claim {
    pub epoch: i64,
    /// Last offset of the newest flush any owner started: the fence.
    pub attempted: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(transparent)]
    Cassandra(#[from] CassandraError),
    #[error("could not claim partition {partition} of {topic}: too much contention")]
    Contention { topic: String, partition: i32 },
    #[error("partition state vanished after claiming it")]
    Vanished,
}

impl RollupStore {
    /// Becomes the owner of `partition` (P1): bumps its epoch with a lightweight
    /// transaction, then (P2) reads `attempted` linearizably. Any stale owner's
    /// later [`mark_attempted`](Self::mark_attempted) fails from here on, so the
    /// value read is final.
    pub async fn claim(&self, topic: &str, partition: i32) -> Result<Claim, ClaimError> {
        let st = &self.state;
        for _ in 0..CLAIM_ATTEMPTS {
            let current = self.read_state(topic, partition).await?;
            let answer = match current {
                None => self.session.execute_unpaged(&st.create, (topic, partition)).await,
                Some(row) => {
                    let epoch = row.epoch.unwrap_or(0);
                    self.session.execute_unpaged(&st.bump_epoch, (epoch + 1, topic, partition, epoch)).await
                }
            };
            if applied(answer.map_err(CassandraError::from)?)? {
                let row = self.read_state(topic, partition).await?.ok_or(ClaimError::Vanished)?;
                return Ok(Claim { epoch: row.epoch.unwrap_or(0), attempted: row.attempted });
            }
        }
        Err(ClaimError::Contention { topic: topic.to_owned(), partition })
    }

    async fn read_state(&self, topic: &str, partition: i32) -> Result<Option<StateRow>, CassandraError> {
        let res = self.session.execute_unpaged(&self.state.read, (topic, partition)).await?.into_rows_result()?;
        Ok(res.maybe_first_row::<StateRow>()?)
    }

    /// Records where readers reach the owner of `partition` at `epoch`
    /// (`partition_owners`, migration 013).
    pub async fn record_owner(
        &self,
        topic: &str,
        partition: i32,
        epoch: i64,
        address: &str,
    ) -> Result<(), CassandraError> {
        let ts = counting::write_timestamp(epoch, 0);
        self.session.execute_unpaged(&self.state.record_owner, (topic, partition, epoch, address, ts)).await?;
        Ok(())
    }

    /// Records that a flush through `offset` is starting (P5). `false`: another
    /// owner has claimed the partition since, and this one must stop writing for it.
    pub async fn mark_attempted(
        &self,
        topic: &str,
        partition: i32,
        epoch: i64,
        offset: i64,
    ) -> Result<bool, CassandraError> {
        let answer =
            self.session.execute_unpaged(&self.state.mark_attempted, (offset, topic, partition, epoch)).await?;
        applied(answer)
    }
}
