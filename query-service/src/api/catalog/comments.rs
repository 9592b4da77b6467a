//! KillrVideo comments: post one, and the lists by video and by user (newest
//! first, exact totals). Authors' names are read for the page, so a renamed user's
//! comments show the new name.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use platform::http::{Problem, parse_uuid};
use platform::openapi::{BadRequest, Invalid, NotFound, TooLarge, Unauthorized, Unavailable};
use schemas::catalog::CommentAdded;
use schemas::catalog::catalog_event::Change;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::shared::visible_video;
use crate::api::common::params::PageParams;
use crate::api::common::{Params, SignedIn, St, json_body};
use crate::catalog_events::id_bytes;
use crate::domain::paging::{Page, PageRequest};
use crate::domain::validate::{self, MAX_COMMENT_CHARS};
use crate::state::AppState;
use crate::store::comments::Comment;

/// The time inside a UUIDv7 (or v1) id; `None` for other versions.
pub fn id_time(id: Uuid) -> Option<DateTime<Utc>> {
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    DateTime::from_timestamp(secs as i64, nanos)
}

/// KillrVideo's CommentResponse (its lower-case id members included), plus the
/// creation time read from the comment id.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommentResponse {
    commentid: Uuid,
    videoid: Uuid,
    userid: Uuid,
    comment: String,
    #[serde(rename = "firstName")]
    first_name: String,
    #[serde(rename = "lastName")]
    last_name: String,
    #[serde(rename = "createdAt")]
    #[schema(required = true)]
    created_at: Option<DateTime<Utc>>,
}

impl CommentResponse {
    fn new(c: Comment, (first_name, last_name): (String, String)) -> Self {
        Self {
            created_at: id_time(c.id),
            commentid: c.id,
            videoid: c.video,
            userid: c.user,
            comment: c.text,
            first_name,
            last_name,
        }
    }
}

/// First and last names of `users`, read concurrently; unknown users have none.
async fn names(
    st: &AppState,
    users: impl IntoIterator<Item = Uuid>,
) -> Result<HashMap<Uuid, (String, String)>, Problem> {
    let mut ids: Vec<Uuid> = users.into_iter().collect();
    ids.sort();
    ids.dedup();
    let found = futures::future::try_join_all(ids.into_iter().map(|id| async move {
        let user = st.catalog.users.get(id).await?;
        Ok::<_, Problem>(user.map(|u| (id, (u.first_name.unwrap_or_default(), u.last_name.unwrap_or_default()))))
    }))
    .await?;
    Ok(found.into_iter().flatten().collect())
}

fn with_names(comments: Page<Comment>, names: &HashMap<Uuid, (String, String)>) -> Page<CommentResponse> {
    comments.map(|c| {
        let name = names.get(&c.user).cloned().unwrap_or_default();
        CommentResponse::new(c, name)
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    /// Trimmed, 1 to 1000 characters.
    #[schema(min_length = 1, max_length = 1000, pattern = r"\S")]
    text: String,
}

/// Comment on a video.
///
/// The comment is written to the comment lists and the author's activity in one
/// logged batch, and a `CommentAdded` catalog event is published.
#[utoipa::path(
    post,
    path = "/api/v1/videos/{video_id}/comments",
    tag = "comments",
    security(("bearer" = [])),
    params(("video_id" = Uuid, Path, description = "The video")),
    request_body = NewComment,
    responses(
        (status = 201, description = "The comment", body = CommentResponse),
        BadRequest, Unauthorized, NotFound, TooLarge, Invalid, Unavailable
    )
)]
pub async fn post_comment(
    State(st): St,
    SignedIn(claims): SignedIn,
    Path(video): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<CommentResponse>), Problem> {
    let video = parse_uuid("videoId", &video)?;
    let n: NewComment = json_body(bytes)?;
    let text = validate::text("text", Some(n.text), MAX_COMMENT_CHARS)?.unwrap_or_default();
    let video = visible_video(&st, video).await?;
    let c = &st.catalog;
    let author = c.users.get(claims.sub).await?.ok_or_else(|| Problem::unauthorized("the account is gone"))?;
    let comment = Comment { id: Uuid::now_v7(), video, user: claims.sub, text };
    c.comments.list(&comment).await?;
    let added = CommentAdded {
        comment_id: id_bytes(comment.id),
        video_id: id_bytes(comment.video),
        user_id: id_bytes(comment.user),
        text: comment.text.clone(),
    };
    c.events.publish(comment.id, Change::CommentAdded(added));
    let name = (author.first_name.unwrap_or_default(), author.last_name.unwrap_or_default());
    Ok((StatusCode::CREATED, Json(CommentResponse::new(comment, name))))
}

/// A video's comments, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/videos/{video_id}/comments",
    tag = "comments",
    params(("video_id" = Uuid, Path, description = "The video"), PageParams),
    responses(
        (status = 200, description = "A page of comments", body = Page<CommentResponse>),
        NotFound, Invalid, Unavailable
    )
)]
pub async fn video_comments(
    State(st): St,
    Path(video): Path<String>,
    q: Params,
) -> Result<Json<Page<CommentResponse>>, Problem> {
    let video = parse_uuid("videoId", &video)?;
    let req = PageRequest::from_query(&q)?;
    let video = visible_video(&st, video).await?;
    let (rows, total) = st.catalog.comments.of_video(video, req).await?;
    let page = Page::new(req, rows, total);
    let names = names(&st, page.data.iter().map(|c| c.user)).await?;
    Ok(Json(with_names(page, &names)))
}

/// A user's comments, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/users/{user_id}/comments",
    tag = "comments",
    params(("user_id" = Uuid, Path, description = "The user"), PageParams),
    responses(
        (status = 200, description = "A page of comments", body = Page<CommentResponse>),
        NotFound, Invalid, Unavailable
    )
)]
pub async fn user_comments(
    State(st): St,
    Path(user): Path<String>,
    q: Params,
) -> Result<Json<Page<CommentResponse>>, Problem> {
    let user = parse_uuid("userId", &user)?;
    let req = PageRequest::from_query(&q)?;
    let author = st.catalog.users.get(user).await?.ok_or_else(|| Problem::not_found("no such user"))?;
    let (rows, total) = st.catalog.comments.of_user(user, req).await?;
    let names = HashMap::from([(user, (author.first_name.unwrap_or_default(), author.last_name.unwrap_or_default()))]);
    Ok(Json(with_names(Page::new(req, rows, total), &names)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_at_comes_from_the_v7_id() {
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, 1_700_000_000, 123_000_000);
        let id = Uuid::new_v7(ts);
        assert_eq!(id_time(id).unwrap().to_rfc3339(), "2023-11-14T22:13:20.123+00:00");
        assert_eq!(id_time(Uuid::new_v4()), None);
    }
}
