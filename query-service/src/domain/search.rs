//! Search and tag suggestions, on the catalog's own indexes (no search engine).
//!
//! Search is an inverted index, `videos_by_word`: a partition per word of a video's
//! title, description and tags, lower-cased and split on anything that is not a
//! letter or digit. A query's words must all match; videos rank by their matches
//! (for each query word, in how many of the three fields it occurs) and then newest
//! first. A query reads one partition per word, newest first, at most
//! `limits.search_rows_per_word` rows of it (10,000 by default), so its cost is
//! bounded however common its words are: a word held by more videos is matched
//! among its newest ones only (there is no stop-word list).
//!
//! Suggestions read `tags_by_prefix` (see migration 006): one clustering slice.
//!
//! `mode=semantic` is accepted (KillrVideo's front end sends it) and answered with
//! these keyword results until semantic search exists.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use platform::http::Problem;
use uuid::Uuid;

/// A query may hold this many distinct words.
pub const MAX_QUERY_WORDS: usize = 10;
pub const MAX_QUERY_CHARS: usize = 200;
pub const DEFAULT_SUGGESTIONS: u32 = 10;
pub const MAX_SUGGESTIONS: u32 = 50;

/// The searchable words of a text: lower-cased runs of letters and digits.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

/// Each word of a video's text, with in how many of its fields (title, description,
/// tags) it occurs: 1 to 3.
pub fn index_words(title: &str, description: &str, tags: &BTreeSet<String>) -> BTreeMap<String, i32> {
    let fields: [BTreeSet<String>; 3] =
        [words(title).collect(), words(description).collect(), tags.iter().flat_map(|t| words(t)).collect()];
    let mut hits = BTreeMap::new();
    for word in fields.into_iter().flatten() {
        *hits.entry(word).or_insert(0) += 1;
    }
    hits
}

/// The distinct words of a search query, or a 422 naming `query`.
pub fn query_words(raw: Option<&String>) -> Result<Vec<String>, Problem> {
    let raw = raw.map(|q| super::validate::trim_blank(q)).unwrap_or_default();
    if raw.is_empty() || raw.chars().count() > MAX_QUERY_CHARS {
        return Err(Problem::invalid("query", format!("must be 1 to {MAX_QUERY_CHARS} characters")));
    }
    let distinct: BTreeSet<String> = words(raw).collect();
    match distinct.len() {
        0 => Err(Problem::invalid("query", "has no letters or digits to search for")),
        n if n > MAX_QUERY_WORDS => Err(Problem::invalid("query", format!("at most {MAX_QUERY_WORDS} distinct words"))),
        _ => Ok(distinct.into_iter().collect()),
    }
}

/// Videos in every list, by the sum of their hits, then newest (largest UUIDv7) first.
pub fn rank_matches(lists: Vec<Vec<(Uuid, i32)>>) -> Vec<Uuid> {
    let mut lists = lists.into_iter();
    let Some(first) = lists.next() else { return Vec::new() };
    let mut matched: HashMap<Uuid, i64> = first.into_iter().map(|(id, h)| (id, h as i64)).collect();
    for list in lists {
        let hits: HashMap<Uuid, i32> = list.into_iter().collect();
        matched.retain(|id, sum| match hits.get(id) {
            Some(h) => {
                *sum += *h as i64;
                true
            }
            None => false,
        });
    }
    let mut ranked: Vec<(Uuid, i64)> = matched.into_iter().collect();
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
    ranked.into_iter().map(|(id, _)| id).collect()
}

/// How a search is asked to match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Keyword,
    /// Asked for by KillrVideo's front end. There is no vector index yet, so it is
    /// answered with keyword results (the OpenAPI document says so).
    Semantic,
}

/// `mode`: `keyword` (the default) or `semantic`.
pub fn parse_mode(raw: Option<&str>) -> Result<Mode, Problem> {
    match raw.map(str::trim) {
        None | Some("keyword") => Ok(Mode::Keyword),
        Some("semantic") => Ok(Mode::Semantic),
        Some(_) => Err(Problem::invalid("mode", "must be keyword or semantic")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lower_cased_runs_of_letters_and_digits() {
        let w: Vec<String> = words("Rust's async/await, in 2024 — Ünïcode!").collect();
        assert_eq!(w, ["rust", "s", "async", "await", "in", "2024", "ünïcode"]);
        assert_eq!(words(" -- ").count(), 0);
    }

    #[test]
    fn hits_count_fields_not_repetitions() {
        let tags: BTreeSet<String> = ["rust".into(), "web dev".into()].into();
        let hits = index_words("Rust rust RUST", "Learn web things in Rust", &tags);
        assert_eq!(hits["rust"], 3);
        assert_eq!(hits["web"], 2);
        assert_eq!((hits["dev"], hits["learn"]), (1, 1));
        assert_eq!(hits.len(), 6);
    }

    #[test]
    fn queries_need_words() {
        let q = |s: &str| query_words(Some(&s.to_owned()));
        assert_eq!(q("Rust  rust, Web").unwrap(), ["rust", "web"]);
        assert_eq!(query_words(None).unwrap_err().field.as_deref(), Some("query"));
        assert_eq!(q("  ").unwrap_err().field.as_deref(), Some("query"));
        assert_eq!(q("?!").unwrap_err().field.as_deref(), Some("query"));
        assert_eq!(q("a b c d e f g h i j k").unwrap_err().field.as_deref(), Some("query"));
        assert!(q("a b c d e f g h i j").is_ok());
        assert_eq!(q(&"x".repeat(201)).unwrap_err().field.as_deref(), Some("query"));
    }

    #[test]
    fn modes_are_keyword_or_semantic() {
        assert_eq!(parse_mode(None).unwrap(), Mode::Keyword);
        assert_eq!(parse_mode(Some("semantic")).unwrap(), Mode::Semantic);
        assert_eq!(parse_mode(Some("fuzzy")).unwrap_err().field.as_deref(), Some("mode"));
    }

    #[test]
    fn every_word_must_match_and_more_hits_rank_first() {
        let id = |n: u128| Uuid::from_u128(n);
        let rust = vec![(id(1), 1), (id(2), 3), (id(3), 1), (id(4), 1)];
        let web = vec![(id(1), 1), (id(3), 2), (id(4), 1), (id(5), 3)];
        // 3: 1+2, then 1 and 4 tie at 2 and the newer (larger) id goes first; 2 and 5 miss a word.
        assert_eq!(rank_matches(vec![rust.clone(), web]), vec![id(3), id(4), id(1)]);
        assert_eq!(rank_matches(vec![rust]), vec![id(2), id(4), id(3), id(1)]);
        assert!(rank_matches(vec![]).is_empty());
    }
}
