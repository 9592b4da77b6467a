//! Playback statistics (seed 002's GetNumberOfPlays): all-time views of one video
//! or of many at once.

use axum::Json;
use axum::extract::{Path, State};
use counting::EventKind;
use futures::{StreamExt, TryStreamExt};
use platform::http::{Problem, parse_uuid};
use platform::openapi::{Invalid, NotFound, Unavailable};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::common::{Params, St, only_params};
use crate::domain::validate::video_ids;

const READ_CONCURRENCY: usize = 16;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlaybackStats {
    video_id: Uuid,
    views: i64,
}

/// All-time views of a video; 404 for an unknown video.
#[utoipa::path(
    get,
    path = "/api/v1/videos/{video_id}/playback-stats",
    tag = "counting",
    params(("video_id" = Uuid, Path, description = "The video")),
    responses((status = 200, description = "Its views", body = PlaybackStats), NotFound, Invalid, Unavailable)
)]
pub async fn playback_stats(State(st): St, Path(id): Path<String>) -> Result<Json<PlaybackStats>, Problem> {
    let id = parse_uuid("videoId", &id)?;
    match futures::try_join!(st.catalog.videos.get(id), st.counts.rollups.total(id, EventKind::View))? {
        (Some(_), views) => Ok(Json(PlaybackStats { video_id: id, views })),
        (None, _) => Err(Problem::not_found("no such video")),
    }
}

/// All-time views of many videos at once, in the order asked, for the ids that are
/// videos (as KillrVideo's GetNumberOfPlays, which answers for the videos it could
/// load). Duplicates are answered once. Reads run concurrently.
#[utoipa::path(
    get,
    path = "/api/v1/videos/playback-stats",
    tag = "counting",
    params((
        "videoIds" = String, Query,
        pattern = "^ *[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12} *(, *[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12} *){0,99}$",
        description = "1 to 100 comma-separated video ids"
    )),
    responses((status = 200, description = "Views per video", body = Vec<PlaybackStats>), Invalid, Unavailable)
)]
pub async fn playback_stats_many(State(st): St, q: Params) -> Result<Json<Vec<PlaybackStats>>, Problem> {
    only_params(&q, &["videoIds"])?;
    let ids = video_ids(q.get("videoIds"))?;
    let st = &st;
    let stats: Vec<Option<PlaybackStats>> = futures::stream::iter(ids)
        .map(|id| async move {
            let (video, views) =
                futures::try_join!(st.catalog.videos.get(id), st.counts.rollups.total(id, EventKind::View))?;
            Ok::<_, Problem>(video.map(|_| PlaybackStats { video_id: id, views }))
        })
        .buffered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(Json(stats.into_iter().flatten().collect()))
}
