//! The HTTP API, in two parts: [`counts`] (the counting API over the rollups) and
//! [`catalog`] (KillrVideo's catalog), plus the gateway's routes that this origin
//! forwards ([`gateway`]) and the OpenAPI document ([`openapi`]).
//!
//! Every route is registered here through `utoipa_axum`'s `OpenApiRouter`: a
//! handler is routed and documented by the same `routes!` call, from its
//! `#[utoipa::path]`, so the router and the document cannot disagree on which
//! routes exist. Handlers return `Result<_, Problem>` and use `?`; shared helpers
//! are in [`common`].

pub mod catalog;
pub mod common;
pub mod counts;
pub mod gateway;
pub mod openapi;

use std::sync::Arc;

use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Every route this service answers itself, and their document (without the
/// gateway's, which [`openapi::document`] adds).
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(counts::router())
        .merge(catalog::router())
        .routes(routes!(openapi::serve))
}

/// The router; with `gateway_url`, the gateway's routes are forwarded there.
pub fn router(state: Arc<AppState>, gateway_url: &str, forwarding: gateway::Forwarding) -> anyhow::Result<Router> {
    let (router, _) = routes().split_for_parts();
    let router = router.with_state(state);
    Ok(if gateway_url.is_empty() { router } else { router.merge(gateway::forward(gateway_url, forwarding)?) })
}
