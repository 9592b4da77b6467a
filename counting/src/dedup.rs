//! Dropping repeats of client-chosen event ids, deterministically.
//!
//! The rule: an event is a repeat iff the same partition holds the same id at an
//! earlier offset whose log timestamp is at most `window_ms` older. The events
//! topic uses broker append time, so timestamps never decrease along a partition,
//! and the rule depends on the log alone. Every owner, including one replaying an
//! in-doubt flush after a crash, therefore makes the same decisions, as long as it
//! has seen at least `window_ms` of the log before its first offset.
//!
//! The window is a map of id to the latest log time it was seen at, in 64 shards
//! by the id's last byte (random in the v4 and v7 UUIDs clients make; ids an
//! attacker aims at one shard only make that shard bigger). Each time the log
//! time moves on by 1/256 of the window, one shard is swept of what has left the
//! window, in memory order, so each shard is swept every quarter window and holds
//! up to a window and a quarter of ids. An id costs one map entry (its 16 bytes
//! and a timestamp) and one probe per event; nothing is done per event to evict,
//! and a sweep or a map's doubling stops the poll loop for a 64th of the window's
//! ids at a time, not all of them. (Until 2026-11-30 a queue of every id in
//! arrival order drove eviction: a second random access per event and 24 more
//! bytes per id. At 160,000 batched events/s every event carries an id, the
//! client library's retry key, and ten minutes of them are 96 million; README,
//! Measured.)
//!
//! The maps hash with aHash, keyed at random per map like std's SipHash (the ids
//! are the client's, so an attacker may choose them), at a fraction of SipHash's
//! cost per probe (README, Measured, "The aggregator's hash").

use std::collections::HashMap;

use ahash::RandomState;

const SHARDS: usize = 64;

/// An id as two words: compared with two loads where `[u8; 16]`'s `==` is a
/// `memcmp` call, and no bigger in the map (`u128` would be 16-byte aligned, so
/// an entry would take 32 bytes instead of 24).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Id(u64, u64);

impl From<[u8; 16]> for Id {
    fn from(id: [u8; 16]) -> Self {
        let (hi, lo) = id.split_at(8);
        Self(u64::from_le_bytes(hi.try_into().expect("8 bytes")), u64::from_le_bytes(lo.try_into().expect("8 bytes")))
    }
}

#[derive(Debug)]
pub struct DedupWindow {
    window_ms: i64,
    /// The latest log time each id was seen at, by the id's last byte.
    shards: Vec<HashMap<Id, i64, RandomState>>,
    /// The log time of the last sweep (the first event's before any), and the
    /// shard the next one sweeps.
    swept_ms: Option<i64>,
    next_sweep: usize,
}

impl DedupWindow {
    pub fn new(window_ms: i64) -> Self {
        Self { window_ms, shards: (0..SHARDS).map(|_| HashMap::default()).collect(), swept_ms: None, next_sweep: 0 }
    }

    /// Records `id` at log time `ts_ms`; true if it repeats an id seen within the window.
    pub fn observe(&mut self, id: [u8; 16], ts_ms: i64) -> bool {
        let oldest_kept = ts_ms.saturating_sub(self.window_ms);
        let swept = *self.swept_ms.get_or_insert(ts_ms);
        if ts_ms.saturating_sub(swept) > self.window_ms / (4 * SHARDS as i64) {
            // Forget what no later event can repeat (timestamps never go back).
            self.shards[self.next_sweep].retain(|_, t| *t >= oldest_kept);
            self.next_sweep = (self.next_sweep + 1) % SHARDS;
            self.swept_ms = Some(ts_ms);
        }
        match self.shards[usize::from(id[15]) % SHARDS].entry(Id::from(id)) {
            std::collections::hash_map::Entry::Occupied(mut seen) => {
                let repeat = *seen.get() >= oldest_kept;
                let latest = seen.get_mut();
                *latest = (*latest).max(ts_ms);
                repeat
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(ts_ms);
                false
            }
        }
    }

    /// Ids held (some may have left the window since their shard's last sweep).
    pub fn len(&self) -> usize {
        self.shards.iter().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(HashMap::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn repeats_inside_the_window_are_dropped() {
        let mut w = DedupWindow::new(1_000);
        assert!(!w.observe([1; 16], 0));
        assert!(w.observe([1; 16], 1_000), "exactly at the window edge still repeats");
        assert!(!w.observe([2; 16], 1_500));
        assert!(!w.observe([1; 16], 2_001), "1,001 ms after its last sighting");
    }

    /// A sweep at the very edge of the window keeps an id that still repeats: for
    /// every shard, the id seen at 0 is swept (or not) by events every 4 ms of
    /// log time, and repeated at exactly the window's end; one of the shards is
    /// the one swept in that very call.
    #[test]
    fn a_sweep_at_the_edge_keeps_what_still_repeats() {
        for shard in 0..=255u8 {
            let mut w = DedupWindow::new(1_024);
            let id = [shard; 16];
            assert!(!w.observe(id, 0));
            for (n, ts) in (4..1_024).step_by(4).enumerate() {
                let mut other = [0; 16];
                other[..8].copy_from_slice(&(n as u64 + 1).to_be_bytes());
                other[15] = shard.wrapping_add(1);
                assert!(!w.observe(other, ts));
            }
            assert!(w.observe(id, 1_024), "shard {shard}: seen at 0, the window is 1,024 ms");
            assert!(!w.observe(id, 2_049), "shard {shard}: 1,025 ms after its last sighting");
        }
    }

    proptest! {
        /// Agrees with the rule read literally, and a replay that starts with at least
        /// a window of history decides every later event the same way.
        #[test]
        fn matches_the_rule_and_replays_identically(
            steps in prop::collection::vec((0u8..6, 0i64..400), 1..300),
            from in 0usize..300,
        ) {
            let window = 500;
            let mut ts = 0;
            let log: Vec<([u8; 16], i64)> = steps.iter().map(|(id, dt)| { ts += dt; ([*id; 16], ts) }).collect();
            let literal: Vec<bool> = log.iter().enumerate().map(|(i, (id, t))| {
                log[..i].iter().any(|(o, ot)| o == id && *ot >= t - window)
            }).collect();
            let mut w = DedupWindow::new(window);
            let decided: Vec<bool> = log.iter().map(|(id, t)| w.observe(*id, *t)).collect();
            prop_assert_eq!(&decided, &literal);

            // A new owner starting at `from`, primed with the window before it.
            let from = from.min(log.len() - 1);
            let prime_from = log.iter().position(|(_, t)| *t >= log[from].1 - window).unwrap();
            let mut replay = DedupWindow::new(window);
            for (id, t) in &log[prime_from..from] {
                replay.observe(*id, *t);
            }
            let replayed: Vec<bool> = log[from..].iter().map(|(id, t)| replay.observe(*id, *t)).collect();
            prop_assert_eq!(&replayed[..], &literal[from..]);
        }
    }
}
