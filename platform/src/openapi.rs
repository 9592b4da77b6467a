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

/// An event type: a built-in, or one the deployment lists in `event_types`. Not an
/// enum, so that a new type needs no new document (nor a new client); the pattern
/// is `counting::kind::NAME_PATTERN` (a test compares the two).
pub struct EventTypeSchema;

/// `counting::kind::NAME_PATTERN`, which this crate cannot depend on.
pub const EVENT_TYPE_PATTERN: &str = "^[a-z][a-z0-9_]{0,31}$";

impl utoipa::PartialSchema for EventTypeSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(EVENT_TYPE_PATTERN))
            .max_length(Some(32))
            .description(Some(
                "`view`, `play`, `like`, `share` or `complete` (always counted), or a type the deployment lists in \
                 `event_types` (`watch_seconds` by default); any other is a 422 naming the field.",
            ))
            .examples(["view", "watch_seconds"])
            .into()
    }
}

impl ToSchema for EventTypeSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "EventType".into()
    }
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
