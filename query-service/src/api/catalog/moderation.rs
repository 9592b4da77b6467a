//! Flags and moderation. Anyone signed in flags a video or a comment; moderators
//! (the `moderator` role in their `users` row, checked on every request) list and
//! act on flags, search users, grant and revoke the role, restore hidden content,
//! and read the audit log. Approving a flag soft-deletes the content
//! (`api::catalog::shared::set_hidden`); the rules are `domain::moderation`, the
//! concurrency story `store::flags`.
//!
//! Every action (a flag's status, a role granted or revoked, a restore) is
//! appended to the audit log before it is made (`platform::moderation`): who,
//! what, when, the target and the notes.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use platform::http::{Problem, parse_uuid};
use platform::moderation::{Action as AuditAction, Actor, AuditEntry, RoleChange};
use platform::openapi::{BadRequest, Conflict, Forbidden, Invalid, NotFound, TooLarge, Unauthorized, Unavailable};
use scylla::value::CqlTimestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::shared::{set_hidden, visible_video};
use super::users::User;
use crate::api::common::params::PageParams;
use crate::api::common::{Moderator, Params, SignedIn, St, json_body, page_request};
use crate::domain::moderation::{
    ALL_FLAGS, ContentType, Flag, FlagStatus, MAX_NOTES_CHARS, MAX_REASON_CHARS, ReasonCode, USER_SEARCH_LIMIT,
    USER_SEARCH_SCAN, optional_text,
};
use crate::domain::paging::{Page, PageRequest};
use crate::state::AppState;
use crate::store::users::time;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewFlag {
    content_type: ContentType,
    #[schema(value_type = Uuid)]
    content_id: String,
    reason_code: ReasonCode,
    /// At most 500 characters; blank is none.
    #[schema(max_length = 500)]
    reason_text: Option<String>,
}

/// Flag a video or a comment; 404 when the content does not exist (or is already
/// hidden).
#[utoipa::path(
    post,
    path = "/api/v1/flags",
    tag = "moderation",
    security(("bearer" = [])),
    request_body = NewFlag,
    responses(
        (status = 201, description = "The flag, open", body = Flag),
        BadRequest, Unauthorized, NotFound, TooLarge, Invalid, Unavailable
    )
)]
pub async fn create_flag(
    State(st): St,
    SignedIn(claims): SignedIn,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Flag>), Problem> {
    let f: NewFlag = json_body(bytes)?;
    let content_id = parse_uuid("contentId", &f.content_id)?;
    let reason_text = optional_text("reasonText", f.reason_text, MAX_REASON_CHARS)?;
    let c = &st.catalog;
    match f.content_type {
        ContentType::Video => {
            visible_video(&st, content_id).await?;
        }
        ContentType::Comment => {
            let (found, hidden) =
                futures::try_join!(c.comments.get(content_id), c.flags.hidden(ContentType::Comment, content_id))?;
            if found.is_none() || hidden {
                return Err(Problem::not_found("no such comment"));
            }
        }
    }
    let now = time(Some(CqlTimestamp(Utc::now().timestamp_millis())));
    let flag = Flag {
        flag_id: Uuid::now_v7(),
        content_type: f.content_type.as_str().to_owned(),
        content_id: Some(content_id),
        reason_code: f.reason_code.as_str().to_owned(),
        reason_text,
        user_id: Some(claims.sub),
        created_at: now,
        updated_at: now,
        status: FlagStatus::Open.as_str().to_owned(),
        moderator_id: None,
        moderator_notes: None,
        resolved_at: None,
        version: 0,
    };
    c.flags.create(&flag).await?;
    Ok((StatusCode::CREATED, Json(flag)))
}

/// Flags, newest first; every flag without `status`.
#[utoipa::path(
    get,
    path = "/api/v1/moderation/flags",
    tag = "moderation",
    description = "Needs the `moderator` role (checked in the store on every request).",
    security(("bearer" = [])),
    params(
        ("status" = Option<FlagStatus>, Query, description = "Only flags with this status (default: all)"),
        PageParams,
    ),
    responses(
        (status = 200, description = "A page of flags", body = Page<Flag>),
        Unauthorized, Forbidden, Invalid, Unavailable
    )
)]
pub async fn list_flags(State(st): St, Moderator(_): Moderator, q: Params) -> Result<Json<Page<Flag>>, Problem> {
    let status = match q.get("status").map(|s| s.trim()) {
        None | Some("") => None,
        Some(s) => Some(
            FlagStatus::parse(s)
                .ok_or_else(|| Problem::invalid("status", "must be one of open, under_review, approved, rejected"))?,
        ),
    };
    let req = PageRequest::from_query(&q)?;
    let flags = &st.catalog.flags;
    let listing = status.map_or(ALL_FLAGS, FlagStatus::as_str);
    let (ids, total) = flags.listed(listing, req).await?;
    let found = futures::future::try_join_all(ids.into_iter().map(|id| flags.get(id))).await?;
    let mut data = Vec::with_capacity(found.len());
    for flag in found.into_iter().flatten() {
        // A status change whose listing move did not land: put the row where the
        // flag's status says, and leave the flag out of this listing.
        if listing != ALL_FLAGS && flag.status != listing {
            tracing::warn!(flag = %flag.flag_id, listing, status = %flag.status, "repairing a stale flag listing");
            flags.place_listing(&flag).await?;
            continue;
        }
        data.push(flag);
    }
    Ok(Json(Page::new(req, data, total)))
}

async fn flag_by_path(st: &AppState, id: &str) -> Result<Flag, Problem> {
    let id = parse_uuid("flagId", id)?;
    st.catalog.flags.get(id).await?.ok_or_else(|| Problem::not_found("no such flag"))
}

/// One flag.
#[utoipa::path(
    get,
    path = "/api/v1/moderation/flags/{flag_id}",
    tag = "moderation",
    description = "Needs the `moderator` role (checked in the store on every request).",
    security(("bearer" = [])),
    params(("flag_id" = Uuid, Path, description = "The flag")),
    responses((status = 200, description = "The flag", body = Flag), Unauthorized, Forbidden, NotFound, Invalid, Unavailable)
)]
pub async fn get_flag(State(st): St, Moderator(_): Moderator, Path(id): Path<String>) -> Result<Json<Flag>, Problem> {
    Ok(Json(flag_by_path(&st, &id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Action {
    status: FlagStatus,
    /// At most 1000 characters; absent or blank keeps the notes there are.
    #[schema(max_length = 1000)]
    moderator_notes: Option<String>,
}

/// Act on a flag: `approved` hides the content, the others leave it as it is.
///
/// `moderatorId` is set, `resolvedAt` is set for approved and rejected (cleared
/// otherwise). A concurrent action on the same flag is a 409: reload and retry.
#[utoipa::path(
    post,
    path = "/api/v1/moderation/flags/{flag_id}/action",
    tag = "moderation",
    description = "Needs the `moderator` role (checked in the store on every request).",
    security(("bearer" = [])),
    params(("flag_id" = Uuid, Path, description = "The flag")),
    request_body = Action,
    responses(
        (status = 200, description = "The flag", body = Flag),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, TooLarge, Invalid, Unavailable
    )
)]
pub async fn act(
    State(st): St,
    Moderator(claims): Moderator,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Flag>, Problem> {
    let flag_id = parse_uuid("flagId", &id)?;
    let a: Action = json_body(bytes)?;
    let notes = optional_text("moderatorNotes", a.moderator_notes, MAX_NOTES_CHARS)?;
    let flags = &st.catalog.flags;
    let mut flag = flags.get(flag_id).await?.ok_or_else(|| Problem::not_found("no such flag"))?;
    let entry = AuditEntry {
        status: Some(a.status.as_str().to_owned()),
        notes: notes.clone(),
        ..AuditEntry::now(Actor::Moderator(claims.sub), AuditAction::FlagAction, flag_id)
    };
    st.catalog.audit.append(&entry).await?;
    let old_version = flag.version;
    flag.version += 1;
    let ts = CqlTimestamp(Utc::now().timestamp_millis());
    flag.status = a.status.as_str().to_owned();
    flag.updated_at = time(Some(ts));
    flag.moderator_id = Some(claims.sub);
    flag.moderator_notes = notes.or(flag.moderator_notes);
    flag.resolved_at = if a.status.resolves() { time(Some(ts)) } else { None };
    if !flags.update(&flag, old_version, ts).await? {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            "Conflict",
            "the flag changed while this action was made; reload it and retry",
        ));
    }
    flags.place_listing(&flag).await?;
    if a.status == FlagStatus::Approved {
        let content = ContentType::parse(&flag.content_type);
        if let (Some(content), Some(content_id)) = (content, flag.content_id) {
            set_hidden(&st, content, content_id, true, claims.sub).await?;
        }
    }
    Ok(Json(flag))
}

/// Users whose email or name contains `q` (case-insensitive), at most 50, by
/// email; without `q`, the first 50 users by email (KillrVideo's user management
/// page asks without one).
#[utoipa::path(
    get,
    path = "/api/v1/moderation/users",
    tag = "moderation",
    description = "Needs the `moderator` role (checked in the store on every request).",
    security(("bearer" = [])),
    params(("q" = Option<String>, Query, max_length = 100, description = "Text to look for (trimmed, at most 100 characters)")),
    responses((status = 200, description = "The users", body = Vec<User>), Unauthorized, Forbidden, Invalid, Unavailable)
)]
pub async fn search_users(State(st): St, Moderator(_): Moderator, q: Params) -> Result<Json<Vec<User>>, Problem> {
    let needle = q.get("q").map(|s| s.trim().to_lowercase()).unwrap_or_default();
    if needle.chars().count() > 100 {
        return Err(Problem::invalid("q", "at most 100 characters"));
    }
    let rows = st
        .catalog
        .users
        .scan(USER_SEARCH_SCAN, |u| {
            let email = u.email.as_deref().unwrap_or_default();
            let full = format!(
                "{} {}",
                u.first_name.as_deref().unwrap_or_default(),
                u.last_name.as_deref().unwrap_or_default()
            )
            .to_lowercase();
            email.contains(&needle) || full.contains(&needle)
        })
        .await?;
    let mut found: Vec<User> = rows.into_iter().map(User::from).collect();
    found.sort_by(|a, b| a.email.cmp(&b.email));
    found.truncate(USER_SEARCH_LIMIT);
    Ok(Json(found))
}

async fn set_moderator(st: &AppState, by: Uuid, id: &str, on: bool) -> Result<Json<User>, Problem> {
    let id = parse_uuid("userId", id)?;
    let no_such = || Problem::not_found("no such user");
    if st.catalog.audit.set_moderator(Actor::Moderator(by), id, on).await? == RoleChange::NoSuchUser {
        return Err(no_such());
    }
    Ok(Json(st.catalog.users.get(id).await?.ok_or_else(no_such)?.into()))
}

/// Grant the moderator role (effective at once: roles are checked in the store).
#[utoipa::path(
    post,
    path = "/api/v1/moderation/users/{user_id}/assign-moderator",
    tag = "moderation",
    description = "Needs the `moderator` role (checked in the store on every request).",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The user")),
    responses((status = 200, description = "The user", body = User), Unauthorized, Forbidden, NotFound, Invalid, Unavailable)
)]
pub async fn assign(State(st): St, Moderator(m): Moderator, Path(id): Path<String>) -> Result<Json<User>, Problem> {
    set_moderator(&st, m.sub, &id, true).await
}

/// Take the moderator role away: the user's next moderation request is refused,
/// whatever their token says. Not one's own (403).
#[utoipa::path(
    post,
    path = "/api/v1/moderation/users/{user_id}/revoke-moderator",
    tag = "moderation",
    description = "Needs the `moderator` role (checked in the store on every request).",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The user")),
    responses((status = 200, description = "The user", body = User), Unauthorized, Forbidden, NotFound, Invalid, Unavailable)
)]
pub async fn revoke(State(st): St, Moderator(m): Moderator, Path(id): Path<String>) -> Result<Json<User>, Problem> {
    // A moderator cannot drop their own role: a last moderator would lock every
    // moderator out (only an operator could grant again), and a slip is undone by
    // nobody. Another moderator, or `vcount-admin moderators revoke`, can.
    if parse_uuid("userId", &id)? == m.sub {
        return Err(Problem::forbidden(
            "a moderator cannot revoke their own role; another moderator or an operator can",
        ));
    }
    set_moderator(&st, m.sub, &id, false).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Restored {
    content_id: Uuid,
    #[schema(value_type = ContentType)]
    content_type: &'static str,
    status_message: String,
}

async fn restore(st: &AppState, content: ContentType, id: Uuid, by: Uuid) -> Result<Json<Restored>, Problem> {
    let action = match content {
        ContentType::Video => AuditAction::RestoreVideo,
        ContentType::Comment => AuditAction::RestoreComment,
    };
    st.catalog.audit.append(&AuditEntry::now(Actor::Moderator(by), action, id)).await?;
    let status_message = if st.catalog.flags.hidden(content, id).await? {
        set_hidden(st, content, id, false, by).await?;
        format!("{} restored", content.as_str())
    } else {
        format!("{} was not hidden", content.as_str())
    };
    Ok(Json(Restored { content_id: id, content_type: content.as_str(), status_message }))
}

/// Undo the soft delete of a video.
#[utoipa::path(
    post,
    path = "/api/v1/moderation/videos/{video_id}/restore",
    tag = "moderation",
    description = "Needs the `moderator` role (checked in the store on every request).",
    security(("bearer" = [])),
    params(("video_id" = Uuid, Path, description = "The video")),
    responses((status = 200, description = "Restored", body = Restored), Unauthorized, Forbidden, NotFound, Invalid, Unavailable)
)]
pub async fn restore_video(
    State(st): St,
    Moderator(claims): Moderator,
    Path(id): Path<String>,
) -> Result<Json<Restored>, Problem> {
    let id = parse_uuid("videoId", &id)?;
    st.catalog.videos.get(id).await?.ok_or_else(|| Problem::not_found("no such video"))?;
    restore(&st, ContentType::Video, id, claims.sub).await
}

/// Undo the soft delete of a comment: it is back in its lists, in its old place.
#[utoipa::path(
    post,
    path = "/api/v1/moderation/comments/{comment_id}/restore",
    tag = "moderation",
    description = "Needs the `moderator` role (checked in the store on every request).",
    security(("bearer" = [])),
    params(("comment_id" = Uuid, Path, description = "The comment")),
    responses((status = 200, description = "Restored", body = Restored), Unauthorized, Forbidden, NotFound, Invalid, Unavailable)
)]
pub async fn restore_comment(
    State(st): St,
    Moderator(claims): Moderator,
    Path(id): Path<String>,
) -> Result<Json<Restored>, Problem> {
    let id = parse_uuid("commentId", &id)?;
    st.catalog.comments.get(id).await?.ok_or_else(|| Problem::not_found("no such comment"))?;
    restore(&st, ContentType::Comment, id, claims.sub).await
}

/// One entry of the moderation audit log.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntryView {
    audit_id: Uuid,
    /// When it was done.
    #[schema(required = true)]
    created_at: Option<chrono::DateTime<Utc>>,
    /// `moderator` (through the API) or `vcount-admin` (an operator).
    #[schema(value_type = AuditActor)]
    actor: String,
    /// The moderator's user id; null for `vcount-admin`.
    #[schema(required = true)]
    moderator_id: Option<Uuid>,
    #[schema(value_type = AuditActionName)]
    action: String,
    /// What `targetId` names.
    #[schema(value_type = AuditTargetType)]
    target_type: String,
    #[schema(required = true)]
    target_id: Option<Uuid>,
    /// A flag action's new status; null otherwise.
    #[schema(required = true, value_type = Option<FlagStatus>)]
    status: Option<String>,
    #[schema(required = true)]
    notes: Option<String>,
}

/// Who acted.
#[derive(ToSchema)]
#[allow(dead_code)] // the values `Actor::as_str` writes
pub enum AuditActor {
    #[schema(rename = "moderator")]
    Moderator,
    #[schema(rename = "vcount-admin")]
    VcountAdmin,
}

/// What was done.
#[derive(ToSchema)]
#[allow(dead_code)] // the values `platform::moderation::Action::as_str` writes
pub enum AuditActionName {
    #[schema(rename = "flag_action")]
    FlagAction,
    #[schema(rename = "assign_moderator")]
    AssignModerator,
    #[schema(rename = "revoke_moderator")]
    RevokeModerator,
    #[schema(rename = "restore_video")]
    RestoreVideo,
    #[schema(rename = "restore_comment")]
    RestoreComment,
    /// `vcount-admin correct`: counts taken back or added by compensating events.
    #[schema(rename = "correct_counts")]
    CorrectCounts,
}

/// What an audit entry's target is.
#[derive(ToSchema)]
#[allow(dead_code)] // the values `platform::moderation::Action::target_type` writes
pub enum AuditTargetType {
    #[schema(rename = "flag")]
    Flag,
    #[schema(rename = "user")]
    User,
    #[schema(rename = "video")]
    Video,
    #[schema(rename = "comment")]
    Comment,
}

/// The moderation audit log, newest first: every flag action, role change and
/// restore, by whom and when. Append-only: entries are never changed or removed.
#[utoipa::path(
    get,
    path = "/api/v1/moderation/audit",
    tag = "moderation",
    description = "Needs the `moderator` role (checked in the store on every request).",
    security(("bearer" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of the log", body = Page<AuditEntryView>),
        Unauthorized, Forbidden, Invalid, Unavailable
    )
)]
pub async fn audit_log(
    State(st): St,
    Moderator(_): Moderator,
    q: Params,
) -> Result<Json<Page<AuditEntryView>>, Problem> {
    let req = page_request(&q)?;
    let (rows, total) = st.catalog.audit.page(req).await?;
    let data = rows
        .into_iter()
        .map(|r| AuditEntryView {
            audit_id: r.audit_id,
            created_at: time(r.created_at),
            actor: r.actor.unwrap_or_default(),
            moderator_id: r.moderator_id,
            action: r.action.unwrap_or_default(),
            target_type: r.target_type.unwrap_or_default(),
            target_id: r.target_id,
            status: r.status,
            notes: r.notes,
        })
        .collect();
    Ok(Json(Page::new(req, data, total)))
}
