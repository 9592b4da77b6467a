//! Offset paging over one Cassandra partition whose clustering key is a UUIDv7
//! in DESC order, so the partition reads newest first.
//!
//! Cassandra has no OFFSET, and KillrVideo pages by number. So:
//! - `totalItems` is `COUNT(*)` on the partition: exact, counted on the server
//!   (nothing but the number is shipped), and it can never drift from the rows
//!   the way a counter table updated beside them can (counter increments are not
//!   idempotent, so a retried or half-failed write would skew it for good).
//! - page 1 reads its rows and nothing else;
//! - a later page first reads only the clustering keys up to its first item (16
//!   bytes per skipped row, streamed), then its rows from that key on;
//! - a page past the end reads only the count.
//!
//! The count is O(partition) on the server. Comment, activity and flag partitions
//! are small; a partition in the millions would want a maintained count instead.

use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::deserialize::row::DeserializeRow;
use scylla::serialize::value::SerializeValue;
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use super::{CountRow, Result, prepare};
use crate::domain::paging::PageRequest;

/// The clustering key of a listing row: the partition's UUIDv7 column.
#[derive(scylla::DeserializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct Key {
    key: Uuid,
}

pub(crate) struct Listing {
    count: PreparedStatement,
    keys: PreparedStatement,
    first: PreparedStatement,
    from: PreparedStatement,
}

impl Listing {
    /// A listing of `table`'s partition `key`, clustered by the UUID column
    /// `clustering` (DESC), answering `columns` for each row.
    pub(crate) async fn new(
        session: &Session,
        ks: &str,
        table: &str,
        key: &str,
        clustering: &str,
        columns: &str,
    ) -> anyhow::Result<Self> {
        let prep = |cql: String| prepare(session, cql, true);
        Ok(Self {
            count: prep(format!("SELECT COUNT(*) FROM {ks}.{table} WHERE {key} = ?")).await?,
            keys: prep(format!("SELECT {clustering} FROM {ks}.{table} WHERE {key} = ? LIMIT ?")).await?,
            first: prep(format!("SELECT {columns} FROM {ks}.{table} WHERE {key} = ? LIMIT ?")).await?,
            from: prep(format!("SELECT {columns} FROM {ks}.{table} WHERE {key} = ? AND {clustering} <= ? LIMIT ?"))
                .await?,
        })
    }

    /// The rows of page `req` of partition `key`, newest first, and the
    /// partition's total number of rows.
    pub(crate) async fn page<K, R>(&self, session: &Session, key: K, req: PageRequest) -> Result<(Vec<R>, u64)>
    where
        K: SerializeValue + Clone,
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        let res = session.execute_unpaged(&self.count, (key.clone(),)).await?;
        let total = res.into_rows_result()?.first_row::<CountRow>()?.count.max(0) as u64;
        let offset = req.offset() as u64;
        if offset >= total {
            return Ok((Vec::new(), total));
        }
        let size = req.page_size as i32;
        let res = if offset == 0 {
            session.execute_unpaged(&self.first, (key, size)).await?
        } else {
            // The key of this page's first row: the (offset + 1)-th of the partition.
            let limit = i32::try_from(offset + 1).unwrap_or(i32::MAX);
            let mut keys = session.execute_iter(self.keys.clone(), (key.clone(), limit)).await?.rows_stream::<Key>()?;
            let (mut anchor, mut seen) = (None, 0u64);
            while let Some(Key { key }) = keys.try_next().await? {
                anchor = Some(key);
                seen += 1;
            }
            match anchor {
                // Rows went away between the count and this read.
                Some(anchor) if seen > offset => session.execute_unpaged(&self.from, (key, anchor, size)).await?,
                _ => return Ok((Vec::new(), total)),
            }
        };
        let rows = res.into_rows_result()?;
        let rows = rows.rows::<R>()?.collect::<std::result::Result<Vec<_>, _>>()?;
        Ok((rows, total))
    }
}
