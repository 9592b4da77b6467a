//! `viewer_sketches` and `video_viewers` (migration 012): the distinct signed-in
//! viewers per (video, hour) and (video, day), and who viewed a video with their
//! last view time. Why these writes are exact under replays and stale owners is
//! in `crate::viewers`.

use counting::SignedInView;
use counting::viewers::SketchKey;
use platform::cassandra::{CassandraError, prepare};
use scylla::DeserializeRow;
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;

use super::RollupStore;

pub(super) struct Statements {
    read_sketch: PreparedStatement,
    write_sketch: PreparedStatement,
    write_viewer: PreparedStatement,
}

impl Statements {
    pub(super) async fn prepare(s: &Session, ks: &str) -> Result<Self, CassandraError> {
        let read_sketch = prepare(
            s,
            format!("SELECT sketch FROM {ks}.viewer_sketches WHERE video_id = ? AND granularity = ? AND bucket = ?"),
            true,
        )
        .await?;
        // The whole union at the owner's fenced timestamp: replaying it is harmless.
        let write_sketch = prepare(
            s,
            format!(
                "INSERT INTO {ks}.viewer_sketches (video_id, granularity, bucket, sketch) \
                 VALUES (?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ),
            true,
        )
        .await?;
        // USING TIMESTAMP = the view's time: the latest view wins in any order.
        let write_viewer = prepare(
            s,
            format!(
                "INSERT INTO {ks}.video_viewers (video_id, user_id, last_viewed_at) \
                 VALUES (?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ),
            true,
        )
        .await?;
        Ok(Self { read_sketch, write_sketch, write_viewer })
    }
}

#[derive(DeserializeRow)]
struct SketchRow {
    sketch: Option<Vec<u8>>,
}

impl RollupStore {
    /// The stored bytes of one viewer sketch; `None` when there is none (yet, or
    /// any more: expired).
    pub async fn read_sketch(&self, key: &SketchKey) -> Result<Option<Vec<u8>>, CassandraError> {
        let values = (key.video_id, key.granularity.as_str(), CqlTimestamp(key.bucket_ms));
        let res = self.session.execute_unpaged(&self.viewers.read_sketch, values).await?;
        let row = res.into_rows_result()?.maybe_first_row::<SketchRow>()?;
        Ok(row.and_then(|r| r.sketch))
    }

    /// Writes one viewer sketch whole at `timestamp` (the owner's fenced one),
    /// living as long as the rollup row of its bucket.
    pub async fn write_sketch(&self, key: &SketchKey, sketch: &[u8], timestamp: i64) -> Result<(), CassandraError> {
        let ttl = self.retention.ttl_secs(key.granularity, key.bucket_ms, chrono::Utc::now().timestamp_millis());
        let values = (key.video_id, key.granularity.as_str(), CqlTimestamp(key.bucket_ms), sketch, ttl, timestamp);
        self.session.execute_unpaged(&self.viewers.write_sketch, values).await?;
        Ok(())
    }

    /// Writes the who-viewed rows of one video (one Cassandra partition) in one
    /// batch, each at its view's time in microseconds, with a TTL that ends
    /// `viewers.list_ttl_secs` after the view. Views already past it are skipped.
    pub async fn write_viewers(&self, rows: &[SignedInView]) -> Result<(), CassandraError> {
        debug_assert!(rows.windows(2).all(|w| w[0].video_id == w[1].video_id));
        let now = chrono::Utc::now().timestamp_millis();
        let mut batch = Batch::new(BatchType::Unlogged);
        batch.set_is_idempotent(true);
        let mut values = Vec::with_capacity(rows.len());
        for v in rows {
            let Some(ttl) = list_ttl_secs(self.viewer_list_ttl_secs, v.occurred_at_ms, now) else { continue };
            batch.append_statement(self.viewers.write_viewer.clone());
            values.push((
                v.video_id,
                v.user_id,
                CqlTimestamp(v.occurred_at_ms),
                ttl,
                v.occurred_at_ms.saturating_mul(1000),
            ));
        }
        if values.is_empty() {
            return Ok(());
        }
        self.session.batch(&batch, values).await?;
        Ok(())
    }
}

/// The TTL of a who-viewed row for a view at `viewed_ms`, written at `now_ms`:
/// the row lives until `list_ttl_secs` after the view (rounded up to the second),
/// so a replay does not extend it; `None` once that has passed (nothing to write).
fn list_ttl_secs(list_ttl_secs: u64, viewed_ms: i64, now_ms: i64) -> Option<i32> {
    let life_ms = i64::try_from(list_ttl_secs).unwrap_or(i64::MAX).saturating_mul(1000);
    let left_ms = viewed_ms.saturating_add(life_ms).saturating_sub(now_ms);
    (left_ms > 0).then(|| i32::try_from(left_ms.div_euclid(1000) + 1).unwrap_or(i32::MAX))
}

#[cfg(test)]
mod tests {
    use super::list_ttl_secs;

    #[test]
    fn the_list_ttl_runs_from_the_view() {
        let day = 86_400;
        let viewed = 1_710_028_800_000;
        assert_eq!(list_ttl_secs(30 * day, viewed, viewed), Some(30 * day as i32 + 1));
        assert_eq!(list_ttl_secs(30 * day, viewed, viewed + 29 * day as i64 * 1000), Some(day as i32 + 1));
        assert_eq!(list_ttl_secs(30 * day, viewed, viewed + 30 * day as i64 * 1000), None);
    }
}
