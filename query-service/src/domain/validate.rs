//! Field rules of the catalog's requests: names, emails, passwords, titles,
//! descriptions, tags and id lists. Each failure is a 422 naming the field; the
//! limits here are the ones the OpenAPI document states.

use std::collections::BTreeSet;

use platform::http::{Problem, parse_uuid};
use uuid::Uuid;

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_EMAIL_BYTES: usize = 254;
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 1024;
pub const MAX_TITLE_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_CHARS: usize = 50;
pub const MAX_COMMENT_CHARS: usize = 1000;
/// `videoIds` of the many-at-once playback stats.
pub const MAX_STATS_IDS: usize = 100;

/// `s` without the whitespace every reading of the OpenAPI document's
/// `pattern: \S` agrees on: tab, line feed, vertical tab, form feed, carriage
/// return and space. JSON Schema patterns are ECMA-262 regular expressions, whose
/// `\s` also takes U+FEFF and the Unicode spaces but not U+0085, which Rust's
/// `trim` takes; fuzzers read `\s` in ECMA or ASCII terms. Trimming only what all
/// of them call whitespace refuses no text the document allows as blank
/// (schemathesis found a comment of U+0085 refused, 2026-11-30).
pub fn trim_blank(s: &str) -> &str {
    s.trim_matches(|c: char| matches!(c, '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' '))
}

/// A first or last name: trimmed, 1 to 100 characters.
pub fn name(field: &str, value: &str) -> Result<String, Problem> {
    let v = trim_blank(value);
    if v.is_empty() || v.chars().count() > MAX_NAME_CHARS {
        return Err(Problem::invalid(field, format!("must be 1 to {MAX_NAME_CHARS} characters")));
    }
    Ok(v.to_owned())
}

/// Emails are compared lower-cased: `Ann@x.org` and `ann@x.org` are one account.
pub fn email(value: &str) -> Result<String, Problem> {
    let v = value.trim().to_lowercase();
    let ok = v.len() <= MAX_EMAIL_BYTES
        && !v.chars().any(char::is_whitespace)
        && v.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if !ok {
        return Err(Problem::invalid("email", "not an email address"));
    }
    Ok(v)
}

pub fn password(value: &str) -> Result<(), Problem> {
    if value.chars().count() < MIN_PASSWORD_CHARS || value.len() > MAX_PASSWORD_BYTES {
        return Err(Problem::invalid("password", format!("must be at least {MIN_PASSWORD_CHARS} characters")));
    }
    Ok(())
}

/// Optional text: trimmed, then 1 to `max` characters.
pub fn text(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, Problem> {
    match value.map(|v| trim_blank(&v).to_owned()) {
        Some(v) if v.is_empty() || v.chars().count() > max => {
            Err(Problem::invalid(field, format!("must be 1 to {max} characters")))
        }
        v => Ok(v),
    }
}

/// A tag as stored: trimmed, 1 to 50 characters as sent, then lower-cased. The
/// length is the sent one, as the document's `maxLength` counts it: a few
/// capitals lower-case to two characters ('İ' to "i̇"), so counting afterwards
/// refused tags the document allows.
pub fn normal_tag(field: &str, raw: &str) -> Result<String, Problem> {
    let tag = trim_blank(raw);
    if tag.is_empty() || tag.chars().count() > MAX_TAG_CHARS {
        return Err(Problem::invalid(field, format!("must be 1 to {MAX_TAG_CHARS} characters")));
    }
    Ok(tag.to_lowercase())
}

/// At most 20 tags, each normalised; the one at fault is named `tags[i]`.
pub fn tags(value: Option<Vec<String>>) -> Result<Option<BTreeSet<String>>, Problem> {
    let Some(tags) = value else { return Ok(None) };
    if tags.len() > MAX_TAGS {
        return Err(Problem::invalid("tags", format!("at most {MAX_TAGS} tags")));
    }
    let mut out = BTreeSet::new();
    for (i, t) in tags.iter().enumerate() {
        out.insert(normal_tag(&format!("tags[{i}]"), t)?);
    }
    Ok(Some(out))
}

/// `videoIds`: 1 to 100 comma-separated UUIDs; duplicates are answered once, in
/// the place of their first occurrence.
pub fn video_ids(raw: Option<&String>) -> Result<Vec<Uuid>, Problem> {
    let raw = raw.map(|s| s.trim()).unwrap_or_default();
    let parts: Vec<&str> = raw.split(',').collect();
    if raw.is_empty() || parts.len() > MAX_STATS_IDS {
        return Err(Problem::invalid("videoIds", format!("1 to {MAX_STATS_IDS} comma-separated video ids")));
    }
    let mut ids = Vec::with_capacity(parts.len());
    for part in parts {
        let id = parse_uuid("videoIds", part.trim())?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text the OpenAPI document allows (`pattern: \S` in any regex dialect) is
    /// never refused as blank; what every dialect calls whitespace is.
    #[test]
    fn blank_is_only_what_every_reading_of_the_pattern_calls_whitespace() {
        for allowed in ["\u{85}", "\u{a0}", "\u{3000}", "\u{feff}", " a "] {
            assert!(name("firstName", allowed).is_ok(), "{allowed:?}");
            assert!(text("title", Some(allowed.into()), 100).unwrap().is_some_and(|t| !t.is_empty()), "{allowed:?}");
            assert!(normal_tag("tag", allowed).is_ok(), "{allowed:?}");
        }
        assert_eq!(name("firstName", " \t Ann\r\n").unwrap(), "Ann");
        for blank in ["", " ", "\t\n\u{0B}\u{0C}\r "] {
            assert_eq!(name("firstName", blank).unwrap_err().field.as_deref(), Some("firstName"), "{blank:?}");
            assert_eq!(text("title", Some(blank.into()), 100).unwrap_err().field.as_deref(), Some("title"));
            assert_eq!(normal_tag("tag", blank).unwrap_err().field.as_deref(), Some("tag"));
        }
    }

    #[test]
    fn video_ids_are_checked_and_deduplicated() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let q = |s: String| video_ids(Some(&s));
        assert_eq!(q(format!("{b}, {a},{b}")).unwrap(), vec![b, a]);
        for bad in [String::new(), " ".into(), format!("{a},nope"), format!("{a},"), format!("{a};{b}")] {
            assert_eq!(q(bad.clone()).unwrap_err().field.as_deref(), Some("videoIds"), "{bad:?}");
        }
        assert_eq!(video_ids(None).unwrap_err().field.as_deref(), Some("videoIds"));
        let many: Vec<String> = (0..101u128).map(|n| Uuid::from_u128(n).to_string()).collect();
        assert_eq!(q(many.join(",")).unwrap_err().field.as_deref(), Some("videoIds"));
        assert_eq!(q(many[..100].join(",")).unwrap().len(), 100);
    }

    #[test]
    fn tags_are_normalised_and_the_bad_one_named() {
        let t = tags(Some(vec![" Music ".into(), "music".into(), "80s".into()])).unwrap().unwrap();
        assert_eq!(t.into_iter().collect::<Vec<_>>(), ["80s", "music"]);
        let p = tags(Some(vec!["ok".into(), " ".into()])).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("tags[1]"));
        assert_eq!(tags(Some(vec!["x".into(); 21])).unwrap_err().field.as_deref(), Some("tags"));
        // 50 characters as sent is allowed even where lower case is longer.
        let dotted = "İ".repeat(MAX_TAG_CHARS);
        assert_eq!(normal_tag("tag", &dotted).unwrap(), dotted.to_lowercase());
        assert!(dotted.to_lowercase().chars().count() > MAX_TAG_CHARS);
        assert_eq!(normal_tag("tag", &format!("{dotted}x")).unwrap_err().field.as_deref(), Some("tag"));
    }

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(email(" Ann@Example.org ").unwrap(), "ann@example.org");
        for bad in ["ann", "@x.org", "a b@x.org", "ann@localhost"] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }
}
