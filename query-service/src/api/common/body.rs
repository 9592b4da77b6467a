//! Request bodies: read (413 past the limit, 400 when unreadable), then parsed as
//! JSON into the handler's type, refusing unknown members (`deny_unknown_fields`
//! on every body type) and naming the field at fault in the 422.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use platform::http::{Problem, parse_json, read_body};
use serde::de::DeserializeOwned;

/// The body as `T`. A missing member is named as the field at fault (serde
/// reports it against the whole body).
///
/// Handlers call this where they used to read the body, after the checks that
/// come first (ids, ownership), so a request's first fault is the one answered.
pub fn json_body<T: DeserializeOwned>(bytes: Result<Bytes, BytesRejection>) -> Result<T, Problem> {
    let bytes = read_body(bytes)?;
    parse_json(&bytes).map_err(|p| {
        let missing = (p.field.as_deref() == Some("body"))
            .then(|| p.reason().strip_prefix("missing field `")?.split_once('`').map(|(f, _)| f.to_owned()))
            .flatten();
        match missing {
            Some(field) => Problem::invalid(field, "is required"),
            None => p,
        }
    })
}
