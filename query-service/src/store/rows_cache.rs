//! A cache of the span reads behind counts (issue 15, target 6).
//!
//! A count reads one clustering range per span of its plan (a 30-day range is
//! four: hours, days, hours, minutes), and a dashboard asks the same ones again
//! and again. The rows change only when a round writes the series, and every
//! round that completes writes the series' all-time row last (its last batch)
//! with a new `last_offset` and a later write timestamp (the writer's epoch and
//! the round's offset). So a read first reads that one row, its **validator**
//! (sum, `last_offset`, write time; `None`: no all-time row), and reuses the
//! spans read while the validator was the same; a changed validator reads them
//! again.
//!
//! Why that keeps `counting::fresh`'s rule although cached rows were read before
//! the owner answered: the validator is read after the answer, and a timestamp
//! never goes back (a later write wins), so an unchanged validator means no
//! round of the series completed between the cached read and now. A round in
//! flight, or one that died part-way, may have written rows beside it; its
//! events are still held by the owner that answered (and the cached rows'
//! `last_offset`s say they are not in them), or the owner is not ready and the
//! answer is the rows alone. `counting::rounds::tests` checks exactly this: a
//! reader that answers from rows it read any number of steps earlier, whenever
//! the all-time row is unchanged, over every schedule, crash and late landing the
//! round simulation produces.
//!
//! Bounded by the rows it holds (`counts.rows_cache_rows`, 0: off) and by age
//! (`counts.rows_cache_ms`), so rows that expire by TTL or change outside the
//! rounds (an operator's copy) are not served for longer than that.

use std::sync::Arc;
use std::time::{Duration, Instant};

use counting::fresh::RowStamp;
use counting::{EventKind, Span};
use quick_cache::Weighter;
use quick_cache::sync::Cache;
use uuid::Uuid;

use crate::metrics::ROWS_CACHE;

/// The all-time row as read: sum, `last_offset` and the write time of the sum;
/// `None`: the series has no all-time row.
pub type Validator = Option<(Option<i64>, Option<i64>, Option<i64>)>;

/// One span's rows as the freshness rule reads them: their sum, and each
/// row's stamp by bucket (`None`: a row with a sum but no stamp to judge it by).
#[derive(Debug, Default)]
pub struct StampedSpan {
    pub sum: i64,
    pub stamps: Vec<(i64, Option<RowStamp>)>,
}

impl StampedSpan {
    pub fn stamp(&self, bucket: i64) -> Option<RowStamp> {
        self.stamps.iter().find(|(b, _)| *b == bucket).and_then(|(_, s)| *s)
    }

    pub fn unstamped(&self) -> bool {
        self.stamps.iter().any(|(_, s)| s.is_none())
    }
}

/// The spans one series kept, read while its all-time row was `validator`.
#[derive(Clone)]
struct Entry {
    validator: Validator,
    since: Instant,
    spans: Arc<Vec<(Span, Arc<StampedSpan>)>>,
}

/// An entry weighs the rows it holds (at least one).
#[derive(Clone)]
struct Rows;

impl Weighter<(Uuid, EventKind), Entry> for Rows {
    fn weight(&self, _key: &(Uuid, EventKind), entry: &Entry) -> u64 {
        entry.spans.iter().map(|(_, s)| s.stamps.len() as u64 + 1).sum::<u64>().max(1)
    }
}

/// The most spans one series keeps: two reads' plans (a 30-day one is four
/// spans); older ones make way.
const MAX_SPANS: usize = 8;

pub struct RowsCache {
    cache: Cache<(Uuid, EventKind), Entry, Rows>,
    max_age: Duration,
}

impl RowsCache {
    /// A cache of up to `rows` rows, each kept up to `max_age`; `None` when `rows` is 0.
    pub fn new(rows: u64, max_age: Duration) -> Option<Self> {
        (rows > 0).then(|| Self {
            // About a read's rows per series (a 30-day plan is ~130 rows).
            cache: Cache::with_weighter((rows / 64).max(16) as usize, rows, Rows),
            max_age,
        })
    }

    /// The spans of `wanted` kept for the series at `validator`, by position;
    /// counted as hits and misses.
    pub fn get(
        &self,
        video: Uuid,
        kind: EventKind,
        validator: Validator,
        wanted: &[Span],
    ) -> Vec<Option<Arc<StampedSpan>>> {
        let entry = self.current(&(video, kind), validator);
        let found: Vec<Option<Arc<StampedSpan>>> = wanted
            .iter()
            .map(|w| entry.as_ref().and_then(|e| e.spans.iter().find(|(s, _)| s == w)).map(|(_, r)| r.clone()))
            .collect();
        let hits = found.iter().filter(|f| f.is_some()).count() as u64;
        ROWS_CACHE.counter_with(&[("outcome", "hit")]).increment(hits);
        ROWS_CACHE.counter_with(&[("outcome", "miss")]).increment(wanted.len() as u64 - hits);
        found
    }

    /// The series' entry if it was read at `validator` and is not too old.
    fn current(&self, key: &(Uuid, EventKind), validator: Validator) -> Option<Entry> {
        self.cache.get(key).filter(|e| e.validator == validator && e.since.elapsed() < self.max_age)
    }

    /// Keeps `read` (spans read after `validator` was read) for the series: beside
    /// what it kept at the same validator, or instead of an entry at another.
    pub fn put(&self, video: Uuid, kind: EventKind, validator: Validator, read: Vec<(Span, Arc<StampedSpan>)>) {
        if read.is_empty() {
            return;
        }
        let key = (video, kind);
        let mut spans = read;
        let mut since = Instant::now();
        if let Some(old) = self.current(&key, validator) {
            // The entry's age is its oldest read's.
            since = old.since;
            let older: Vec<_> = old.spans.iter().filter(|(s, _)| !spans.iter().any(|(n, _)| n == s)).cloned().collect();
            spans.extend(older);
        }
        spans.truncate(MAX_SPANS);
        self.cache.insert(key, Entry { validator, since, spans: Arc::new(spans) });
    }
}

#[cfg(test)]
mod tests {
    use counting::Granularity;

    use super::*;

    fn span(start: i64) -> Span {
        Span { granularity: Granularity::Minute, start, end: start + 60_000 }
    }

    fn rows(sum: i64) -> Arc<StampedSpan> {
        Arc::new(StampedSpan { sum, stamps: vec![(0, Some(RowStamp::new(7, 1 << 40)))] })
    }

    #[test]
    fn spans_answer_only_at_the_validator_they_were_read_at() {
        let cache = RowsCache::new(1000, Duration::from_secs(60)).expect("on");
        let (video, kind) = (Uuid::from_u128(1), EventKind::View);
        let v1: Validator = Some((Some(5), Some(7), Some(1 << 40)));
        let v2: Validator = Some((Some(6), Some(9), Some(1 << 40 | 9)));
        cache.put(video, kind, v1, vec![(span(0), rows(5))]);
        cache.put(video, kind, v1, vec![(span(60_000), rows(1))]);
        let got = cache.get(video, kind, v1, &[span(0), span(60_000), span(120_000)]);
        assert_eq!(got.iter().map(|g| g.as_ref().map(|s| s.sum)).collect::<Vec<_>>(), [Some(5), Some(1), None]);
        // Another validator: nothing kept answers, and its own read replaces the entry.
        assert!(cache.get(video, kind, v2, &[span(0)])[0].is_none());
        cache.put(video, kind, v2, vec![(span(0), rows(6))]);
        assert!(cache.get(video, kind, v1, &[span(0)])[0].is_none());
        assert_eq!(cache.get(video, kind, v2, &[span(0), span(60_000)])[0].as_ref().map(|s| s.sum), Some(6));
        assert!(cache.get(video, kind, v2, &[span(60_000)])[0].is_none());
        // A series with no all-time row is a validator too.
        cache.put(video, EventKind::Like, None, vec![(span(0), rows(0))]);
        assert!(cache.get(video, EventKind::Like, None, &[span(0)])[0].is_some());
        assert!(cache.get(video, EventKind::Like, v1, &[span(0)])[0].is_none());
    }

    #[test]
    fn entries_age_out_and_off_is_none() {
        assert!(RowsCache::new(0, Duration::from_secs(60)).is_none());
        let cache = RowsCache::new(1000, Duration::ZERO).expect("on");
        let (video, kind) = (Uuid::from_u128(1), EventKind::View);
        cache.put(video, kind, None, vec![(span(0), rows(5))]);
        assert!(cache.get(video, kind, None, &[span(0)])[0].is_none());
    }

    #[test]
    fn a_series_keeps_a_bounded_number_of_spans_newest_first() {
        let cache = RowsCache::new(1000, Duration::from_secs(60)).expect("on");
        let (video, kind) = (Uuid::from_u128(1), EventKind::View);
        for i in 0..(MAX_SPANS as i64 + 3) {
            cache.put(video, kind, None, vec![(span(i * 60_000), rows(i))]);
        }
        let all: Vec<Span> = (0..(MAX_SPANS as i64 + 3)).map(|i| span(i * 60_000)).collect();
        let kept = cache.get(video, kind, None, &all);
        assert_eq!(kept.iter().filter(|k| k.is_some()).count(), MAX_SPANS);
        assert!(kept.last().expect("some").is_some(), "the newest read is kept");
        assert!(kept[0].is_none(), "the oldest made way");
    }
}
