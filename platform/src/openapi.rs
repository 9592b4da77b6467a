//! What both services' OpenAPI documents share: the problem+json schema, one
//! response type per error status (so a handler's `#[utoipa::path]` lists the
//! statuses it can answer by name), the event types, and the bearer scheme.
//!
//! The types here only describe answers; [`crate::http::Problem`] produces them.
//! They live beside it so that the two cannot be edited apart.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, ToSchema};

/// An RFC 9457 problem: every error answer, as `application/problem+json`.
#[derive(ToSchema)]
#[schema(as = Problem)]
#[allow(dead_code)] // describes `http::ProblemBody`, which is what is serialized
pub struct ProblemSchema {
    /// `https://vcount.dev/problems/<kind>`: stable, for programs.
    #[schema(example = "https://vcount.dev/problems/validation")]
    r#type: String,
    /// Short and stable, for people.
    title: String,
    /// The HTTP status, repeated.
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    /// What went wrong; for a validation error it starts with the field's name.
    detail: String,
    /// The request path.
    instance: Option<String>,
    /// The request field at fault (validation errors): `occurredAt`, `[3].videoId`.
    #[schema(nullable = false)]
    field: Option<String>,
}

/// The body is not readable (not UTF-8, truncated).
#[derive(IntoResponses)]
#[response(status = 400, content_type = "application/problem+json")]
pub struct BadRequest(#[allow(dead_code)] ProblemSchema);

/// Missing, invalid or expired token.
#[derive(IntoResponses)]
#[response(status = 401, content_type = "application/problem+json")]
pub struct Unauthorized(#[allow(dead_code)] ProblemSchema);

/// Signed in, but not allowed.
#[derive(IntoResponses)]
#[response(status = 403, content_type = "application/problem+json")]
pub struct Forbidden(#[allow(dead_code)] ProblemSchema);

/// No such resource.
#[derive(IntoResponses)]
#[response(status = 404, content_type = "application/problem+json")]
pub struct NotFound(#[allow(dead_code)] ProblemSchema);

/// Conflict with the current state (a taken email, a concurrent change).
#[derive(IntoResponses)]
#[response(status = 409, content_type = "application/problem+json")]
pub struct Conflict(#[allow(dead_code)] ProblemSchema);

/// Over a rate limit; retry after `Retry-After` seconds.
#[derive(IntoResponses)]
#[response(
    status = 429,
    content_type = "application/problem+json",
    headers(("Retry-After" = u32, description = "Seconds until the request would pass"))
)]
pub struct TooMany(#[allow(dead_code)] ProblemSchema);

/// The body is larger than the configured limit.
#[derive(IntoResponses)]
#[response(status = 413, content_type = "application/problem+json")]
pub struct TooLarge(#[allow(dead_code)] ProblemSchema);

/// Validation failed; `field` names the offending field.
#[derive(IntoResponses)]
#[response(status = 422, content_type = "application/problem+json")]
pub struct Invalid(#[allow(dead_code)] ProblemSchema);

/// A dependency is unavailable; retry after `Retry-After` seconds.
#[derive(IntoResponses)]
#[response(
    status = 503,
    content_type = "application/problem+json",
    headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))
)]
pub struct Unavailable(#[allow(dead_code)] ProblemSchema);

/// The countable event types.
#[derive(ToSchema)]
#[schema(as = EventType)]
#[allow(dead_code)] // the wire names of `counting::EventKind`; a test compares the two
pub enum EventTypeSchema {
    #[schema(rename = "view")]
    View,
    #[schema(rename = "play")]
    Play,
    #[schema(rename = "like")]
    Like,
    #[schema(rename = "share")]
    Share,
    #[schema(rename = "complete")]
    Complete,
}

/// Adds the `bearer` security scheme (HS256 JWTs from `/users/login`) and the
/// gateway's `producerKey` (`X-Api-Key`).
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        // The gateway's producers (`X-Api-Key`): see platform::apikeys.
        components.add_security_scheme(
            "producerKey",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    "X-Api-Key",
                    "A producer key (`vcount-admin api-key`): batches and values other than 1",
                ),
            )),
        );
    }
}
