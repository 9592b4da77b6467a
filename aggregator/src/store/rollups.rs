//! `counts` (migration 009: one Cassandra partition per (video, event type), a
//! row per granularity and bucket) and `rollups_by_bucket` (hour and day rows
//! again, keyed by bucket, for trending). Values are absolute and carry
//! `last_offset`, so writing one again is harmless. The older `rollups` table
//! (one partition per granularity) is still created by migration 001 but no
//! longer written or read. Each row's TTL ends a fixed time after its bucket
//! (`counting::retention`), so rewriting a row never extends it and readers know
//! which rows exist.
//!
//! A series' rows go out as single-partition batches (R6), the all-time row in
//! the last one. The static `kafka_partition` is written with the all-time row
//! only: that row has no TTL, and a row written with a TTL would give the static
//! cell that TTL.
//!
//! A row's tally (`events`, `min_value`, `max_value`, issue 13) is written with its
//! sum in the same statement, so its cells carry the sum's write timestamp. A
//! tally cell counts only if it does (`Tally::from_cells`): a row from before tallies
//! (`events` null), or one that an aggregator from before tallies rewrote during a
//! rolling upgrade (its `events` older than its `value`), has an unknown tally,
//! and stays unknown: an unknown tally plus a round's is unknown. What is not
//! known, and a min or max that no event set, is written *unset* rather than
//! null: no tombstones, and a stale cell left behind is older than the sum and
//! so ignored.

use counting::{Granularity, RangeRead, RowKey, RowWrite, StoredRow, Tally, write_timestamp};
use futures::TryStreamExt;
use platform::cassandra::{CassandraError, prepare};
use scylla::DeserializeRow;
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlTimestamp, MaybeUnset};

use super::RollupStore;

pub(super) struct Statements {
    read_from: PreparedStatement,
    read_between: PreparedStatement,
    write_row: PreparedStatement,
    write_copy: PreparedStatement,
}

impl Statements {
    pub(super) async fn prepare(s: &Session, ks: &str) -> Result<Self, CassandraError> {
        let select = format!(
            "SELECT bucket, value, last_offset, events, min_value, max_value, WRITETIME(value) AS value_ts, \
             WRITETIME(events) AS events_ts, WRITETIME(min_value) AS min_ts, WRITETIME(max_value) AS max_ts, \
             kafka_partition FROM {ks}.counts \
             WHERE video_id = ? AND event_type = ? AND granularity = ? AND bucket >= ?"
        );
        let read_from = prepare(s, select.clone(), true).await?;
        let read_between = prepare(s, format!("{select} AND bucket < ?"), true).await?;
        // Absolute values at a fenced timestamp: replaying this write is harmless.
        // `kafka_partition` is set for the all-time row only (TTL 0: kept forever).
        let write_row = prepare(
            s,
            format!(
                "INSERT INTO {ks}.counts (video_id, event_type, granularity, bucket, value, last_offset, \
                 events, min_value, max_value, kafka_partition) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 USING TTL ? AND TIMESTAMP ?"
            ),
            true,
        )
        .await?;
        // The same absolute values, keyed by bucket, for trending (migration 005).
        let write_copy = prepare(
            s,
            format!(
                "INSERT INTO {ks}.rollups_by_bucket (event_type, granularity, bucket, video_id, value) \
                 VALUES (?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ),
            true,
        )
        .await?;
        Ok(Self { read_from, read_between, write_row, write_copy })
    }
}

#[derive(DeserializeRow)]
struct RollupRow {
    bucket: CqlTimestamp,
    value: Option<i64>,
    last_offset: Option<i64>,
    events: Option<i64>,
    min_value: Option<i64>,
    max_value: Option<i64>,
    value_ts: Option<i64>,
    events_ts: Option<i64>,
    min_ts: Option<i64>,
    max_ts: Option<i64>,
    kafka_partition: Option<i32>,
}

/// A row's tally as its three columns, unset where unknown or never set.
fn tally_columns(t: Option<Tally>) -> (MaybeUnset<i64>, MaybeUnset<i64>, MaybeUnset<i64>) {
    let set = |v: Option<i64>| v.map_or(MaybeUnset::Unset, MaybeUnset::Set);
    match t {
        Some(t) => (MaybeUnset::Set(t.events), set(t.min()), set(t.max())),
        None => (MaybeUnset::Unset, MaybeUnset::Unset, MaybeUnset::Unset),
    }
}

/// A row of the range read that another Kafka partition wrote: two owners for one
/// video, which happens only if the topic's partition count changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("row at bucket {bucket} was written from kafka partition {written_by}, not {reader}: did the topic grow?")]
pub struct ForeignRow {
    pub bucket: i64,
    pub written_by: i32,
    pub reader: i32,
}

impl RollupStore {
    /// Every row of `r.part` in the bucket range `r.from..r.until`, as (bucket, row),
    /// and the first row, if any, that a Kafka partition other than `reader` wrote.
    pub async fn read_range(
        &self,
        r: &RangeRead,
        reader: i32,
    ) -> Result<(Vec<(i64, StoredRow)>, Option<ForeignRow>), CassandraError> {
        let st = &self.rollups;
        let (p, from) = (&r.part, CqlTimestamp(r.from));
        let key = (p.video_id, p.kind.as_str(), p.granularity.as_str());
        let pager = match r.until {
            None => self.session.execute_iter(st.read_from.clone(), (key.0, key.1, key.2, from)).await?,
            Some(until) => {
                let values = (key.0, key.1, key.2, from, CqlTimestamp(until));
                self.session.execute_iter(st.read_between.clone(), values).await?
            }
        };
        let rows: Vec<RollupRow> = pager.rows_stream::<RollupRow>()?.try_collect().await?;
        let foreign = rows.iter().find_map(|row| match row.kafka_partition {
            Some(q) if q != reader => Some(ForeignRow { bucket: row.bucket.0, written_by: q, reader }),
            _ => None,
        });
        let rows = rows
            .into_iter()
            .map(|row| {
                let stored = StoredRow {
                    value: row.value.unwrap_or(0),
                    last_offset: row.last_offset.unwrap_or(-1),
                    tally: Tally::from_cells(
                        row.value_ts,
                        (row.events, row.events_ts),
                        (row.min_value, row.min_ts),
                        (row.max_value, row.max_ts),
                    ),
                };
                (row.bucket.0, stored)
            })
            .collect();
        Ok((rows, foreign))
    }

    /// Writes rows of one series in a single unlogged batch: one Cassandra
    /// partition, so atomic and isolated within it, and one mutation instead of
    /// one per row. The all-time row, if there, carries the writer's Kafka
    /// `partition` (R6 puts it in the series' last batch: its `last_offset` is
    /// the series' floor).
    pub async fn write_batch(&self, rows: &[RowWrite], partition: i32, epoch: i64) -> Result<(), CassandraError> {
        debug_assert!(rows.windows(2).all(|w| w[0].key.series() == w[1].key.series()));
        let mut batch = Batch::new(BatchType::Unlogged);
        batch.set_is_idempotent(true);
        let mut values = Vec::with_capacity(rows.len());
        let now = chrono::Utc::now().timestamp_millis();
        for w in rows {
            batch.append_statement(self.rollups.write_row.clone());
            let (events, min, max) = tally_columns(w.tally);
            let total = w.key.granularity == Granularity::Total;
            values.push((
                w.key.video_id,
                w.key.kind.as_str(),
                w.key.granularity.as_str(),
                CqlTimestamp(w.key.bucket_ms),
                w.value,
                w.last_offset,
                events,
                min,
                max,
                if total { MaybeUnset::Set(partition) } else { MaybeUnset::Unset },
                self.retention.ttl_secs(w.key.granularity, w.key.bucket_ms, now),
                write_timestamp(epoch, w.last_offset),
            ));
        }
        self.session.batch(&batch, values).await?;
        Ok(())
    }

    /// Writes copies of hour and day rows keyed by bucket (all of one
    /// `rollups_by_bucket` partition): `(key, value, last_offset)`.
    pub async fn write_copies(&self, rows: &[(RowKey, i64, i64)], epoch: i64) -> Result<(), CassandraError> {
        let mut batch = Batch::new(BatchType::Unlogged);
        batch.set_is_idempotent(true);
        let mut values = Vec::with_capacity(rows.len());
        let now = chrono::Utc::now().timestamp_millis();
        for (key, value, last_offset) in rows {
            batch.append_statement(self.rollups.write_copy.clone());
            values.push((
                key.kind.as_str(),
                key.granularity.as_str(),
                CqlTimestamp(key.bucket_ms),
                key.video_id,
                *value,
                self.retention.ttl_secs(key.granularity, key.bucket_ms, now),
                write_timestamp(epoch, *last_offset),
            ));
        }
        self.session.batch(&batch, values).await?;
        Ok(())
    }
}
