//! Related videos and recommendations, both from shared tags.
//!
//! * Related to a video: the other videos carrying any of its tags (the newest
//!   [`PER_TAG`] of each tag), scored by how many tags they share with it; ties go
//!   to more views, then to the newer video.
//! * For you: the signed-in user's interests are the tags of their uploads (the
//!   newest [`MAX_SOURCES`]) and of the videos they rated 3 or more (the
//!   [`MAX_SOURCES`] most recently rated), each tag weighted by how many of those
//!   videos carry it; the [`MAX_INTERESTS`] heaviest tags are kept. Candidates are the
//!   newest [`PER_TAG`] videos of each interest, scored by the summed weights of the
//!   interests they carry, newest first among equals. Everything the user uploaded or
//!   rated (any rating) is left out. With no candidates at all (no activity, no tags,
//!   or nothing else shares them) the answer is the latest videos.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use counting::EventKind;
use futures::future::try_join_all;
use futures::{StreamExt, TryStreamExt};
use platform::http::{Problem, parse_uuid};
use serde::Serialize;
use uuid::Uuid;

use crate::catalog::{first_summaries, summary_page, tags_of};
use crate::paging::{PageRequest, number};
use crate::routes::{AppState, only_params};
use crate::users::{SignedIn, respond};

/// Candidates read per tag: the tag's newest videos.
pub const PER_TAG: usize = 100;
/// Uploads, and rated videos, whose tags make up a user's interests.
pub const MAX_SOURCES: usize = 100;
/// Interest tags kept per user.
pub const MAX_INTERESTS: usize = 20;
/// A rating of at least this counts as liking the video.
pub const LIKED: i32 = 3;
pub const DEFAULT_RELATED: u32 = 5;
pub const MAX_RELATED: u32 = 20;
/// Concurrent reads of per-video rows.
const READ_CONCURRENCY: usize = 32;

/// Sums `weight` over the tags each candidate carries. `heads[i]` are the videos of
/// the tag weighing `weights[i]`; ids in `excluded` are no candidates.
fn score(heads: &[Vec<Uuid>], weights: &[u64], excluded: &HashSet<Uuid>) -> HashMap<Uuid, u64> {
    let mut scores = HashMap::new();
    for (head, w) in heads.iter().zip(weights) {
        for id in head.iter().filter(|id| !excluded.contains(id)) {
            *scores.entry(*id).or_insert(0) += w;
        }
    }
    scores
}

/// Highest score first, then newest (largest UUIDv7) first.
fn by_score(scores: &HashMap<Uuid, u64>) -> Vec<(Uuid, u64)> {
    let mut ranked: Vec<(Uuid, u64)> = scores.iter().map(|(id, s)| (*id, *s)).collect();
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
    ranked
}

/// The `n` heaviest tags (ties alphabetical) with their weights.
fn interests(tag_sets: &[BTreeSet<String>], n: usize) -> Vec<(String, u64)> {
    let mut weights: HashMap<&str, u64> = HashMap::new();
    for tag in tag_sets.iter().flatten() {
        *weights.entry(tag).or_insert(0) += 1;
    }
    let mut ranked: Vec<(String, u64)> = weights.into_iter().map(|(t, w)| (t.to_owned(), w)).collect();
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(n);
    ranked
}

pub fn api(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/v1/videos/id/{video_id}/related", get(related))
        .route("/api/v1/recommendations/foryou", get(for_you))
        .with_state(state)
}

type St = State<Arc<AppState>>;
type Params = Query<HashMap<String, String>>;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Related {
    video_id: Uuid,
    title: String,
    thumbnail_url: Option<String>,
    score: u64,
}

/// GET /api/v1/videos/id/{id}/related?limit → `[{videoId, title, thumbnailUrl, score}]`.
async fn related(State(st): St, Path(id): Path<String>, Query(q): Params) -> Response {
    let result = async {
        only_params(&q, &["limit"])?;
        let limit = number(&q, "limit", 1, MAX_RELATED)?.unwrap_or(DEFAULT_RELATED) as usize;
        let id = parse_uuid("videoId", &id)?;
        let tags = tags_of(&st, id).await?.ok_or_else(|| Problem::not_found("no such video"))?;
        let heads = try_join_all(tags.iter().map(|t| st.catalog.tag_head(t, PER_TAG))).await?;
        let scores = score(&heads, &vec![1; heads.len()], &HashSet::from([id]));
        let mut ranked = by_score(&scores);
        // Views only matter among the candidates that can still make the cut: those
        // scoring at least as much as the last one on the list.
        let cut = ranked.get(limit - 1).map_or(0, |(_, s)| *s);
        let contenders = ranked.iter().take_while(|(_, s)| *s >= cut).map(|(id, _)| *id).collect::<Vec<_>>();
        let st = &st;
        let views: HashMap<Uuid, i64> = futures::stream::iter(contenders)
            .map(|id| async move { Ok::<_, Problem>((id, st.counts.total(id, EventKind::View).await?)) })
            .buffer_unordered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(views.get(&b.0).cmp(&views.get(&a.0))).then(b.0.cmp(&a.0)));
        let ids: Vec<Uuid> = ranked.iter().map(|(id, _)| *id).collect();
        let found = first_summaries(st, &ids, limit).await?;
        Ok(found
            .into_iter()
            .map(|v| Related {
                score: scores[&v.video_id],
                video_id: v.video_id,
                title: v.title,
                thumbnail_url: v.thumbnail_url,
            })
            .collect::<Vec<_>>())
    };
    respond(StatusCode::OK, result.await)
}

/// GET /api/v1/recommendations/foryou?page&pageSize (signed in) → paged VideoSummary.
async fn for_you(State(st): St, SignedIn(claims): SignedIn, Query(q): Params) -> Response {
    let result = async {
        only_params(&q, &["page", "pageSize"])?;
        let req = PageRequest::from_query(&q)?;
        let st: &AppState = &st;
        let c = &st.catalog;
        let (uploads, mut rated) = futures::try_join!(c.uploads(claims.sub), c.rated_by(claims.sub))?;
        rated.sort_unstable_by(|a, b| b.updated_ms.cmp(&a.updated_ms).then(b.video.cmp(&a.video)));
        let liked = rated.iter().filter(|r| r.rating >= LIKED).map(|r| r.video).take(MAX_SOURCES);
        let sources: Vec<Uuid> = uploads.iter().copied().take(MAX_SOURCES).chain(liked).collect();
        let tag_sets: Vec<BTreeSet<String>> = futures::stream::iter(sources)
            .map(|id| async move { Ok::<_, Problem>(tags_of(st, id).await?.unwrap_or_default()) })
            .buffer_unordered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        let interests = interests(&tag_sets, MAX_INTERESTS);
        let heads = try_join_all(interests.iter().map(|(t, _)| c.tag_head(t, PER_TAG))).await?;
        let weights: Vec<u64> = interests.iter().map(|(_, w)| *w).collect();
        let excluded: HashSet<Uuid> = uploads.iter().copied().chain(rated.iter().map(|r| r.video)).collect();
        let ranked = by_score(&score(&heads, &weights, &excluded));
        if ranked.is_empty() {
            return summary_page(st, req, c.latest(req).await?).await;
        }
        let total = ranked.len() as u64;
        let page = ranked.into_iter().skip(req.offset()).take(req.page_size as usize).map(|(id, _)| id).collect();
        summary_page(st, req, (page, total)).await
    };
    respond(StatusCode::OK, result.await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn scores_sum_weights_and_skip_the_excluded() {
        let heads = vec![vec![id(1), id(2), id(3)], vec![id(2), id(4)], vec![id(3)]];
        let s = score(&heads, &[2, 1, 5], &HashSet::from([id(1)]));
        assert_eq!(s, HashMap::from([(id(2), 3), (id(3), 7), (id(4), 1)]));
        assert_eq!(by_score(&s), vec![(id(3), 7), (id(2), 3), (id(4), 1)]);
        // Equal scores: the newer (larger) id first.
        let tie = score(&[vec![id(1), id(9)]], &[1], &HashSet::new());
        assert_eq!(by_score(&tie), vec![(id(9), 1), (id(1), 1)]);
    }

    #[test]
    fn interests_weigh_tags_by_how_many_videos_carry_them() {
        let set = |tags: &[&str]| tags.iter().map(|t| t.to_string()).collect::<BTreeSet<_>>();
        let sets = vec![set(&["rust", "web"]), set(&["rust"]), set(&["cats", "web"]), set(&["dogs"])];
        assert_eq!(interests(&sets, 3), vec![("rust".to_owned(), 2), ("web".to_owned(), 2), ("cats".to_owned(), 1)]);
        assert!(interests(&[], 3).is_empty());
    }
}
