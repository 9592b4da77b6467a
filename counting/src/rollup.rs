//! Pre-aggregation per partition and the exactly-once rule for rollup rows: the
//! core of protocol steps P2 (the fence), P4 (folding), P7 (the `last_offset`
//! rule) and P8 (the write timestamp); the steps are numbered in
//! [`crate::protocol`].
//!
//! A [`PartitionBuffer`] folds events per (video, kind, minute) (P4). A flush turns
//! it into a [`FlushPlan`]: deltas for minute, hour, day and all-time rows,
//! covering offsets `first_offset..=through_offset`. [`FlushPlan::resolve`] decides,
//! row by row, against what the store holds (P7): a row whose
//! `last_offset ≥ through_offset` already holds these events and is skipped; a row
//! whose `last_offset < first_offset` gets `old + delta`. Every write carries
//! `last_offset = through_offset` and the timestamp
//! [`write_timestamp`]`(epoch, through_offset)` (P8).
//!
//! A new owner's buffer is *fenced* at `attempted` (P2): it flushes exactly there,
//! so the rule never sees a partial overlap. A partial overlap would mean offsets
//! were rewound by hand; it is reported as [`Overlap`] rather than guessed at.
//! The property test `tests::crashes_and_zombies_never_lose_or_double_count`
//! simulates the whole protocol.

use std::collections::HashMap;

use uuid::Uuid;

use crate::kind::EventKind;
use crate::ratings::{RatedEvent, RatingChange};
use crate::time::Granularity;

/// One decoded event, as far as counting cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CountedEvent {
    pub video_id: Uuid,
    pub kind: EventKind,
    pub occurred_at_ms: i64,
    pub value: i64,
    /// `Some(events)`: a compensating event (`vcount-admin correct`), which changes
    /// its row's event count by `events` (0 for a correction that says nothing
    /// about events) and never its min or max. `None`: an event, one more.
    pub correction: Option<i64>,
}

impl CountedEvent {
    /// What this event adds to its rows' [`Tally`].
    pub fn tally(&self) -> Tally {
        match self.correction {
            None => Tally { events: 1, min: self.value, max: self.value },
            Some(events) => Tally { events, ..Tally::EMPTY },
        }
    }
}

/// What a row holds about its events besides the sum of their values (issue 13):
/// how many there are, and the smallest and largest value among those that were
/// not corrections. Merging is associative and commutative, so a row's tally is
/// the same however its events were split into rounds, which is what lets the
/// `last_offset` rule make it exactly-once like the sum.
///
/// A correction changes `events` by what it says and leaves `min` and `max` alone:
/// it takes an amount back without naming the values it takes, so after a bot's
/// events are removed, min and max may still be theirs. Kept as plain integers
/// with sentinels (`i64::MAX`/`i64::MIN` for no value) because the owner holds one
/// per pending minute and per cached row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tally {
    pub events: i64,
    min: i64,
    max: i64,
}

impl Tally {
    /// No events.
    pub const EMPTY: Tally = Tally { events: 0, min: i64::MAX, max: i64::MIN };

    /// A tally as stored: `min`/`max` are `None` when no event set them.
    pub fn new(events: i64, min: Option<i64>, max: Option<i64>) -> Self {
        Self { events, min: min.unwrap_or(i64::MAX), max: max.unwrap_or(i64::MIN) }
    }

    /// Smallest value of a non-correction event.
    pub fn min(&self) -> Option<i64> {
        (self.min != i64::MAX).then_some(self.min)
    }

    /// Largest value of a non-correction event.
    pub fn max(&self) -> Option<i64> {
        (self.max != i64::MIN).then_some(self.max)
    }

    /// A stored row's tally from its cells, each `(value, write timestamp)`, and
    /// the write timestamp of its sum. Known only if `events` was written by the
    /// write that wrote the sum; a min or max only if that write set it. So a row
    /// from before tallies (`events` null), one rewritten by an aggregator from
    /// before tallies during a rolling upgrade (`events` older than the sum), or a
    /// stale min left unset by a later write, never passes for this write's.
    pub fn from_cells(
        sum_written: Option<i64>,
        events: (Option<i64>, Option<i64>),
        min: (Option<i64>, Option<i64>),
        max: (Option<i64>, Option<i64>),
    ) -> Option<Tally> {
        let same = |(v, ts): (Option<i64>, Option<i64>)| v.filter(|_| ts.is_some() && ts == sum_written);
        same(events).map(|n| Tally::new(n, same(min), same(max)))
    }

    /// Both tallies' events together.
    #[must_use]
    pub fn merge(self, other: Tally) -> Tally {
        Tally {
            events: add_count(self.events, other.events),
            min: self.min.min(other.min),
            max: self.max.max(other.max),
        }
    }
}

impl Default for Tally {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// What a round adds to one row: the sum of its events' values and their tally.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowDelta {
    pub value: i64,
    pub tally: Tally,
}

impl RowDelta {
    pub fn of(e: &CountedEvent) -> Self {
        Self { value: e.value, tally: e.tally() }
    }

    #[must_use]
    pub fn merge(self, other: RowDelta) -> RowDelta {
        RowDelta { value: add_count(self.value, other.value), tally: self.tally.merge(other.tally) }
    }
}

/// Primary key of a rollup row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowKey {
    pub video_id: Uuid,
    pub kind: EventKind,
    pub granularity: Granularity,
    /// First millisecond of the bucket; 0 for [`Granularity::Total`].
    pub bucket_ms: i64,
}

/// What the store holds for a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredRow {
    pub value: i64,
    pub last_offset: i64,
    /// `None`: the row was written before rows kept a tally (its `events` column
    /// is null). Its event count is unknown, and stays unknown: adding a round's
    /// tally to an unknown one gives an unknown one, never a guess.
    pub tally: Option<Tally>,
}

/// A row to write: the new absolute value (and tally, if known) and the offset it
/// is complete up to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowWrite {
    pub key: RowKey,
    pub value: i64,
    pub last_offset: i64,
    pub tally: Option<Tally>,
}

impl RowWrite {
    /// What the store holds once this write landed.
    pub fn stored(&self) -> StoredRow {
        StoredRow { value: self.value, last_offset: self.last_offset, tally: self.tally }
    }
}

/// A count plus what a flush adds to it, saturating at the ends of `i64` instead
/// of wrapping (in release builds `+` wraps, and a huge count would turn negative).
/// A delta is negative only when compensating events (`correction`, from
/// `vcount-admin correct`) take counts back; the aggregator's decoder refuses a
/// value outside 1..=1,000,000 on any other event (`schemas::limits`), and
/// `vcount-admin correct` never takes more than it read, so with events that passed
/// the decoder a count stays exact and at least 0.
pub fn add_count(count: i64, delta: i64) -> i64 {
    count.saturating_add(delta)
}

/// Cassandra write timestamp for a write by the owner in `epoch` of rows complete
/// up to `offset`: later owners always win, and within one owner later flushes win.
/// Offsets must stay below 2^40 (about 10^12 messages per partition).
pub fn write_timestamp(epoch: i64, offset: i64) -> i64 {
    debug_assert!((0..1 << 40).contains(&offset));
    debug_assert!((0..1 << 22).contains(&epoch));
    (epoch << 40) | offset
}

/// Signed-in views, for the activity feed and for the viewer sketches and list
/// (`crate::viewers`): per (user, video, minute), the first event id (so a burst
/// of views is one feed entry) and the latest time viewed. Both the flush buffer
/// and the rounds' per-partition counts keep one.
#[derive(Debug, Default)]
pub struct ViewerLog(HashMap<(Uuid, Uuid, i64), (Uuid, i64)>);

/// One signed-in view as the viewer sketches and the who-viewed list need it: one
/// per (user, video, minute) of a flush, at the latest time viewed in that minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignedInView {
    pub video_id: Uuid,
    pub user_id: Uuid,
    pub occurred_at_ms: i64,
}

impl ViewerLog {
    pub fn note(&mut self, user: Uuid, video: Uuid, occurred_at_ms: i64, event_id: Uuid) {
        let minute = Granularity::Minute.bucket(occurred_at_ms);
        let e = self.0.entry((user, video, minute)).or_insert((event_id, occurred_at_ms));
        e.1 = e.1.max(occurred_at_ms);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Empties the log into view activities (unsorted) and the signed-in views,
    /// sorted by (video, user, time).
    pub fn take(&mut self) -> (Vec<Activity>, Vec<SignedInView>) {
        let log = std::mem::take(&mut self.0);
        let mut activities = Vec::with_capacity(log.len());
        let mut views = Vec::with_capacity(log.len());
        for ((user_id, video_id, _), (event_id, occurred_at_ms)) in log {
            activities.push(Activity {
                user_id,
                activity_ts: event_id,
                kind: ActivityKind::View,
                activity_id: video_id,
            });
            views.push(SignedInView { video_id, user_id, occurred_at_ms });
        }
        views.sort_unstable();
        (activities, views)
    }
}

#[derive(Debug, Default)]
pub struct PartitionBuffer {
    minutes: HashMap<(Uuid, EventKind, i64), i64>,
    /// Latest (rating, occurred_at_ms, event id) per (video, user).
    ratings: HashMap<(Uuid, Uuid), (i32, i64, Uuid)>,
    viewers: ViewerLog,
    first_offset: Option<i64>,
    last_offset: Option<i64>,
    events: u64,
    /// Last offset of a flush that may be partly written: flush exactly there.
    fence: Option<i64>,
}

impl PartitionBuffer {
    /// A buffer for a newly owned partition. `attempted` is the last offset of the
    /// newest flush any previous owner started (from the partition state).
    pub fn new(attempted: Option<i64>) -> Self {
        Self { fence: attempted, ..Self::default() }
    }

    /// Folds the message at `offset`. `event` is `None` for a message that counts
    /// nothing (dead-lettered) but whose offset is still consumed.
    pub fn fold(&mut self, offset: i64, event: Option<&CountedEvent>) -> Folded {
        self.fold_with(offset, |buf| {
            let e = event?;
            let minute = Granularity::Minute.bucket(e.occurred_at_ms);
            let sum = buf.minutes.entry((e.video_id, e.kind, minute)).or_insert(0);
            *sum = add_count(*sum, e.value);
            Some(())
        })
    }

    /// Folds the rating at `offset`: a later rating by the same user of the same
    /// video replaces an earlier one (see [`crate::ratings`]).
    pub fn fold_rating(&mut self, offset: i64, rating: Option<&RatedEvent>) -> Folded {
        self.fold_with(offset, |buf| {
            let r = rating?;
            buf.ratings.insert((r.video_id, r.user_id), (r.rating, r.occurred_at_ms, r.event_id));
            Some(())
        })
    }

    /// Records that signed-in `user` viewed `video` (event `event_id`), for the
    /// activity feed. Call it after the view's [`fold`](Self::fold) returned
    /// `Folded` or `FlushNow` (before flushing), so it joins that view's flush.
    pub fn note_viewer(&mut self, user: Uuid, video: Uuid, occurred_at_ms: i64, event_id: Uuid) {
        self.viewers.note(user, video, occurred_at_ms, event_id);
    }

    /// The offset bookkeeping and the fence, shared by every kind of message.
    fn fold_with(&mut self, offset: i64, record: impl FnOnce(&mut Self) -> Option<()>) -> Folded {
        if let Some(w) = self.fence.filter(|&w| offset > w) {
            // The fence's own message is gone (compacted, say): what is buffered
            // ends before it, which rows at the fence hold entirely. Flush that first.
            debug_assert!(self.last_offset.is_none_or(|l| l < w));
            self.fence = None;
            if self.last_offset.is_some() {
                return Folded::FlushFirst;
            }
        }
        self.first_offset.get_or_insert(offset);
        self.last_offset = Some(offset);
        if record(self).is_some() {
            self.events += 1;
        }
        if self.fence == Some(offset) {
            self.fence = None;
            return Folded::FlushNow;
        }
        Folded::Folded
    }

    /// Still short of the fence: [`take`](Self::take) refuses, because flushing
    /// anywhere but at the fence could split a row's in-doubt offsets.
    pub fn is_fenced(&self) -> bool {
        self.fence.is_some()
    }

    /// Distinct (video, kind, minute), (video, user) and viewer keys held: the
    /// buffer's memory, roughly.
    pub fn buffered_keys(&self) -> usize {
        self.minutes.len() + self.ratings.len() + self.viewers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last_offset.is_none()
    }

    /// Empties the buffer into a flush plan; `None` when nothing was folded or the
    /// buffer is still short of its fence. Dropping a fenced buffer instead (on
    /// revoke or shutdown) loses nothing: none of it was committed.
    pub fn take(&mut self) -> Option<FlushPlan> {
        if self.is_fenced() {
            return None;
        }
        let first_offset = self.first_offset.take()?;
        let through_offset = self.last_offset.take().expect("set with first_offset");
        let minutes = std::mem::take(&mut self.minutes);
        let events = std::mem::take(&mut self.events);
        let mut rows: HashMap<RowKey, i64> = HashMap::with_capacity(minutes.len() * 2);
        for ((video_id, kind, minute), delta) in minutes {
            if delta == 0 {
                continue;
            }
            for granularity in Granularity::ALL {
                let key = RowKey { video_id, kind, granularity, bucket_ms: granularity.bucket(minute) };
                let sum = rows.entry(key).or_insert(0);
                *sum = add_count(*sum, delta);
            }
        }
        let mut deltas: Vec<(RowKey, i64)> = rows.into_iter().collect();
        deltas.sort_unstable_by_key(|(k, _)| *k);
        let mut ratings: Vec<RatingChange> = std::mem::take(&mut self.ratings)
            .into_iter()
            .map(|((video_id, user_id), (rating, occurred_at_ms, event_id))| RatingChange {
                video_id,
                user_id,
                rating,
                occurred_at_ms,
                event_id,
            })
            .collect();
        ratings.sort_unstable_by_key(|c| (c.video_id, c.user_id));
        let (mut activities, views) = self.viewers.take();
        activities.extend(ratings.iter().map(|c| Activity {
            user_id: c.user_id,
            activity_ts: c.event_id,
            kind: ActivityKind::Rate,
            activity_id: c.video_id,
        }));
        activities.sort_unstable_by_key(|a| (a.user_id, a.activity_ts));
        Some(FlushPlan { first_offset, through_offset, events, deltas, ratings, activities, views })
    }
}

/// What [`PartitionBuffer::fold`] asks of the caller next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Folded {
    /// Folded; flush whenever convenient.
    Folded,
    /// Folded, and the buffer reached its fence: flush now, before folding more.
    FlushNow,
    /// Not folded: flush what is buffered, then fold this message again.
    FlushFirst,
}

/// The rows a flush touches, with their deltas, for offsets
/// `first_offset..=through_offset` of one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlushPlan {
    pub first_offset: i64,
    pub through_offset: i64,
    /// Messages folded that counted or rated something.
    pub events: u64,
    /// Sorted by key, so rows of one Cassandra partition are adjacent.
    pub deltas: Vec<(RowKey, i64)>,
    /// Each user's latest rating per video, sorted by (video, user).
    pub ratings: Vec<RatingChange>,
    /// Entries for users' activity feeds (signed-in views, ratings), sorted by user.
    pub activities: Vec<Activity>,
    /// Signed-in views for the viewer sketches and the who-viewed list
    /// (`crate::viewers`), sorted by (video, user, time).
    pub views: Vec<SignedInView>,
}

/// One entry of a user's activity feed, keyed by a UUIDv7 from the event itself,
/// so a replayed flush writes the same row again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Activity {
    pub user_id: Uuid,
    /// The event's UUIDv7: orders the feed and carries the time.
    pub activity_ts: Uuid,
    pub kind: ActivityKind,
    /// The video viewed or rated.
    pub activity_id: Uuid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ActivityKind {
    View,
    Rate,
}

impl ActivityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityKind::View => "view",
            ActivityKind::Rate => "rate",
        }
    }
}

/// A stored row already holds some but not all of a flush's offsets: only possible
/// if committed offsets were moved back by hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "row {key:?} holds offsets up to {last_offset}, inside the flush {first_offset}..={through_offset}; \
     were committed offsets rewound?"
)]
pub struct Overlap {
    pub key: RowKey,
    pub last_offset: i64,
    pub first_offset: i64,
    pub through_offset: i64,
}

/// Outcome of applying the `last_offset` rule to a plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    pub writes: Vec<RowWrite>,
    /// Rows that already held this flush (written before a crash).
    pub skipped: usize,
}

impl FlushPlan {
    /// The offset to commit once every write of this plan is durable.
    pub fn commit_offset(&self) -> i64 {
        self.through_offset + 1
    }

    /// Applies the `last_offset` rule against what the store holds for each row
    /// (`None`: no row yet).
    pub fn resolve(&self, mut stored: impl FnMut(&RowKey) -> Option<StoredRow>) -> Result<Resolved, Overlap> {
        let mut out = Resolved { writes: Vec::with_capacity(self.deltas.len()), skipped: 0 };
        for (key, delta) in &self.deltas {
            let base = match stored(key) {
                None => 0,
                Some(row) if row.last_offset >= self.through_offset => {
                    out.skipped += 1;
                    continue;
                }
                Some(row) if row.last_offset < self.first_offset => row.value,
                Some(row) => {
                    return Err(Overlap {
                        key: *key,
                        last_offset: row.last_offset,
                        first_offset: self.first_offset,
                        through_offset: self.through_offset,
                    });
                }
            };
            // Flush plans carry sums only (counts are written in rounds now): the
            // tally they would write is unknown.
            out.writes.push(RowWrite {
                key: *key,
                value: add_count(base, *delta),
                last_offset: self.through_offset,
                tally: None,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
