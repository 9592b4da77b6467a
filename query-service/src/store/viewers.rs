//! The viewer sketches and the who-viewed list the aggregator writes (migration
//! 012). Nothing here writes.

use std::sync::Arc;
use std::time::Instant;

use counting::Span;
use futures::TryStreamExt;
use futures::future::try_join_all;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use uuid::Uuid;

use super::{Result, prepare};
use crate::metrics::{CASSANDRA_ERRORS, CASSANDRA_READ_DURATION, OP_READ};

pub struct ViewerStore {
    session: Arc<Session>,
    sketches: PreparedStatement,
    first: PreparedStatement,
    after: PreparedStatement,
}

#[derive(scylla::DeserializeRow)]
struct SketchRow {
    sketch: Option<Vec<u8>>,
}

/// One signed-in viewer of a video and the time of their last view.
#[derive(Debug, scylla::DeserializeRow)]
pub struct ViewerRow {
    pub user_id: Uuid,
    pub last_viewed_at: Option<CqlTimestamp>,
}

impl ViewerStore {
    pub async fn new(session: Arc<Session>, ks: &str) -> anyhow::Result<Self> {
        let sketches = prepare(
            &session,
            format!(
                "SELECT sketch FROM {ks}.viewer_sketches \
                 WHERE video_id = ? AND granularity = ? AND bucket >= ? AND bucket < ?"
            ),
            true,
        )
        .await?;
        let columns = "user_id, last_viewed_at";
        let first =
            prepare(&session, format!("SELECT {columns} FROM {ks}.video_viewers WHERE video_id = ? LIMIT ?"), true)
                .await?;
        let after = prepare(
            &session,
            format!("SELECT {columns} FROM {ks}.video_viewers WHERE video_id = ? AND user_id > ? LIMIT ?"),
            true,
        )
        .await?;
        Ok(Self { session, sketches, first, after })
    }

    /// The stored sketches of every span (hour or day), read concurrently; the
    /// caller bounded their number.
    pub async fn sketches(&self, video: Uuid, spans: &[Span]) -> Result<Vec<Vec<u8>>> {
        let per_span = try_join_all(spans.iter().map(|s| self.span(video, *s))).await?;
        Ok(per_span.into_iter().flatten().collect())
    }

    async fn span(&self, video: Uuid, span: Span) -> Result<Vec<Vec<u8>>> {
        let started = Instant::now();
        let values = (video, span.granularity.as_str(), CqlTimestamp(span.start), CqlTimestamp(span.end));
        let read = async {
            let pager = self.session.execute_iter(self.sketches.clone(), values).await?;
            let rows: Vec<SketchRow> = pager.rows_stream::<SketchRow>()?.try_collect().await?;
            Ok(rows.into_iter().filter_map(|r| r.sketch).collect())
        };
        let result = read.await;
        let granularity = span.granularity.as_str();
        CASSANDRA_READ_DURATION.histogram_with(&[("granularity", granularity)]).record(started.elapsed().as_secs_f64());
        if result.is_err() {
            CASSANDRA_ERRORS.counter_with(&[("op", OP_READ)]).increment(1);
        }
        result
    }

    /// Up to `limit` viewers of `video` in user-id order, after `after` (the last
    /// one of the previous page).
    pub async fn page(&self, video: Uuid, after: Option<Uuid>, limit: u32) -> Result<Vec<ViewerRow>> {
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let res = match after {
            None => self.session.execute_unpaged(&self.first, (video, limit)).await?,
            Some(a) => self.session.execute_unpaged(&self.after, (video, a, limit)).await?,
        };
        let rows = res.into_rows_result()?;
        Ok(rows.rows::<ViewerRow>()?.collect::<std::result::Result<Vec<_>, _>>()?)
    }
}
