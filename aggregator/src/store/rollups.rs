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
    /// The same reads of several series at once (`video_id IN ?`).
    read_from_in: PreparedStatement,
    read_between_in: PreparedStatement,
    write_row: PreparedStatement,
    write_copy: PreparedStatement,
}

impl Statements {
    pub(super) async fn prepare(s: &Session, ks: &str) -> Result<Self, CassandraError> {
        let columns = "video_id, bucket, value, last_offset, events, min_value, max_value, WRITETIME(value) AS value_ts, \
             WRITETIME(events) AS events_ts, WRITETIME(min_value) AS min_ts, WRITETIME(max_value) AS max_ts, \
             kafka_partition";
        let select = format!(
            "SELECT {columns} FROM {ks}.counts WHERE video_id = ? AND event_type = ? AND granularity = ? AND bucket >= ?"
        );
        let read_from = prepare(s, select.clone(), true).await?;
        let read_between = prepare(s, format!("{select} AND bucket < ?"), true).await?;
        let select_in = format!(
            "SELECT {columns} FROM {ks}.counts \
             WHERE video_id IN ? AND event_type = ? AND granularity = ? AND bucket >= ?"
        );
        let read_from_in = prepare(s, select_in.clone(), true).await?;
        let read_between_in = prepare(s, format!("{select_in} AND bucket < ?"), true).await?;
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
        Ok(Self { read_from, read_between, read_from_in, read_between_in, write_row, write_copy })
    }
}

#[derive(DeserializeRow)]
struct RollupRow {
    /// Which series of a read of several (`IN`) the row belongs to.
    video_id: uuid::Uuid,
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

/// A range read's answer: its rows as (bucket, row), and the first row, if any,
/// that another Kafka partition wrote.
pub type RangeRows = (Vec<(i64, StoredRow)>, Option<ForeignRow>);

impl RollupStore {
    /// Every row of `r.part` in the bucket range `r.from..r.until`, as (bucket, row),
    /// and the first row, if any, that a Kafka partition other than `reader` wrote.
    pub async fn read_range(&self, r: &RangeRead, reader: i32) -> Result<RangeRows, CassandraError> {
        let mut answers = self.read_ranges(std::slice::from_ref(r), reader).await?;
        Ok(answers.pop().expect("one answer per read"))
    }

    /// [`Self::read_range`] of several series in one request (`video_id IN`), one
    /// answer per read, in order. The reads must differ only in their video (same
    /// event type, granularity and bucket range): see [`RangeRead::same_shape`].
    pub async fn read_ranges(&self, reads: &[RangeRead], reader: i32) -> Result<Vec<RangeRows>, CassandraError> {
        let Some(first) = reads.first() else { return Ok(Vec::new()) };
        debug_assert!(reads.iter().all(|r| r.same_shape(first)), "one shape per read request");
        let st = &self.rollups;
        let (p, from) = (&first.part, CqlTimestamp(first.from));
        let (kind, granularity) = (p.kind.as_str(), p.granularity.as_str());
        let pager = match (reads, first.until) {
            ([one], None) => {
                let values = (one.part.video_id, kind, granularity, from);
                self.session.execute_iter(st.read_from.clone(), values).await?
            }
            ([one], Some(until)) => {
                let values = (one.part.video_id, kind, granularity, from, CqlTimestamp(until));
                self.session.execute_iter(st.read_between.clone(), values).await?
            }
            (_, None) => {
                let videos: Vec<uuid::Uuid> = reads.iter().map(|r| r.part.video_id).collect();
                self.session.execute_iter(st.read_from_in.clone(), (videos, kind, granularity, from)).await?
            }
            (_, Some(until)) => {
                let videos: Vec<uuid::Uuid> = reads.iter().map(|r| r.part.video_id).collect();
                let values = (videos, kind, granularity, from, CqlTimestamp(until));
                self.session.execute_iter(st.read_between_in.clone(), values).await?
            }
        };
        let rows: Vec<RollupRow> = pager.rows_stream::<RollupRow>()?.try_collect().await?;
        let mut answers: Vec<RangeRows> = reads.iter().map(|_| (Vec::new(), None)).collect();
        for row in rows {
            // A handful of reads per request: a scan finds the row's read.
            let Some(i) = reads.iter().position(|r| r.part.video_id == row.video_id) else { continue };
            let answer = &mut answers[i];
            if let Some(q) = row.kafka_partition.filter(|&q| q != reader) {
                answer.1.get_or_insert(ForeignRow { bucket: row.bucket.0, written_by: q, reader });
            }
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
            answer.0.push((row.bucket.0, stored));
        }
        Ok(answers)
    }

    /// Writes rows of several series (each slice one series, all of it or its
    /// leading rows) in a single unlogged batch: within each Cassandra partition,
    /// so each series', atomic and isolated, and one request for all of them. The
    /// all-time row, if there, carries the writer's Kafka `partition` (R6 puts it
    /// in the series' last batch: its `last_offset` is the series' floor). Keep the
    /// series of one request on the same replicas (`flush.rs` groups them so):
    /// the coordinator is then a replica of every partition it applies.
    pub async fn write_series(&self, series: &[&[RowWrite]], partition: i32, epoch: i64) -> Result<(), CassandraError> {
        debug_assert!(series.iter().all(|rows| rows.windows(2).all(|w| w[0].key.series() == w[1].key.series())));
        let mut batch = Batch::new(BatchType::Unlogged);
        batch.set_is_idempotent(true);
        let mut values = Vec::with_capacity(series.iter().map(|rows| rows.len()).sum());
        let now = chrono::Utc::now().timestamp_millis();
        for w in series.iter().flat_map(|rows| rows.iter()) {
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

    /// Which Cassandra nodes hold a series' partition, as one number (equal for
    /// series with the same replicas; 0 when the driver does not know yet).
    pub fn replicas_of(&self, cluster: &scylla::cluster::ClusterState, video: uuid::Uuid, kind: &str) -> u64 {
        use std::hash::{Hash, Hasher};
        let Ok(token) = cluster.compute_token(&self.keyspace, "counts", &(video, kind)) else { return 0 };
        let mut nodes: Vec<uuid::Uuid> =
            cluster.get_token_endpoints(&self.keyspace, "counts", token).iter().map(|(n, _)| n.host_id).collect();
        nodes.sort_unstable();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        nodes.hash(&mut h);
        h.finish()
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
