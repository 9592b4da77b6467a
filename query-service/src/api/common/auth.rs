//! Who is asking: `Authorization: Bearer <JWT>` (HS256, issued at login). A
//! missing or bad token is 401; a valid one without the right role is 403. Roles
//! are read from the token, so a role change reaches a user at their next login
//! (a token issued before keeps its roles until it expires).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use platform::auth::Claims;
use platform::http::Problem;

use crate::state::AppState;

/// The role that opens the moderation routes.
pub const MODERATOR: &str = "moderator";

/// The signed-in user; 401 otherwise.
pub struct SignedIn(pub Claims);

impl FromRequestParts<Arc<AppState>> for SignedIn {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, st: &Arc<AppState>) -> Result<Self, Problem> {
        st.catalog.tokens.required(&parts.headers).map(SignedIn)
    }
}

/// The signed-in user if the request carries a token; a bad token is still a 401.
pub struct MaybeSignedIn(pub Option<Claims>);

impl FromRequestParts<Arc<AppState>> for MaybeSignedIn {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, st: &Arc<AppState>) -> Result<Self, Problem> {
        st.catalog.tokens.optional(&parts.headers).map(MaybeSignedIn)
    }
}

/// A signed-in moderator: 401 without a valid token, 403 without the role.
pub struct Moderator(pub Claims);

impl FromRequestParts<Arc<AppState>> for Moderator {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, st: &Arc<AppState>) -> Result<Self, Problem> {
        let claims = st.catalog.tokens.required(&parts.headers)?;
        if !claims.has_role(MODERATOR) {
            return Err(Problem::forbidden("moderators only"));
        }
        Ok(Self(claims))
    }
}
