//! What the owner of a Kafka partition knows about the rollup rows it writes.
//!
//! Only the owner writes the rows of its partition's videos, so what it has read
//! or written stays true for as long as it owns the partition. Knowledge is kept
//! per Cassandra partition of the rollups table ([`PartKey`]): after a range read
//! of buckets `from..` the owner knows every row at or after `from`, including the
//! ones that do *not* exist. A new minute row then costs no read: one range read
//! per (video, kind, granularity) per ownership, instead of one read per new row.
//!
//! Knowledge may always be dropped (eviction, a cap on rows per partition); it is
//! never guessed.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use crate::kind::EventKind;
use crate::rollup::{RowKey, StoredRow};
use crate::time::Granularity;

/// Partition key of the rollups table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartKey {
    pub video_id: Uuid,
    pub kind: EventKind,
    pub granularity: Granularity,
}

impl RowKey {
    pub fn part(&self) -> PartKey {
        PartKey { video_id: self.video_id, kind: self.kind, granularity: self.granularity }
    }
}

/// A read that makes every row of `part` with `from ≤ bucket < until` known
/// (`until = None`: no upper bound).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeRead {
    pub part: PartKey,
    pub from: i64,
    pub until: Option<i64>,
}

impl RangeRead {
    /// Everything of the read but its video: reads of one shape can go as one
    /// request (`video_id IN`).
    pub fn shape(&self) -> (EventKind, Granularity, i64, Option<i64>) {
        (self.part.kind, self.part.granularity, self.from, self.until)
    }

    /// Whether two reads differ only in their video.
    pub fn same_shape(&self, other: &RangeRead) -> bool {
        self.shape() == other.shape()
    }
}

#[derive(Debug)]
struct Known {
    /// Every row with `bucket ≥ from` is in `rows`; `i64::MAX`: none is known
    /// that way (only the rows in `rows` are).
    from: i64,
    rows: BTreeMap<i64, StoredRow>,
    touched: u64,
}

/// Most rows kept for one partition; older ones are forgotten (by raising
/// `from`), which bounds the memory of a video that is hot for weeks.
pub const MAX_ROWS_PER_PART: usize = 4096;

#[derive(Debug)]
pub struct RowCache {
    parts: HashMap<PartKey, Known>,
    flushes: u64,
    max_rows_per_part: usize,
}

impl Default for RowCache {
    fn default() -> Self {
        Self::with_cap(MAX_ROWS_PER_PART)
    }
}

impl RowCache {
    pub fn with_cap(max_rows_per_part: usize) -> Self {
        Self { parts: HashMap::new(), flushes: 0, max_rows_per_part: max_rows_per_part.max(1) }
    }

    /// `Some(Some(row))`: stored; `Some(None)`: known not to exist; `None`: unknown.
    pub fn lookup(&self, key: &RowKey) -> Option<Option<StoredRow>> {
        let known = self.parts.get(&key.part())?;
        match known.rows.get(&key.bucket_ms) {
            Some(row) => Some(Some(*row)),
            None if key.bucket_ms >= known.from => Some(None),
            None => None,
        }
    }

    /// The range reads, at most one per partition, after which every key in
    /// `keys` is known. `keys` must be sorted (as [`FlushPlan`](crate::FlushPlan)
    /// deltas are), so the keys of one partition are adjacent.
    pub fn missing<'a>(&self, keys: impl IntoIterator<Item = &'a RowKey>) -> Vec<RangeRead> {
        let mut reads: Vec<RangeRead> = Vec::new();
        for key in keys {
            if self.lookup(key).is_some() {
                continue;
            }
            let part = key.part();
            match reads.last_mut() {
                Some(r) if r.part == part => r.from = r.from.min(key.bucket_ms),
                _ => {
                    let until = self.parts.get(&part).map(|k| k.from).filter(|&f| f != i64::MAX);
                    reads.push(RangeRead { part, from: key.bucket_ms, until });
                }
            }
        }
        reads
    }

    /// Records a range read's answer: `rows` are all the rows of `read.part` with
    /// buckets in the range.
    pub fn learn(&mut self, read: &RangeRead, rows: impl IntoIterator<Item = (i64, StoredRow)>) {
        let flushes = self.flushes;
        let known = self.parts.entry(read.part).or_insert_with(|| Known {
            from: i64::MAX,
            rows: BTreeMap::new(),
            touched: flushes,
        });
        for (bucket, row) in rows {
            debug_assert!(bucket >= read.from && read.until.is_none_or(|u| bucket < u));
            known.rows.insert(bucket, row);
        }
        // The range joins the known region only if it reaches it (or is unbounded).
        if read.until.is_none() || read.until == Some(known.from) {
            known.from = known.from.min(read.from);
        }
        known.touched = flushes;
    }

    /// Records what a row holds after this owner wrote it.
    pub fn put(&mut self, key: RowKey, row: StoredRow) {
        let flushes = self.flushes;
        let known = self.parts.entry(key.part()).or_insert_with(|| Known {
            from: i64::MAX,
            rows: BTreeMap::new(),
            touched: flushes,
        });
        known.rows.insert(key.bucket_ms, row);
        known.touched = flushes;
    }

    /// Ends a flush: forgets partitions untouched for `idle` flushes, and the
    /// oldest rows of partitions over the cap. Never during a flush, which relies
    /// on what its reads taught the cache.
    pub fn sweep(&mut self, idle: u64) {
        self.flushes += 1;
        let (now, max) = (self.flushes, self.max_rows_per_part);
        self.parts.retain(|_, k| {
            cap(k, max);
            now - k.touched <= idle
        });
    }

    /// Rows held, for the gauge.
    pub fn rows(&self) -> usize {
        self.parts.values().map(|k| k.rows.len()).sum()
    }
}

fn cap(known: &mut Known, max: usize) {
    while known.rows.len() > max {
        let (oldest, _) = known.rows.pop_first().expect("not empty");
        // Buckets after `oldest` are still known; `oldest` itself no longer is.
        known.from = known.from.max(oldest + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(video: u8, granularity: Granularity, bucket_ms: i64) -> RowKey {
        RowKey { video_id: Uuid::from_bytes([video; 16]), kind: EventKind::View, granularity, bucket_ms }
    }

    fn row(value: i64) -> StoredRow {
        StoredRow { value, last_offset: value, tally: None }
    }

    #[test]
    fn a_range_read_makes_absent_rows_known() {
        let mut c = RowCache::default();
        let (k5, k7, k9) =
            (key(1, Granularity::Minute, 5), key(1, Granularity::Minute, 7), key(1, Granularity::Minute, 9));
        assert_eq!(c.missing([&k7, &k9]), vec![RangeRead { part: k7.part(), from: 7, until: None }]);
        c.learn(&RangeRead { part: k7.part(), from: 7, until: None }, [(9, row(3))]);
        assert_eq!(c.lookup(&k7), Some(None));
        assert_eq!(c.lookup(&k9), Some(Some(row(3))));
        assert_eq!(c.lookup(&key(1, Granularity::Minute, 1_000)), Some(None));
        // Older than the known region: read only the gap.
        assert_eq!(c.lookup(&k5), None);
        assert_eq!(c.missing([&k5, &k9]), vec![RangeRead { part: k5.part(), from: 5, until: Some(7) }]);
        // Another partition is unknown.
        assert_eq!(c.lookup(&key(1, Granularity::Hour, 9)), None);
    }

    #[test]
    fn idle_partitions_are_forgotten() {
        let mut c = RowCache::default();
        let k = key(1, Granularity::Total, 0);
        c.learn(&RangeRead { part: k.part(), from: 0, until: None }, []);
        c.sweep(1);
        assert_eq!(c.lookup(&k), Some(None));
        c.sweep(1);
        assert_eq!(c.lookup(&k), None);
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// The owner needs these rows: it reads what is missing, then writes them.
        Flush(Vec<(u8, u8, i64)>),
        Sweep,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => prop::collection::vec((0u8..3, 0u8..4, 0i64..40), 1..12).prop_map(Op::Flush),
            1 => Just(Op::Sweep),
        ]
    }

    proptest! {
        /// Against a store that only the owner writes (plus rows that existed before
        /// it took over), the cache never claims anything the store does not hold.
        #[test]
        fn the_cache_never_lies(before in prop::collection::vec((0u8..3, 0u8..4, 0i64..40, 1i64..9), 0..30),
                                ops in prop::collection::vec(op(), 1..40),
                                cap in prop_oneof![Just(3usize), Just(MAX_ROWS_PER_PART)]) {
            let g = |i: u8| Granularity::ALL[i as usize];
            let mut store: BTreeMap<RowKey, StoredRow> = before
                .into_iter()
                .map(|(v, gi, b, x)| (key(v, g(gi), b), row(x)))
                .collect();
            let mut cache = RowCache::with_cap(cap);
            let mut next = 100;
            for op in ops {
                match op {
                    Op::Sweep => cache.sweep(2),
                    Op::Flush(keys) => {
                        let mut keys: Vec<RowKey> = keys.into_iter().map(|(v, gi, b)| key(v, g(gi), b)).collect();
                        keys.sort_unstable();
                        keys.dedup();
                        for read in cache.missing(&keys) {
                            let rows: Vec<(i64, StoredRow)> = store
                                .iter()
                                .filter(|(k, _)| {
                                    k.part() == read.part && k.bucket_ms >= read.from
                                        && read.until.is_none_or(|u| k.bucket_ms < u)
                                })
                                .map(|(k, r)| (k.bucket_ms, *r))
                                .collect();
                            cache.learn(&read, rows);
                        }
                        for k in &keys {
                            let known = cache.lookup(k);
                            prop_assert_eq!(known, Some(store.get(k).copied()), "key {:?}", k);
                            next += 1;
                            store.insert(*k, row(next));
                            cache.put(*k, row(next));
                        }
                    }
                }
                for v in 0..3 {
                    for gi in 0..4 {
                        for b in 0..40 {
                            let k = key(v, g(gi), b);
                            if let Some(known) = cache.lookup(&k) {
                                prop_assert_eq!(known, store.get(&k).copied(), "key {:?}", k);
                            }
                        }
                    }
                }
            }
        }
    }
}
