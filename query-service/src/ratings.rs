//! Reading ratings. They are written by the aggregator alone (POST goes through the
//! ingest gateway onto the ratings topic): a row per (video, user) with the user's
//! latest rating, and static columns with the exact sum and count.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use platform::cassandra::prepare;
use platform::http::Problem;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use serde::Serialize;
use uuid::Uuid;

use crate::routes::AppState;
use crate::users::{MaybeSignedIn, respond};
use crate::videos::found;

pub struct Ratings {
    session: Arc<Session>,
    totals: PreparedStatement,
    of_user: PreparedStatement,
}

/// Sum and count of a video's current ratings (one per user).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub sum: i64,
    pub count: i64,
}

impl Totals {
    /// 0 when nobody has rated.
    pub fn average(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.sum as f64 / self.count as f64 }
    }
}

impl Ratings {
    pub async fn new(session: Arc<Session>, keyspace: &str) -> anyhow::Result<Self> {
        let ks = keyspace;
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
            session,
        })
    }

    pub async fn totals(&self, video: Uuid) -> Result<Totals, Problem> {
        let res = self.session.execute_unpaged(&self.totals, (video,)).await.map_err(store_error)?;
        let row = res.into_rows_result().map_err(store_error)?;
        let row = row.maybe_first_row::<(Option<i64>, Option<i64>)>().map_err(store_error)?;
        Ok(row.map(|(sum, count)| Totals { sum: sum.unwrap_or(0), count: count.unwrap_or(0) }).unwrap_or_default())
    }

    pub async fn of_user(&self, video: Uuid, user: Uuid) -> Result<Option<i32>, Problem> {
        let res = self.session.execute_unpaged(&self.of_user, (video, user)).await.map_err(store_error)?;
        let row = res.into_rows_result().map_err(store_error)?;
        Ok(row.maybe_first_row::<(Option<i32>,)>().map_err(store_error)?.and_then(|(r,)| r))
    }
}

fn store_error(e: impl std::fmt::Display) -> Problem {
    tracing::error!(error = %e, "rating store request failed");
    Problem::unavailable("the rating store is not answering; retry later", 1)
}

pub fn api(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/v1/videos/{video_id}/ratings", get(summary))
        .route("/api/v1/videos/id/{video_id}/rating", get(legacy))
        .with_state(state)
}

type St = State<Arc<AppState>>;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    video_id: Uuid,
    average_rating: f64,
    total_ratings_count: i64,
    /// The caller's own rating, when signed in and rated.
    current_user_rating: Option<i32>,
}

/// GET /api/v1/videos/{id}/ratings → {videoId, averageRating, totalRatingsCount, currentUserRating}
async fn summary(State(st): St, MaybeSignedIn(claims): MaybeSignedIn, Path(id): Path<String>) -> Response {
    let result = async {
        let video = found(&st, &id).await?.0;
        let totals = st.ratings.totals(video).await?;
        let current_user_rating = match claims {
            Some(c) => st.ratings.of_user(video, c.sub).await?,
            None => None,
        };
        Ok(Summary {
            video_id: video,
            average_rating: totals.average(),
            total_ratings_count: totals.count,
            current_user_rating,
        })
    };
    respond(StatusCode::OK, result.await)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Legacy {
    video_id: Uuid,
    average_rating: f64,
    rating_count: i64,
}

/// GET /api/v1/videos/id/{id}/rating → {videoId, averageRating, ratingCount} (the older shape)
async fn legacy(State(st): St, Path(id): Path<String>) -> Response {
    let result = async {
        let video = found(&st, &id).await?.0;
        let totals = st.ratings.totals(video).await?;
        Ok(Legacy { video_id: video, average_rating: totals.average(), rating_count: totals.count })
    };
    respond(StatusCode::OK, result.await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_of_nothing_is_zero() {
        assert_eq!(Totals::default().average(), 0.0);
        assert_eq!(Totals { sum: 9, count: 2 }.average(), 4.5);
    }
}
