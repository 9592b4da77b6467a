//! Flush rounds: each (video, event type) written on its own cadence, exactly once.
//!
//! [`crate::rollup`]'s protocol writes every touched row on every flush, so the
//! rows per flush grow with the distinct videos per flush interval: under a long
//! tail nearly every event is a video of its own, and pre-aggregation stops
//! paying. Here each *series* (a video and an event type: one `last_offset` floor,
//! see below) keeps its own pending deltas and is written when *it* is due: a hot
//! series every few seconds, a tail series once a minute or so. The Kafka offset
//! committed is the first offset still pending in any series.
//!
//! The protocol (R1–R7; [`crate::protocol`] says how it maps onto P1–P10), for one
//! Kafka partition owned by one aggregator (`epoch` is its fencing token, bumped by
//! a lightweight transaction when it claims the partition; `attempted` is
//! `partition_state.attempted`):
//!
//! - **R1 Claim.** Bump `epoch` (LWT), then read `attempted = A` linearizably and
//!   the committed offset `c` from Kafka. Offsets `c..=A` are the *replay region*.
//! - **R2 Census** (only if `A ≥ c`). Read the log `c..=A` once for the distinct
//!   series it holds, and each series' *floor*: the `last_offset` of its all-time
//!   row (-1 if it has none). Every write of a series ends with its all-time row
//!   (R6: in the last batch, atomic within the series' Cassandra partition), so
//!   the floor is an offset through which *every* row of the series holds
//!   the series' events.
//! - **R3 Fold** from `c`. An event at offset `o` of series `s` is skipped if
//!   `o ≤ floor(s)`: the store holds it already. Otherwise it is pending.
//! - **R4 Rounds.** No round starts before the fold reaches `A`; at `A` (or, if that
//!   message is gone, just before the first offset past it) one *fenced* round
//!   writes *every* pending series at exactly `b = A`, as the previous owner's last
//!   round did. From then on rounds pick the due series ([`Cadence`]) at `b` = the
//!   last offset folded. Each round first records `attempted = b` with
//!   `IF epoch = <mine>`; if that fails a newer owner exists and this one stops
//!   writing the partition.
//! - **R5 Resolve** each row of each series in the round against what the store
//!   holds (the owner's cache or a read), by the row's own `last_offset` `lo`:
//!   `lo ≥ b`: the row holds its part of the round already, skip it;
//!   `lo < first` (the series' first pending offset): write `value + delta`,
//!   and the row's [`Tally`](crate::rollup::Tally) (event count, min, max of
//!   event values) merged with the delta's, whole, in the same write;
//!   anything else: [`Overlap`] (offsets rewound by hand), refuse to guess.
//! - **R6 Write** each series' rows with `last_offset = b` and
//!   [`write_timestamp`](crate::write_timestamp)`(epoch, b)`, the all-time row
//!   **last**: in the series' last batch ([`SeriesWrites::batches`]), sent once
//!   its other batches are acknowledged. The rows of a series share one
//!   Cassandra partition, which applies a batch atomically, so a series of up to
//!   a batch's rows (nearly all) is one mutation, all-time row included.
//! - **R7 Commit** the round's [`Round::commit`]: the first offset still pending in
//!   any series, or `b + 1` when none is.
//!
//! Why it is exact:
//! * Every row holds exactly the events of its bucket up to its own `last_offset`
//!   (the invariant the simulation checks after every single write), and the
//!   all-time row's `last_offset` is the series' floor: a write that reached it
//!   reached every other row of the series, before it or in the same atomic
//!   batch.
//! * Only one round can be in doubt, the one at `A`: rounds run one after the
//!   other, a round's LWT runs only after the previous round's writes were all
//!   acknowledged, and every earlier round in `c..=A` is complete, so the census
//!   floor covers it. The fenced round redoes the round at `A` with the same
//!   offsets: a row it finds written by the in-doubt round has `lo = A = b` and is
//!   skipped; a row it finds unwritten gets the whole delta. If the fenced round
//!   is cut short in turn, it leaves the same `A` and the same kind of rows, so
//!   any number of crashes in a row are handled alike. (A first round at any `b`
//!   other than `A` could leave rows of two different in-doubt rounds: the
//!   simulation found that before any server was involved.)
//! * A stale owner cannot start a round (its LWT fails); writes of its in-doubt
//!   round that land late carry an older epoch in their write timestamp and lose
//!   to the fenced round's, which covers every row they touch (the same events,
//!   from the same floor, through the same `A`).
//!
//! What it costs: one LWT per round per partition, a census of the region after
//! each claim (one log read of at most a tail interval, and one single-row read per
//! series in it, which warms the owner's row cache anyway), and the commit trails
//! the oldest pending series, so a crash replays up to `max_age` of the log.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use crate::cache::{PartKey, RangeRead, RowCache};
use crate::fresh::{HeldMinute, HeldPart};
use crate::kind::EventKind;
use crate::rollup::{
    Activity, CountedEvent, Folded, Overlap, RowDelta, RowKey, RowWrite, SignedInView, StoredRow, ViewerLog, add_count,
};
use crate::time::Granularity;

/// One (video, event type): the rows whose all-time row's `last_offset` is their
/// common floor.
#[derive(Clone, Copy, Debug, Eq, PartialOrd, Ord)]
pub struct SeriesKey {
    pub video_id: Uuid,
    pub kind: EventKind,
}

// By hand, as the derives would, but with the id as one `u128`: `Uuid`'s own `==`
// is a `memcmp` call and its hash writes a length first; both ran per event in
// the fold's pending map (README, Measured, "The aggregator's hash").
impl PartialEq for SeriesKey {
    fn eq(&self, other: &Self) -> bool {
        self.video_id.as_u128() == other.video_id.as_u128() && self.kind == other.kind
    }
}

impl std::hash::Hash for SeriesKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(self.video_id.as_u128());
        self.kind.hash(state);
    }
}

impl From<&CountedEvent> for SeriesKey {
    fn from(e: &CountedEvent) -> Self {
        Self { video_id: e.video_id, kind: e.kind }
    }
}

impl RowKey {
    /// The series the row belongs to.
    pub fn series(&self) -> SeriesKey {
        SeriesKey { video_id: self.video_id, kind: self.kind }
    }
}

impl SeriesKey {
    /// The series' all-time row, whose `last_offset` is its floor.
    pub fn total_row(&self) -> RowKey {
        RowKey { video_id: self.video_id, kind: self.kind, granularity: Granularity::Total, bucket_ms: 0 }
    }
}

/// When a series with pending events is written. The aggregator builds it from
/// its `flush.*` settings (`FlushConfig::cadence`), where the defaults live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cadence {
    /// A series with at least `hot_events` pending is written once its oldest
    /// pending event is this old: popular videos stay fresh in the store.
    pub min_age_ms: i64,
    pub hot_events: u64,
    /// Every other series is written once its oldest pending event is this old:
    /// a tail video costs a write per `max_age`, not one per flush interval.
    pub max_age_ms: i64,
    /// A series touching this many rows is written at once, whatever its age:
    /// bounds one series' write (late events spread over many minutes).
    pub max_rows: usize,
}

/// A series' pending events. Small on purpose: a tail series (most of them) holds
/// one or two minutes, so the minutes are a sorted `Vec`, not a map, and the
/// counters are 32-bit (`events` saturates; a series is due long before; the
/// rows' own event counts are in each minute's [`RowDelta`]).
#[derive(Debug)]
struct Pending {
    first_offset: i64,
    /// Wall-clock time the first pending event was folded.
    since_ms: i64,
    events: u32,
    /// Rows the minutes touch: themselves, their hours and days, the all-time row.
    rows: u32,
    /// (minute bucket, delta), sorted by minute.
    minutes: Vec<(i64, RowDelta)>,
}

impl Pending {
    /// Adds `delta` to `minute`'s, counting the rows a new minute touches.
    /// True if the minute is new to the series.
    fn add(&mut self, minute: i64, delta: RowDelta) -> bool {
        self.events = self.events.saturating_add(1);
        let at = self.minutes.partition_point(|(m, _)| *m < minute);
        match self.minutes.get_mut(at) {
            Some((m, d)) if *m == minute => {
                *d = d.merge(delta);
                false
            }
            _ => {
                let (hour, day) = (Granularity::Hour.bucket(minute), Granularity::Day.bucket(minute));
                let within = |from: i64, width: i64| {
                    let i = self.minutes.partition_point(|(m, _)| *m < from);
                    self.minutes.get(i).is_some_and(|(m, _)| *m < from + width)
                };
                let new_hour = !within(hour, crate::time::HOUR_MS);
                let new_day = !within(day, crate::time::DAY_MS);
                self.rows += 1 + u32::from(new_hour) + u32::from(new_day);
                self.minutes.insert(at, (minute, delta));
                true
            }
        }
    }
}

/// The census of a replay region (R1, R2): the in-doubt round's offset
/// `through` (`attempted`), and the floor of every series with an event in
/// `committed..=through` (-1 for a series with no all-time row).
#[derive(Clone, Debug, Default)]
pub struct Census {
    pub through: i64,
    pub floors: HashMap<SeriesKey, i64>,
}

/// An event of the replay region whose series the census did not cover: the
/// census read a different log, so nothing can be decided. The adapter stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("event at offset {offset} of {key:?} is in the replay region but the census has no floor for it")]
pub struct MissingFloor {
    pub key: SeriesKey,
    pub offset: i64,
}

/// The per-partition state of an owner: pending series and the replay region.
#[derive(Debug, Default)]
pub struct PartitionCounts {
    pending: HashMap<SeriesKey, Pending, ahash::RandomState>,
    /// The (series, minute) pairs in `pending`, kept as they change: the poll
    /// loop asks for it every few hundred messages, and summing it over a
    /// hundred thousand tail series each time was a fifth of the aggregator's
    /// CPU at 160,000 batched events/s (README, Measured).
    pending_minutes: usize,
    /// `Some` until the fenced round is taken (R2 to R4).
    census: Option<Census>,
    consumed: Option<i64>,
    /// Signed-in views for the activity feed, written by the next round.
    viewers: ViewerLog,
    /// Events skipped because the store already held them (replay).
    replayed: u64,
}

/// The events of one series to write in a round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesFlush {
    pub key: SeriesKey,
    /// First pending offset of the series.
    pub first_offset: i64,
    pub events: u64,
    /// Every row the events touch with its delta, sorted: minutes, hours, days,
    /// then the all-time row, which must be written last.
    pub rows: Vec<(RowKey, RowDelta)>,
}

/// What one round writes, and what it lets the owner commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Round {
    /// The last offset folded: every row written gets `last_offset = through`, and
    /// `attempted = through` is recorded first.
    pub through: i64,
    /// The offset to commit once every write of the round is acknowledged.
    pub commit: i64,
    pub series: Vec<SeriesFlush>,
    /// Activity-feed entries folded since the last round (all of them: they are
    /// keyed by their events, so a replay rewrites the same rows).
    pub activities: Vec<Activity>,
    /// Signed-in views folded since the last round, for the viewer sketches and
    /// the who-viewed list (`crate::viewers`), sorted by (video, user, time).
    pub views: Vec<SignedInView>,
    pub events: u64,
    /// The fenced round (R4): the first after a claim whose replay region was not
    /// empty, redoing the in-doubt round.
    pub fenced: bool,
}

impl Round {
    /// Nothing to write: the owner may commit without recording an attempt.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty() && self.activities.is_empty()
    }

    /// `key`'s part of the round, for readers while it is written
    /// ([`crate::fresh`]): its minutes at the round's offset. A binary search:
    /// the series are sorted by key.
    pub fn held_part(&self, key: &SeriesKey) -> Option<HeldPart> {
        let i = self.series.binary_search_by_key(key, |s| s.key).ok()?;
        Some(self.series[i].held(self.through))
    }

    /// R5's first reads: the all-time rows of the round's series that `cache`
    /// does not know (one single-row read each).
    pub fn total_reads(&self, cache: &RowCache) -> Vec<RangeRead> {
        let totals: Vec<RowKey> = self.series.iter().map(|s| s.key.total_row()).collect();
        cache.missing(&totals)
    }

    /// Once the all-time rows are known: a series without one has no rows at all,
    /// so every row of it is known absent and needs no read (R5). Returns how
    /// many series that spared a read of their other rows.
    ///
    /// Why: every write of a series ends with its all-time row (R6), so other
    /// rows without it exist only while a round is in doubt, and only the round at
    /// `attempted` can be. Its series all have events in the replay region, so the
    /// fenced round takes every one of them still without an all-time row, and
    /// writes it. The fenced round itself keeps the plain reads: there a series
    /// without an all-time row may have rows of the in-doubt round. (Treating
    /// those as absent would rewrite them with the same values, since such a
    /// series had no earlier rows and the fenced round replays exactly the
    /// in-doubt round's events of it; the simulation passes either way, but the
    /// rule is only needed where it plainly holds.)
    pub fn learn_absent_series(&self, cache: &mut RowCache) -> usize {
        if self.fenced {
            return 0;
        }
        let mut spared = 0;
        for s in &self.series {
            if cache.lookup(&s.key.total_row()) != Some(None) {
                continue;
            }
            for g in [Granularity::Minute, Granularity::Hour, Granularity::Day] {
                let part = PartKey { video_id: s.key.video_id, kind: s.key.kind, granularity: g };
                cache.learn(&RangeRead { part, from: i64::MIN, until: None }, []);
            }
            spared += 1;
        }
        spared
    }
}

/// What rule 5 makes of one series.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeriesWrites {
    /// Sorted like [`SeriesFlush::rows`]: the all-time row, if written, is last.
    pub writes: Vec<RowWrite>,
    /// Rows that already held their part of the round.
    pub skipped: usize,
}

impl SeriesWrites {
    /// The writes as the single-partition batches R6 sends, at most `max_rows`
    /// rows each (at least one): `(leading, last)`. `last` holds the all-time row
    /// (when it is written) and goes only after every batch of `leading` is
    /// acknowledged. Every row of a series shares its Cassandra partition, which
    /// applies a batch atomically, so the all-time row landing means every other
    /// row of the series landed: its `last_offset` stays the series' floor. Most
    /// series fit one batch: `leading` is then empty and the series costs one
    /// mutation.
    pub fn batches(&self, max_rows: usize) -> (std::slice::Chunks<'_, RowWrite>, &[RowWrite]) {
        let split = self.writes.len().saturating_sub(max_rows.max(1));
        let (leading, last) = self.writes.split_at(split);
        (leading.chunks(max_rows.max(1)), last)
    }
}

impl SeriesFlush {
    /// The series' minutes as a held part at offset `through` ([`crate::fresh`]).
    pub fn held(&self, through: i64) -> HeldPart {
        let minutes = self
            .rows
            .iter()
            .filter(|(k, _)| k.granularity == Granularity::Minute)
            .map(|(k, d)| HeldMinute::new(k.bucket_ms, *d))
            .collect();
        HeldPart { offset: through, minutes }
    }

    /// Applies rule 5 to every row of the series, given what the store holds for
    /// it (`None`: no row). `through` is the round's.
    pub fn resolve(
        &self,
        through: i64,
        mut stored: impl FnMut(&RowKey) -> Option<StoredRow>,
    ) -> Result<SeriesWrites, Overlap> {
        let mut out = SeriesWrites { writes: Vec::with_capacity(self.rows.len()), skipped: 0 };
        for (key, delta) in &self.rows {
            // The sum and the tally follow one rule: the row and the round's delta
            // together, or the row alone if it holds the round already. An unknown
            // tally (a row from before tallies) stays unknown.
            let (value, tally) = match stored(key) {
                None => (delta.value, Some(delta.tally)),
                Some(row) if row.last_offset >= through => {
                    out.skipped += 1;
                    continue;
                }
                Some(row) if row.last_offset < self.first_offset => {
                    (add_count(row.value, delta.value), row.tally.map(|t| t.merge(delta.tally)))
                }
                Some(row) => {
                    return Err(Overlap {
                        key: *key,
                        last_offset: row.last_offset,
                        first_offset: self.first_offset,
                        through_offset: through,
                    });
                }
            };
            out.writes.push(RowWrite { key: *key, value, last_offset: through, tally });
        }
        Ok(out)
    }
}

impl PartitionCounts {
    /// State for a newly claimed partition. `census` is `None` when the region is
    /// empty (`attempted < committed`, or no attempt was ever recorded).
    pub fn new(census: Option<Census>) -> Self {
        Self { census, ..Self::default() }
    }

    /// Folds the message at `offset` (offsets must increase). `event` is `None` for
    /// a message that counts nothing (dead-lettered, a dropped repeat) but whose
    /// offset is still consumed. `now_ms` is the wall clock, for the cadence.
    ///
    /// [`Folded::FlushNow`]: the fold reached the in-doubt round's offset; take the
    /// fenced round ([`take_all`](Self::take_all)) before folding more.
    /// [`Folded::FlushFirst`]: `offset` is past it and its own message never came;
    /// take the fenced round (it ends at that offset), then fold this one again.
    pub fn fold(&mut self, offset: i64, event: Option<&CountedEvent>, now_ms: i64) -> Result<Folded, MissingFloor> {
        self.fold_all(offset, event.map_or(&[], std::slice::from_ref), now_ms)
    }

    /// Folds every event of the message at `offset` (a pack's; none for a message
    /// that counts nothing), all at once: no round can fall between two events of
    /// one offset. That is what keeps R3 exact for a pack: a series' floor covers
    /// every event of the series at or below it, so each event is skipped or
    /// counted by its own series' floor, and a round that wrote one series of the
    /// pack and not another leaves the other to be counted on replay.
    /// Otherwise as [`fold`](Self::fold); on [`MissingFloor`] nothing is folded.
    pub fn fold_all(&mut self, offset: i64, events: &[CountedEvent], now_ms: i64) -> Result<Folded, MissingFloor> {
        debug_assert!(self.consumed.is_none_or(|c| offset > c), "offsets must increase");
        let Some(census) = &self.census else {
            for e in events {
                self.add(offset, e, now_ms);
            }
            self.consumed = Some(offset);
            return Ok(Folded::Folded);
        };
        let through = census.through;
        if offset > through {
            // The message at `through` is gone: it counted nothing, as far as this
            // owner can tell, and the fenced round ends there all the same.
            self.consumed = Some(through);
            return Ok(Folded::FlushFirst);
        }
        let mut floors = Vec::with_capacity(events.len());
        for e in events {
            let key = SeriesKey::from(e);
            floors.push(*census.floors.get(&key).ok_or(MissingFloor { key, offset })?);
        }
        for (e, floor) in events.iter().zip(floors) {
            if offset <= floor {
                self.replayed += 1;
            } else {
                self.add(offset, e, now_ms);
            }
        }
        self.consumed = Some(offset);
        Ok(if offset == through { Folded::FlushNow } else { Folded::Folded })
    }

    fn add(&mut self, offset: i64, e: &CountedEvent, now_ms: i64) {
        let p = self.pending.entry(SeriesKey::from(e)).or_insert_with(|| Pending {
            first_offset: offset,
            since_ms: now_ms,
            events: 0,
            rows: 1, // the all-time row
            minutes: Vec::with_capacity(1),
        });
        if p.add(Granularity::Minute.bucket(e.occurred_at_ms), RowDelta::of(e)) {
            self.pending_minutes += 1;
        }
    }

    /// Records that signed-in `user` viewed `video` (event `event_id`), for the
    /// activity feed; the next round writes it.
    pub fn note_viewer(&mut self, user: Uuid, video: Uuid, occurred_at_ms: i64, event_id: Uuid) {
        self.viewers.note(user, video, occurred_at_ms, event_id);
    }

    /// Short of the in-doubt round's offset: no round but the fenced one, at
    /// exactly that offset, may start (R4).
    pub fn is_fenced(&self) -> bool {
        self.census.as_ref().is_some_and(|c| self.consumed.is_none_or(|o| o < c.through))
    }

    /// What a reader may add for `key` ([`crate::fresh`]): its pending minutes
    /// and first pending offset, `None` when nothing of it is pending.
    pub fn held(&self, key: &SeriesKey) -> Option<HeldPart> {
        let p = self.pending.get(key)?;
        let minutes = p.minutes.iter().map(|(m, d)| HeldMinute::new(*m, *d)).collect();
        Some(HeldPart { offset: p.first_offset, minutes })
    }

    /// Whether readers may add what this owner holds: not before the fenced
    /// round is taken (the store may hold part of the round in doubt). The
    /// fenced round in flight is the caller's to check ([`Round::fenced`]).
    pub fn serves_held(&self) -> bool {
        self.census.is_none()
    }

    /// The last offset folded.
    pub fn consumed(&self) -> Option<i64> {
        self.consumed
    }

    /// Series with pending events.
    pub fn pending_series(&self) -> usize {
        self.pending.len()
    }

    /// Distinct (series, minute) and viewer keys held: the memory, roughly.
    pub fn buffered_keys(&self) -> usize {
        self.pending_minutes + self.viewers.len()
    }

    /// Events the census showed were already in the store.
    pub fn replayed(&self) -> u64 {
        self.replayed
    }

    /// The offset that may be committed right now: the first pending one, or the
    /// one after the last folded.
    pub fn commit_offset(&self) -> Option<i64> {
        let first_pending = self.pending.values().map(|p| p.first_offset).min();
        first_pending.or(self.consumed.map(|c| c + 1))
    }

    /// Is a round worth starting at `now_ms`: a series is due, activities wait, or
    /// nothing is pending and the commit can move.
    pub fn is_due(&self, now_ms: i64, cadence: &Cadence) -> bool {
        if self.census.is_some() {
            return !self.is_fenced();
        }
        !self.viewers.is_empty() || self.pending.values().any(|p| due(p, now_ms, cadence))
    }

    /// The round of the series due at `now_ms` (R4); `None` while fenced or when
    /// nothing was folded. A round without series still carries the commit.
    pub fn take_due(&mut self, now_ms: i64, cadence: &Cadence) -> Option<Round> {
        self.take(|_, p| due(p, now_ms, cadence))
    }

    /// A round of every pending series: the fenced round, on revoke, at shutdown,
    /// or when memory is short.
    pub fn take_all(&mut self) -> Option<Round> {
        self.take(|_, _| true)
    }

    fn take(&mut self, mut pick: impl FnMut(&SeriesKey, &Pending) -> bool) -> Option<Round> {
        if self.is_fenced() {
            return None;
        }
        let through = self.consumed?;
        // At the fence, the round must redo the whole in-doubt round.
        let all = self.census.is_some();
        let keys: Vec<SeriesKey> = self.pending.iter().filter(|(k, p)| all || pick(k, p)).map(|(k, _)| *k).collect();
        let mut series = Vec::with_capacity(keys.len());
        let mut events = 0;
        for key in keys {
            let p = self.pending.remove(&key).expect("picked from the map");
            self.pending_minutes -= p.minutes.len();
            events += u64::from(p.events);
            series.push(expand(key, p));
        }
        series.sort_unstable_by_key(|s| s.key);
        self.census = None;
        let (mut activities, views) = self.viewers.take();
        activities.sort_unstable_by_key(|a| (a.user_id, a.activity_ts));
        let commit = self.commit_offset().expect("something was folded");
        Some(Round { through, commit, series, activities, views, events, fenced: all })
    }
}

fn due(p: &Pending, now_ms: i64, c: &Cadence) -> bool {
    let age = now_ms - p.since_ms;
    age >= c.max_age_ms || (u64::from(p.events) >= c.hot_events && age >= c.min_age_ms) || p.rows as usize >= c.max_rows
}

/// A pending series as rows: each minute, and its hour, day and all-time rows.
fn expand(key: SeriesKey, p: Pending) -> SeriesFlush {
    let mut rows: BTreeMap<RowKey, RowDelta> = BTreeMap::new();
    for (minute, delta) in &p.minutes {
        for granularity in Granularity::ALL {
            let row =
                RowKey { video_id: key.video_id, kind: key.kind, granularity, bucket_ms: granularity.bucket(*minute) };
            let sum = rows.entry(row).or_default();
            *sum = sum.merge(*delta);
        }
    }
    // RowKey orders by granularity before bucket, and Total is the last granularity.
    debug_assert!(rows.keys().last().is_some_and(|k| k.granularity == Granularity::Total));
    SeriesFlush { key, first_offset: p.first_offset, events: u64::from(p.events), rows: rows.into_iter().collect() }
}

#[cfg(test)]
mod tests;
