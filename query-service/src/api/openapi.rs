//! The OpenAPI 3.1 document of the whole `/api/v1` surface on this origin: this
//! service's routes and the gateway's (which it forwards), generated from the
//! handlers' `#[utoipa::path]` and the types' `ToSchema`, and served at
//! `GET /api/v1/openapi.json`.
//!
//! The routers are built from the same `routes!` calls that document them
//! (`api::routes`, `ingest_gateway::routes::router`), so a route cannot be
//! answered without being documented. `tests/openapi.rs` checks the rest: every
//! documented operation is answered, and the constraints the document states
//! are the ones the code enforces. The user-journey test validates every answer
//! it gets against this document.

use std::sync::OnceLock;

use axum::Json;
use serde_json::Value;
use utoipa::openapi::OpenApi;
use utoipa::{Modify, OpenApi as _};

/// The document's fixed parts: info and tags.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "vcount: video counting and the KillrVideo catalog API",
        description = "One origin: the query service answers reads and the catalog; the ingest gateway answers \
            views, ratings and counting events (forwarded by the query service when `web.gateway_url` is set, or \
            routed by a reverse proxy). Errors are application/problem+json with `type`, `title`, `status`, \
            `detail`, `instance` and, for validation errors (422), `field`. Unknown query parameters are refused \
            (422 naming them); so are unknown members of a JSON body. Some rules span several fields or depend on \
            the time (a range's `to` after its `from`, an event's `occurredAt` within the accepted window): their \
            422s are described on the operations."
    ),
    components(schemas(
        platform::openapi::ProblemSchema,
        platform::openapi::EventTypeSchema,
        crate::api::counts::views::Step,
        crate::api::counts::views::StatFunction,
        crate::api::counts::trending::WindowName,
        crate::api::catalog::lists::IntervalDays,
        crate::api::catalog::search::SearchMode,
        crate::domain::moderation::FlagStatus,
    )),
    tags(
        (name = "counting", description = "Views and other events per video over any range, exact"),
        (name = "users"), (name = "videos"), (name = "ratings"), (name = "comments"), (name = "search"),
        (name = "moderation"), (name = "meta")
    )
)]
struct Base;

pub fn base() -> OpenApi {
    Base::openapi()
}

/// This service's document with the gateway's merged in, and the shared parts
/// (security scheme) added.
pub fn document_from(mut doc: OpenApi) -> OpenApi {
    doc.merge(super::gateway::document());
    platform::openapi::BearerAuth.modify(&mut doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.tags.get_or_insert_with(Vec::new).sort_by(|a, b| a.name.cmp(&b.name));
    doc
}

/// The document as served, built once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let (_, doc) = super::routes().split_for_parts();
        serde_json::to_value(document_from(doc)).expect("the document serializes")
    })
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
pub async fn serve() -> Json<&'static Value> {
    Json(document())
}
