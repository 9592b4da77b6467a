//! KillrVideo users: register, log in, the signed-in user's profile, public
//! profiles. Passwords are argon2id hashes; sessions are HS256 JWTs.

use std::collections::HashSet;
use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use platform::auth::{AuthConfig, Claims, Tokens};
use platform::cassandra::prepare;
use platform::http::{Problem, parse_json, parse_uuid, read_body};
use rand::RngCore;
use schemas::catalog::UserCreated;
use schemas::catalog::catalog_event::Change;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalog_events::{CatalogEvents, id_bytes};

pub struct Users {
    session: Arc<Session>,
    insert_user: PreparedStatement,
    delete_user: PreparedStatement,
    claim_email: PreparedStatement,
    read_credentials: PreparedStatement,
    read_user: PreparedStatement,
    update_names: PreparedStatement,
    touch_login: PreparedStatement,
    grant_role: PreparedStatement,
    revoke_role: PreparedStatement,
    scan: PreparedStatement,
    tokens: Tokens,
    /// Emails (lower-cased) that get the moderator role at registration and login.
    moderators: HashSet<String>,
}

/// The role that opens the moderation routes.
pub const MODERATOR: &str = "moderator";

/// KillrVideo's User.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub(crate) user_id: Uuid,
    pub(crate) first_name: String,
    pub(crate) last_name: String,
    pub(crate) email: String,
    created_date: Option<DateTime<Utc>>,
    account_status: String,
    last_login_date: Option<DateTime<Utc>>,
    pub(crate) roles: Vec<String>,
}

type UserRow = (
    Uuid,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<CqlTimestamp>,
    Option<String>,
    Option<CqlTimestamp>,
    Option<Vec<String>>,
);

pub(crate) fn time(t: Option<CqlTimestamp>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp_millis(t.0))
}

impl From<UserRow> for User {
    fn from((id, first, last, email, created, status, login, roles): UserRow) -> Self {
        Self {
            user_id: id,
            first_name: first.unwrap_or_default(),
            last_name: last.unwrap_or_default(),
            email: email.unwrap_or_default(),
            created_date: time(created),
            account_status: status.unwrap_or_else(|| "active".into()),
            last_login_date: time(login),
            roles: roles.unwrap_or_default(),
        }
    }
}

impl Users {
    pub async fn new(session: Arc<Session>, keyspace: &str, auth: &AuthConfig) -> anyhow::Result<Self> {
        let ks = keyspace;
        // None is marked idempotent: the driver does not retry them on its own.
        let prep = |cql: String| {
            let session = session.clone();
            async move { prepare(&session, cql, false).await }
        };
        let columns = "userid, firstname, lastname, email, created_date, account_status, last_login_date, roles";
        Ok(Self {
            insert_user: prep(format!("INSERT INTO {ks}.users ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")).await?,
            delete_user: prep(format!("DELETE FROM {ks}.users WHERE userid = ?")).await?,
            claim_email: prep(format!(
                "INSERT INTO {ks}.user_credentials (email, password, userid) VALUES (?, ?, ?) IF NOT EXISTS"
            ))
            .await?,
            read_credentials: prep(format!("SELECT password, userid FROM {ks}.user_credentials WHERE email = ?"))
                .await?,
            read_user: prep(format!("SELECT {columns} FROM {ks}.users WHERE userid = ?")).await?,
            update_names: prep(format!("UPDATE {ks}.users SET firstname = ?, lastname = ? WHERE userid = ?")).await?,
            touch_login: prep(format!("UPDATE {ks}.users SET last_login_date = ? WHERE userid = ?")).await?,
            grant_role: prep(format!("UPDATE {ks}.users SET roles = roles + ? WHERE userid = ?")).await?,
            revoke_role: prep(format!("UPDATE {ks}.users SET roles = roles - ? WHERE userid = ?")).await?,
            scan: prep(format!("SELECT {columns} FROM {ks}.users")).await?,
            tokens: Tokens::new(auth)?,
            moderators: HashSet::new(),
            session,
        })
    }

    /// Grants the moderator role to these emails when they register or log in.
    pub fn with_moderators(mut self, emails: &[String]) -> Self {
        self.moderators = emails.iter().map(|e| e.trim().to_lowercase()).filter(|e| !e.is_empty()).collect();
        self
    }

    pub(crate) async fn user(&self, id: Uuid) -> Result<Option<User>, Problem> {
        let rows = self.session.execute_unpaged(&self.read_user, (id,)).await.map_err(store_error)?;
        let rows = rows.into_rows_result().map_err(store_error)?;
        Ok(rows.maybe_first_row::<UserRow>().map_err(store_error)?.map(User::from))
    }

    /// Adds (`on`) or removes `role` in an existing user's roles. The caller checks
    /// that the user exists: an UPDATE of a missing key would create a row.
    pub(crate) async fn set_role(&self, id: Uuid, role: &str, on: bool) -> Result<(), Problem> {
        let stmt = if on { &self.grant_role } else { &self.revoke_role };
        let roles: HashSet<&str> = [role].into();
        self.session.execute_unpaged(stmt, (roles, id)).await.map_err(store_error)?;
        Ok(())
    }

    /// Users whose email or name contains `needle` (lower-case), at most `limit`,
    /// sorted by email. A full scan of `users`, stopped after `max_scanned` rows:
    /// fine for a moderator's occasional search over a small user base; a large one
    /// would want a search index.
    pub(crate) async fn search(&self, needle: &str, limit: usize, max_scanned: usize) -> Result<Vec<User>, Problem> {
        use futures::TryStreamExt;
        let mut rows = self
            .session
            .execute_iter(self.scan.clone(), ())
            .await
            .map_err(store_error)?
            .rows_stream::<UserRow>()
            .map_err(store_error)?;
        let (mut found, mut scanned) = (Vec::new(), 0);
        while let Some(row) = rows.try_next().await.map_err(store_error)? {
            let u = User::from(row);
            let full = format!("{} {}", u.first_name, u.last_name).to_lowercase();
            if u.email.contains(needle) || full.contains(needle) {
                found.push(u);
            }
            scanned += 1;
            if scanned >= max_scanned {
                break;
            }
        }
        found.sort_by(|a, b| a.email.cmp(&b.email));
        found.truncate(limit);
        Ok(found)
    }

    fn token(&self, user: &User) -> Result<String, Problem> {
        self.tokens.issue(user.user_id, user.roles.clone())
    }

    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }
}

fn store_error(e: impl std::fmt::Display) -> Problem {
    tracing::error!(error = %e, "user store request failed");
    Problem::unavailable("the user store is not answering; retry later", 1)
}

/// The signed-in user, from `Authorization: Bearer <JWT>`; 401 otherwise.
pub struct SignedIn(pub Claims);

pub trait HasUsers {
    fn users(&self) -> &Users;
    fn catalog_events(&self) -> &CatalogEvents;
}

impl<S: HasUsers + Send + Sync> FromRequestParts<Arc<S>> for SignedIn {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> Result<Self, Problem> {
        state.users().tokens.required(&parts.headers).map(SignedIn)
    }
}

/// The signed-in user if the request carries a token; a bad token is still a 401.
pub struct MaybeSignedIn(pub Option<Claims>);

impl<S: HasUsers + Send + Sync> FromRequestParts<Arc<S>> for MaybeSignedIn {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> Result<Self, Problem> {
        state.users().tokens.optional(&parts.headers).map(MaybeSignedIn)
    }
}

pub fn api<S: HasUsers + Send + Sync + 'static>(state: Arc<S>) -> Router {
    Router::new()
        .route("/api/v1/users/register", post(register::<S>))
        .route("/api/v1/users/login", post(login::<S>))
        .route("/api/v1/users/me", get(me::<S>).put(update_me::<S>))
        .route("/api/v1/users/{user_id}", get(profile::<S>))
        .with_state(state)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Register {
    first_name: String,
    last_name: String,
    email: String,
    password: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Registered {
    first_name: String,
    last_name: String,
    email: String,
    user_id: Uuid,
}

fn name(field: &str, value: &str) -> Result<String, Problem> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > 100 {
        return Err(Problem::invalid(field, "must be 1 to 100 characters"));
    }
    Ok(v.to_owned())
}

/// Emails are compared lower-cased: `Ann@x.org` and `ann@x.org` are one account.
fn email(value: &str) -> Result<String, Problem> {
    let v = value.trim().to_lowercase();
    let ok = v.len() <= 254
        && !v.chars().any(char::is_whitespace)
        && v.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if !ok {
        return Err(Problem::invalid("email", "not an email address"));
    }
    Ok(v)
}

async fn hash(password: String) -> Result<String, Problem> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r)
    .map_err(|e| {
        tracing::error!(error = %e, "hashing a password failed");
        Problem::internal()
    })
}

async fn verify_password(password: String, stored: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}

pub(crate) fn respond<T: Serialize>(status: StatusCode, result: Result<T, Problem>) -> Response {
    match result {
        Ok(body) => (status, axum::Json(body)).into_response(),
        Err(p) => p.into_response(),
    }
}

/// POST /api/v1/users/register → 201; a taken email → 409.
async fn register<S: HasUsers>(State(st): State<Arc<S>>, bytes: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let r: Register = parse_json(&read_body(bytes)?)?;
        let (first, last, email) =
            (name("firstName", &r.first_name)?, name("lastName", &r.last_name)?, email(&r.email)?);
        if r.password.chars().count() < 8 || r.password.len() > 1024 {
            return Err(Problem::invalid("password", "must be at least 8 characters"));
        }
        let users = st.users();
        let id = Uuid::now_v7();
        let hashed = hash(r.password).await?;
        let now = CqlTimestamp(Utc::now().timestamp_millis());
        let mut roles = vec!["USER"];
        if users.moderators.contains(&email) {
            roles.push(MODERATOR);
        }
        let row = (id, &first, &last, &email, now, "active", None::<CqlTimestamp>, roles);
        users.session.execute_unpaged(&users.insert_user, row).await.map_err(store_error)?;
        // The email is claimed last, with a lightweight transaction: of two sign-ups
        // with one email exactly one wins; the loser's profile row is removed.
        let claimed = users.session.execute_unpaged(&users.claim_email, (&email, hashed, id)).await;
        let applied = platform::cassandra::applied(claimed.map_err(store_error)?).map_err(store_error)?;
        if !applied {
            let _ = users.session.execute_unpaged(&users.delete_user, (id,)).await;
            return Err(Problem::new(StatusCode::CONFLICT, "conflict", "Conflict", "this email is already registered"));
        }
        let created = UserCreated { user_id: id_bytes(id), first_name: first.clone(), last_name: last.clone() };
        st.catalog_events().publish(id, Change::UserCreated(created));
        Ok(Registered { first_name: first, last_name: last, email, user_id: id })
    };
    respond(StatusCode::CREATED, result.await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    email: String,
    password: String,
}

#[derive(Serialize)]
struct Session_ {
    token: String,
    user: User,
}

/// POST /api/v1/users/login → 200 {token, user}; 401 for an unknown email or a
/// wrong password alike (the answer does not say which).
async fn login<S: HasUsers>(State(st): State<Arc<S>>, bytes: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let l: Login = parse_json(&read_body(bytes)?)?;
        let users = st.users();
        let denied = || Problem::unauthorized("wrong email or password");
        let email = email(&l.email).map_err(|_| denied())?;
        let rows = users.session.execute_unpaged(&users.read_credentials, (&email,)).await.map_err(store_error)?;
        let rows = rows.into_rows_result().map_err(store_error)?;
        let found = rows.maybe_first_row::<(Option<String>, Option<Uuid>)>().map_err(store_error)?;
        let Some((Some(stored), Some(id))) = found else { return Err(denied()) };
        if !verify_password(l.password, stored).await {
            return Err(denied());
        }
        let now = Utc::now();
        users
            .session
            .execute_unpaged(&users.touch_login, (CqlTimestamp(now.timestamp_millis()), id))
            .await
            .map_err(store_error)?;
        let mut user = users.user(id).await?.ok_or_else(denied)?;
        user.last_login_date = Some(now);
        // Configured moderators get the role here too, so that an account that
        // existed before it was listed becomes a moderator at its next login.
        if users.moderators.contains(&email) && !user.roles.iter().any(|r| r == MODERATOR) {
            users.set_role(id, MODERATOR, true).await?;
            user.roles.push(MODERATOR.to_owned());
            user.roles.sort();
        }
        Ok(Session_ { token: users.token(&user)?, user })
    };
    respond(StatusCode::OK, result.await)
}

/// GET /api/v1/users/me
async fn me<S: HasUsers>(State(st): State<Arc<S>>, SignedIn(claims): SignedIn) -> Response {
    let result =
        st.users().user(claims.sub).await.and_then(|u| u.ok_or_else(|| Problem::unauthorized("the account is gone")));
    respond(StatusCode::OK, result)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpdateMe {
    first_name: Option<String>,
    last_name: Option<String>,
}

/// PUT /api/v1/users/me {firstName?, lastName?} → User.
async fn update_me<S: HasUsers>(
    State(st): State<Arc<S>>,
    SignedIn(claims): SignedIn,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let u: UpdateMe = parse_json(&read_body(bytes)?)?;
        let users = st.users();
        let current = users.user(claims.sub).await?.ok_or_else(|| Problem::unauthorized("the account is gone"))?;
        let first = u.first_name.as_deref().map(|v| name("firstName", v)).transpose()?.unwrap_or(current.first_name);
        let last = u.last_name.as_deref().map(|v| name("lastName", v)).transpose()?.unwrap_or(current.last_name);
        users.session.execute_unpaged(&users.update_names, (&first, &last, claims.sub)).await.map_err(store_error)?;
        users.user(claims.sub).await?.ok_or_else(|| Problem::unauthorized("the account is gone"))
    };
    respond(StatusCode::OK, result.await)
}

/// GET /api/v1/users/{userId}: a public profile.
async fn profile<S: HasUsers>(State(st): State<Arc<S>>, Path(user_id): Path<String>) -> Response {
    let result = async {
        let id = parse_uuid("userId", &user_id)?;
        st.users().user(id).await?.ok_or_else(|| Problem::not_found("no such user"))
    };
    respond(StatusCode::OK, result.await)
}
