//! The catalog's index rules (migration 006): which rows a video's state puts in
//! the indexes, and how the latest list walks its day partitions.
//!
//! * Latest videos: a partition per UTC day (`yyyymmdd`, as KillrVideo), and
//!   `latest_video_days` with each day's count, so a page skips whole days by
//!   their counts and reads only the days it overlaps (at most pageSize + 1).
//! * Tag suggestions: each tag is stored under its first 1, 2 and 3 characters.
//! * Search: each word of a video's title, description and tags, with in how many
//!   of the three it occurs (`crate::domain::search::index_words`).

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

pub use crate::domain::search::index_words;

/// What the indexes know of a video: enough to add it, or to compare two states of it.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    pub id: Uuid,
    pub user: Option<Uuid>,
    pub submitted_ms: i64,
    pub title: &'a str,
    pub description: &'a str,
    pub tags: &'a BTreeSet<String>,
}

/// Suggestion partitions are a tag's first 1, 2 and 3 characters.
pub const PREFIX_CHARS: usize = 3;

/// The suggestion partitions a tag is stored under.
pub fn prefixes(tag: &str) -> impl Iterator<Item = String> + '_ {
    let ends: Vec<usize> = tag.char_indices().map(|(i, _)| i).skip(1).chain([tag.len()]).take(PREFIX_CHARS).collect();
    ends.into_iter().map(move |end| tag[..end].to_owned())
}

/// The UTC day of `ms` as KillrVideo names its `latest_videos` partitions.
pub fn yyyymmdd(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%Y%m%d").to_string()
}

/// Which day partitions hold items `[offset, offset + len)` of the newest-first list,
/// given each day's count (newest day first): `(day, skip, take)` per day read.
pub fn plan_days(days: &[(String, u64)], offset: usize, len: usize) -> Vec<(&str, usize, usize)> {
    let (start, end) = (offset as u64, offset as u64 + len as u64);
    let mut at = 0u64;
    let mut plan = Vec::new();
    for (day, n) in days {
        let (from, to) = (at.max(start), (at + n).min(end));
        if from < to {
            plan.push((day.as_str(), (from - at) as usize, (to - from) as usize));
        }
        at += n;
        if at >= end {
            break;
        }
    }
    plan
}

/// Words whose hits are new or different in `new`.
pub fn changed<'a>(old: &BTreeMap<String, i32>, new: &'a BTreeMap<String, i32>) -> Vec<(&'a str, i32)> {
    new.iter().filter(|(w, h)| old.get(*w) != Some(h)).map(|(w, h)| (w.as_str(), *h)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(counts: &[(&str, u64)]) -> Vec<(String, u64)> {
        counts.iter().map(|(d, n)| (d.to_string(), *n)).collect()
    }

    #[test]
    fn pages_span_days_and_skip_whole_ones() {
        let d = days(&[("20261123", 3), ("20261122", 0), ("20261120", 4), ("20261101", 2)]);
        assert_eq!(plan_days(&d, 0, 2), vec![("20261123", 0, 2)]);
        assert_eq!(plan_days(&d, 2, 3), vec![("20261123", 2, 1), ("20261120", 0, 2)]);
        assert_eq!(plan_days(&d, 3, 4), vec![("20261120", 0, 4)]);
        assert_eq!(plan_days(&d, 6, 10), vec![("20261120", 3, 1), ("20261101", 0, 2)]);
        assert!(plan_days(&d, 9, 10).is_empty());
        assert!(plan_days(&[], 0, 10).is_empty());
    }

    #[test]
    fn tags_are_stored_under_their_first_three_characters() {
        assert_eq!(prefixes("music").collect::<Vec<_>>(), ["m", "mu", "mus"]);
        assert_eq!(prefixes("80s").collect::<Vec<_>>(), ["8", "80", "80s"]);
        assert_eq!(prefixes("ok").collect::<Vec<_>>(), ["o", "ok"]);
        assert_eq!(prefixes("été d'or").collect::<Vec<_>>(), ["é", "ét", "été"]);
    }

    #[test]
    fn days_are_utc() {
        assert_eq!(yyyymmdd(1_710_028_800_000 - 1), "20240309");
        assert_eq!(yyyymmdd(1_710_028_800_000), "20240310");
    }

    #[test]
    fn only_new_or_different_words_are_rewritten() {
        let old: BTreeMap<String, i32> = [("a".into(), 1), ("b".into(), 2)].into();
        let new: BTreeMap<String, i32> = [("a".into(), 1), ("b".into(), 1), ("c".into(), 3)].into();
        assert_eq!(changed(&old, &new), vec![("b", 1), ("c", 3)]);
    }
}
