//! What several catalog resources read the same way: a video as KillrVideo shows
//! it (VideoDetail, VideoSummary: the `videos` row plus views from the rollups and
//! ratings from the aggregator's totals), whether content is visible, and hiding
//! or showing it.

use chrono::{DateTime, Utc};
use counting::EventKind;
use platform::http::{Problem, parse_uuid};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::moderation::ContentType;
use crate::domain::paging::{Page, PageRequest};
use crate::domain::ratings::Totals;
use crate::state::AppState;
use crate::store::users::time;
use crate::store::videos::VideoRow;

/// A video's processing status.
#[derive(ToSchema)]
#[schema(as = ProcessingStatus)]
#[allow(dead_code)] // the values `status` takes
pub enum VideoStatus {
    #[schema(rename = "PENDING")]
    Pending,
    #[schema(rename = "PROCESSING")]
    Processing,
    #[schema(rename = "READY")]
    Ready,
    #[schema(rename = "ERROR")]
    Error,
}

/// KillrVideo's VideoDetail (its snake_case members included, as front ends read them).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VideoDetail {
    video_id: Uuid,
    #[schema(required = true)]
    user_id: Option<Uuid>,
    title: String,
    description: String,
    tags: Vec<String>,
    #[schema(required = true)]
    submitted_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    updated_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    thumbnail_url: Option<String>,
    /// The YouTube watch URL.
    #[schema(required = true)]
    location: Option<String>,
    /// Always 0 (YouTube).
    #[serde(rename = "location_type")]
    location_type: i32,
    #[schema(required = true)]
    youtube_video_id: Option<String>,
    #[schema(required = true)]
    category: Option<String>,
    #[schema(required = true)]
    language: Option<String>,
    #[serde(rename = "content_rating")]
    #[schema(required = true)]
    content_rating: Option<String>,
    #[schema(value_type = VideoStatus)]
    status: String,
    /// All-time views, from the counting pipeline.
    views: i64,
    /// 0 when nobody has rated.
    average_rating: f64,
    total_ratings_count: i64,
}

impl VideoDetail {
    pub fn new(row: VideoRow, views: i64, ratings: Totals) -> Self {
        Self {
            video_id: row.video_id,
            user_id: row.user_id,
            title: row.title.unwrap_or_default(),
            description: row.description.unwrap_or_default(),
            tags: row.tags.unwrap_or_default().into_iter().collect(),
            submitted_at: time(row.submitted_at),
            updated_at: time(row.updated_at),
            thumbnail_url: row.thumbnail_url,
            location: row.youtube_video_id.as_deref().map(|id| format!("https://www.youtube.com/watch?v={id}")),
            location_type: 0,
            youtube_video_id: row.youtube_video_id,
            category: None,
            language: None,
            content_rating: None,
            status: row.status.unwrap_or_else(|| "PENDING".into()),
            views,
            average_rating: ratings.average(),
            total_ratings_count: ratings.count,
        }
    }
}

/// KillrVideo's VideoSummary: what every list of videos holds.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VideoSummary {
    pub video_id: Uuid,
    pub title: String,
    #[schema(required = true)]
    pub thumbnail_url: Option<String>,
    #[schema(required = true)]
    pub user_id: Option<Uuid>,
    #[schema(required = true)]
    pub submitted_at: Option<DateTime<Utc>>,
    #[serde(rename = "content_rating")]
    #[schema(required = true)]
    pub content_rating: Option<String>,
    #[schema(required = true)]
    pub category: Option<String>,
    /// All-time views, from the counting pipeline.
    pub views: i64,
    /// 0 when nobody has rated.
    pub average_rating: f64,
}

/// All-time views and the rating totals of a video, read concurrently.
pub async fn counters(st: &AppState, id: Uuid) -> Result<(i64, Totals), Problem> {
    Ok(futures::try_join!(st.counts.rollups.total(id, EventKind::View), st.catalog.ratings.totals(id))?)
}

pub async fn detail(st: &AppState, row: VideoRow) -> Result<VideoDetail, Problem> {
    let (views, ratings) = counters(st, row.video_id).await?;
    Ok(VideoDetail::new(row, views, ratings))
}

/// Summaries of `ids`, in that order, with views and average rating from the
/// counting pipeline. Ids with no video row, and videos a moderator hid, are left
/// out (a list's `totalItems` may still count a hidden video). Reads run concurrently.
pub async fn summaries(st: &AppState, ids: &[Uuid]) -> Result<Vec<VideoSummary>, Problem> {
    let found = futures::future::try_join_all(ids.iter().map(|&id| async move {
        let c = &st.catalog;
        let (row, hidden) = futures::try_join!(c.videos.get(id), c.flags.hidden(ContentType::Video, id))?;
        let Some(row) = row.filter(|_| !hidden) else { return Ok(None) };
        let (views, ratings) = counters(st, id).await?;
        Ok::<_, Problem>(Some(VideoSummary {
            video_id: row.video_id,
            title: row.title.unwrap_or_default(),
            thumbnail_url: row.thumbnail_url,
            user_id: row.user_id,
            submitted_at: time(row.submitted_at),
            content_rating: None,
            category: None,
            views,
            average_rating: ratings.average(),
        }))
    }))
    .await?;
    Ok(found.into_iter().flatten().collect())
}

/// Ids [`first_summaries`] looks at, at most: trending ranks counted ids, and views
/// can be posted for ids that are no video, so without a bound a request could
/// read a row for every made-up id.
pub const MAX_SUMMARY_CANDIDATES: usize = 200;

/// Summaries of the first `n` of `ranked` that still have a video row (an index may
/// name a video whose submit failed, trending may count an id that is no video),
/// read a chunk of `n` at a time, looking at no more than the first
/// [`MAX_SUMMARY_CANDIDATES`] ids (so fewer than `n` may come back).
pub async fn first_summaries(st: &AppState, ranked: &[Uuid], n: usize) -> Result<Vec<VideoSummary>, Problem> {
    let mut out = Vec::with_capacity(n);
    let ranked = &ranked[..ranked.len().min(MAX_SUMMARY_CANDIDATES.max(n))];
    for chunk in ranked.chunks(n.max(1)) {
        if out.len() >= n {
            break;
        }
        out.extend(summaries(st, chunk).await?);
    }
    out.truncate(n);
    Ok(out)
}

/// A page of ids turned into a page of summaries.
pub async fn summary_page(
    st: &AppState,
    req: PageRequest,
    (ids, total): (Vec<Uuid>, u64),
) -> Result<Page<VideoSummary>, Problem> {
    Ok(Page::new(req, summaries(st, &ids).await?, total))
}

/// The video's row, from an id in a path; 422 for a bad id, 404 for none.
pub async fn found(st: &AppState, id: &str) -> Result<VideoRow, Problem> {
    let id = parse_uuid("videoId", id)?;
    st.catalog.videos.get(id).await?.ok_or_else(|| Problem::not_found("no such video"))
}

/// The video's id if it exists and is not hidden; 404 otherwise.
pub async fn visible_video(st: &AppState, id: Uuid) -> Result<Uuid, Problem> {
    let c = &st.catalog;
    let (row, hidden) = futures::try_join!(c.videos.get(id), c.flags.hidden(ContentType::Video, id))?;
    match row {
        Some(_) if !hidden => Ok(id),
        _ => Err(Problem::not_found("no such video")),
    }
}

/// Hides or shows content. For a comment, the moderation state and the list rows
/// change in the order that keeps a half-done change on the hidden side.
pub async fn set_hidden(st: &AppState, content: ContentType, id: Uuid, hide: bool, by: Uuid) -> Result<(), Problem> {
    let c = &st.catalog;
    let comment = match content {
        ContentType::Comment => c.comments.get(id).await?,
        ContentType::Video => None,
    };
    match (comment, hide) {
        (None, _) => c.flags.set_hidden(content, id, hide, by).await?,
        (Some(comment), true) => {
            c.flags.set_hidden(content, id, hide, by).await?;
            c.comments.unlist(&comment).await?;
        }
        (Some(comment), false) => {
            c.comments.list(&comment).await?;
            c.flags.set_hidden(content, id, hide, by).await?;
        }
    }
    Ok(())
}
