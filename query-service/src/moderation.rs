//! Flags and moderation.
//!
//! Anyone signed in flags a video or a comment; moderators (the `moderator` role
//! in the token) list and act on flags. Approving a flag soft-deletes the content:
//! a row in `moderation_state` marks it hidden (videos then answer 404), and a
//! hidden comment is also taken out of the comment lists and its author's activity
//! (its row by id stays). The restore routes undo that. Rejecting a flag, or moving
//! it back to open or under review, changes nothing on the content: unhiding is
//! always an explicit restore.
//!
//! A flag's status moves with a lightweight transaction on its `version`
//! (`IF version = <read>`), so two moderators acting at once cannot both win: the
//! loser gets 409 and retries on fresh data. The listing rows are then placed
//! (inserted under the new status, deleted from every other) with the write
//! timestamp `created_at_micros + version`, so placements that reach Cassandra out
//! of order still leave the flag listed under its latest status only: the newer
//! version's timestamp wins. Every step after the transaction is idempotent, so retrying an
//! action that failed half-way finishes it, and a reader that finds a listing row
//! whose flag has another status repairs it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use platform::auth::Claims;
use platform::cassandra::{applied, prepare};
use platform::http::{Problem, parse_json, parse_uuid, read_body};
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::listing::Listing;
use crate::paging::{Page, PageRequest};
use crate::routes::AppState;
use crate::users::{MODERATOR, SignedIn, User, respond, time};

/// What can be flagged and hidden.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentType {
    Video,
    Comment,
}

impl ContentType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Video => "video",
            Self::Comment => "comment",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Video, Self::Comment].into_iter().find(|v| v.as_str() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ReasonCode {
    Spam,
    Inappropriate,
    Harassment,
    Copyright,
    Other,
}

impl ReasonCode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Spam => "spam",
            Self::Inappropriate => "inappropriate",
            Self::Harassment => "harassment",
            Self::Copyright => "copyright",
            Self::Other => "other",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FlagStatus {
    Open,
    UnderReview,
    Approved,
    Rejected,
}

impl FlagStatus {
    const ALL: [Self; 4] = [Self::Open, Self::UnderReview, Self::Approved, Self::Rejected];

    fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::UnderReview => "under_review",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    fn resolves(self) -> bool {
        matches!(self, Self::Approved | Self::Rejected)
    }
}

/// The listing partition that holds every flag, whatever its status.
const ALL_FLAGS: &str = "all";
const MAX_REASON_CHARS: usize = 500;
const MAX_NOTES_CHARS: usize = 1000;
/// User search: answers at most this many users, scanning at most that many rows.
const USER_SEARCH_LIMIT: usize = 50;
const USER_SEARCH_SCAN: usize = 10_000;

/// KillrVideo's Flag.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Flag {
    flag_id: Uuid,
    content_type: String,
    content_id: Option<Uuid>,
    reason_code: String,
    reason_text: Option<String>,
    user_id: Option<Uuid>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    status: String,
    moderator_id: Option<Uuid>,
    moderator_notes: Option<String>,
    resolved_at: Option<DateTime<Utc>>,
    /// Bumped by every action; fences the listing writes.
    #[serde(skip)]
    version: i32,
}

impl Flag {
    /// Write timestamp (µs) of the listing rows written at `version`.
    fn listing_ts(&self, version: i32) -> i64 {
        self.created_at.map_or(0, |t| t.timestamp_micros()) + i64::from(version)
    }
}

type FlagRow = (
    Uuid,
    Option<String>,
    Option<Uuid>,
    Option<String>,
    Option<String>,
    Option<Uuid>,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
    Option<String>,
    Option<Uuid>,
    Option<String>,
    Option<CqlTimestamp>,
    Option<i32>,
);

const FLAG_COLUMNS: &str = "flagid, content_type, content_id, reason_code, reason_text, userid, created_at, \
                            updated_at, status, moderator_id, moderator_notes, resolved_at, version";

impl From<FlagRow> for Flag {
    fn from(r: FlagRow) -> Self {
        let (
            flag_id,
            content_type,
            content_id,
            reason_code,
            reason_text,
            user_id,
            created,
            updated,
            status,
            m,
            n,
            res,
            v,
        ) = r;
        Self {
            flag_id,
            content_type: content_type.unwrap_or_default(),
            content_id,
            reason_code: reason_code.unwrap_or_default(),
            reason_text,
            user_id,
            created_at: time(created),
            updated_at: time(updated),
            status: status.unwrap_or_default(),
            moderator_id: m,
            moderator_notes: n,
            resolved_at: time(res),
            version: v.unwrap_or(0),
        }
    }
}

pub struct Moderation {
    session: Arc<Session>,
    read_state: PreparedStatement,
    write_state: PreparedStatement,
    /// The flag row and its listing rows in 'all' and 'open'.
    create: Batch,
    read_flag: PreparedStatement,
    /// Lightweight transaction: `IF version = ?`.
    act: PreparedStatement,
    /// Lists a flag under its status only: deletes it from the other statuses.
    relist: Batch,
    listing: Listing,
}

impl Moderation {
    pub async fn new(session: Arc<Session>, keyspace: &str) -> anyhow::Result<Self> {
        let ks = keyspace;
        let s = &session;
        let mut create = Batch::new(BatchType::Logged);
        create.append_statement(
            prepare(
                s,
                format!("INSERT INTO {ks}.flags ({FLAG_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                true,
            )
            .await?,
        );
        let index = prepare(
            s,
            format!("INSERT INTO {ks}.flags_by_status (status, flagid) VALUES (?, ?) USING TIMESTAMP ?"),
            true,
        )
        .await?;
        create.append_statement(index.clone());
        create.append_statement(index.clone());
        create.set_is_idempotent(true);
        let unindex = prepare(
            s,
            format!("DELETE FROM {ks}.flags_by_status USING TIMESTAMP ? WHERE status = ? AND flagid = ?"),
            true,
        )
        .await?;
        let mut relist = Batch::new(BatchType::Logged);
        for _ in 1..FlagStatus::ALL.len() {
            relist.append_statement(unindex.clone());
        }
        relist.append_statement(index);
        relist.set_is_idempotent(true);
        Ok(Self {
            read_state: prepare(
                s,
                format!("SELECT hidden FROM {ks}.moderation_state WHERE content_type = ? AND content_id = ?"),
                true,
            )
            .await?,
            write_state: prepare(
                s,
                format!(
                    "INSERT INTO {ks}.moderation_state (content_type, content_id, hidden, updated_at, moderator_id) \
                     VALUES (?, ?, ?, ?, ?)"
                ),
                true,
            )
            .await?,
            create,
            read_flag: prepare(s, format!("SELECT {FLAG_COLUMNS} FROM {ks}.flags WHERE flagid = ?"), true).await?,
            act: prepare(
                s,
                format!(
                    "UPDATE {ks}.flags SET status = ?, updated_at = ?, moderator_id = ?, moderator_notes = ?, \
                     resolved_at = ?, version = ? WHERE flagid = ? IF version = ?"
                ),
                false,
            )
            .await?,
            relist,
            listing: Listing::new(s, ks, "flags_by_status", "status", "flagid", "flagid").await?,
            session,
        })
    }

    async fn flag(&self, id: Uuid) -> Result<Option<Flag>, Problem> {
        let res = self.session.execute_unpaged(&self.read_flag, (id,)).await.map_err(store_error)?;
        let rows = res.into_rows_result().map_err(store_error)?;
        Ok(rows.maybe_first_row::<FlagRow>().map_err(store_error)?.map(Flag::from))
    }

    /// Lists `flag` under its status and under no other, fenced by its version.
    /// Deleting from every other status (not just the one it left) makes a retry
    /// after a half-done action, and a repair, put things right whatever was missed.
    async fn place_listing(&self, flag: &Flag) -> Result<(), Problem> {
        let (id, ts) = (flag.flag_id, flag.listing_ts(flag.version));
        let mut others = FlagStatus::ALL.into_iter().map(FlagStatus::as_str).filter(|s| *s != flag.status);
        let (Some(a), Some(b), Some(c), None) = (others.next(), others.next(), others.next(), others.next()) else {
            tracing::error!(flag = %id, status = %flag.status, "a flag with an unknown status");
            return Err(Problem::internal());
        };
        let values = ((ts, a, id), (ts, b, id), (ts, c, id), (&flag.status, id, ts));
        self.session.batch(&self.relist, values).await.map_err(store_error)?;
        Ok(())
    }
}

fn store_error(e: impl std::fmt::Display) -> Problem {
    tracing::error!(error = %e, "moderation store request failed");
    Problem::unavailable("the moderation store is not answering; retry later", 1)
}

/// Whether a moderator hid this content. For the readers of videos and comments.
pub(crate) async fn hidden(st: &AppState, content: ContentType, id: Uuid) -> Result<bool, Problem> {
    let m = &st.moderation;
    let res = m.session.execute_unpaged(&m.read_state, (content.as_str(), id)).await.map_err(store_error)?;
    let rows = res.into_rows_result().map_err(store_error)?;
    let row = rows.maybe_first_row::<(Option<bool>,)>().map_err(store_error)?;
    Ok(row.and_then(|(h,)| h).unwrap_or(false))
}

/// The video's id if it exists and is not hidden; 404 otherwise.
pub(crate) async fn visible_video(st: &AppState, id: Uuid) -> Result<Uuid, Problem> {
    let (row, hidden) = futures::try_join!(st.videos.row(id), hidden(st, ContentType::Video, id))?;
    match row {
        Some(_) if !hidden => Ok(id),
        _ => Err(Problem::not_found("no such video")),
    }
}

/// Hides or shows content. For a comment, the moderation state and the list rows
/// change in the order that keeps a half-done change on the hidden side.
async fn set_hidden(st: &AppState, content: ContentType, id: Uuid, hide: bool, by: Uuid) -> Result<(), Problem> {
    let m = &st.moderation;
    let write_state = || async {
        let now = CqlTimestamp(Utc::now().timestamp_millis());
        m.session
            .execute_unpaged(&m.write_state, (content.as_str(), id, hide, now, by))
            .await
            .map(|_| ())
            .map_err(store_error)
    };
    let comment = match content {
        ContentType::Comment => st.comments.get(id).await?,
        ContentType::Video => None,
    };
    match (comment, hide) {
        (None, _) => write_state().await,
        (Some(c), true) => {
            write_state().await?;
            st.comments.unlist(&c).await
        }
        (Some(c), false) => {
            st.comments.list(&c).await?;
            write_state().await
        }
    }
}

/// A signed-in moderator: 401 without a valid token, 403 without the role. The
/// role is read from the token, so a role change reaches a user at their next
/// login (a token issued before keeps its roles until it expires).
pub struct Moderator(pub Claims);

impl FromRequestParts<Arc<AppState>> for Moderator {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, st: &Arc<AppState>) -> Result<Self, Problem> {
        let claims = st.users.tokens().required(&parts.headers)?;
        if !claims.has_role(MODERATOR) {
            return Err(Problem::forbidden("moderators only"));
        }
        Ok(Self(claims))
    }
}

pub fn api(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/v1/flags", post(create_flag))
        .route("/api/v1/moderation/flags", get(list_flags))
        .route("/api/v1/moderation/flags/{flag_id}", get(get_flag))
        .route("/api/v1/moderation/flags/{flag_id}/action", post(act))
        .route("/api/v1/moderation/users", get(search_users))
        .route("/api/v1/moderation/users/{user_id}/assign-moderator", post(assign))
        .route("/api/v1/moderation/users/{user_id}/revoke-moderator", post(revoke))
        .route("/api/v1/moderation/videos/{video_id}/restore", post(restore_video))
        .route("/api/v1/moderation/comments/{comment_id}/restore", post(restore_comment))
        .with_state(state)
}

type St = State<Arc<AppState>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewFlag {
    content_type: ContentType,
    content_id: String,
    reason_code: ReasonCode,
    reason_text: Option<String>,
}

/// [`parse_json`], naming a missing member as the field at fault (serde reports
/// it against the whole body).
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    parse_json(bytes).map_err(|p| {
        let missing = (p.field.as_deref() == Some("body"))
            .then(|| p.reason().strip_prefix("missing field `")?.split_once('`').map(|(f, _)| f.to_owned()))
            .flatten();
        match missing {
            Some(field) => Problem::invalid(field, "is required"),
            None => p,
        }
    })
}

/// Optional free text: trimmed, empty is none, at most `max` characters.
fn optional_text(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, Problem> {
    match value.map(|v| v.trim().to_owned()) {
        Some(v) if v.chars().count() > max => Err(Problem::invalid(field, format!("at most {max} characters"))),
        Some(v) if v.is_empty() => Ok(None),
        v => Ok(v),
    }
}

/// POST /api/v1/flags (signed in) → 201 Flag, status `open`; 404 when the content
/// does not exist (or is already hidden).
async fn create_flag(State(st): St, SignedIn(claims): SignedIn, bytes: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let f: NewFlag = parse_body(&read_body(bytes)?)?;
        let content_id = parse_uuid("contentId", &f.content_id)?;
        let reason_text = optional_text("reasonText", f.reason_text, MAX_REASON_CHARS)?;
        match f.content_type {
            ContentType::Video => {
                visible_video(&st, content_id).await?;
            }
            ContentType::Comment => {
                let (found, hidden) =
                    futures::try_join!(st.comments.get(content_id), hidden(&st, ContentType::Comment, content_id))?;
                if found.is_none() || hidden {
                    return Err(Problem::not_found("no such comment"));
                }
            }
        }
        let now = CqlTimestamp(Utc::now().timestamp_millis());
        let flag = Flag {
            flag_id: Uuid::now_v7(),
            content_type: f.content_type.as_str().to_owned(),
            content_id: Some(content_id),
            reason_code: f.reason_code.as_str().to_owned(),
            reason_text,
            user_id: Some(claims.sub),
            created_at: time(Some(now)),
            updated_at: time(Some(now)),
            status: FlagStatus::Open.as_str().to_owned(),
            moderator_id: None,
            moderator_notes: None,
            resolved_at: None,
            version: 0,
        };
        let row = (
            flag.flag_id,
            &flag.content_type,
            content_id,
            &flag.reason_code,
            &flag.reason_text,
            claims.sub,
            now,
            now,
            &flag.status,
            None::<Uuid>,
            None::<String>,
            None::<CqlTimestamp>,
            flag.version,
        );
        let (id, ts) = (flag.flag_id, flag.listing_ts(flag.version));
        let m = &st.moderation;
        m.session.batch(&m.create, (row, (ALL_FLAGS, id, ts), (&flag.status, id, ts))).await.map_err(store_error)?;
        Ok(flag)
    };
    respond(StatusCode::CREATED, result.await)
}

/// GET /api/v1/moderation/flags?status&page&pageSize (moderator) → paged Flag,
/// newest first; every flag without `status`.
async fn list_flags(State(st): St, Moderator(_): Moderator, Query(q): Query<HashMap<String, String>>) -> Response {
    let result = async {
        let status =
            match q.get("status").map(|s| s.trim()) {
                None | Some("") => None,
                Some(s) => Some(FlagStatus::parse(s).ok_or_else(|| {
                    Problem::invalid("status", "must be one of open, under_review, approved, rejected")
                })?),
            };
        let req = PageRequest::from_query(&q)?;
        let m = &st.moderation;
        let listing = status.map_or(ALL_FLAGS, FlagStatus::as_str);
        let (ids, total) = m.listing.page::<_, (Uuid,)>(&m.session, listing, req).await.map_err(store_error)?;
        let flags = futures::future::try_join_all(ids.into_iter().map(|(id,)| m.flag(id))).await?;
        let mut data = Vec::with_capacity(flags.len());
        for flag in flags.into_iter().flatten() {
            // A status change whose listing move did not land: put the row where the
            // flag's status says, and leave the flag out of this listing.
            if listing != ALL_FLAGS && flag.status != listing {
                tracing::warn!(flag = %flag.flag_id, listing, status = %flag.status, "repairing a stale flag listing");
                m.place_listing(&flag).await?;
                continue;
            }
            data.push(flag);
        }
        Ok(Page::new(req, data, total))
    };
    respond(StatusCode::OK, result.await)
}

async fn flag_by_path(st: &AppState, id: &str) -> Result<Flag, Problem> {
    let id = parse_uuid("flagId", id)?;
    st.moderation.flag(id).await?.ok_or_else(|| Problem::not_found("no such flag"))
}

/// GET /api/v1/moderation/flags/{flagId} (moderator) → Flag.
async fn get_flag(State(st): St, Moderator(_): Moderator, Path(id): Path<String>) -> Response {
    respond(StatusCode::OK, flag_by_path(&st, &id).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Action {
    status: FlagStatus,
    moderator_notes: Option<String>,
}

/// POST /api/v1/moderation/flags/{flagId}/action (moderator) {status,
/// moderatorNotes?} → the Flag, with `moderatorId` set and `resolvedAt` set for
/// approved/rejected (cleared otherwise). Approving hides the content. Notes are
/// kept when the action brings none. A concurrent action on the flag → 409.
async fn act(
    State(st): St,
    Moderator(claims): Moderator,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let flag_id = parse_uuid("flagId", &id)?;
        let a: Action = parse_body(&read_body(bytes)?)?;
        let notes = optional_text("moderatorNotes", a.moderator_notes, MAX_NOTES_CHARS)?;
        let m = &st.moderation;
        let mut flag = m.flag(flag_id).await?.ok_or_else(|| Problem::not_found("no such flag"))?;
        let old_version = flag.version;
        flag.version += 1;
        let now = Utc::now();
        let ts = CqlTimestamp(now.timestamp_millis());
        flag.status = a.status.as_str().to_owned();
        flag.updated_at = time(Some(ts));
        flag.moderator_id = Some(claims.sub);
        flag.moderator_notes = notes.or(flag.moderator_notes);
        flag.resolved_at = if a.status.resolves() { time(Some(ts)) } else { None };
        let values = (
            &flag.status,
            ts,
            claims.sub,
            &flag.moderator_notes,
            flag.resolved_at.map(|_| ts),
            flag.version,
            flag_id,
            old_version,
        );
        let res = m.session.execute_unpaged(&m.act, values).await.map_err(store_error)?;
        if !applied(res).map_err(store_error)? {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "conflict",
                "Conflict",
                "the flag changed while this action was made; reload it and retry",
            ));
        }
        m.place_listing(&flag).await?;
        if a.status == FlagStatus::Approved {
            let content = ContentType::parse(&flag.content_type);
            if let (Some(content), Some(content_id)) = (content, flag.content_id) {
                set_hidden(&st, content, content_id, true, claims.sub).await?;
            }
        }
        Ok(flag)
    };
    respond(StatusCode::OK, result.await)
}

/// GET /api/v1/moderation/users?q (moderator) → [User] whose email or name
/// contains `q` (case-insensitive), at most 50, by email.
async fn search_users(State(st): St, Moderator(_): Moderator, Query(q): Query<HashMap<String, String>>) -> Response {
    let result = async {
        let needle = q.get("q").map(|s| s.trim().to_lowercase()).unwrap_or_default();
        if needle.is_empty() || needle.chars().count() > 100 {
            return Err(Problem::invalid("q", "must be 1 to 100 characters"));
        }
        st.users.search(&needle, USER_SEARCH_LIMIT, USER_SEARCH_SCAN).await
    };
    respond(StatusCode::OK, result.await)
}

async fn set_moderator(st: &AppState, id: &str, on: bool) -> Result<User, Problem> {
    let id = parse_uuid("userId", id)?;
    st.users.user(id).await?.ok_or_else(|| Problem::not_found("no such user"))?;
    st.users.set_role(id, MODERATOR, on).await?;
    st.users.user(id).await?.ok_or_else(|| Problem::not_found("no such user"))
}

/// POST /api/v1/moderation/users/{userId}/assign-moderator (moderator) → User.
async fn assign(State(st): St, Moderator(_): Moderator, Path(id): Path<String>) -> Response {
    respond(StatusCode::OK, set_moderator(&st, &id, true).await)
}

/// POST /api/v1/moderation/users/{userId}/revoke-moderator (moderator) → User.
async fn revoke(State(st): St, Moderator(_): Moderator, Path(id): Path<String>) -> Response {
    respond(StatusCode::OK, set_moderator(&st, &id, false).await)
}

#[derive(Debug, Serialize)]
struct Restored {
    content_id: Uuid,
    content_type: &'static str,
    status_message: String,
}

async fn restore(st: &AppState, content: ContentType, id: Uuid, by: Uuid) -> Result<Restored, Problem> {
    let status_message = if hidden(st, content, id).await? {
        set_hidden(st, content, id, false, by).await?;
        format!("{} restored", content.as_str())
    } else {
        format!("{} was not hidden", content.as_str())
    };
    Ok(Restored { content_id: id, content_type: content.as_str(), status_message })
}

/// POST /api/v1/moderation/videos/{id}/restore (moderator): undoes the soft delete.
async fn restore_video(State(st): St, Moderator(claims): Moderator, Path(id): Path<String>) -> Response {
    let result = async {
        let id = parse_uuid("videoId", &id)?;
        st.videos.row(id).await?.ok_or_else(|| Problem::not_found("no such video"))?;
        restore(&st, ContentType::Video, id, claims.sub).await
    };
    respond(StatusCode::OK, result.await)
}

/// POST /api/v1/moderation/comments/{id}/restore (moderator): puts the comment
/// back into its lists.
async fn restore_comment(State(st): St, Moderator(claims): Moderator, Path(id): Path<String>) -> Response {
    let result = async {
        let id = parse_uuid("commentId", &id)?;
        st.comments.get(id).await?.ok_or_else(|| Problem::not_found("no such comment"))?;
        restore(&st, ContentType::Comment, id, claims.sub).await
    };
    respond(StatusCode::OK, result.await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_from_their_wire_names_only() {
        for s in FlagStatus::ALL {
            assert_eq!(FlagStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(FlagStatus::parse("closed"), None);
        assert_eq!(FlagStatus::parse("Open"), None);
        assert!(FlagStatus::Approved.resolves() && FlagStatus::Rejected.resolves());
        assert!(!FlagStatus::Open.resolves() && !FlagStatus::UnderReview.resolves());
    }
}
