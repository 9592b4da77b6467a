//! Related videos and recommendations for the signed-in user, both from shared
//! tags (the scoring rules are `domain::recommend`).

use std::collections::{BTreeSet, HashMap, HashSet};

use axum::Json;
use axum::extract::{Path, State};
use counting::EventKind;
use futures::future::try_join_all;
use futures::{StreamExt, TryStreamExt};
use platform::http::{Problem, parse_uuid};
use platform::openapi::{Invalid, NotFound, Unauthorized, Unavailable};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::shared::{VideoSummary, first_summaries, summary_page};
use crate::api::common::params::PageParams;
use crate::api::common::{Params, SignedIn, St, only_params, page_request};
use crate::domain::paging::{Page, number};
use crate::domain::recommend::{
    DEFAULT_RELATED, LIKED, MAX_INTERESTS, MAX_RATED_READ, MAX_RELATED, MAX_SOURCES, MAX_VIEW_READS, PER_TAG, by_score,
    interests, score,
};
use crate::state::AppState;

/// Concurrent reads of per-video rows.
const READ_CONCURRENCY: usize = 32;

/// A video's tags; `None` when there is no such video.
async fn tags_of(st: &AppState, id: Uuid) -> Result<Option<BTreeSet<String>>, Problem> {
    Ok(st.catalog.videos.get(id).await?.map(|row| row.tags.unwrap_or_default()))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Related {
    video_id: Uuid,
    title: String,
    #[schema(required = true)]
    thumbnail_url: Option<String>,
    /// Tags shared with the video.
    score: u64,
}

/// Videos sharing tags with a video, most shared first, then most viewed, then newest.
#[utoipa::path(
    get,
    path = "/api/v1/videos/id/{video_id}/related",
    tag = "videos",
    params(
        ("video_id" = Uuid, Path, description = "The video"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 20, description = "Videos to answer (default 5)"),
    ),
    responses((status = 200, description = "The videos", body = Vec<Related>), NotFound, Invalid, Unavailable)
)]
pub async fn related(State(st): St, Path(id): Path<String>, q: Params) -> Result<Json<Vec<Related>>, Problem> {
    only_params(&q, &["limit"])?;
    let limit = number(&q, "limit", 1, MAX_RELATED)?.unwrap_or(DEFAULT_RELATED) as usize;
    let id = parse_uuid("videoId", &id)?;
    let tags = tags_of(&st, id).await?.ok_or_else(|| Problem::not_found("no such video"))?;
    let indexes = &st.catalog.indexes;
    let heads = try_join_all(tags.iter().map(|t| indexes.tag_head(t, PER_TAG))).await?;
    let scores = score(&heads, &vec![1; heads.len()], &HashSet::from([id]));
    let mut ranked = by_score(&scores);
    // Views only matter among the candidates that can still make the cut: those
    // scoring at least as much as the last one on the list, at most MAX_VIEW_READS
    // of them (the rest keep their newest-first order, after those read).
    let cut = ranked.get(limit - 1).map_or(0, |(_, s)| *s);
    let contenders =
        ranked.iter().take_while(|(_, s)| *s >= cut).take(MAX_VIEW_READS).map(|(id, _)| *id).collect::<Vec<_>>();
    let st = &st;
    let views: HashMap<Uuid, i64> = futures::stream::iter(contenders)
        .map(|id| async move { Ok::<_, Problem>((id, st.counts.rollups.total(id, EventKind::View).await?)) })
        .buffer_unordered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    // Unread views sort after read ones (`None` < `Some`), then newest first.
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(views.get(&b.0).cmp(&views.get(&a.0))).then(b.0.cmp(&a.0)));
    let ids: Vec<Uuid> = ranked.iter().map(|(id, _)| *id).collect();
    let found = first_summaries(st, &ids, limit).await?;
    Ok(Json(
        found
            .into_iter()
            .map(|v| Related {
                score: scores[&v.video_id],
                video_id: v.video_id,
                title: v.title,
                thumbnail_url: v.thumbnail_url,
            })
            .collect(),
    ))
}

/// Videos for the signed-in user, from the tags of what they rated (3 or more)
/// and uploaded; the latest videos when nothing matches.
#[utoipa::path(
    get,
    path = "/api/v1/recommendations/foryou",
    tag = "videos",
    security(("bearer" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of videos", body = Page<VideoSummary>),
        Unauthorized, Invalid, Unavailable
    )
)]
pub async fn for_you(
    State(st): St,
    SignedIn(claims): SignedIn,
    q: Params,
) -> Result<Json<Page<VideoSummary>>, Problem> {
    let req = page_request(&q)?;
    let st: &AppState = &st;
    let c = &st.catalog;
    let (uploads, mut rated) =
        futures::try_join!(c.indexes.uploads(claims.sub, MAX_SOURCES), c.ratings.rated_by(claims.sub, MAX_RATED_READ))?;
    rated.sort_unstable_by(|a, b| b.updated_ms.cmp(&a.updated_ms).then(b.video.cmp(&a.video)));
    let liked = rated.iter().filter(|r| r.rating >= LIKED).map(|r| r.video).take(MAX_SOURCES);
    let sources: Vec<Uuid> = uploads.iter().copied().chain(liked).collect();
    let tag_sets: Vec<BTreeSet<String>> = futures::stream::iter(sources)
        .map(|id| async move { Ok::<_, Problem>(tags_of(st, id).await?.unwrap_or_default()) })
        .buffer_unordered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    let interests = interests(&tag_sets, MAX_INTERESTS);
    let heads = try_join_all(interests.iter().map(|(t, _)| c.indexes.tag_head(t, PER_TAG))).await?;
    let weights: Vec<u64> = interests.iter().map(|(_, w)| *w).collect();
    let excluded: HashSet<Uuid> = uploads.iter().copied().chain(rated.iter().map(|r| r.video)).collect();
    let ranked = by_score(&score(&heads, &weights, &excluded));
    if ranked.is_empty() {
        return Ok(Json(summary_page(st, req, c.indexes.latest(req).await?).await?));
    }
    let total = ranked.len() as u64;
    let page = ranked.into_iter().skip(req.offset()).take(req.page_size as usize).map(|(id, _)| id).collect();
    Ok(Json(summary_page(st, req, (page, total)).await?))
}
