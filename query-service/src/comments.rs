//! KillrVideo comments and the user activity feed.
//!
//! A comment is written once, in one logged batch, to `comments_by_id`, the two
//! lists (`comments_by_video`, `comments_by_user`) and the author's
//! `user_activity`: a logged batch because those are four partitions, and a
//! comment that shows in one list but not the other would be a lasting lie. Ids
//! are UUIDv7, so the DESC clustering order of the lists is newest first and the
//! id carries `createdAt`. Names are not copied into the comment rows: they are
//! read from `users` for the authors on the page, so a renamed user's comments
//! show the new name.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, Utc};
use platform::cassandra::prepare;
use platform::http::{Problem, parse_uuid, read_body};
use schemas::catalog::CommentAdded;
use schemas::catalog::catalog_event::Change;
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalog_events::id_bytes;
use crate::listing::Listing;
use crate::moderation::{parse_body, visible_video};
use crate::paging::{Page, PageRequest};
use crate::routes::AppState;
use crate::users::{SignedIn, respond};

pub const MAX_COMMENT_CHARS: usize = 1000;

/// A comment as stored.
#[derive(Clone, Debug)]
pub struct Comment {
    pub id: Uuid,
    pub video: Uuid,
    pub user: Uuid,
    pub text: String,
}

pub struct Comments {
    session: Arc<Session>,
    /// Every row of a comment: by id, by video, by user, and its activity row.
    insert: Batch,
    /// The list and activity rows of a comment (hiding keeps the row by id).
    unlist: Batch,
    read: PreparedStatement,
    by_video: Listing,
    by_user: Listing,
    activity: Listing,
}

impl Comments {
    pub async fn new(session: Arc<Session>, keyspace: &str) -> anyhow::Result<Self> {
        let ks = keyspace;
        let s = &session;
        let mut insert = Batch::new(BatchType::Logged);
        for cql in [
            format!("INSERT INTO {ks}.comments_by_id (commentid, videoid, userid, comment) VALUES (?, ?, ?, ?)"),
            format!("INSERT INTO {ks}.comments_by_video (videoid, commentid, userid, comment) VALUES (?, ?, ?, ?)"),
            format!("INSERT INTO {ks}.comments_by_user (userid, commentid, videoid, comment) VALUES (?, ?, ?, ?)"),
            format!(
                "INSERT INTO {ks}.user_activity (userid, activity_ts, activity_type, activity_id) VALUES (?, ?, ?, ?)"
            ),
        ] {
            insert.append_statement(prepare(s, cql, true).await?);
        }
        // Every value is fixed by the comment: writing it twice writes the same rows.
        insert.set_is_idempotent(true);
        let mut unlist = Batch::new(BatchType::Logged);
        for cql in [
            format!("DELETE FROM {ks}.comments_by_video WHERE videoid = ? AND commentid = ?"),
            format!("DELETE FROM {ks}.comments_by_user WHERE userid = ? AND commentid = ?"),
            format!("DELETE FROM {ks}.user_activity WHERE userid = ? AND activity_ts = ?"),
        ] {
            unlist.append_statement(prepare(s, cql, true).await?);
        }
        unlist.set_is_idempotent(true);
        Ok(Self {
            insert,
            unlist,
            read: prepare(
                s,
                format!("SELECT videoid, userid, comment FROM {ks}.comments_by_id WHERE commentid = ?"),
                true,
            )
            .await?,
            by_video: Listing::new(s, ks, "comments_by_video", "videoid", "commentid", "commentid, userid, comment")
                .await?,
            by_user: Listing::new(s, ks, "comments_by_user", "userid", "commentid", "commentid, videoid, comment")
                .await?,
            activity: Listing::new(
                s,
                ks,
                "user_activity",
                "userid",
                "activity_ts",
                "activity_ts, activity_type, activity_id",
            )
            .await?,
            session,
        })
    }

    /// Writes the comment into every table (also what restoring it does).
    pub(crate) async fn list(&self, c: &Comment) -> Result<(), Problem> {
        let values = (
            (c.id, c.video, c.user, &c.text),
            (c.video, c.id, c.user, &c.text),
            (c.user, c.id, c.video, &c.text),
            (c.user, c.id, ACTIVITY_COMMENT, c.id),
        );
        self.session.batch(&self.insert, values).await.map_err(store_error)?;
        Ok(())
    }

    /// Takes the comment out of both lists and its author's activity; the row by
    /// id stays, for moderators and a later restore.
    pub(crate) async fn unlist(&self, c: &Comment) -> Result<(), Problem> {
        let values = ((c.video, c.id), (c.user, c.id), (c.user, c.id));
        self.session.batch(&self.unlist, values).await.map_err(store_error)?;
        Ok(())
    }

    /// A comment by id, hidden or not.
    pub(crate) async fn get(&self, id: Uuid) -> Result<Option<Comment>, Problem> {
        let res = self.session.execute_unpaged(&self.read, (id,)).await.map_err(store_error)?;
        let rows = res.into_rows_result().map_err(store_error)?;
        let row = rows.maybe_first_row::<(Option<Uuid>, Option<Uuid>, Option<String>)>().map_err(store_error)?;
        Ok(row.map(|(video, user, text)| Comment {
            id,
            video: video.unwrap_or_default(),
            user: user.unwrap_or_default(),
            text: text.unwrap_or_default(),
        }))
    }
}

const ACTIVITY_COMMENT: &str = "comment";

fn store_error(e: impl std::fmt::Display) -> Problem {
    tracing::error!(error = %e, "comment store request failed");
    Problem::unavailable("the comment store is not answering; retry later", 1)
}

/// The time inside a UUIDv7 (or v1) id; `None` for other versions.
pub(crate) fn id_time(id: Uuid) -> Option<DateTime<Utc>> {
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    DateTime::from_timestamp(secs as i64, nanos)
}

/// Publishes a `CommentAdded` catalog event once the comment is stored.
fn on_comment_added(st: &AppState, c: &Comment) {
    let added = CommentAdded {
        comment_id: id_bytes(c.id),
        video_id: id_bytes(c.video),
        user_id: id_bytes(c.user),
        text: c.text.clone(),
    };
    st.catalog_events.publish(c.id, Change::CommentAdded(added));
}

pub fn api(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/v1/videos/{video_id}/comments", get(video_comments).post(post_comment))
        .route("/api/v1/users/{user_id}/comments", get(user_comments))
        .route("/api/v1/users/{user_id}/activity", get(activity))
        .with_state(state)
}

type St = State<Arc<AppState>>;

/// KillrVideo's CommentResponse (its lower-case id members included), plus the
/// creation time read from the comment id.
#[derive(Debug, Serialize)]
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
        Ok::<_, Problem>(st.users.user(id).await?.map(|u| (id, (u.first_name, u.last_name))))
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewComment {
    text: String,
}

/// POST /api/v1/videos/{id}/comments (signed in) {text} → 201 CommentResponse.
async fn post_comment(
    State(st): St,
    SignedIn(claims): SignedIn,
    Path(video): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let video = parse_uuid("videoId", &video)?;
        let n: NewComment = parse_body(&read_body(bytes)?)?;
        let text = n.text.trim();
        if text.is_empty() || text.chars().count() > MAX_COMMENT_CHARS {
            return Err(Problem::invalid("text", format!("must be 1 to {MAX_COMMENT_CHARS} characters")));
        }
        let video = visible_video(&st, video).await?;
        let author = st.users.user(claims.sub).await?.ok_or_else(|| Problem::unauthorized("the account is gone"))?;
        let c = Comment { id: Uuid::now_v7(), video, user: claims.sub, text: text.to_owned() };
        st.comments.list(&c).await?;
        on_comment_added(&st, &c);
        Ok(CommentResponse::new(c, (author.first_name, author.last_name)))
    };
    respond(StatusCode::CREATED, result.await)
}

/// GET /api/v1/videos/{id}/comments → paged CommentResponse, newest first.
async fn video_comments(
    State(st): St,
    Path(video): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        let video = parse_uuid("videoId", &video)?;
        let req = PageRequest::from_query(&q)?;
        let video = visible_video(&st, video).await?;
        let cs = &st.comments;
        let (rows, total) = cs
            .by_video
            .page::<_, (Uuid, Option<Uuid>, Option<String>)>(&cs.session, video, req)
            .await
            .map_err(store_error)?;
        let page = Page::new(
            req,
            rows.into_iter()
                .map(|(id, user, text)| Comment {
                    id,
                    video,
                    user: user.unwrap_or_default(),
                    text: text.unwrap_or_default(),
                })
                .collect(),
            total,
        );
        let names = names(&st, page.data.iter().map(|c| c.user)).await?;
        Ok(with_names(page, &names))
    };
    respond(StatusCode::OK, result.await)
}

/// GET /api/v1/users/{userId}/comments → paged CommentResponse, newest first.
async fn user_comments(State(st): St, Path(user): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    let result = async {
        let user = parse_uuid("userId", &user)?;
        let req = PageRequest::from_query(&q)?;
        let author = st.users.user(user).await?.ok_or_else(|| Problem::not_found("no such user"))?;
        let cs = &st.comments;
        let (rows, total) = cs
            .by_user
            .page::<_, (Uuid, Option<Uuid>, Option<String>)>(&cs.session, user, req)
            .await
            .map_err(store_error)?;
        let page = Page::new(
            req,
            rows.into_iter()
                .map(|(id, video, text)| Comment {
                    id,
                    video: video.unwrap_or_default(),
                    user,
                    text: text.unwrap_or_default(),
                })
                .collect(),
            total,
        );
        let names = HashMap::from([(user, (author.first_name, author.last_name))]);
        Ok(with_names(page, &names))
    };
    respond(StatusCode::OK, result.await)
}

/// One entry of a user's activity feed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Activity {
    user_id: Uuid,
    /// `view`, `comment` or `rate`.
    activity_type: String,
    /// The video for `view` and `rate`, the comment for `comment`.
    activity_id: Option<Uuid>,
    activity_timestamp: Option<DateTime<Utc>>,
}

/// GET /api/v1/users/{userId}/activity → paged activity, newest first; 404 for an
/// unknown user.
async fn activity(State(st): St, Path(user): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    let result = async {
        let user = parse_uuid("userId", &user)?;
        let req = PageRequest::from_query(&q)?;
        st.users.user(user).await?.ok_or_else(|| Problem::not_found("no such user"))?;
        let cs = &st.comments;
        let (rows, total) = cs
            .activity
            .page::<_, (Uuid, Option<String>, Option<Uuid>)>(&cs.session, user, req)
            .await
            .map_err(store_error)?;
        let data = rows
            .into_iter()
            .map(|(ts, kind, id)| Activity {
                user_id: user,
                activity_type: kind.unwrap_or_default(),
                activity_id: id,
                activity_timestamp: id_time(ts),
            })
            .collect();
        Ok(Page::new(req, data, total))
    };
    respond(StatusCode::OK, result.await)
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
