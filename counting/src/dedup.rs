//! Dropping repeats of client-chosen event ids, deterministically.
//!
//! The rule: an event is a repeat iff the same partition holds the same id at an
//! earlier offset whose log timestamp is at most `window_ms` older. The events
//! topic uses broker append time, so timestamps never decrease along a partition,
//! and the rule depends on the log alone. Every owner, including one replaying an
//! in-doubt flush after a crash, therefore makes the same decisions, as long as it
//! has seen at least `window_ms` of the log before its first offset.
//!
//! The window is one map of id to the latest log time it was seen at, swept
//! whenever the log time has moved on by a quarter of the window since the last
//! sweep: what has left the window goes then, in one pass over the map in memory
//! order. An id costs one map entry (its 16 bytes and a timestamp) and one probe
//! of the map per event; nothing is done per event to evict. The map holds up to
//! a window and a quarter of ids between sweeps. (Until 2026-11-30 a queue of
//! every id in arrival order drove eviction: a second random access per event
//! and 24 more bytes per id. At 160,000 batched events/s every event carries an
//! id, the client library's retry key, and ten minutes of them are 96 million;
//! README, Measured.)

use std::collections::HashMap;

#[derive(Debug)]
pub struct DedupWindow {
    window_ms: i64,
    /// The latest log time each id was seen at.
    last_seen: HashMap<[u8; 16], i64>,
    /// The log time of the last sweep (the first event's before any).
    swept_ms: Option<i64>,
}

impl DedupWindow {
    pub fn new(window_ms: i64) -> Self {
        Self { window_ms, last_seen: HashMap::new(), swept_ms: None }
    }

    /// Records `id` at log time `ts_ms`; true if it repeats an id seen within the window.
    pub fn observe(&mut self, id: [u8; 16], ts_ms: i64) -> bool {
        let oldest_kept = ts_ms.saturating_sub(self.window_ms);
        let swept = *self.swept_ms.get_or_insert(ts_ms);
        if ts_ms.saturating_sub(swept) > self.window_ms / 4 {
            // Forget what no later event can repeat (timestamps never go back).
            self.last_seen.retain(|_, t| *t >= oldest_kept);
            self.swept_ms = Some(ts_ms);
        }
        match self.last_seen.entry(id) {
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

    /// Ids held (some may have left the window since the last sweep).
    pub fn len(&self) -> usize {
        self.last_seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last_seen.is_empty()
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
