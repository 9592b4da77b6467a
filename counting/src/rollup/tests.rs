use std::collections::HashMap;

use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::time::{DAY_MS, HOUR_MS, MINUTE_MS};

const T0: i64 = 1_710_028_800_000; // 2024-03-10T00:00:00Z

fn video(i: u8) -> Uuid {
    Uuid::from_bytes([i; 16])
}

fn ev(v: u8, at: i64, value: i64) -> CountedEvent {
    CountedEvent { video_id: video(v), kind: EventKind::View, occurred_at_ms: at, value, correction: None }
}

fn key(v: u8, granularity: Granularity, at: i64) -> RowKey {
    RowKey { video_id: video(v), kind: EventKind::View, granularity, bucket_ms: granularity.bucket(at) }
}

#[test]
fn a_flush_plans_minute_hour_day_and_total_rows() {
    let mut buf = PartitionBuffer::new(None);
    let _ = buf.fold(10, Some(&ev(1, T0 + 5 * MINUTE_MS, 1)));
    let _ = buf.fold(11, Some(&ev(1, T0 + 5 * MINUTE_MS + 1, 2)));
    let _ = buf.fold(12, None); // dead-lettered: consumes an offset, counts nothing
    let _ = buf.fold(13, Some(&ev(1, T0 + 2 * HOUR_MS, 1)));
    let plan = buf.take().unwrap();
    assert!(buf.is_empty() && buf.take().is_none());
    assert_eq!((plan.first_offset, plan.through_offset, plan.events), (10, 13, 3));
    let d: HashMap<_, _> = plan.deltas.iter().copied().collect();
    assert_eq!(d.len(), 2 + 2 + 1 + 1);
    assert_eq!(d[&key(1, Granularity::Minute, T0 + 5 * MINUTE_MS)], 3);
    assert_eq!(d[&key(1, Granularity::Hour, T0)], 3);
    assert_eq!(d[&key(1, Granularity::Hour, T0 + 2 * HOUR_MS)], 1);
    assert_eq!(d[&key(1, Granularity::Day, T0)], 4);
    assert_eq!(d[&key(1, Granularity::Total, T0)], 4);
    assert_eq!(plan.commit_offset(), 14);
}

#[test]
fn signed_in_views_become_one_activity_per_user_video_and_minute() {
    let (user, other) = (video(100), video(101));
    let id = |i: u8| Uuid::from_bytes([200 + i; 16]);
    let mut buf = PartitionBuffer::new(None);
    for (offset, (u, at, eid)) in
        [(user, T0, id(1)), (user, T0 + 1_000, id(2)), (user, T0 + MINUTE_MS, id(3)), (other, T0, id(4))]
            .into_iter()
            .enumerate()
    {
        assert_eq!(buf.fold(offset as i64, Some(&ev(1, at, 1))), Folded::Folded);
        buf.note_viewer(u, video(1), at, eid);
    }
    let plan = buf.take().unwrap();
    let mut got: Vec<(Uuid, Uuid, ActivityKind)> =
        plan.activities.iter().map(|a| (a.user_id, a.activity_ts, a.kind)).collect();
    got.sort();
    let mut want =
        vec![(user, id(1), ActivityKind::View), (user, id(3), ActivityKind::View), (other, id(4), ActivityKind::View)];
    want.sort();
    assert_eq!(got, want, "the second view in the same minute is not a new entry; the first keeps its id");
    assert!(plan.activities.iter().all(|a| a.activity_id == video(1)));
    assert_eq!(plan.events, 4, "every view still counts");
    // For the viewer sketches and who viewed: one per (user, video, minute), at
    // the latest time viewed in that minute, sorted by (video, user, time).
    let at = |user_id, occurred_at_ms| SignedInView { video_id: video(1), user_id, occurred_at_ms };
    let mut want = vec![at(user, T0 + 1_000), at(user, T0 + MINUTE_MS), at(other, T0)];
    want.sort();
    assert_eq!(plan.views, want);
}

#[test]
fn the_last_offset_rule_adds_skips_or_refuses() {
    let mut buf = PartitionBuffer::new(None);
    let _ = buf.fold(100, Some(&ev(1, T0, 1)));
    let _ = buf.fold(101, Some(&ev(2, T0, 1)));
    let _ = buf.fold(102, Some(&ev(3, T0, 1)));
    let plan = buf.take().unwrap();
    let m = |v| key(v, Granularity::Minute, T0);
    let stored = |k: &RowKey| match k.video_id {
        v if v == video(1) => None,
        v if v == video(2) => Some(StoredRow { value: 7, last_offset: 99, tally: None }),
        _ => Some(StoredRow { value: 7, last_offset: 102, tally: None }),
    };
    let r = plan.resolve(stored).unwrap();
    assert_eq!(r.skipped, 4, "video 3's four rows already hold this flush");
    let w: HashMap<_, _> = r.writes.iter().map(|w| (w.key, (w.value, w.last_offset))).collect();
    assert_eq!(w[&m(1)], (1, 102));
    assert_eq!(w[&m(2)], (8, 102));
    assert!(!w.contains_key(&m(3)));

    let overlap = plan.resolve(|_| Some(StoredRow { value: 1, last_offset: 100, tally: None })).unwrap_err();
    assert_eq!((overlap.first_offset, overlap.through_offset, overlap.last_offset), (100, 102, 100));
}

#[test]
fn a_fenced_buffer_flushes_exactly_at_the_fence() {
    let mut buf = PartitionBuffer::new(Some(5));
    assert_eq!(buf.fold(3, Some(&ev(1, T0, 1))), Folded::Folded);
    assert!(buf.take().is_none(), "short of the fence: no flush allowed");
    assert_eq!(buf.fold(5, Some(&ev(1, T0, 1))), Folded::FlushNow, "offset 5 is the fence");
    assert_eq!(buf.take().unwrap().through_offset, 5);
    assert_eq!(buf.fold(6, Some(&ev(1, T0, 1))), Folded::Folded, "the fence is gone once passed");

    // The fence's own message never shows up (say it was compacted away).
    let mut buf = PartitionBuffer::new(Some(5));
    assert_eq!(buf.fold(4, Some(&ev(1, T0, 1))), Folded::Folded);
    assert_eq!(buf.fold(7, Some(&ev(1, T0, 1))), Folded::FlushFirst);
    assert_eq!(buf.take().unwrap().through_offset, 4);
    assert_eq!(buf.fold(7, Some(&ev(1, T0, 1))), Folded::Folded);
    // An empty fenced buffer needs no flush when the first message is past the fence.
    assert_eq!(PartitionBuffer::new(Some(5)).fold(9, None), Folded::Folded);
}

#[test]
fn timestamps_order_by_epoch_then_offset() {
    assert!(write_timestamp(2, 0) > write_timestamp(1, (1 << 40) - 1));
    assert!(write_timestamp(1, 10) > write_timestamp(1, 9));
}

fn events_strategy() -> impl Strategy<Value = Vec<CountedEvent>> {
    prop::collection::vec((0u8..4, 0i64..3 * DAY_MS / MINUTE_MS, 1i64..4), 1..300)
        .prop_map(|v| v.into_iter().map(|(vid, minute, value)| ev(vid, T0 + minute * MINUTE_MS + 17, value)).collect())
}

proptest! {
    /// Every granularity of a plan sums to the same total, and each coarser row is
    /// the sum of the finer rows inside it.
    #[test]
    fn rollup_rows_agree_with_each_other(events in events_strategy()) {
        let mut buf = PartitionBuffer::new(None);
        for (i, e) in events.iter().enumerate() {
            let _ = buf.fold(i as i64, Some(e));
        }
        let plan = buf.take().unwrap();
        let total: i64 = events.iter().map(|e| e.value).sum();
        for g in Granularity::ALL {
            let sum: i64 = plan.deltas.iter().filter(|(k, _)| k.granularity == g).map(|(_, d)| d).sum();
            prop_assert_eq!(sum, total, "granularity {:?}", g);
        }
        for (k, d) in plan.deltas.iter().filter(|(k, _)| k.granularity == Granularity::Hour) {
            let inside: i64 = plan
                .deltas
                .iter()
                .filter(|(m, _)| m.granularity == Granularity::Minute && m.video_id == k.video_id)
                .filter(|(m, _)| Granularity::Hour.bucket(m.bucket_ms) == k.bucket_ms)
                .map(|(_, d)| d)
                .sum();
            prop_assert_eq!(inside, *d);
        }
    }
}

// ---------------------------------------------------------------------------
// The whole protocol, simulated: owners that crash halfway through writing a
// flush, and stale owners ("zombies") whose writes land after a newer owner took
// over. The store is last-write-wins by timestamp, as Cassandra is.

#[derive(Default)]
struct Store {
    rows: HashMap<RowKey, (StoredRow, i64)>,
}

impl Store {
    fn write(&mut self, w: RowWrite, ts: i64) {
        let new = (w.stored(), ts);
        match self.rows.get(&w.key) {
            // Cassandra breaks timestamp ties by the larger value.
            Some((old, old_ts)) if (*old_ts, old.value) >= (ts, w.value) => {}
            _ => {
                self.rows.insert(w.key, new);
            }
        }
    }
}

/// The ledger: what a row must hold once it is complete up to `through`.
fn truth(log: &[CountedEvent], key: &RowKey, through: i64) -> i64 {
    log.iter()
        .take((through + 1) as usize)
        .filter(|e| e.video_id == key.video_id && key.granularity.bucket(e.occurred_at_ms) == key.bucket_ms)
        .map(|e| e.value)
        .sum()
}

/// Never a double count or a loss relative to `last_offset`, at any moment.
fn assert_rows_consistent(log: &[CountedEvent], store: &Store) -> Result<(), TestCaseError> {
    for (k, (row, _)) in &store.rows {
        prop_assert_eq!(row.value, truth(log, k, row.last_offset), "row {:?}", k);
    }
    Ok(())
}

#[derive(Clone, Debug)]
struct OwnerScript {
    flush_every: usize,
    /// Die during the n-th flush, after writing this many of its rows.
    crash: Option<(usize, usize)>,
    /// The rows a crashed owner did not write land later, after the next owner's
    /// first flush: a paused process waking up.
    zombie: bool,
}

fn owner_strategy() -> impl Strategy<Value = OwnerScript> {
    (1usize..60, prop::option::of((0usize..4, 0usize..40)), any::<bool>())
        .prop_map(|(flush_every, crash, zombie)| OwnerScript { flush_every, crash, zombie })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn crashes_and_zombies_never_lose_or_double_count(
        log in events_strategy(),
        owners in prop::collection::vec(owner_strategy(), 1..5),
    ) {
        let mut store = Store::default();
        let (mut epoch, mut attempted, mut committed) = (0i64, None::<i64>, 0i64);
        let mut zombie_writes: Vec<(RowWrite, i64)> = Vec::new();
        let end = log.len() as i64;

        // The scripted owners, then one that runs to the end without trouble.
        let finale = OwnerScript { flush_every: 25, crash: None, zombie: false };
        for script in owners.iter().chain(std::iter::once(&finale)) {
            epoch += 1; // the assignment's lightweight transaction
            let fence = attempted.filter(|&a| a >= committed);
            let mut buf = PartitionBuffer::new(fence);
            let mut cache: HashMap<RowKey, StoredRow> = HashMap::new();
            let mut flushes = 0usize;
            let mut offset = committed;
            let mut crashed = false;
            let mut pending_zombies = std::mem::take(&mut zombie_writes);
            while offset <= end && !crashed {
                let at_end = offset == end;
                let mut flush_now = at_end;
                if at_end {
                    offset += 1;
                } else {
                    match buf.fold(offset, Some(&log[offset as usize])) {
                        Folded::FlushFirst => flush_now = true, // fold it again next turn
                        Folded::FlushNow => {
                            flush_now = true;
                            offset += 1;
                        }
                        Folded::Folded => {
                            // A periodic flush; refused by a fenced buffer.
                            flush_now = ((offset + 1 - committed) as usize).is_multiple_of(script.flush_every);
                            offset += 1;
                        }
                    }
                }
                if !flush_now {
                    continue;
                }
                let Some(plan) = buf.take() else { continue };
                attempted = Some(plan.through_offset); // fenced by epoch: we are the owner
                let resolved = plan
                    .resolve(|k| cache.get(k).copied().or_else(|| store.rows.get(k).map(|(r, _)| *r)))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let ts = write_timestamp(epoch, plan.through_offset);
                let limit = match script.crash {
                    Some((n, written)) if n == flushes => written.min(resolved.writes.len()),
                    _ => resolved.writes.len(),
                };
                for w in &resolved.writes[..limit] {
                    store.write(*w, ts);
                    cache.insert(w.key, w.stored());
                    assert_rows_consistent(&log, &store)?;
                }
                if limit < resolved.writes.len() || matches!(script.crash, Some((n, _)) if n == flushes) {
                    if script.zombie {
                        zombie_writes = resolved.writes[limit..].iter().map(|w| (*w, ts)).collect();
                    }
                    crashed = true;
                    continue;
                }
                committed = plan.commit_offset();
                flushes += 1;
                // A previous owner's paused writes land now, after our first flush.
                for (w, ts) in pending_zombies.drain(..) {
                    store.write(w, ts);
                    assert_rows_consistent(&log, &store)?;
                }
            }
        }
        prop_assert_eq!(committed, end);
        // Every row equals the ledger of the whole log.
        let mut expected: HashMap<RowKey, i64> = HashMap::new();
        for e in &log {
            for g in Granularity::ALL {
                *expected.entry(RowKey { video_id: e.video_id, kind: e.kind, granularity: g, bucket_ms: g.bucket(e.occurred_at_ms) }).or_insert(0) += e.value;
            }
        }
        let actual: HashMap<RowKey, i64> = store.rows.iter().map(|(k, (r, _))| (*k, r.value)).collect();
        prop_assert_eq!(actual, expected);
    }
}

proptest! {
    /// Whatever values reach the core (the decoder bounds them, but the core does
    /// not rely on it): no fold, plan or resolve panics on overflow (debug builds
    /// check every `+`); without negative values (compensating events) a row's new
    /// value is never below what the store held; and with values a decoder lets
    /// through (events of 1..=1,000,000, corrections of up to 10^12 either way) the
    /// all-time row is the exact sum.
    #[test]
    fn counts_never_wrap_and_stay_exact(
        values in prop::collection::vec(prop_oneof![
            Just(i64::MAX), Just(i64::MIN), Just(1i64 << 62), Just(-1i64), Just(0i64), 1i64..=1_000_000,
            -1_000_000_000_000i64..=1_000_000_000_000,
        ], 1..40),
        stored in prop_oneof![Just(None), Just(Some(i64::MAX - 1)), (0i64..=1i64 << 50).prop_map(Some)],
    ) {
        let mut buf = PartitionBuffer::new(None);
        for (i, v) in values.iter().enumerate() {
            // A few minutes, so minute, hour and total rows all sum several values.
            let at = T0 + (i as i64 % 3) * MINUTE_MS;
            let _ = buf.fold(100 + i as i64, Some(&ev(1, at, *v)));
        }
        let plan = buf.take().unwrap();
        let row = |_: &RowKey| stored.map(|value| StoredRow { value, last_offset: 0, tally: None });
        let resolved = plan.resolve(row).unwrap();
        if values.iter().all(|v| *v >= 0) {
            for w in &resolved.writes {
                prop_assert!(w.value >= stored.unwrap_or(0), "{w:?} went below {stored:?}");
            }
        }
        let total = resolved.writes.iter().find(|w| w.key.granularity == Granularity::Total).map(|w| w.value);
        let decodable = values.iter().all(|v| *v != 0 && v.unsigned_abs() <= 1_000_000_000_000);
        if decodable && stored.is_none_or(|s| s <= 1 << 50) {
            let exact: i128 = i128::from(stored.unwrap_or(0)) + values.iter().map(|v| i128::from(*v)).sum::<i128>();
            prop_assert_eq!(total.map(i128::from), Some(exact));
        }
    }

    #[test]
    fn add_count_is_exact_within_range_and_never_wraps(a in any::<i64>(), b in any::<i64>()) {
        let c = add_count(a, b);
        match a.checked_add(b) {
            Some(exact) => prop_assert_eq!(c, exact),
            // Past either end it stays there, on the side it was going.
            None => prop_assert_eq!(c, if b > 0 { i64::MAX } else { i64::MIN }),
        }
        if b >= 0 {
            prop_assert!(c >= a, "adding never lowers a count");
        }
    }
}
