//! KillrVideo videos: submit a YouTube URL, read and edit a video, its status,
//! and a preview from the URL alone. `views` comes from the counting pipeline.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use counting::EventKind;
use platform::cassandra::prepare;
use platform::http::{Problem, parse_json, parse_uuid, read_body};
use schemas::catalog::VideoAdded;
use schemas::catalog::catalog_event::Change;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalog;
use crate::catalog_events::id_bytes;
use crate::moderation::{self, ContentType};
use crate::ratings::Totals;
use crate::routes::AppState;
use crate::users::{SignedIn, respond, time};
use crate::youtube;

pub struct Videos {
    session: Arc<Session>,
    insert: PreparedStatement,
    read: PreparedStatement,
    set_status: PreparedStatement,
    update: PreparedStatement,
}

type VideoRow = (
    Uuid,
    Option<Uuid>,
    Option<String>,
    Option<String>,
    Option<BTreeSet<String>>,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
    Option<String>,
    Option<String>,
    Option<String>,
);

const COLUMNS: &str =
    "videoid, userid, title, description, tags, submitted_at, updated_at, youtube_video_id, thumbnail_url, status";

/// KillrVideo's VideoDetail (its snake_case members included, as front ends read them).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoDetail {
    video_id: Uuid,
    user_id: Option<Uuid>,
    title: String,
    description: String,
    tags: Vec<String>,
    submitted_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    thumbnail_url: Option<String>,
    location: Option<String>,
    #[serde(rename = "location_type")]
    location_type: i32,
    youtube_video_id: Option<String>,
    category: Option<String>,
    language: Option<String>,
    #[serde(rename = "content_rating")]
    content_rating: Option<String>,
    status: String,
    views: i64,
    average_rating: f64,
    total_ratings_count: i64,
}

impl VideoDetail {
    fn from_row(row: VideoRow, views: i64, ratings: Totals) -> Self {
        let (video_id, user_id, title, description, tags, submitted, updated, yt, thumb, status) = row;
        Self {
            video_id,
            user_id,
            title: title.unwrap_or_default(),
            description: description.unwrap_or_default(),
            tags: tags.unwrap_or_default().into_iter().collect(),
            submitted_at: time(submitted),
            updated_at: time(updated),
            thumbnail_url: thumb,
            location: yt.as_deref().map(|id| format!("https://www.youtube.com/watch?v={id}")),
            location_type: 0,
            youtube_video_id: yt,
            category: None,
            language: None,
            content_rating: None,
            status: status.unwrap_or_else(|| "PENDING".into()),
            views,
            average_rating: ratings.average(),
            total_ratings_count: ratings.count,
        }
    }
}

/// KillrVideo's VideoSummary: what every list of videos holds.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoSummary {
    pub video_id: Uuid,
    pub title: String,
    pub thumbnail_url: Option<String>,
    pub user_id: Option<Uuid>,
    pub submitted_at: Option<DateTime<Utc>>,
    #[serde(rename = "content_rating")]
    pub content_rating: Option<String>,
    pub category: Option<String>,
    pub views: i64,
    pub average_rating: f64,
}

/// Summaries of `ids`, in that order, with views and average rating from the
/// counting pipeline. Ids with no video row, and videos a moderator hid, are left
/// out (a list's `totalItems` may still count a hidden video). Reads run concurrently.
pub(crate) async fn summaries(st: &AppState, ids: &[Uuid]) -> Result<Vec<VideoSummary>, Problem> {
    let found = futures::future::try_join_all(ids.iter().map(|&id| async move {
        let hidden = moderation::hidden(st, ContentType::Video, id);
        let (row, hidden) = futures::try_join!(st.videos.row(id), hidden)?;
        let Some(row) = row.filter(|_| !hidden) else { return Ok(None) };
        let (views, ratings) = counters(st, id).await?;
        let (video_id, user_id, title, _, _, submitted, _, _, thumbnail_url, _) = row;
        Ok::<_, Problem>(Some(VideoSummary {
            video_id,
            title: title.unwrap_or_default(),
            thumbnail_url,
            user_id,
            submitted_at: time(submitted),
            content_rating: None,
            category: None,
            views,
            average_rating: ratings.average(),
        }))
    }))
    .await?;
    Ok(found.into_iter().flatten().collect())
}

/// All-time views and the rating totals of a video, read concurrently.
async fn counters(st: &AppState, id: Uuid) -> Result<(i64, Totals), Problem> {
    futures::try_join!(st.counts.total(id, EventKind::View), st.ratings.totals(id))
}

impl Videos {
    pub async fn new(session: Arc<Session>, keyspace: &str) -> anyhow::Result<Self> {
        let ks = keyspace;
        // None is marked idempotent: the driver does not retry them on its own.
        let prep = |cql: String| {
            let session = session.clone();
            async move { prepare(&session, cql, false).await }
        };
        Ok(Self {
            insert: prep(format!("INSERT INTO {ks}.videos ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")).await?,
            read: prep(format!("SELECT {COLUMNS} FROM {ks}.videos WHERE videoid = ?")).await?,
            set_status: prep(format!("UPDATE {ks}.videos SET status = ? WHERE videoid = ?")).await?,
            update: prep(format!(
                "UPDATE {ks}.videos SET title = ?, description = ?, tags = ?, updated_at = ? WHERE videoid = ?"
            ))
            .await?,
            session,
        })
    }

    pub(crate) async fn row(&self, id: Uuid) -> Result<Option<VideoRow>, Problem> {
        let res = self.session.execute_unpaged(&self.read, (id,)).await.map_err(store_error)?;
        let rows = res.into_rows_result().map_err(store_error)?;
        rows.maybe_first_row::<VideoRow>().map_err(store_error)
    }
}

fn store_error(e: impl std::fmt::Display) -> Problem {
    tracing::error!(error = %e, "video store request failed");
    Problem::unavailable("the video store is not answering; retry later", 1)
}

pub fn api(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/v1/videos", post(submit))
        .route("/api/v1/videos/preview", post(preview))
        .route("/api/v1/videos/id/{video_id}", get(detail).put(edit))
        .route("/api/v1/videos/id/{video_id}/status", get(status))
        .with_state(state)
}

type St = State<Arc<AppState>>;

async fn with_views(st: &AppState, row: VideoRow) -> Result<VideoDetail, Problem> {
    let (views, ratings) = counters(st, row.0).await?;
    Ok(VideoDetail::from_row(row, views, ratings))
}

pub(crate) async fn found(st: &AppState, id: &str) -> Result<VideoRow, Problem> {
    let id = parse_uuid("videoId", id)?;
    st.videos.row(id).await?.ok_or_else(|| Problem::not_found("no such video"))
}

fn youtube_id(url: &str) -> Result<String, Problem> {
    youtube::video_id(url).ok_or_else(|| Problem::invalid("youtubeUrl", "not a YouTube video URL"))
}

fn text(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, Problem> {
    match value.map(|v| v.trim().to_owned()) {
        Some(v) if v.is_empty() || v.chars().count() > max => {
            Err(Problem::invalid(field, format!("must be 1 to {max} characters")))
        }
        v => Ok(v),
    }
}

fn tags(value: Option<Vec<String>>) -> Result<Option<BTreeSet<String>>, Problem> {
    let Some(tags) = value else { return Ok(None) };
    if tags.len() > 20 {
        return Err(Problem::invalid("tags", "at most 20 tags"));
    }
    let mut out = BTreeSet::new();
    for (i, t) in tags.iter().enumerate() {
        let t = t.trim().to_lowercase();
        if t.is_empty() || t.chars().count() > 50 {
            return Err(Problem::invalid(format!("tags[{i}]"), "must be 1 to 50 characters"));
        }
        out.insert(t);
    }
    Ok(Some(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Submit {
    youtube_url: String,
    title: Option<String>,
    description: Option<String>,
    tags: Option<Vec<String>>,
}

/// POST /api/v1/videos (signed in) → 202 VideoDetail, PENDING; READY once processed.
async fn submit(State(st): St, SignedIn(claims): SignedIn, bytes: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let s: Submit = parse_json(&read_body(bytes)?)?;
        let yt = youtube_id(&s.youtube_url)?;
        let title = text("title", s.title, 100)?.unwrap_or_else(|| format!("YouTube video {yt}"));
        let description = text("description", s.description, 2000)?.unwrap_or_default();
        let tags = tags(s.tags)?.unwrap_or_default();
        let id = Uuid::now_v7();
        let now = CqlTimestamp(Utc::now().timestamp_millis());
        let thumb = youtube::thumbnail_url(&yt);
        let row = (id, claims.sub, &title, &description, &tags, now, now, &yt, &thumb, "PENDING");
        let entry = catalog::Entry {
            id,
            user: Some(claims.sub),
            submitted_ms: now.0,
            title: &title,
            description: &description,
            tags: &tags,
        };
        catalog::on_video_added(&st, &entry).await?;
        let v = &st.videos;
        v.session.execute_unpaged(&v.insert, row).await.map_err(store_error)?;
        // Processing needs no network here: everything is derived from the URL. It
        // runs after the answer, as KillrVideo's does, and marks the video READY.
        let added = VideoAdded {
            video_id: id_bytes(id),
            user_id: id_bytes(claims.sub),
            title: title.clone(),
            tags: tags.iter().cloned().collect(),
            youtube_video_id: yt.clone(),
        };
        st.catalog_events.publish(id, Change::VideoAdded(added));
        let st2 = st.clone();
        tokio::spawn(async move {
            let v = &st2.videos;
            if let Err(e) = v.session.execute_unpaged(&v.set_status, ("READY", id)).await {
                tracing::error!(error = %e, video = %id, "marking a video READY failed");
            }
        });
        let row = (
            id,
            Some(claims.sub),
            Some(title),
            Some(description),
            Some(tags),
            Some(now),
            Some(now),
            Some(yt),
            Some(thumb),
            Some("PENDING".to_owned()),
        );
        Ok(VideoDetail::from_row(row, 0, Totals::default()))
    };
    respond(StatusCode::ACCEPTED, result.await)
}

/// GET /api/v1/videos/id/{id}
async fn detail(State(st): St, Path(id): Path<String>) -> Response {
    let result = async {
        let row = found(&st, &id).await?;
        // A video hidden by a moderator is gone for readers (until restored).
        if moderation::hidden(&st, ContentType::Video, row.0).await? {
            return Err(Problem::not_found("no such video"));
        }
        with_views(&st, row).await
    };
    respond(StatusCode::OK, result.await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Edit {
    title: Option<String>,
    description: Option<String>,
    tags: Option<Vec<String>>,
}

/// PUT /api/v1/videos/id/{id} (the owner only) {title?, description?, tags?}
async fn edit(
    State(st): St,
    SignedIn(claims): SignedIn,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let row = found(&st, &id).await?;
        if row.1 != Some(claims.sub) {
            return Err(Problem::forbidden("only the uploader may edit"));
        }
        let e: Edit = parse_json(&read_body(bytes)?)?;
        let title = text("title", e.title, 100)?.or(row.2.clone()).unwrap_or_default();
        let description = text("description", e.description, 2000)?.or(row.3.clone()).unwrap_or_default();
        let tags = tags(e.tags)?.or(row.4.clone()).unwrap_or_default();
        let no_tags = BTreeSet::new();
        let before = catalog::Entry {
            id: row.0,
            user: row.1,
            submitted_ms: row.5.map_or(0, |t| t.0),
            title: row.2.as_deref().unwrap_or_default(),
            description: row.3.as_deref().unwrap_or_default(),
            tags: row.4.as_ref().unwrap_or(&no_tags),
        };
        let after = catalog::Entry { title: &title, description: &description, tags: &tags, ..before };
        catalog::on_video_edited(&st, &before, &after).await?;
        let now = CqlTimestamp(Utc::now().timestamp_millis());
        let v = &st.videos;
        v.session.execute_unpaged(&v.update, (&title, &description, &tags, now, row.0)).await.map_err(store_error)?;
        let row = v.row(row.0).await?.ok_or_else(|| Problem::not_found("no such video"))?;
        with_views(&st, row).await
    };
    respond(StatusCode::OK, result.await)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    video_id: Uuid,
    status: String,
}

/// GET /api/v1/videos/id/{id}/status (signed in)
async fn status(State(st): St, SignedIn(_): SignedIn, Path(id): Path<String>) -> Response {
    let result = async {
        let row = found(&st, &id).await?;
        Ok(Status { video_id: row.0, status: row.9.unwrap_or_else(|| "PENDING".into()) })
    };
    respond(StatusCode::OK, result.await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PreviewIn {
    youtube_url: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Preview {
    youtube_video_id: String,
    title: String,
    thumbnail_url: String,
}

/// POST /api/v1/videos/preview {youtubeUrl}: a guess from the URL alone (no network).
async fn preview(bytes: Result<Bytes, BytesRejection>) -> Response {
    let result = (|| {
        let p: PreviewIn = parse_json(&read_body(bytes)?)?;
        let id = youtube_id(&p.youtube_url)?;
        Ok(Preview {
            title: format!("YouTube video {id}"),
            thumbnail_url: youtube::thumbnail_url(&id),
            youtube_video_id: id,
        })
    })();
    respond(StatusCode::OK, result)
}
