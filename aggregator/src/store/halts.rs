//! `partition_halts` and `topic_state` (migration 010): why a partition is
//! halted, where an operator said to resume it, and the partition count each
//! topic was first counted with (see `halt` and `counting::protocol`, P11).

use platform::cassandra::{CassandraError, applied, prepare};
use scylla::DeserializeRow;
use scylla::client::session::Session;
use scylla::statement::Consistency;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;

use super::RollupStore;
use crate::halt::Halt;

pub(super) struct Statements {
    read: PreparedStatement,
    record: PreparedStatement,
    clear_resume_from: PreparedStatement,
    read_partitions: PreparedStatement,
    record_partitions: PreparedStatement,
}

impl Statements {
    pub(super) async fn prepare(s: &Session, ks: &str) -> Result<Self, CassandraError> {
        let read = prepare(
            s,
            format!(
                "SELECT reason, detail, resume_from FROM {ks}.partition_halts WHERE topic = ? AND kafka_partition = ?"
            ),
            true,
        )
        .await?;
        let record = prepare(
            s,
            format!(
                "UPDATE {ks}.partition_halts SET reason = ?, detail = ?, halted_at = ?, epoch = ?, at_offset = ?, \
                 resume_from = null WHERE topic = ? AND kafka_partition = ?"
            ),
            true,
        )
        .await?;
        let clear_resume_from = prepare(
            s,
            format!("UPDATE {ks}.partition_halts SET resume_from = null WHERE topic = ? AND kafka_partition = ?"),
            true,
        )
        .await?;
        let mut read_partitions =
            prepare(s, format!("SELECT partitions FROM {ks}.topic_state WHERE topic = ?"), true).await?;
        read_partitions.set_consistency(Consistency::Serial);
        let record_partitions = prepare(
            s,
            format!("INSERT INTO {ks}.topic_state (topic, partitions, recorded_at) VALUES (?, ?, ?) IF NOT EXISTS"),
            false,
        )
        .await?;
        Ok(Self { read, record, clear_resume_from, read_partitions, record_partitions })
    }
}

/// A partition's halt record as its owner reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq, DeserializeRow)]
pub struct HaltRow {
    /// Set while halted; cleared by the operator's resume.
    pub reason: Option<String>,
    pub detail: Option<String>,
    /// Where the operator said to resume (never before the committed offset).
    pub resume_from: Option<i64>,
}

fn now() -> CqlTimestamp {
    CqlTimestamp(chrono::Utc::now().timestamp_millis())
}

impl RollupStore {
    /// The halt record of `partition`, if it has one (halted or not).
    pub async fn read_halt(&self, topic: &str, partition: i32) -> Result<Option<HaltRow>, CassandraError> {
        let res = self.session.execute_unpaged(&self.halts.read, (topic, partition)).await?.into_rows_result()?;
        Ok(res.maybe_first_row::<HaltRow>()?)
    }

    /// Records that the owner in `epoch` halted `partition`.
    pub async fn record_halt(
        &self,
        topic: &str,
        partition: i32,
        epoch: i64,
        halt: &Halt,
    ) -> Result<(), CassandraError> {
        let values = (halt.reason.as_str(), halt.detail.as_str(), now(), epoch, halt.at_offset, topic, partition);
        self.session.execute_unpaged(&self.halts.record, values).await?;
        Ok(())
    }

    /// Forgets the operator's `resume_from` once the owner has committed it.
    pub async fn clear_resume_from(&self, topic: &str, partition: i32) -> Result<(), CassandraError> {
        self.session.execute_unpaged(&self.halts.clear_resume_from, (topic, partition)).await?;
        Ok(())
    }

    /// The partition count `topic` was first counted with, recording `seen` if
    /// none was recorded yet. Linearizable: two aggregators starting at once agree.
    pub async fn recorded_partitions(&self, topic: &str, seen: i32) -> Result<i32, CassandraError> {
        let st = &self.halts;
        let read = |res: scylla::response::query_result::QueryResult| -> Result<Option<i32>, CassandraError> {
            Ok(res.into_rows_result()?.maybe_first_row::<(Option<i32>,)>()?.and_then(|(n,)| n))
        };
        if let Some(n) = read(self.session.execute_unpaged(&st.read_partitions, (topic,)).await?)? {
            return Ok(n);
        }
        let created = applied(self.session.execute_unpaged(&st.record_partitions, (topic, seen, now())).await?)?;
        if created {
            tracing::info!(topic, partitions = seen, "recorded the topic's partition count");
            return Ok(seen);
        }
        read(self.session.execute_unpaged(&st.read_partitions, (topic,)).await?)?.ok_or(CassandraError::NoApplied)
    }
}
