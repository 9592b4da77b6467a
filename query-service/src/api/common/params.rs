//! Query strings: read whole into a map so that an unknown parameter is refused by
//! name (a misspelt `form=` must not silently turn a ranged query into an
//! all-time one), then each value checked by the handler's rules. The `IntoParams`
//! types here describe the shared parameters in the OpenAPI document; the
//! document's bounds are the constants the checks use (tested in `api::openapi`).

use std::collections::HashMap;

use axum::extract::Query;
use platform::http::Problem;
use utoipa::IntoParams;

use crate::domain::paging::PageRequest;

/// A handler's query string.
pub type Params = Query<HashMap<String, String>>;

/// Refuses query parameters the route does not know.
pub fn only_params(q: &HashMap<String, String>, allowed: &[&str]) -> Result<(), Problem> {
    match q.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(Problem::invalid(k.clone(), format!("unknown query parameter; expected {allowed:?}"))),
        None => Ok(()),
    }
}

/// The page of a list route that takes nothing else.
pub fn page_request(q: &HashMap<String, String>) -> Result<PageRequest, Problem> {
    only_params(q, &PAGE_PARAMS)?;
    PageRequest::from_query(q)
}

/// The names [`PageParams`] documents.
pub const PAGE_PARAMS: [&str; 3] = ["page", "pageSize", "page_size"];

/// `?page&pageSize` of every list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query string `PageRequest::from_query` reads
pub struct PageParams {
    /// 1-based page number (default 1).
    #[param(minimum = 1, maximum = 2147483647)]
    page: Option<u32>,
    /// Items per page (default 10).
    #[param(rename = "pageSize", minimum = 1, maximum = 100)]
    page_size: Option<u32>,
    /// `pageSize` under the name KillrVideo's React front end sends on `/videos/latest`.
    #[param(rename = "page_size", minimum = 1, maximum = 100)]
    #[deprecated = "use pageSize"]
    page_size_alias: Option<u32>,
}

/// `?from&to`: a range, each bound optional (omit both for all time).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents what `resolve_range` reads
pub struct RangeParams {
    /// Start, inclusive. Default: the beginning. The answer's `from` says where the
    /// count starts: rounded down to the minute, or further to the hour or day
    /// where the finer rows have expired.
    from: Option<chrono::DateTime<chrono::Utc>>,
    /// End, exclusive. Default: now, this minute included. Must not be before
    /// `from`. Rounded up like `from` is rounded down; the answer's `to` says so.
    to: Option<chrono::DateTime<chrono::Utc>>,
}

/// `?from&to` of a viewers range.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents what `domain::viewers::resolve` reads
pub struct ViewersRangeParams {
    /// Start, inclusive (required). Rounded down to the hour (no sketch is
    /// finer), or to the day where the hour sketches have expired.
    from: chrono::DateTime<chrono::Utc>,
    /// End, exclusive. Default: now, this hour included. Rounded up like `from`.
    to: Option<chrono::DateTime<chrono::Utc>>,
}

/// `?pageSize&pagingState` of the who-viewed list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents what `api::counts::viewers::viewer_list` reads
pub struct ViewerListParams {
    /// Viewers per page (default 10).
    #[param(rename = "pageSize", minimum = 1, maximum = 100)]
    page_size: Option<u32>,
    /// The previous page's `pagingState`; omit it, or send it empty, for the first page.
    #[param(rename = "pagingState", format = Uuid)]
    paging_state: Option<String>,
}
