//! KillrVideo users: register, log in, the signed-in user's profile, public
//! profiles. Passwords are argon2id hashes on a bounded pool (`crate::passwords`);
//! sessions are HS256 JWTs; sign-ins and sign-ups are rate limited per address and
//! per account (`crate::limits`).
//!
//! A profile has two views: the user's own (`/users/me`: email, roles, login
//! times) and everyone else's (`/users/{id}`: the id and the names, what a front
//! end shows beside a video or a comment). User ids are public, so a public
//! profile with the email would let anyone collect every address.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use platform::http::{Problem, parse_uuid};
use platform::openapi::{BadRequest, Conflict, Invalid, NotFound, TooLarge, TooMany, Unauthorized, Unavailable};
use platform::server::PeerAddr;
use schemas::catalog::UserCreated;
use schemas::catalog::catalog_event::Change;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::common::{SignedIn, St, json_body};
use crate::catalog_events::id_bytes;
use crate::domain::validate::{MAX_PASSWORD_BYTES, email, name, password};
use crate::limits::Attempt;
use crate::store::users::{NewUser, UserRow, time};

/// KillrVideo's User: the signed-in user's own record (and moderators' view).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub user_id: Uuid,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    #[schema(required = true)]
    created_date: Option<DateTime<Utc>>,
    /// `active`.
    account_status: String,
    #[schema(required = true)]
    last_login_date: Option<DateTime<Utc>>,
    /// `USER`, and `moderator` for moderators.
    pub roles: Vec<String>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        Self {
            user_id: r.user_id,
            first_name: r.first_name.unwrap_or_default(),
            last_name: r.last_name.unwrap_or_default(),
            email: r.email.unwrap_or_default(),
            created_date: time(r.created_date),
            account_status: r.account_status.unwrap_or_else(|| "active".into()),
            last_login_date: time(r.last_login_date),
            roles: r.roles.unwrap_or_default(),
        }
    }
}

/// A user as anyone may see them: no email, roles or login times.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicUser {
    user_id: Uuid,
    first_name: String,
    last_name: String,
}

impl From<UserRow> for PublicUser {
    fn from(r: UserRow) -> Self {
        Self {
            user_id: r.user_id,
            first_name: r.first_name.unwrap_or_default(),
            last_name: r.last_name.unwrap_or_default(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Register {
    /// Trimmed; 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    first_name: String,
    /// Trimmed; 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    last_name: String,
    /// Compared lower-cased.
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// At least 8 characters, at most 1024 bytes (so at most 256 characters of any
    /// script), checked before anything is hashed.
    #[schema(min_length = 8, max_length = 256)]
    password: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    first_name: String,
    last_name: String,
    email: String,
    user_id: Uuid,
}

fn taken() -> Problem {
    Problem::new(StatusCode::CONFLICT, "conflict", "Conflict", "this email is already registered")
}

/// Register; a taken email (in any case) is 409. Every account starts with the
/// role `USER` only (moderators are granted by `vcount-admin` or another moderator).
///
/// Of two sign-ups with one email exactly one wins (a lightweight transaction). A
/// taken email is found before the password is hashed. Sign-ups are rate limited
/// per client address and per email (429 with `Retry-After`); when too many
/// passwords are being hashed at once the answer is 503 with `Retry-After`.
#[utoipa::path(
    post,
    path = "/api/v1/users/register",
    tag = "users",
    request_body = Register,
    responses(
        (status = 201, description = "Registered", body = Registered),
        BadRequest, Conflict, TooLarge, Invalid, TooMany, Unavailable
    )
)]
pub async fn register(
    State(st): St,
    PeerAddr(peer): PeerAddr,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Registered>), Problem> {
    let r: Register = json_body(bytes)?;
    let (first, last, email) = (name("firstName", &r.first_name)?, name("lastName", &r.last_name)?, email(&r.email)?);
    password(&r.password)?;
    let c = &st.catalog;
    c.limits.check(Attempt::Register, c.limits.client(peer, &headers), &email)?;
    if c.users.credentials(&email).await?.is_some() {
        return Err(taken());
    }
    let id = Uuid::now_v7();
    let hashed = c.passwords.hash(r.password).await?;
    c.users.insert(&NewUser { id, first_name: &first, last_name: &last, email: &email, roles: vec!["USER"] }).await?;
    // The email is claimed last, with a lightweight transaction: of two sign-ups
    // with one email exactly one wins; the loser's profile row is removed.
    if !c.users.claim_email(&email, &hashed, id).await? {
        let _ = c.users.delete(id).await;
        return Err(taken());
    }
    let created = UserCreated { user_id: id_bytes(id), first_name: first.clone(), last_name: last.clone() };
    c.events.publish(id, Change::UserCreated(created));
    Ok((StatusCode::CREATED, Json(Registered { first_name: first, last_name: last, email, user_id: id })))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = Credentials)]
#[serde(deny_unknown_fields)]
pub struct Login {
    #[schema(max_length = 254)]
    email: String,
    /// At most 1024 bytes (256 characters of any script).
    #[schema(max_length = 256)]
    password: String,
}

#[derive(Serialize, ToSchema)]
#[schema(as = Login)]
pub struct Session {
    /// `Authorization: Bearer <token>`; valid for `auth.token_ttl_secs` (30 minutes).
    token: String,
    user: User,
}

/// Log in: a token, and the user. An unknown email and a wrong password get the
/// same 401, after the same work (one password hash either way).
///
/// Logins are rate limited per client address and per email (429 with
/// `Retry-After`); when too many passwords are being checked at once the answer is
/// 503 with `Retry-After`. A password over 1024 bytes is refused (422) unhashed.
#[utoipa::path(
    post,
    path = "/api/v1/users/login",
    tag = "users",
    request_body = Login,
    responses(
        (status = 200, description = "Signed in", body = Session),
        BadRequest, Unauthorized, TooLarge, Invalid, TooMany, Unavailable
    )
)]
pub async fn login(
    State(st): St,
    PeerAddr(peer): PeerAddr,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Session>, Problem> {
    let l: Login = json_body(bytes)?;
    let c = &st.catalog;
    let denied = || Problem::unauthorized("wrong email or password");
    if l.password.len() > MAX_PASSWORD_BYTES {
        return Err(Problem::invalid("password", format!("at most {MAX_PASSWORD_BYTES} bytes")));
    }
    // Not an address at all: no account can have it, so nothing to hide by hashing.
    let email = email(&l.email).map_err(|_| denied())?;
    c.limits.check(Attempt::Login, c.limits.client(peer, &headers), &email)?;
    let found = c.users.credentials(&email).await?;
    let (stored, id) = found.map_or((None, None), |(h, id)| (Some(h), Some(id)));
    if !c.passwords.verify(l.password, stored).await? {
        return Err(denied());
    }
    let id = id.ok_or_else(denied)?;
    let now = Utc::now();
    c.users.touch_login(id, now).await?;
    let mut user = User::from(c.users.get(id).await?.ok_or_else(denied)?);
    user.last_login_date = Some(now);
    let token = c.tokens.issue(user.user_id, user.roles.clone())?;
    Ok(Json(Session { token, user }))
}

/// The signed-in user's full record: email, roles, login times.
#[utoipa::path(
    get,
    path = "/api/v1/users/me",
    tag = "users",
    security(("bearer" = [])),
    responses((status = 200, description = "The user", body = User), Unauthorized, Unavailable)
)]
pub async fn me(State(st): St, SignedIn(claims): SignedIn) -> Result<Json<User>, Problem> {
    let user = st.catalog.users.get(claims.sub).await?.ok_or_else(|| Problem::unauthorized("the account is gone"))?;
    Ok(Json(user.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateMe {
    /// Trimmed; 1 to 100 characters. Absent: unchanged.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S", nullable = false)]
    first_name: Option<String>,
    /// Trimmed; 1 to 100 characters. Absent: unchanged.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S", nullable = false)]
    last_name: Option<String>,
}

/// Rename the signed-in user (the email cannot change here).
#[utoipa::path(
    put,
    path = "/api/v1/users/me",
    tag = "users",
    security(("bearer" = [])),
    request_body = UpdateMe,
    responses(
        (status = 200, description = "The user", body = User),
        BadRequest, Unauthorized, TooLarge, Invalid, Unavailable
    )
)]
pub async fn update_me(
    State(st): St,
    SignedIn(claims): SignedIn,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<User>, Problem> {
    let u: UpdateMe = json_body(bytes)?;
    let users = &st.catalog.users;
    let gone = || Problem::unauthorized("the account is gone");
    let current = User::from(users.get(claims.sub).await?.ok_or_else(gone)?);
    let first = u.first_name.as_deref().map(|v| name("firstName", v)).transpose()?.unwrap_or(current.first_name);
    let last = u.last_name.as_deref().map(|v| name("lastName", v)).transpose()?.unwrap_or(current.last_name);
    users.set_names(claims.sub, &first, &last).await?;
    Ok(Json(users.get(claims.sub).await?.ok_or_else(gone)?.into()))
}

/// A user's public profile: the id and the names. The email, roles and login
/// times are the user's own (`/users/me`).
#[utoipa::path(
    get,
    path = "/api/v1/users/{user_id}",
    tag = "users",
    params(("user_id" = Uuid, Path, description = "The user")),
    responses((status = 200, description = "The user", body = PublicUser), NotFound, Invalid, Unavailable)
)]
pub async fn profile(State(st): St, Path(user_id): Path<String>) -> Result<Json<PublicUser>, Problem> {
    let id = parse_uuid("userId", &user_id)?;
    let user = st.catalog.users.get(id).await?.ok_or_else(|| Problem::not_found("no such user"))?;
    Ok(Json(user.into()))
}
