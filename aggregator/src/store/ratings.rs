//! `video_ratings` (a row per user, and the totals as static columns of the
//! video's partition, migration 004) and `ratings_by_user`.

use std::collections::HashMap;

use counting::ratings::{StoredRating, StoredTotals, UserRatingWrite};
use counting::write_timestamp;
use platform::cassandra::{CassandraError, prepare};
use scylla::DeserializeRow;
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use uuid::Uuid;

use super::RollupStore;

/// Users per `IN` list: a popular video may get many raters in one flush.
const USERS_PER_READ: usize = 100;

pub(super) struct Statements {
    read_totals: PreparedStatement,
    read_users: PreparedStatement,
    write_user: PreparedStatement,
    write_by_user: PreparedStatement,
    write_totals: PreparedStatement,
}

impl Statements {
    pub(super) async fn prepare(s: &Session, ks: &str) -> Result<Self, CassandraError> {
        let read_totals = prepare(
            s,
            format!("SELECT rating_sum, rating_count, totals_offset FROM {ks}.video_ratings WHERE videoid = ? LIMIT 1"),
            true,
        )
        .await?;
        let read_users = prepare(
            s,
            format!(
                "SELECT userid, rating, prev_rating, last_offset, created_at FROM {ks}.video_ratings \
                 WHERE videoid = ? AND userid IN ?"
            ),
            true,
        )
        .await?;
        let write_user = prepare(
            s,
            format!(
                "INSERT INTO {ks}.video_ratings \
                 (videoid, userid, rating, prev_rating, last_offset, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ),
            true,
        )
        .await?;
        let write_by_user = prepare(
            s,
            format!(
                "INSERT INTO {ks}.ratings_by_user (userid, videoid, rating, updated_at) \
                 VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
            ),
            true,
        )
        .await?;
        let write_totals = prepare(
            s,
            format!(
                "UPDATE {ks}.video_ratings USING TIMESTAMP ? \
                 SET rating_sum = ?, rating_count = ?, totals_offset = ? WHERE videoid = ?"
            ),
            true,
        )
        .await?;
        Ok(Self { read_totals, read_users, write_user, write_by_user, write_totals })
    }
}

#[derive(DeserializeRow)]
struct TotalsRow {
    rating_sum: Option<i64>,
    rating_count: Option<i64>,
    totals_offset: Option<i64>,
}

#[derive(DeserializeRow)]
struct UserRow {
    userid: Uuid,
    rating: Option<i32>,
    prev_rating: Option<i32>,
    last_offset: Option<i64>,
    created_at: Option<CqlTimestamp>,
}

impl RollupStore {
    /// A video's rating totals and the rows of `users` (those that exist).
    pub async fn read_ratings(
        &self,
        video: Uuid,
        users: &[Uuid],
    ) -> Result<(StoredTotals, HashMap<Uuid, StoredRating>), CassandraError> {
        let st = &self.ratings;
        let res = self.session.execute_unpaged(&st.read_totals, (video,)).await?.into_rows_result()?;
        let totals = match res.maybe_first_row::<TotalsRow>()? {
            Some(t) => StoredTotals {
                sum: t.rating_sum.unwrap_or(0),
                count: t.rating_count.unwrap_or(0),
                offset: t.totals_offset.unwrap_or(-1),
            },
            None => StoredTotals { sum: 0, count: 0, offset: -1 },
        };
        let mut rows = HashMap::new();
        for chunk in users.chunks(USERS_PER_READ) {
            let res = self.session.execute_unpaged(&st.read_users, (video, chunk)).await?;
            for row in res.into_rows_result()?.rows::<UserRow>()? {
                let row = row?;
                // A row without a rating is only the static columns' placeholder.
                let Some(rating) = row.rating else { continue };
                let stored = StoredRating {
                    rating,
                    prev_rating: row.prev_rating,
                    last_offset: row.last_offset.unwrap_or(-1),
                    created_at_ms: row.created_at.map_or(0, |t| t.0),
                };
                rows.insert(row.userid, stored);
            }
        }
        Ok((totals, rows))
    }

    /// Writes user rating rows (and their by-user copies) of one video in one batch.
    pub async fn write_user_ratings(
        &self,
        video: Uuid,
        users: &[UserRatingWrite],
        last_offset: i64,
        epoch: i64,
    ) -> Result<(), CassandraError> {
        let st = &self.ratings;
        let ts = write_timestamp(epoch, last_offset);
        let mut batch = Batch::new(BatchType::Unlogged);
        batch.set_is_idempotent(true);
        let mut values = Vec::with_capacity(users.len());
        for u in users {
            batch.append_statement(st.write_user.clone());
            values.push((
                video,
                u.user_id,
                u.rating,
                u.prev_rating,
                last_offset,
                CqlTimestamp(u.created_at_ms),
                CqlTimestamp(u.updated_at_ms),
                ts,
            ));
        }
        self.session.batch(&batch, values).await?;
        // The by-user copies live in other partitions: a separate request each, all
        // before the totals are written (the totals mark the flush as landed).
        futures::future::try_join_all(users.iter().map(|u| {
            let values = (u.user_id, video, u.rating, CqlTimestamp(u.updated_at_ms), ts);
            self.session.execute_unpaged(&st.write_by_user, values)
        }))
        .await?;
        Ok(())
    }

    /// Writes a video's totals: last, once every user row of the flush landed.
    pub async fn write_totals(&self, video: Uuid, t: StoredTotals, epoch: i64) -> Result<(), CassandraError> {
        let values = (write_timestamp(epoch, t.offset), t.sum, t.count, t.offset, video);
        self.session.execute_unpaged(&self.ratings.write_totals, values).await?;
        Ok(())
    }
}
