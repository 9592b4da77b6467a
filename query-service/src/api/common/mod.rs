//! What every handler shares, in one place: reading bodies ([`body`]), query
//! strings and pages ([`params`]), who is asking ([`auth`]), and the one mapping
//! from a store error to an answer ([`error`]).

pub mod auth;
pub mod body;
pub mod error;
pub mod params;

pub use auth::{MaybeSignedIn, Moderator, SignedIn};
pub use body::json_body;
pub use params::{Params, only_params, page_request};

use std::sync::Arc;

use axum::extract::State;

use crate::state::AppState;

/// The state extractor every handler takes.
pub type St = State<Arc<AppState>>;
