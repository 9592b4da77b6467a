//! Dropping repeats of client-chosen event ids, deterministically.
//!
//! The rule: an event is a repeat iff the same partition holds the same id at an
//! earlier offset whose log timestamp is at most `window_ms` older. The events
//! topic uses broker append time, so timestamps never decrease along a partition,
//! and the rule depends on the log alone. Every owner, including one replaying an
//! in-doubt flush after a crash, therefore makes the same decisions, as long as it
//! has seen at least `window_ms` of the log before its first offset.

use std::collections::{HashMap, VecDeque};

#[derive(Debug)]
pub struct DedupWindow {
    window_ms: i64,
    /// Latest timestamp seen per id.
    last_seen: HashMap<[u8; 16], i64>,
    /// Ids in timestamp order, for eviction.
    order: VecDeque<(i64, [u8; 16])>,
}

impl DedupWindow {
    pub fn new(window_ms: i64) -> Self {
        Self { window_ms, last_seen: HashMap::new(), order: VecDeque::new() }
    }

    /// Records `id` at log time `ts_ms`; true if it repeats an id seen within the window.
    pub fn observe(&mut self, id: [u8; 16], ts_ms: i64) -> bool {
        // Forget what no later event can repeat (timestamps never go back).
        while let Some(&(t, old)) = self.order.front() {
            if t >= ts_ms - self.window_ms {
                break;
            }
            self.order.pop_front();
            if self.last_seen.get(&old) == Some(&t) {
                self.last_seen.remove(&old);
            }
        }
        let repeat = self.last_seen.get(&id).is_some_and(|&t| t >= ts_ms - self.window_ms);
        self.last_seen.insert(id, ts_ms);
        self.order.push_back((ts_ms, id));
        repeat
    }

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
