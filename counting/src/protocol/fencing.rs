//! The fencing simulation: owners that keep running after they were replaced.
//!
//! `rollup::tests::crashes_and_zombies_never_lose_or_double_count` lets a crashed
//! owner's unwritten rows land late. Here an owner is never told it was replaced:
//! a takeover (P1, P2) can happen between any two steps of any owner, and the old
//! owner keeps folding, flushing and writing as if nothing happened, interleaved
//! step by step with its successors, as a process does after a SIGSTOP longer than
//! its session timeout and a SIGCONT. Only the protocol stops it: its next P5
//! (`mark_attempted … IF epoch = <mine>`) fails, and the writes it had already
//! started carry timestamps from its older epoch (P8).
//!
//! The store is last-write-wins by timestamp, ties broken by the larger value, as
//! Cassandra's cells are. Kafka commits are accepted from the current group
//! generation only, as the broker does. Each owner knows rows the way the
//! aggregator's `RowCache` does: once read (including their absence) or written,
//! a row is never read again during that ownership. After every single write every
//! row must equal the ledger up to its `last_offset`, no flush may find a row
//! holding part of it (an overlap halts a partition in the aggregator; here it
//! fails the case), and at the end every row equals the ledger of the whole log.
//!
//! To extend it to another flush design, change [`Owner::begin_flush`] (what a
//! flush plans and resolves) and keep the scheduler, the store and the checks.

use std::collections::HashMap;

use proptest::prelude::*;
use uuid::Uuid;

use crate::kind::EventKind;
use crate::rollup::{CountedEvent, FlushPlan, Folded, PartitionBuffer, RowKey, RowWrite, StoredRow, write_timestamp};
use crate::time::{DAY_MS, Granularity, MINUTE_MS};

const T0: i64 = 1_710_028_800_000; // 2024-03-10T00:00:00Z

/// Cassandra's rows: last write wins by timestamp, then by the larger value.
#[derive(Default)]
struct Store {
    rows: HashMap<RowKey, (StoredRow, i64)>,
}

impl Store {
    fn write(&mut self, w: RowWrite, ts: i64) {
        let wins = match self.rows.get(&w.key) {
            Some((old, old_ts)) => (ts, w.value) > (*old_ts, old.value),
            None => true,
        };
        if wins {
            self.rows.insert(w.key, (w.stored(), ts));
        }
    }

    fn read(&self, k: &RowKey) -> Option<StoredRow> {
        self.rows.get(k).map(|(r, _)| *r)
    }
}

/// `partition_state` (epoch, attempted) and Kafka's committed offset and group
/// generation, for the one partition simulated.
#[derive(Default)]
struct Shared {
    epoch: i64,
    attempted: Option<i64>,
    committed: i64,
    generation: u32,
    /// P5s refused because a newer owner had claimed the partition.
    refused_marks: usize,
}

impl Shared {
    /// P1 and P2: bump the epoch, read `attempted`.
    fn claim(&mut self) -> (i64, Option<i64>) {
        self.epoch += 1;
        self.generation += 1;
        (self.epoch, self.attempted)
    }

    /// P5: `UPDATE partition_state SET attempted = ? … IF epoch = ?`.
    fn mark_attempted(&mut self, epoch: i64, through: i64) -> bool {
        if self.epoch != epoch {
            self.refused_marks += 1;
            return false;
        }
        self.attempted = Some(through);
        true
    }

    /// P9: the broker refuses commits from an older generation.
    fn commit(&mut self, generation: u32, offset: i64) -> bool {
        if generation != self.generation {
            return false;
        }
        self.committed = offset;
        true
    }
}

/// A flush between its P5 and its last write.
struct InFlight {
    writes: Vec<RowWrite>,
    written: usize,
    ts: i64,
    commit: i64,
}

struct Owner {
    epoch: i64,
    generation: u32,
    flush_every: usize,
    /// Next offset to fold.
    next: i64,
    folded_since_flush: usize,
    buffer: PartitionBuffer,
    /// What this owner has read or written, absent rows included.
    known: HashMap<RowKey, Option<StoredRow>>,
    in_flight: Option<InFlight>,
    /// Its P5 failed, or the broker refused its commit: it writes nothing more.
    stopped: bool,
    /// The message at `next` asked for a flush first (`Folded::FlushFirst`).
    flush_first: bool,
}

/// What one step of the scheduled owner did.
#[derive(Debug, PartialEq, Eq)]
enum Did {
    Wrote,
    Other,
    Idle,
}

impl Owner {
    /// A new owner: claims the partition (P1, P2), fences its buffer at
    /// `attempted`, and replays from the committed offset.
    fn take_over(shared: &mut Shared, flush_every: usize) -> Owner {
        let (epoch, attempted) = shared.claim();
        Owner {
            epoch,
            generation: shared.generation,
            flush_every,
            next: shared.committed,
            folded_since_flush: 0,
            buffer: PartitionBuffer::new(attempted),
            known: HashMap::new(),
            in_flight: None,
            stopped: false,
            flush_first: false,
        }
    }

    fn done(&self, end: i64) -> bool {
        self.stopped || (self.in_flight.is_none() && self.next >= end && self.buffer.is_empty())
    }

    /// One step: write one row of the flush in flight, or commit it, or start a
    /// flush, or fold one message.
    fn step(&mut self, log: &[CountedEvent], store: &mut Store, shared: &mut Shared) -> Result<Did, TestCaseError> {
        let end = log.len() as i64;
        if self.stopped {
            return Ok(Did::Idle);
        }
        if let Some(f) = &mut self.in_flight {
            if f.written < f.writes.len() {
                // P8: one row at the fenced timestamp.
                let w = f.writes[f.written];
                store.write(w, f.ts);
                self.known.insert(w.key, Some(w.stored()));
                f.written += 1;
                return Ok(Did::Wrote);
            }
            // P9.
            let commit = f.commit;
            self.in_flight = None;
            // A replaced member's commit is refused; it starts no flush before its
            // commit lands (P9), and on the revoke that follows it skips a
            // partition whose commit fails (P10). So it stops here.
            if !shared.commit(self.generation, commit) {
                self.stopped = true;
            }
            return Ok(Did::Other);
        }
        let at_end = self.next >= end;
        let due = self.flush_first || at_end || self.folded_since_flush >= self.flush_every;
        if due && !self.buffer.is_empty() && !self.buffer.is_fenced() {
            self.flush_first = false;
            return self.begin_flush(store, shared);
        }
        if at_end {
            return Ok(Did::Idle);
        }
        // P4.
        match self.buffer.fold(self.next, Some(&log[self.next as usize])) {
            Folded::FlushFirst => self.flush_first = true,
            Folded::FlushNow => {
                self.next += 1;
                self.flush_first = true;
            }
            Folded::Folded => {
                self.next += 1;
                self.folded_since_flush += 1;
            }
        }
        Ok(Did::Other)
    }

    /// P5–P7: mark, learn the rows this owner does not know, resolve. Writing
    /// (P8) happens one row per step afterwards.
    fn begin_flush(&mut self, store: &Store, shared: &mut Shared) -> Result<Did, TestCaseError> {
        let plan: FlushPlan = self.buffer.take().expect("a non-empty unfenced buffer has a plan");
        self.folded_since_flush = 0;
        if !shared.mark_attempted(self.epoch, plan.through_offset) {
            self.stopped = true;
            return Ok(Did::Other);
        }
        for (k, _) in &plan.deltas {
            self.known.entry(*k).or_insert_with(|| store.read(k));
        }
        let resolved = plan
            .resolve(|k| self.known[k])
            .map_err(|e| TestCaseError::fail(format!("owner of epoch {}: {e}", self.epoch)))?;
        self.in_flight = Some(InFlight {
            writes: resolved.writes,
            written: 0,
            ts: write_timestamp(self.epoch, plan.through_offset),
            commit: plan.commit_offset(),
        });
        Ok(Did::Other)
    }
}

/// What the scheduler does next.
#[derive(Clone, Copy, Debug)]
enum Action {
    /// A step of the owner at this index (modulo the owners still running).
    Step(usize),
    /// A new owner claims the partition; the others are not told.
    TakeOver { flush_every: usize },
    /// The owner at this index dies: whatever it had not written never lands.
    Crash(usize),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        30 => any::<usize>().prop_map(Action::Step),
        2 => (1usize..40).prop_map(|flush_every| Action::TakeOver { flush_every }),
        1 => any::<usize>().prop_map(Action::Crash),
    ]
}

fn video(i: u8) -> Uuid {
    Uuid::from_bytes([i; 16])
}

fn log() -> impl Strategy<Value = Vec<CountedEvent>> {
    prop::collection::vec((0u8..3, 0i64..2 * DAY_MS / MINUTE_MS, 1i64..4), 1..160).prop_map(|v| {
        v.into_iter()
            .map(|(vid, minute, value)| CountedEvent {
                video_id: video(vid),
                kind: EventKind::View,
                occurred_at_ms: T0 + minute * MINUTE_MS + 17,
                value,
                correction: None,
            })
            .collect()
    })
}

/// What a row must hold once it is complete up to `through`.
fn truth(log: &[CountedEvent], key: &RowKey, through: i64) -> i64 {
    log.iter()
        .take((through + 1).max(0) as usize)
        .filter(|e| e.video_id == key.video_id && key.granularity.bucket(e.occurred_at_ms) == key.bucket_ms)
        .map(|e| e.value)
        .sum()
}

fn check_rows(log: &[CountedEvent], store: &Store) -> Result<(), TestCaseError> {
    for (k, (row, _)) in &store.rows {
        prop_assert_eq!(row.value, truth(log, k, row.last_offset), "row {:?} at last_offset {}", k, row.last_offset);
    }
    Ok(())
}

/// The log, the store, the shared state, and what the old owners managed to do.
struct World<'a> {
    log: &'a [CountedEvent],
    store: Store,
    shared: Shared,
    /// Rows written by an owner after it was replaced.
    zombie_writes: usize,
}

impl<'a> World<'a> {
    fn new(log: &'a [CountedEvent]) -> Self {
        Self { log, store: Store::default(), shared: Shared::default(), zombie_writes: 0 }
    }

    fn end(&self) -> i64 {
        self.log.len() as i64
    }

    fn take_over(&mut self, flush_every: usize) -> Owner {
        Owner::take_over(&mut self.shared, flush_every)
    }

    /// One step of `o`, then the check of every row after a write.
    fn step(&mut self, o: &mut Owner) -> Result<Did, TestCaseError> {
        let current = o.generation == self.shared.generation;
        let did = o.step(self.log, &mut self.store, &mut self.shared)?;
        if did == Did::Wrote {
            self.zombie_writes += usize::from(!current);
            check_rows(self.log, &self.store)?;
        }
        Ok(did)
    }

    /// Steps `o` until it is done.
    fn run_out(&mut self, o: &mut Owner) -> Result<(), TestCaseError> {
        let mut idle = 0;
        while !o.done(self.end()) {
            idle = if self.step(o)? == Did::Idle { idle + 1 } else { 0 };
            prop_assert!(idle < 3, "owner of epoch {} cannot make progress", o.epoch);
        }
        Ok(())
    }

    fn assert_exact(&self) -> Result<(), TestCaseError> {
        prop_assert_eq!(self.shared.committed, self.end());
        let actual: HashMap<RowKey, i64> = self.store.rows.iter().map(|(k, (r, _))| (*k, r.value)).collect();
        prop_assert_eq!(actual, ledger(self.log));
        Ok(())
    }
}

/// Runs `script`, then lets every owner still running go on, round-robin, until
/// all are done: zombies too, until they are stopped or out of messages.
fn run(world: &mut World<'_>, first_flush_every: usize, script: &[Action]) -> Result<(), TestCaseError> {
    let mut owners = vec![world.take_over(first_flush_every)];
    for a in script {
        match *a {
            Action::Step(i) if !owners.is_empty() => {
                let n = owners.len();
                world.step(&mut owners[i % n])?;
            }
            Action::TakeOver { flush_every } => owners.push(world.take_over(flush_every)),
            Action::Crash(i) if !owners.is_empty() => {
                let n = owners.len();
                owners.remove(i % n);
            }
            _ => {}
        }
        owners.retain(|o| !o.stopped);
    }
    // If the newest owner is gone, the group hands the partition to a new one.
    if owners.last().is_none_or(|o| o.generation != world.shared.generation) {
        owners.push(world.take_over(25));
    }
    let mut idle_rounds = 0;
    while owners.iter().any(|o| !o.done(world.end())) {
        let mut progressed = false;
        for o in owners.iter_mut() {
            progressed |= world.step(o)? != Did::Idle;
        }
        idle_rounds = if progressed { 0 } else { idle_rounds + 1 };
        prop_assert!(idle_rounds < 3, "no owner can make progress");
    }
    Ok(())
}

fn ledger(log: &[CountedEvent]) -> HashMap<RowKey, i64> {
    let mut expected: HashMap<RowKey, i64> = HashMap::new();
    for e in log {
        for g in Granularity::ALL {
            let key =
                RowKey { video_id: e.video_id, kind: e.kind, granularity: g, bucket_ms: g.bucket(e.occurred_at_ms) };
            *expected.entry(key).or_insert(0) += e.value;
        }
    }
    expected
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    /// Replaced owners that keep folding, flushing and writing, interleaved with
    /// their successors at every step, never make a row lose or double count.
    #[test]
    fn replaced_owners_that_keep_running_never_lose_or_double_count(
        log in log(),
        first_flush_every in 1usize..40,
        script in prop::collection::vec(action(), 0..400),
    ) {
        let mut world = World::new(&log);
        run(&mut world, first_flush_every, &script)?;
        world.assert_exact()?;
    }
}

fn sixty_views() -> Vec<CountedEvent> {
    (0..60)
        .map(|i| CountedEvent {
            video_id: video((i % 3) as u8),
            kind: EventKind::View,
            occurred_at_ms: T0 + (i as i64 % 7) * MINUTE_MS,
            value: 1,
            correction: None,
        })
        .collect()
}

/// Paused between two flushes: the old owner wakes up with messages folded
/// since its last commit and starts a flush. P5 refuses it: it writes nothing.
#[test]
fn an_owner_paused_between_flushes_is_refused_at_its_next_mark() {
    let log = sixty_views();
    let mut w = World::new(&log);
    let mut old = w.take_over(20);
    while w.shared.committed < 20 {
        w.step(&mut old).unwrap();
    }
    for _ in 0..10 {
        w.step(&mut old).unwrap(); // folds 20..30, not yet flushed
    }
    let mut new = w.take_over(7);
    w.run_out(&mut new).unwrap();
    let rows_before = w.store.rows.clone();
    w.run_out(&mut old).unwrap();
    assert_eq!(w.shared.refused_marks, 1, "the old owner's flush was refused at P5");
    assert_eq!(w.zombie_writes, 0);
    assert_eq!(w.store.rows, rows_before, "nothing the old owner did reached the store");
    w.assert_exact().unwrap();
}

/// Paused in the middle of a flush: its successor completes that flush and moves
/// on; the old owner wakes up and writes the rest of its flush late, at its older
/// epoch's timestamps, then its commit is refused and it stops.
#[test]
fn an_owner_paused_mid_flush_writes_late_and_loses() {
    let log = sixty_views();
    let mut w = World::new(&log);
    let mut old = w.take_over(20);
    while old.in_flight.as_ref().is_none_or(|f| f.written < 3) {
        w.step(&mut old).unwrap();
    }
    let mut new = w.take_over(7);
    w.run_out(&mut new).unwrap();
    w.run_out(&mut old).unwrap();
    assert!(w.zombie_writes > 0, "the old owner's late writes landed after its successor's");
    w.assert_exact().unwrap();
}
