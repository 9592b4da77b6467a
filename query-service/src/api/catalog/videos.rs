//! KillrVideo videos: submit a YouTube URL, read and edit a video, its status, and
//! a preview from the URL alone. `views` comes from the counting pipeline.

use std::collections::BTreeSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use platform::http::Problem;
use platform::openapi::{BadRequest, Forbidden, Invalid, NotFound, TooLarge, Unauthorized, Unavailable};
use schemas::catalog::VideoAdded;
use schemas::catalog::catalog_event::Change;
use scylla::value::CqlTimestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::shared::{VideoDetail, VideoStatus, detail, found};
use crate::api::common::{SignedIn, St, json_body};
use crate::catalog_events::id_bytes;
use crate::domain::indexes::Entry;
use crate::domain::moderation::ContentType;
use crate::domain::ratings::Totals;
use crate::domain::validate::{MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS, tags, text};
use crate::domain::youtube;
use crate::store::videos::VideoRow;

fn youtube_id(url: &str) -> Result<String, Problem> {
    youtube::video_id(url).ok_or_else(|| Problem::invalid("youtubeUrl", "not a YouTube video URL"))
}

/// A YouTube video URL: watch, youtu.be, embed, shorts, live, v/, nocookie, m. or
/// music. hosts, with or without the scheme.
pub const YOUTUBE_URL: &str = r"^ *(https?://)?((www|m|music)\.)?(youtube\.com/watch\?([^#]*&)?v=[A-Za-z0-9_-]{11}([&#][^ ]*)?|(youtube\.com/(embed|shorts|live|v)/|youtu\.be/|youtube-nocookie\.com/embed/)[A-Za-z0-9_-]{11}([?#/][^ ]*)?) *$";

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Submit {
    #[schema(
        pattern = r"^ *(https?://)?((www|m|music)\.)?(youtube\.com/watch\?([^#]*&)?v=[A-Za-z0-9_-]{11}([&#][^ ]*)?|(youtube\.com/(embed|shorts|live|v)/|youtu\.be/|youtube-nocookie\.com/embed/)[A-Za-z0-9_-]{11}([?#/][^ ]*)?) *$"
    )]
    youtube_url: String,
    /// Trimmed, 1 to 100 characters; default "YouTube video <id>".
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    title: Option<String>,
    /// Trimmed, 1 to 2000 characters.
    #[schema(min_length = 1, max_length = 2000, pattern = r"\S")]
    description: Option<String>,
    /// At most 20 tags, each trimmed and lower-cased to 1 to 50 characters.
    #[schema(max_items = 20, inline)]
    tags: Option<Vec<TagSchema>>,
}

/// A tag: trimmed and lower-cased, 1 to 50 characters.
#[derive(Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, min_length = 1, max_length = 50, pattern = r"\S")]
pub struct TagSchema(String);

/// Submit a YouTube video: 202 with the video PENDING; READY once processed.
///
/// The catalog's indexes are written before the `videos` row, so a submit that
/// fails leaves no video a list can show.
#[utoipa::path(
    post,
    path = "/api/v1/videos",
    tag = "videos",
    security(("bearer" = [])),
    request_body = Submit,
    responses(
        (status = 202, description = "Accepted, PENDING", body = VideoDetail),
        BadRequest, Unauthorized, TooLarge, Invalid, Unavailable
    )
)]
pub async fn submit(
    State(st): St,
    SignedIn(claims): SignedIn,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<VideoDetail>), Problem> {
    let s: Submit = json_body(bytes)?;
    let yt = youtube_id(&s.youtube_url)?;
    let title = text("title", s.title, MAX_TITLE_CHARS)?.unwrap_or_else(|| format!("YouTube video {yt}"));
    let description = text("description", s.description, MAX_DESCRIPTION_CHARS)?.unwrap_or_default();
    let tags = tags(s.tags.map(|t| t.into_iter().map(|t| t.0).collect()))?.unwrap_or_default();
    let id = Uuid::now_v7();
    let now = CqlTimestamp(Utc::now().timestamp_millis());
    let c = &st.catalog;
    let entry = Entry {
        id,
        user: Some(claims.sub),
        submitted_ms: now.0,
        title: &title,
        description: &description,
        tags: &tags,
    };
    c.indexes.add_video(&entry).await?;
    let row = VideoRow {
        video_id: id,
        user_id: Some(claims.sub),
        title: Some(title.clone()),
        description: Some(description),
        tags: Some(tags.clone()),
        submitted_at: Some(now),
        updated_at: Some(now),
        thumbnail_url: Some(youtube::thumbnail_url(&yt)),
        youtube_video_id: Some(yt.clone()),
        status: Some("PENDING".to_owned()),
    };
    c.videos.insert(&row).await?;
    let added = VideoAdded {
        video_id: id_bytes(id),
        user_id: id_bytes(claims.sub),
        title,
        tags: tags.iter().cloned().collect(),
        youtube_video_id: yt,
    };
    c.events.publish(id, Change::VideoAdded(added));
    // Processing needs no network here: everything is derived from the URL. It
    // runs after the answer, as KillrVideo's does, and marks the video READY.
    let st2 = st.clone();
    tokio::spawn(async move {
        if let Err(e) = st2.catalog.videos.set_status(id, "READY").await {
            tracing::error!(error = %e, video = %id, "marking a video READY failed");
        }
    });
    Ok((StatusCode::ACCEPTED, Json(VideoDetail::new(row, 0, Totals::default()))))
}

/// A video, with views and ratings from the pipeline. A video a moderator hid is
/// 404 until restored.
#[utoipa::path(
    get,
    path = "/api/v1/videos/id/{video_id}",
    tag = "videos",
    params(("video_id" = Uuid, Path, description = "The video")),
    responses((status = 200, description = "The video", body = VideoDetail), NotFound, Invalid, Unavailable)
)]
pub async fn get_video(State(st): St, Path(id): Path<String>) -> Result<Json<VideoDetail>, Problem> {
    let row = found(&st, &id).await?;
    if st.catalog.flags.hidden(ContentType::Video, row.video_id).await? {
        return Err(Problem::not_found("no such video"));
    }
    Ok(Json(detail(&st, row).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Edit {
    /// Trimmed, 1 to 100 characters. Absent: unchanged.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S", nullable = false)]
    title: Option<String>,
    /// Trimmed, 1 to 2000 characters. Absent: unchanged.
    #[schema(min_length = 1, max_length = 2000, pattern = r"\S", nullable = false)]
    description: Option<String>,
    /// At most 20 tags. Absent: unchanged.
    #[schema(max_items = 20, inline, nullable = false)]
    tags: Option<Vec<TagSchema>>,
}

/// Edit a video (its uploader only).
#[utoipa::path(
    put,
    path = "/api/v1/videos/id/{video_id}",
    tag = "videos",
    security(("bearer" = [])),
    params(("video_id" = Uuid, Path, description = "The video")),
    request_body = Edit,
    responses(
        (status = 200, description = "The video", body = VideoDetail),
        BadRequest, Unauthorized, Forbidden, NotFound, TooLarge, Invalid, Unavailable
    )
)]
pub async fn edit(
    State(st): St,
    SignedIn(claims): SignedIn,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<VideoDetail>, Problem> {
    let row = found(&st, &id).await?;
    if row.user_id != Some(claims.sub) {
        return Err(Problem::forbidden("only the uploader may edit"));
    }
    let e: Edit = json_body(bytes)?;
    let title = text("title", e.title, MAX_TITLE_CHARS)?.or(row.title.clone()).unwrap_or_default();
    let description =
        text("description", e.description, MAX_DESCRIPTION_CHARS)?.or(row.description.clone()).unwrap_or_default();
    let tags = tags(e.tags.map(|t| t.into_iter().map(|t| t.0).collect()))?.or(row.tags.clone()).unwrap_or_default();
    let no_tags = BTreeSet::new();
    let before = Entry {
        id: row.video_id,
        user: row.user_id,
        submitted_ms: row.submitted_at.map_or(0, |t| t.0),
        title: row.title.as_deref().unwrap_or_default(),
        description: row.description.as_deref().unwrap_or_default(),
        tags: row.tags.as_ref().unwrap_or(&no_tags),
    };
    let after = Entry { title: &title, description: &description, tags: &tags, ..before };
    let c = &st.catalog;
    c.indexes.edit_video(&before, &after).await?;
    let now = CqlTimestamp(Utc::now().timestamp_millis());
    c.videos.update(row.video_id, &title, &description, &tags, now).await?;
    let row = c.videos.get(row.video_id).await?.ok_or_else(|| Problem::not_found("no such video"))?;
    Ok(Json(detail(&st, row).await?))
}

#[derive(Serialize, ToSchema)]
#[schema(as = VideoStatus)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    video_id: Uuid,
    #[schema(value_type = VideoStatus)]
    status: String,
}

/// A video's processing status.
#[utoipa::path(
    get,
    path = "/api/v1/videos/id/{video_id}/status",
    tag = "videos",
    security(("bearer" = [])),
    params(("video_id" = Uuid, Path, description = "The video")),
    responses((status = 200, description = "Its status", body = Status), Unauthorized, NotFound, Invalid, Unavailable)
)]
pub async fn status(State(st): St, SignedIn(_): SignedIn, Path(id): Path<String>) -> Result<Json<Status>, Problem> {
    let row = found(&st, &id).await?;
    Ok(Json(Status { video_id: row.video_id, status: row.status.unwrap_or_else(|| "PENDING".into()) }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PreviewIn {
    #[schema(
        pattern = r"^ *(https?://)?((www|m|music)\.)?(youtube\.com/watch\?([^#]*&)?v=[A-Za-z0-9_-]{11}([&#][^ ]*)?|(youtube\.com/(embed|shorts|live|v)/|youtu\.be/|youtube-nocookie\.com/embed/)[A-Za-z0-9_-]{11}([?#/][^ ]*)?) *$"
    )]
    youtube_url: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    youtube_video_id: String,
    title: String,
    thumbnail_url: String,
}

/// Title and thumbnail guessed from a YouTube URL alone (no network).
#[utoipa::path(
    post,
    path = "/api/v1/videos/preview",
    tag = "videos",
    request_body = PreviewIn,
    responses((status = 200, description = "The guess", body = Preview), BadRequest, TooLarge, Invalid)
)]
pub async fn preview(bytes: Result<Bytes, BytesRejection>) -> Result<Json<Preview>, Problem> {
    let p: PreviewIn = json_body(bytes)?;
    let id = youtube_id(&p.youtube_url)?;
    Ok(Json(Preview {
        title: format!("YouTube video {id}"),
        thumbnail_url: youtube::thumbnail_url(&id),
        youtube_video_id: id,
    }))
}
