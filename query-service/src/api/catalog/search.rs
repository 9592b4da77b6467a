//! Search and tag suggestions, on the catalog's own indexes (the rules are
//! `domain::search`).

use axum::Json;
use axum::extract::State;
use futures::future::try_join_all;
use platform::http::Problem;
use platform::openapi::{Invalid, Unavailable};
use serde::Serialize;
use utoipa::ToSchema;

use super::shared::{VideoSummary, summary_page};
use crate::api::common::{Params, St, only_params};
use crate::domain::paging::{Page, PageRequest, number};
use crate::domain::search::{DEFAULT_SUGGESTIONS, MAX_SUGGESTIONS, parse_mode, query_words, rank_matches};
use crate::domain::validate::normal_tag;

/// How to match a search.
#[derive(ToSchema)]
#[allow(dead_code)] // the values `parse_mode` accepts
pub enum SearchMode {
    #[schema(rename = "keyword")]
    Keyword,
    /// Answered with keyword results until semantic search exists.
    #[schema(rename = "semantic")]
    Semantic,
}

/// Videos whose title, description or tags hold every word of the query, most
/// matches first, then newest.
///
/// Each word is looked up among the newest `limits.search_rows_per_word` videos
/// holding it (10,000 by default): a search reads at most that many rows per word,
/// however common the word, so an older video whose every word is that common is
/// not found, and `totalItems` counts the matches among those read.
///
/// `mode=semantic` (what KillrVideo's front end sends) is accepted and, until
/// semantic search exists, answered with the same keyword results.
#[utoipa::path(
    get,
    path = "/api/v1/search/videos",
    tag = "search",
    params(
        ("query" = String, Query, max_length = 200, pattern = r"^ *[A-Za-z0-9]+( +[A-Za-z0-9]+){0,9} *$",
         description = "1 to 10 distinct words (letters or digits), at most 200 characters"),
        ("mode" = Option<SearchMode>, Query, description = "keyword (default) or semantic (answered as keyword for now)"),
        ("page" = Option<u32>, Query, minimum = 1, maximum = 2147483647, description = "1-based page number (default 1)"),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Items per page (default 10)"),
    ),
    responses((status = 200, description = "A page of videos", body = Page<VideoSummary>), Invalid, Unavailable)
)]
pub async fn search_videos(State(st): St, q: Params) -> Result<Json<Page<VideoSummary>>, Problem> {
    only_params(&q, &["query", "mode", "page", "pageSize"])?;
    // Both modes answer with keyword results for now (see `domain::search::Mode`).
    parse_mode(q.get("mode").map(String::as_str))?;
    let words = query_words(q.get("query"))?;
    let req = PageRequest::from_query(&q)?;
    let per_word = st.catalog.search_rows_per_word;
    let lists = try_join_all(words.iter().map(|w| st.catalog.indexes.word(w, per_word))).await?;
    let ranked = rank_matches(lists);
    let total = ranked.len() as u64;
    let page = ranked.into_iter().skip(req.offset()).take(req.page_size as usize).collect();
    Ok(Json(summary_page(&st, req, (page, total)).await?))
}

#[derive(Serialize, ToSchema)]
pub struct TagSuggestion {
    tag: String,
}

/// Tags in use that start with the query, in alphabetical order.
#[utoipa::path(
    get,
    path = "/api/v1/search/tags/suggest",
    tag = "search",
    params(
        ("query" = String, Query, min_length = 1, max_length = 50, pattern = r"\S",
         description = "A tag prefix (trimmed and lower-cased, 1 to 50 characters)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 50, description = "Tags to answer (default 10)"),
    ),
    responses((status = 200, description = "The tags", body = Vec<TagSuggestion>), Invalid, Unavailable)
)]
pub async fn suggest_tags(State(st): St, q: Params) -> Result<Json<Vec<TagSuggestion>>, Problem> {
    only_params(&q, &["query", "limit"])?;
    let prefix = normal_tag("query", q.get("query").map(String::as_str).unwrap_or_default())?;
    let limit = number(&q, "limit", 1, MAX_SUGGESTIONS)?.unwrap_or(DEFAULT_SUGGESTIONS);
    let tags = st.catalog.indexes.tags_starting(&prefix, limit as usize).await?;
    Ok(Json(tags.into_iter().map(|tag| TagSuggestion { tag }).collect()))
}
