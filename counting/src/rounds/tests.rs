use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::fresh::{Held, RowStamp, Stale};
use crate::rollup::write_timestamp;
use crate::rollup::{Folded, Tally};
use crate::time::{DAY_MS, HOUR_MS, MINUTE_MS};

const T0: i64 = 1_710_028_800_000; // 2024-03-10T00:00:00Z

fn video(i: u8) -> Uuid {
    Uuid::from_bytes([i; 16])
}

fn ev(v: u8, kind: EventKind, at: i64, value: i64) -> CountedEvent {
    CountedEvent { video_id: video(v), kind, occurred_at_ms: at, value, correction: None }
}

/// A compensating event: `value` back or forth, `events` more or fewer.
fn fix(v: u8, kind: EventKind, at: i64, value: i64, events: i64) -> CountedEvent {
    CountedEvent { correction: Some(events), ..ev(v, kind, at, value) }
}

fn view(v: u8, at: i64) -> CountedEvent {
    ev(v, EventKind::View, at, 1)
}

fn series(v: u8) -> SeriesKey {
    SeriesKey { video_id: video(v), kind: EventKind::View }
}

fn row(v: u8, granularity: Granularity, at: i64) -> RowKey {
    RowKey { video_id: video(v), kind: EventKind::View, granularity, bucket_ms: granularity.bucket(at) }
}

const CADENCE: Cadence = Cadence { min_age_ms: 5_000, hot_events: 3, max_age_ms: 60_000, max_rows: 10 };

/// What `PartitionCounts::pending_minutes` keeps, counted afresh.
fn recount_minutes(c: &PartitionCounts) -> usize {
    c.pending.values().map(|p| p.minutes.len()).sum()
}

#[test]
fn series_are_due_on_their_own_cadence_and_the_commit_trails_the_oldest() {
    let mut c = PartitionCounts::new(None);
    // Video 1 is hot (3 events), video 2 is a tail video (1 event).
    assert_eq!(c.fold(10, Some(&view(2, T0)), 0), Ok(Folded::Folded));
    for o in 11..14 {
        assert_eq!(c.fold(o, Some(&view(1, T0)), 1_000), Ok(Folded::Folded));
    }
    assert_eq!(c.fold(14, None, 1_000), Ok(Folded::Folded));
    assert_eq!(c.buffered_keys(), 2, "one minute of each video");
    assert!(!c.is_due(4_999, &CADENCE), "nobody is 5 s old yet");
    assert!(c.is_due(6_000, &CADENCE));
    let r = c.take_due(6_000, &CADENCE).unwrap();
    assert_eq!(r.series.iter().map(|s| s.key).collect::<Vec<_>>(), [series(1)], "only the hot video");
    assert_eq!((r.through, r.events), (14, 3));
    assert_eq!(r.commit, 10, "video 2's event at 10 is still pending");
    assert_eq!(c.buffered_keys(), 1, "video 2's minute");
    assert!(!c.is_due(59_999, &CADENCE));
    let r = c.take_due(60_000, &CADENCE).unwrap();
    assert_eq!(r.series.iter().map(|s| s.key).collect::<Vec<_>>(), [series(2)], "the tail video at max_age");
    assert_eq!(r.commit, 15, "nothing pending: past the last folded offset");
    assert_eq!(c.buffered_keys(), 0);
    // Nothing pending: a round without series still moves the commit.
    assert_eq!(c.fold(15, None, 70_000), Ok(Folded::Folded));
    let r = c.take_due(70_000, &CADENCE).unwrap();
    assert!(r.is_empty() && r.commit == 16);
}

#[test]
fn a_series_over_max_rows_is_due_at_once() {
    let mut c = PartitionCounts::new(None);
    // Minutes in three hours of two days: 1 total + 2 days + 3 hours + 4 minutes = 10 rows.
    for (o, at) in [T0, T0 + MINUTE_MS, T0 + HOUR_MS, T0 + DAY_MS].into_iter().enumerate() {
        assert!(!c.is_due(0, &CADENCE), "{o} minutes in");
        assert_eq!(c.fold(o as i64, Some(&view(1, at)), 0), Ok(Folded::Folded));
    }
    assert!(c.is_due(0, &CADENCE));
    let r = c.take_due(0, &CADENCE).unwrap();
    assert_eq!(r.series[0].rows.len(), 10);
    assert_eq!(r.series[0].rows.last().unwrap().0, series(1).total_row(), "the all-time row is last");
}

#[test]
fn a_series_expands_into_minute_hour_day_and_total_rows() {
    let mut c = PartitionCounts::new(None);
    assert_eq!(c.fold(10, Some(&ev(1, EventKind::View, T0 + 5 * MINUTE_MS, 1)), 0), Ok(Folded::Folded));
    assert_eq!(c.fold(11, Some(&ev(1, EventKind::View, T0 + 5 * MINUTE_MS + 1, 2)), 0), Ok(Folded::Folded));
    assert_eq!(c.fold(12, Some(&ev(1, EventKind::Like, T0, 1)), 0), Ok(Folded::Folded));
    assert_eq!(c.fold(13, Some(&ev(1, EventKind::View, T0 + 2 * HOUR_MS, 1)), 0), Ok(Folded::Folded));
    // A correction of the first minute: 2 back, one event fewer; min and max stay.
    assert_eq!(c.fold(14, Some(&fix(1, EventKind::View, T0 + 5 * MINUTE_MS, -2, -1)), 0), Ok(Folded::Folded));
    let r = c.take_all().unwrap();
    assert_eq!(r.series.len(), 2, "views and likes are two series");
    let views = r.series.iter().find(|s| s.key == series(1)).unwrap();
    let d: HashMap<RowKey, (i64, i64, Option<i64>, Option<i64>)> =
        views.rows.iter().map(|(k, d)| (*k, (d.value, d.tally.events, d.tally.min(), d.tally.max()))).collect();
    assert_eq!(d.len(), 2 + 2 + 1 + 1);
    assert_eq!(d[&row(1, Granularity::Minute, T0 + 5 * MINUTE_MS)], (1, 1, Some(1), Some(2)));
    assert_eq!(d[&row(1, Granularity::Hour, T0)], (1, 1, Some(1), Some(2)));
    assert_eq!(d[&row(1, Granularity::Hour, T0 + 2 * HOUR_MS)], (1, 1, Some(1), Some(1)));
    assert_eq!(d[&row(1, Granularity::Day, T0)], (2, 2, Some(1), Some(2)));
    assert_eq!(d[&series(1).total_row()], (2, 2, Some(1), Some(2)));
    assert_eq!((views.first_offset, views.events, r.commit), (10, 4, 15));
}

#[test]
fn a_tally_counts_only_if_the_write_of_the_sum_wrote_it() {
    let t = Some(100);
    assert_eq!(Tally::from_cells(t, (Some(3), t), (Some(1), t), (Some(5), t)), Some(Tally::new(3, Some(1), Some(5))));
    assert_eq!(Tally::from_cells(t, (None, None), (None, None), (None, None)), None, "a row from before tallies");
    assert_eq!(
        Tally::from_cells(t, (Some(3), Some(99)), (Some(1), t), (Some(5), t)),
        None,
        "rewritten by an old aggregator"
    );
    assert_eq!(
        Tally::from_cells(t, (Some(0), t), (Some(1), Some(99)), (None, None)),
        Some(Tally::EMPTY),
        "a stale min left unset by a write with no events"
    );
    assert_eq!(Tally::from_cells(None, (Some(3), None), (None, None), (None, None)), None);
}

#[test]
fn a_row_from_before_tallies_keeps_its_sum_exact_and_its_tally_unknown() {
    let mut c = PartitionCounts::new(None);
    assert_eq!(c.fold(10, Some(&ev(1, EventKind::View, T0, 7)), 0), Ok(Folded::Folded));
    assert_eq!(c.fold(11, Some(&ev(1, EventKind::View, T0, 3)), 0), Ok(Folded::Folded));
    let r = c.take_all().unwrap();
    let minute = row(1, Granularity::Minute, T0);
    let known = Tally::new(4, Some(2), Some(9));
    let resolved = r.series[0]
        .resolve(11, |k| match k.granularity {
            Granularity::Minute => Some(StoredRow { value: 5, last_offset: 3, tally: None }),
            Granularity::Hour => Some(StoredRow { value: 20, last_offset: 3, tally: Some(known) }),
            _ => None,
        })
        .unwrap();
    let w: HashMap<Granularity, RowWrite> = resolved.writes.iter().map(|w| (w.key.granularity, *w)).collect();
    assert_eq!((w[&Granularity::Minute].key, w[&Granularity::Minute].value), (minute, 15));
    assert_eq!(w[&Granularity::Minute].tally, None, "unknown plus known is unknown");
    assert_eq!((w[&Granularity::Hour].value, w[&Granularity::Hour].tally), (30, Some(Tally::new(6, Some(2), Some(9)))));
    assert_eq!((w[&Granularity::Day].value, w[&Granularity::Day].tally), (10, Some(Tally::new(2, Some(3), Some(7)))));
}

#[test]
fn the_replay_region_skips_what_the_floor_holds_and_fences_the_first_round() {
    // The previous owner's round at 12 may or may not have landed; video 1's floor is
    // 10 (its round at 10 landed), video 2 had never been written.
    let floors = HashMap::from([(series(1), 10), (series(2), -1)]);
    let mut c = PartitionCounts::new(Some(Census { through: 12, floors }));
    assert_eq!(c.fold(9, Some(&view(1, T0)), 0), Ok(Folded::Folded), "≤ floor: in the store already");
    assert_eq!(c.fold(10, Some(&view(1, T0)), 0), Ok(Folded::Folded));
    assert_eq!(c.fold(11, Some(&view(1, T0)), 0), Ok(Folded::Folded), "pending");
    assert!(c.is_fenced() && c.take_all().is_none() && !c.is_due(i64::MAX, &CADENCE), "no round before the fence");
    assert_eq!(
        c.fold(12, Some(&view(3, T0)), 0),
        Err(MissingFloor { key: series(3), offset: 12 }),
        "a series the census did not see cannot be decided"
    );
    assert_eq!(c.fold(12, Some(&view(2, T0)), 0), Ok(Folded::FlushNow), "offset 12 is the fence");
    assert!(c.is_due(0, &CADENCE), "the fenced round is due whatever the cadence");
    assert_eq!(c.replayed(), 2);
    // Even a round that picks by cadence takes everything at the fence.
    let r = c.take_due(0, &CADENCE).unwrap();
    assert_eq!(r.series.iter().map(|s| s.key).collect::<Vec<_>>(), [series(1), series(2)]);
    assert_eq!((r.through, r.commit), (12, 13));
    let v1 = &r.series[0];
    assert_eq!((v1.first_offset, v1.events), (11, 1));
    let minute = row(1, Granularity::Minute, T0);
    // The in-doubt round landed on a row: skipped; it did not: added.
    let tally = Some(Tally::new(7, Some(1), Some(1)));
    let resolved = v1
        .resolve(12, |k| Some(StoredRow { value: 7, last_offset: if *k == minute { 12 } else { 10 }, tally }))
        .unwrap();
    assert_eq!(resolved.skipped, 1);
    assert!(resolved.writes.iter().all(|w| w.value == 8 && w.last_offset == 12 && w.key != minute));
    assert!(resolved.writes.iter().all(|w| w.tally == Some(Tally::new(8, Some(1), Some(1)))));
    // A row inside the pending offsets, other than the round's own: refuse.
    let err = v1.resolve(12, |k| Some(StoredRow { value: 6, last_offset: if *k == minute { 11 } else { 10 }, tally }));
    assert_eq!(err.unwrap_err().key, minute);
    // Past the fence, rounds follow the cadence again.
    assert_eq!(c.fold(13, Some(&view(1, T0)), 0), Ok(Folded::Folded));
    assert!(!c.is_fenced() && c.take_due(0, &CADENCE).unwrap().series.is_empty());
}

#[test]
fn a_fence_whose_message_is_gone_ends_just_before_the_next_offset() {
    let floors = HashMap::from([(series(1), -1)]);
    let mut c = PartitionCounts::new(Some(Census { through: 12, floors }));
    assert_eq!(c.fold(11, Some(&view(1, T0)), 0), Ok(Folded::Folded));
    assert_eq!(c.fold(14, Some(&view(2, T0)), 0), Ok(Folded::FlushFirst));
    let r = c.take_all().unwrap();
    assert_eq!((r.through, r.commit, r.series.len()), (12, 13, 1), "the round ends at the fence all the same");
    assert_eq!(c.fold(14, Some(&view(2, T0)), 0), Ok(Folded::Folded), "no floor needed past the region");
}

#[test]
fn a_series_without_an_all_time_row_needs_no_other_read_outside_the_fenced_round() {
    let mut c = PartitionCounts::new(None);
    for (o, v) in [(0, 1), (1, 2), (2, 3)] {
        assert_eq!(c.fold(o, Some(&view(v, T0 + o * DAY_MS)), 0), Ok(Folded::Folded));
    }
    let r = c.take_all().unwrap();
    assert!(!r.fenced);
    let mut cache = RowCache::default();
    // Video 1 was counted before (its all-time row exists), 2 and 3 never were.
    cache.put(series(3).total_row(), StoredRow { value: 4, last_offset: -5, tally: None });
    let reads = r.total_reads(&cache);
    assert_eq!(reads.iter().map(|r| r.part.video_id).collect::<Vec<_>>(), [video(1), video(2)]);
    let stored = StoredRow { value: 9, last_offset: -2, tally: None };
    cache.learn(&reads[0], [(0, stored)]);
    cache.learn(&reads[1], []);
    assert_eq!(r.learn_absent_series(&mut cache), 1, "video 2 only");
    let keys: Vec<&RowKey> = r.series.iter().flat_map(|s| s.rows.iter().map(|(k, _)| k)).collect();
    let missing: Vec<Uuid> = cache.missing(keys).iter().map(|r| r.part.video_id).collect();
    assert_eq!(missing, [video(1), video(1), video(1), video(3), video(3), video(3)], "minute, hour, day each");

    // The fenced round reads them all: there the rule is not needed.
    let floors = HashMap::from([(series(2), -1)]);
    let mut c = PartitionCounts::new(Some(Census { through: 0, floors }));
    assert_eq!(c.fold(0, Some(&view(2, T0)), 0), Ok(Folded::FlushNow));
    let r = c.take_all().unwrap();
    assert!(r.fenced);
    let mut cache = RowCache::default();
    cache.learn(&r.total_reads(&cache)[0], []);
    assert_eq!(r.learn_absent_series(&mut cache), 0);
    assert_eq!(cache.missing(r.series[0].rows.iter().map(|(k, _)| k)).len(), 3);
}

// ---------------------------------------------------------------------------
// The whole protocol, simulated against a last-write-wins store, as in
// `rollup::tests`, but with series written on schedules of their own, in
// single-partition batches of any size (atomic, as Cassandra applies them): owners
// that crash after any number of batches, in-doubt rounds whose remaining writes
// land late (before the next owner's census, or after any number of its writes),
// a census that reads floors at claim time, and a cache that mixes those reads
// with rows read much later.

#[derive(Default)]
struct Store {
    rows: HashMap<RowKey, (StoredRow, i64)>,
}

impl Store {
    /// Last write wins, by timestamp. Cassandra would resolve a tie cell by cell
    /// (the larger value of each column), which could mix two writes' sum, count,
    /// min and max: the protocol must never produce a tie between different rows.
    fn write(&mut self, w: &RowWrite, ts: i64) -> Result<(), TestCaseError> {
        match self.rows.get(&w.key) {
            Some((old, old_ts)) if *old_ts == ts => {
                prop_assert_eq!(*old, w.stored(), "two different writes of {:?} at one timestamp", w.key);
            }
            Some((_, old_ts)) if *old_ts > ts => {}
            _ => {
                self.rows.insert(w.key, (w.stored(), ts));
            }
        }
        Ok(())
    }

    fn get(&self, k: &RowKey) -> Option<StoredRow> {
        self.rows.get(k).map(|(r, _)| *r)
    }
}

/// A row's sum and tally from the log, counted the plain way: every event up to
/// `through` in the row's bucket; a correction moves the sum and the event count
/// by what it says; min and max are of the other events' values.
fn truth(log: &[Message], key: &RowKey, through: i64) -> (i64, Tally) {
    let events: Vec<&CountedEvent> = log
        .iter()
        .take((through + 1).max(0) as usize)
        .flatten()
        .filter(|e| e.video_id == key.video_id && e.kind == key.kind)
        .filter(|e| key.granularity.bucket(e.occurred_at_ms) == key.bucket_ms)
        .collect();
    let sum = events.iter().map(|e| e.value).sum();
    let count = events.iter().map(|e| e.correction.unwrap_or(1)).sum();
    let values = || events.iter().filter(|e| e.correction.is_none()).map(|e| e.value);
    (sum, Tally::new(count, values().min(), values().max()))
}

/// Every row holds exactly the events of its bucket up to its own `last_offset`:
/// their sum, their count, their min and max.
fn assert_rows_consistent(log: &[Message], store: &Store) -> Result<(), TestCaseError> {
    for k in store.rows.keys() {
        assert_row_consistent(log, store, k)?;
    }
    Ok(())
}

/// The same for one row: a write changes only its own row, so checking it after
/// each write checks every row after every write.
fn assert_row_consistent(log: &[Message], store: &Store, k: &RowKey) -> Result<(), TestCaseError> {
    if let Some((row, _)) = store.rows.get(k) {
        let (sum, tally) = truth(log, k, row.last_offset);
        prop_assert_eq!((row.value, row.tally), (sum, Some(tally)), "row {:?} at {}", k, row.last_offset);
    }
    Ok(())
}

/// When the rest of a crashed owner's in-doubt round lands.
#[derive(Clone, Copy, Debug)]
enum Landing {
    /// Never: the process died.
    Never,
    /// Before the next owner's census reads the floors.
    BeforeCensus,
    /// After the next owner (or a later one) has written this many rows.
    AfterWrites(usize),
}

#[derive(Clone, Debug)]
struct OwnerScript {
    /// Offsets folded between two rounds.
    round_every: usize,
    /// Per round, which series are due: bit `i` for series `i` (video × kind).
    masks: Vec<u16>,
    /// Die in round n after this many batch writes (past the last: before committing).
    crash: Option<(usize, usize)>,
    landing: Landing,
    /// Rows a round writes per message folded beside it (the aggregator writes
    /// rounds beside its poll loop); 0: the round is written before the next fold.
    pace: usize,
    /// A death before any write of a round is one before its `attempted` LWT
    /// (R4): a newer owner claimed first, so the round was never recorded.
    unmarked: bool,
}

fn landing() -> impl Strategy<Value = Landing> {
    prop_oneof![Just(Landing::Never), Just(Landing::BeforeCensus), (0usize..30).prop_map(Landing::AfterWrites)]
}

fn owner_strategy() -> impl Strategy<Value = OwnerScript> {
    (
        1usize..40,
        prop::collection::vec(any::<u16>(), 1..6),
        prop::option::of((0usize..5, prop_oneof![Just(0usize), 0usize..40])),
        landing(),
        prop_oneof![Just(0usize), 1usize..4],
        any::<bool>(),
    )
        .prop_map(|(round_every, masks, crash, landing, pace, unmarked)| OwnerScript {
            round_every,
            masks,
            crash,
            landing,
            pace,
            unmarked,
        })
}

const KINDS: [EventKind; 2] = [EventKind::View, EventKind::Like];

/// The events of one message at one offset: mostly one, sometimes none (a dead
/// letter, a dropped repeat), sometimes a gateway's pack of several, of one series
/// or of several.
type Message = Vec<CountedEvent>;

/// Events of values 1 to 9 (min and max have something to tell), and one in
/// eight a correction of up to 5 either way, of up to 2 events either way; in
/// messages of one event, none, or a pack of two to five.
fn log_strategy() -> impl Strategy<Value = Vec<Message>> {
    let correction = prop_oneof![7 => Just(None), 1 => (-2i64..=2).prop_map(Some)];
    let event = (0u8..5, 0usize..2, 0i64..3 * DAY_MS / MINUTE_MS, 1i64..10, correction, any::<bool>()).prop_map(
        |(vid, k, minute, value, correction, back)| {
            let at = T0 + minute * MINUTE_MS + 17;
            match correction {
                None => ev(vid, KINDS[k], at, value),
                Some(events) => fix(vid, KINDS[k], at, if back { -(value % 6) - 1 } else { value % 6 + 1 }, events),
            }
        },
    );
    let message = prop_oneof![
        12 => prop::collection::vec(event.clone(), 1..=1),
        1 => Just(Vec::new()),
        4 => prop::collection::vec(event, 2..=5),
    ];
    prop::collection::vec(message, 1..250)
}

fn series_bit(key: &SeriesKey) -> u32 {
    let v = key.video_id.as_bytes()[0] as u32;
    let k = KINDS.iter().position(|k| *k == key.kind).unwrap() as u32;
    v * 2 + k
}

/// Batches of an in-doubt round still on their way, and when they land.
struct InFlight {
    writes: Vec<Vec<RowWrite>>,
    ts: i64,
    /// Before the next owner's census, or once this many batches were written in all.
    before_census: bool,
    after: usize,
}

/// This owner's round being written while it folds on (R4: one at a time).
struct Writing {
    /// Single-partition batches, each applied atomically.
    writes: Vec<Vec<RowWrite>>,
    done: usize,
    /// Where the owner dies, if it dies in this round.
    crash_at: Option<usize>,
    ts: i64,
    commit: i64,
    /// What a reader asking the owner sees of the round ([`crate::fresh`]).
    /// The round, which readers asking the owner look their series up in.
    round: Round,
    /// `attempted` before this round recorded its own.
    attempted_before: Option<i64>,
}

enum Progress {
    Writing,
    /// Every write acknowledged: the round's offset may be committed.
    Done(i64),
    /// The owner died with `done` writes landed.
    Crashed,
}

/// Lands up to `n` more batches of the round, each row checked, with whatever of
/// an earlier owner's in-doubt round is due between any two of them.
fn advance(
    log: &[Message],
    w: &mut Writing,
    n: usize,
    store: &mut Store,
    cache: &mut HashMap<RowKey, Option<StoredRow>>,
    written: &mut usize,
    in_flight: &mut [InFlight],
) -> Result<Progress, TestCaseError> {
    let end = w.crash_at.unwrap_or(w.writes.len()).min(w.writes.len());
    let stop = w.done.saturating_add(n).min(end);
    for batch in &w.writes[w.done..stop] {
        for x in batch {
            store.write(x, w.ts)?;
            cache.insert(x.key, Some(x.stored()));
        }
        for x in batch {
            assert_row_consistent(log, store, &x.key)?;
        }
        *written += 1;
        land(log, in_flight, store, |f| f.after <= *written)?;
    }
    w.done = stop;
    Ok(match w.crash_at {
        Some(_) if w.done == end => Progress::Crashed,
        None if w.done == end => Progress::Done(w.commit),
        _ => Progress::Writing,
    })
}

/// Lands the in-flight writes that are due, checking each row it changes.
fn land(
    log: &[Message],
    in_flight: &mut [InFlight],
    store: &mut Store,
    due: impl Fn(&InFlight) -> bool,
) -> Result<(), TestCaseError> {
    for f in in_flight.iter_mut().filter(|f| due(f)) {
        for batch in f.writes.drain(..) {
            for w in &batch {
                store.write(w, f.ts)?;
            }
            for w in &batch {
                assert_row_consistent(log, store, &w.key)?;
            }
        }
    }
    Ok(())
}

/// A reader's question and the owner's answer.
type Ask = (SeriesKey, Held);

/// What the owner answers a reader about `key` ([`crate::fresh`]).
fn ask(counts: &PartitionCounts, writing: Option<&Writing>, epoch: i64, key: SeriesKey) -> Held {
    Held {
        ready: counts.serves_held() && !writing.is_some_and(|w| w.round.fenced),
        epoch,
        consumed: counts.consumed().unwrap_or(-1),
        pending: counts.held(&key),
        in_flight: writing.and_then(|w| w.round.held_part(&key)),
    }
}

/// A reader's answer from an owner's `held`, asked before the store was read
/// (now): every row the series has or the answer touches, each with what `held`
/// adds to it, is exactly the log's events of its bucket through the owner's
/// `consumed` offset (or its own `last_offset`, if later), unless the rule says
/// the answer is stale.
fn check_held(log: &[Message], store: &Store, key: SeriesKey, held: &Held) -> Result<(), TestCaseError> {
    for g in Granularity::ALL {
        let mut buckets: Vec<i64> =
            store.rows.keys().filter(|k| k.series() == key && k.granularity == g).map(|k| k.bucket_ms).collect();
        buckets.extend(
            [&held.pending, &held.in_flight].into_iter().flatten().flat_map(|p| &p.minutes).map(|m| g.bucket(m.minute)),
        );
        buckets.sort_unstable();
        buckets.dedup();
        for bucket in buckets {
            let k = RowKey { video_id: key.video_id, kind: key.kind, granularity: g, bucket_ms: bucket };
            let stored = store.rows.get(&k);
            let stamp = stored.map(|(r, ts)| RowStamp::new(r.last_offset, *ts));
            match held.delta_for(g, bucket, (i64::MIN, i64::MAX), stamp) {
                Ok(d) => {
                    let (value, tally, lo) =
                        stored.map_or((0, Some(Tally::EMPTY), -1), |(r, _)| (r.value, r.tally, r.last_offset));
                    let through = if held.ready { lo.max(held.consumed) } else { lo };
                    let (sum, t) = truth(log, &k, through);
                    prop_assert_eq!(
                        (add_count(value, d.value), tally.map(|x| x.merge(d.tally))),
                        (sum, Some(t)),
                        "row {:?} (last_offset {}) with {:?}",
                        k,
                        lo,
                        held
                    );
                }
                Err(Stale::Landed | Stale::Replaced) => {}
            }
        }
    }
    Ok(())
}

/// The all-time row as a reader's cache of a series validates against it: its
/// sum, `last_offset` and write timestamp (`None`: no all-time row).
type Validator = Option<(i64, i64, i64)>;

fn validator(store: &Store, key: SeriesKey) -> Validator {
    store.rows.get(&key.total_row()).map(|(r, ts)| (r.value, r.last_offset, *ts))
}

/// A query service's cache of series rows (`query-service`'s `store::rows_cache`):
/// rows read once answer again, with a newer owner answer, for as long as the
/// all-time row read after that answer is the one read with them. The answer
/// from the cached rows must be what [`check_held`] demands of rows read now,
/// although they were read before the owner answered: every round that
/// completes rewrites the all-time row (its last batch), a later write always
/// has a later timestamp, so an unchanged all-time row means no round of the
/// series completed in between, and what a round in flight or in doubt has
/// written beside it is either held by the owner (and counted by the cached
/// rows' own `last_offset`s) or makes the answer not ready.
fn check_held_cached(
    log: &[Message],
    store: &Store,
    cache: &mut HashMap<SeriesKey, (Validator, Store)>,
    key: SeriesKey,
    held: &Held,
) -> Result<(), TestCaseError> {
    let now = validator(store, key);
    match cache.get(&key) {
        Some((cached, rows)) if *cached == now => check_held(log, rows, key, held),
        _ => {
            // A miss reads the rows now (what `check_held` checked) and keeps them.
            let rows = store.rows.iter().filter(|(k, _)| k.series() == key).map(|(k, r)| (*k, *r)).collect();
            cache.insert(key, (now, Store { rows }));
            Ok(())
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn rounds_on_any_schedule_never_lose_or_double_count(
        log in log_strategy(),
        owners in prop::collection::vec(owner_strategy(), 1..5),
        batch_rows in prop_oneof![Just(1usize), 2usize..6, Just(50)],
    ) {
        let end = log.len() as i64;
        let mut store = Store::default();
        let (mut epoch, mut attempted, mut committed) = (0i64, None::<i64>, 0i64);
        let mut in_flight: Vec<InFlight> = Vec::new();
        let mut written = 0usize; // batches written by all owners
        let finale = OwnerScript { round_every: 7, masks: vec![0x5555, u16::MAX], crash: None, landing: Landing::Never, pace: 1, unmarked: false };
        // Readers' answers from the owner (`crate::fresh`), read a step later; and
        // those of an owner that died, read all through the next owner's run.
        let (mut asks, mut zombie_asks): (Vec<Ask>, Vec<Ask>) = (Vec::new(), Vec::new());
        // A query service's cache of series rows, kept across owners as it is.
        let mut reader_cache: HashMap<SeriesKey, (Validator, Store)> = HashMap::new();
        for script in owners.iter().chain(std::iter::once(&finale)) {
            land(&log, &mut in_flight, &mut store, |f| f.before_census)?;
            epoch += 1; // step 1: the claim's lightweight transaction
            let mut cache: HashMap<RowKey, Option<StoredRow>> = HashMap::new();
            let census = attempted.filter(|&a| a >= committed).map(|a| {
                // Step 2: the series of the region and their floors, read now.
                let keys: HashSet<SeriesKey> =
                    log[committed as usize..=a as usize].iter().flatten().map(SeriesKey::from).collect();
                let floors = keys
                    .into_iter()
                    .map(|k| {
                        let total = store.get(&k.total_row());
                        cache.insert(k.total_row(), total);
                        (k, total.map_or(-1, |r| r.last_offset))
                    })
                    .collect();
                Census { through: a, floors }
            });
            land(&log, &mut in_flight, &mut store, |f| f.after <= written)?;
            let mut counts = PartitionCounts::new(census);
            let mut taken = 0usize;
            let mut offset = committed;
            let mut writing: Option<Writing> = None;
            // Settles the round in flight after `n` more writes: commits it (step 7)
            // or, if the owner died in it, leaves the rest of it on its way.
            macro_rules! advance {
                ($n:expr) => {
                    if let Some(w) = writing.as_mut() {
                        match advance(&log, w, $n, &mut store, &mut cache, &mut written, &mut in_flight)? {
                            Progress::Writing => {}
                            Progress::Done(commit) => {
                                prop_assert!(commit >= committed, "the commit never moves back");
                                committed = commit;
                                writing = None;
                            }
                            Progress::Crashed => {
                                let w = writing.take().expect("in flight");
                                zombie_asks = std::mem::take(&mut asks);
                                let rest = w.writes[w.done..].to_vec();
                                if w.done == 0 && script.unmarked {
                                    // Died before its LWT: not recorded, nothing sent.
                                    attempted = w.attempted_before;
                                    break;
                                }
                                match script.landing {
                                    Landing::Never => {}
                                    Landing::BeforeCensus => in_flight.push(InFlight { writes: rest, ts: w.ts, before_census: true, after: usize::MAX }),
                                    Landing::AfterWrites(j) => in_flight.push(InFlight { writes: rest, ts: w.ts, before_census: false, after: written + j }),
                                }
                                break;
                            }
                        }
                    }
                };
            }
            while offset < end {
                let folded = counts
                    .fold_all(offset, &log[offset as usize], 0)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_ne!(folded, Folded::FlushFirst, "every offset of the log is there");
                prop_assert_eq!(counts.pending_minutes, recount_minutes(&counts), "the kept count after a fold");
                offset += 1;
                // The round in flight goes on beside the fold.
                advance!(script.pace);
                // Readers: the answers asked a step ago read the store now, and one
                // more asks about this event's series.
                for (key, held) in asks.drain(..).chain(zombie_asks.iter().cloned()) {
                    check_held(&log, &store, key, &held)?;
                    check_held_cached(&log, &store, &mut reader_cache, key, &held)?;
                }
                for key in log[offset as usize - 1].iter().map(SeriesKey::from) {
                    asks.push((key, ask(&counts, writing.as_ref(), epoch, key)));
                }
                let at_end = offset == end;
                let periodic = ((offset - committed) as usize).is_multiple_of(script.round_every);
                let must = at_end || folded == Folded::FlushNow;
                if !must && !periodic {
                    continue;
                }
                if writing.is_some() {
                    if !must {
                        continue; // R4: the next round waits until this one is settled
                    }
                    advance!(usize::MAX); // the fence, the end: drained first
                }
                let mask = script.masks[taken % script.masks.len()];
                let round = if must { counts.take_all() } else { counts.take(|k, _| mask & (1 << series_bit(k)) != 0) };
                let Some(round) = round else { continue }; // fenced
                prop_assert_eq!(counts.pending_minutes, recount_minutes(&counts), "the kept count after a round");
                if round.is_empty() {
                    committed = round.commit;
                    taken += 1;
                    continue;
                }
                let attempted_before = attempted;
                attempted = Some(round.through); // step 4, fenced by the epoch: we are the owner
                // Step 5: a series without an all-time row has no rows (outside the
                // fenced round), as `Round::learn_absent_series` lets the owner assume;
                // then resolve every series, reading rows the cache lacks now.
                if !round.fenced {
                    for s in &round.series {
                        let total = s.key.total_row();
                        if cache.entry(total).or_insert_with(|| store.get(&total)).is_none() {
                            for (k, _) in &s.rows {
                                cache.entry(*k).or_insert(None);
                            }
                        }
                    }
                }
                let (mut leading, mut last): (Vec<Vec<RowWrite>>, Vec<Vec<RowWrite>>) = (Vec::new(), Vec::new());
                for s in &round.series {
                    let resolved = s
                        .resolve(round.through, |k| *cache.entry(*k).or_insert_with(|| store.get(k)))
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let (head, tail) = resolved.batches(batch_rows);
                    leading.extend(head.map(<[RowWrite]>::to_vec));
                    last.extend(Some(tail.to_vec()).filter(|t| !t.is_empty()));
                }
                // Step 6: as the aggregator sends them, every series' leading batches,
                // then each series' last batch, with its all-time row.
                let writes: Vec<Vec<RowWrite>> = leading.into_iter().chain(last).collect();
                let crash_at = script.crash.filter(|&(n, _)| n == taken).map(|(_, k)| k);
                let ts = write_timestamp(epoch, round.through);
                let commit = round.commit;
                writing = Some(Writing { writes, done: 0, crash_at, ts, commit, round, attempted_before });
                // A reader may ask while the round is written (or before it dies).
                for key in log[offset as usize - 1].iter().map(SeriesKey::from) {
                    asks.push((key, ask(&counts, writing.as_ref(), epoch, key)));
                }
                taken += 1;
                if script.pace == 0 {
                    advance!(usize::MAX);
                }
            }
            // The last round in flight completes (a crash in it left the loop).
            #[allow(clippy::never_loop)]
            loop {
                advance!(usize::MAX);
                prop_assert!(writing.is_none(), "the last round completed");
                break;
            }
        }
        prop_assert_eq!(committed, end);
        // Whatever is still on its way lands last, and must lose.
        land(&log, &mut in_flight, &mut store, |_| true)?;
        assert_rows_consistent(&log, &store)?;
        let mut expected: HashMap<RowKey, (i64, Option<Tally>)> = HashMap::new();
        for e in log.iter().flatten() {
            for g in Granularity::ALL {
                let k = RowKey { video_id: e.video_id, kind: e.kind, granularity: g, bucket_ms: g.bucket(e.occurred_at_ms) };
                let (sum, tally) = expected.entry(k).or_insert((0, Some(Tally::EMPTY)));
                *sum += e.value;
                *tally = tally.map(|t| t.merge(e.tally()));
            }
        }
        let actual: HashMap<RowKey, (i64, Option<Tally>)> = store.rows.iter().map(|(k, (r, _))| (*k, (r.value, r.tally))).collect();
        prop_assert_eq!(actual, expected);
    }
}

proptest! {
    /// The viewer sketches are written at `write_timestamp(epoch, round.through)`,
    /// and Cassandra breaks a timestamp tie by value, so an earlier, smaller union
    /// could beat a later one. It cannot happen: whatever the schedule, rounds that
    /// carry signed-in views have strictly increasing `through` (a view is noted
    /// after its fold, which moves `through` past the previous round's), and every
    /// noted view reaches exactly one round.
    #[test]
    fn rounds_carrying_views_never_share_a_timestamp(
        steps in proptest::collection::vec((0u8..4, any::<bool>(), 0i64..120_000), 1..80),
    ) {
        let mut c = PartitionCounts::new(None);
        let (mut offset, mut now) = (0i64, 0i64);
        let mut noted = 0usize;
        let mut rounds: Vec<(i64, usize)> = Vec::new();
        for (what, signed_in, dt) in steps {
            now += dt;
            match what {
                0 | 1 => {
                    // A view; signed in or not; each in its own minute, so the
                    // log keeps every noted view.
                    let at = T0 + offset * MINUTE_MS;
                    let e = view(what, at);
                    prop_assert!(matches!(c.fold(offset, Some(&e), now), Ok(Folded::Folded | Folded::FlushNow)));
                    if signed_in {
                        c.note_viewer(Uuid::from_u64_pair(1, offset as u64), e.video_id, at, Uuid::nil());
                        noted += 1;
                    }
                    offset += 1;
                }
                2 => {
                    if let Some(r) = c.take_due(now, &CADENCE) {
                        rounds.push((r.through, r.views.len()));
                    }
                }
                _ => {
                    if let Some(r) = c.take_all() {
                        rounds.push((r.through, r.views.len()));
                    }
                }
            }
        }
        if let Some(r) = c.take_all() {
            rounds.push((r.through, r.views.len()));
        }
        let with_views: Vec<i64> = rounds.iter().filter(|(_, n)| *n > 0).map(|(t, _)| *t).collect();
        prop_assert!(with_views.windows(2).all(|w| w[0] < w[1]), "{rounds:?}");
        prop_assert_eq!(rounds.iter().map(|(_, n)| n).sum::<usize>(), noted);
    }
}

proptest! {
    /// `SeriesKey`'s hand-written `==` and `Hash` agree with the (video, kind) pair's.
    #[test]
    fn series_keys_compare_and_hash_as_their_pairs(a in any::<[u8; 16]>(), b in any::<[u8; 16]>(), same_id: bool, ka in 0u8..5, kb in 0u8..5) {
        use std::hash::BuildHasher;
        let b = if same_id { a } else { b };
        let kinds = [EventKind::View, EventKind::Play, EventKind::Like, EventKind::Share, EventKind::Complete];
        let x = SeriesKey { video_id: Uuid::from_bytes(a), kind: kinds[usize::from(ka)] };
        let y = SeriesKey { video_id: Uuid::from_bytes(b), kind: kinds[usize::from(kb)] };
        prop_assert_eq!(x == y, (a, ka) == (b, kb));
        prop_assert_eq!(x.cmp(&y).is_eq(), x == y);
        let state = ahash::RandomState::new();
        if x == y {
            // As the map hashes: through `BuildHasher` (ahash has an inherent `hash_one` too).
            prop_assert_eq!(BuildHasher::hash_one(&state, x), BuildHasher::hash_one(&state, y));
        }
    }
}
