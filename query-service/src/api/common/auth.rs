//! Who is asking: `Authorization: Bearer <JWT>` (HS256, issued at login). A
//! missing or bad token is 401; a valid one without the right role is 403.
//!
//! The token says who the user is; what they may do is read from the store on
//! every moderation request (the `roles` of their `users` row), not from the
//! token's `roles` claim: a revoked moderator is refused at once, not when their
//! token expires, and a granted one is let in without signing in again. The claim
//! is still issued, for front ends that show moderator menus.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use platform::auth::Claims;
use platform::http::Problem;

use crate::state::AppState;

/// The role that opens the moderation routes.
pub use platform::moderation::MODERATOR;

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

/// A signed-in moderator: 401 without a valid token, 403 unless the store says
/// the user holds the role now.
pub struct Moderator(pub Claims);

impl FromRequestParts<Arc<AppState>> for Moderator {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, st: &Arc<AppState>) -> Result<Self, Problem> {
        let claims = st.catalog.tokens.required(&parts.headers)?;
        if !st.catalog.audit.is_moderator(claims.sub).await? {
            return Err(Problem::forbidden("moderators only"));
        }
        Ok(Self(claims))
    }
}
