//! Reading ratings. They are written by the aggregator alone (POST goes through the
//! ingest gateway onto the ratings topic): `video_ratings` has a row per (video,
//! user) with the user's latest rating and static columns with the exact sum and
//! count; `ratings_by_user` lists what a user rated.

use std::sync::Arc;

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use uuid::Uuid;

use super::{Result, prepare};
use crate::domain::ratings::{Rated, Totals};

pub struct Ratings {
    session: Arc<Session>,
    totals: PreparedStatement,
    of_user: PreparedStatement,
    rated_by: PreparedStatement,
}

#[derive(scylla::DeserializeRow)]
struct TotalsRow {
    rating_sum: Option<i64>,
    rating_count: Option<i64>,
}

#[derive(scylla::DeserializeRow)]
struct RatingRow {
    rating: Option<i32>,
}

#[derive(scylla::DeserializeRow)]
struct RatedRow {
    #[scylla(rename = "videoid")]
    video_id: Uuid,
    rating: Option<i32>,
    updated_at: Option<CqlTimestamp>,
}

impl Ratings {
    pub async fn new(session: Arc<Session>, ks: &str) -> anyhow::Result<Self> {
        Ok(Self {
            // Static columns: any row of the partition carries them (or the static
            // row alone, before the first user row is visible).
            totals: prepare(
                &session,
                format!("SELECT rating_sum, rating_count FROM {ks}.video_ratings WHERE videoid = ? LIMIT 1"),
                true,
            )
            .await?,
            of_user: prepare(
                &session,
                format!("SELECT rating FROM {ks}.video_ratings WHERE videoid = ? AND userid = ?"),
                true,
            )
            .await?,
            rated_by: prepare(
                &session,
                format!("SELECT videoid, rating, updated_at FROM {ks}.ratings_by_user WHERE userid = ? LIMIT ?"),
                true,
            )
            .await?,
            session,
        })
    }

    pub async fn totals(&self, video: Uuid) -> Result<Totals> {
        let rows = self.session.execute_unpaged(&self.totals, (video,)).await?.into_rows_result()?;
        let row = rows.maybe_first_row::<TotalsRow>()?;
        Ok(row
            .map(|r| Totals { sum: r.rating_sum.unwrap_or(0), count: r.rating_count.unwrap_or(0) })
            .unwrap_or_default())
    }

    pub async fn of_user(&self, video: Uuid, user: Uuid) -> Result<Option<i32>> {
        let rows = self.session.execute_unpaged(&self.of_user, (video, user)).await?.into_rows_result()?;
        Ok(rows.maybe_first_row::<RatingRow>()?.and_then(|r| r.rating))
    }

    /// The ratings `user` has given, at most `max` of them (in video id order, so
    /// the oldest videos' first when there are more).
    pub async fn rated_by(&self, user: Uuid, max: usize) -> Result<Vec<Rated>> {
        use futures::TryStreamExt;
        let limit = i32::try_from(max).unwrap_or(i32::MAX);
        let pager = self.session.execute_iter(self.rated_by.clone(), (user, limit)).await?;
        let rows: Vec<RatedRow> = pager.rows_stream::<RatedRow>()?.try_collect().await?;
        Ok(rows
            .into_iter()
            .map(|r| Rated {
                video: r.video_id,
                rating: r.rating.unwrap_or(0),
                updated_ms: r.updated_at.map_or(0, |t| t.0),
            })
            .collect())
    }
}
