//! Flags and moderation. Anyone signed in flags a video or a comment; moderators
//! (the `moderator` role in the token) list and act on flags, search users, grant
//! and revoke the role, and restore hidden content. Approving a flag soft-deletes
//! the content (`api::catalog::shared::set_hidden`); the rules are
//! `domain::moderation`, the concurrency story `store::flags`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use platform::http::{Problem, parse_uuid};
use platform::openapi::{BadRequest, Conflict, Forbidden, Invalid, NotFound, TooLarge, Unauthorized, Unavailable};
use scylla::value::CqlTimestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::shared::{set_hidden, visible_video};
use super::users::User;
use crate::api::common::auth::MODERATOR;
use crate::api::common::{Moderator, Params, SignedIn, St, json_body};
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
    description = "Needs the `moderator` role in the token.",
    security(("bearer" = [])),
    params(
        ("status" = Option<FlagStatus>, Query, description = "Only flags with this status (default: all)"),
        crate::api::common::params::PageParams,
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
    description = "Needs the `moderator` role in the token.",
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
    description = "Needs the `moderator` role in the token.",
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
    description = "Needs the `moderator` role in the token.",
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

async fn set_moderator(st: &AppState, id: &str, on: bool) -> Result<Json<User>, Problem> {
    let id = parse_uuid("userId", id)?;
    let users = &st.catalog.users;
    users.get(id).await?.ok_or_else(|| Problem::not_found("no such user"))?;
    users.set_role(id, MODERATOR, on).await?;
    Ok(Json(users.get(id).await?.ok_or_else(|| Problem::not_found("no such user"))?.into()))
}

/// Grant the moderator role (it reaches the user at their next login).
#[utoipa::path(
    post,
    path = "/api/v1/moderation/users/{user_id}/assign-moderator",
    tag = "moderation",
    description = "Needs the `moderator` role in the token.",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The user")),
    responses((status = 200, description = "The user", body = User), Unauthorized, Forbidden, NotFound, Invalid, Unavailable)
)]
pub async fn assign(State(st): St, Moderator(_): Moderator, Path(id): Path<String>) -> Result<Json<User>, Problem> {
    set_moderator(&st, &id, true).await
}

/// Take the moderator role away (it reaches the user at their next login).
#[utoipa::path(
    post,
    path = "/api/v1/moderation/users/{user_id}/revoke-moderator",
    tag = "moderation",
    description = "Needs the `moderator` role in the token.",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The user")),
    responses((status = 200, description = "The user", body = User), Unauthorized, Forbidden, NotFound, Invalid, Unavailable)
)]
pub async fn revoke(State(st): St, Moderator(_): Moderator, Path(id): Path<String>) -> Result<Json<User>, Problem> {
    set_moderator(&st, &id, false).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Restored {
    content_id: Uuid,
    #[schema(value_type = ContentType)]
    content_type: &'static str,
    status_message: String,
}

async fn restore(st: &AppState, content: ContentType, id: Uuid, by: Uuid) -> Result<Json<Restored>, Problem> {
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
    description = "Needs the `moderator` role in the token.",
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
    description = "Needs the `moderator` role in the token.",
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
