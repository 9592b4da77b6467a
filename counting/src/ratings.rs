//! Ratings: each user's latest rating of a video, and the exact sum and count.
//!
//! Ratings ride the same protocol as the rollups (steps P1–P10 in
//! [`crate::protocol`]; this is P7 for ratings): they are
//! folded into the [`PartitionBuffer`](crate::PartitionBuffer) of their Kafka
//! partition, flushed at the same offsets, fenced the same way. What differs is the
//! state: not a sum of deltas but "latest per user", so re-rating replaces.
//!
//! Per video, the store holds a row per user (`rating`, `prev_rating`,
//! `last_offset`) and totals (`sum`, `count`, `offset`). A flush of offsets
//! `first..=through` writes the user rows first (in as many requests as it likes),
//! then the totals. After a crash mid-flush the new owner replays exactly the same
//! flush (the fence), and [`resolve_video`] sees, for each user row, either the
//! state before the flush (`last_offset < first`) or the flush's own write
//! (`last_offset == through`, whose `prev_rating` is the state before). Either way
//! it recovers the pre-flush rating, so the totals come out exactly once.

use std::collections::HashMap;

use uuid::Uuid;

/// One decoded rating event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RatedEvent {
    pub video_id: Uuid,
    pub user_id: Uuid,
    /// 1..=5.
    pub rating: i32,
    pub occurred_at_ms: i64,
    /// The gateway's UUIDv7 for this rating (the activity feed's row key).
    pub event_id: Uuid,
}

/// The latest rating of one user for one video within a flush.
pub type RatingChange = RatedEvent;

/// A user's row as the store holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredRating {
    pub rating: i32,
    /// The rating before the flush that wrote this row (`None`: the user had none).
    pub prev_rating: Option<i32>,
    pub last_offset: i64,
    pub created_at_ms: i64,
}

/// A video's totals as the store holds them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoredTotals {
    pub sum: i64,
    pub count: i64,
    /// Last offset of the flush that wrote them; -1 if never written.
    pub offset: i64,
}

/// A user row to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserRatingWrite {
    pub user_id: Uuid,
    pub rating: i32,
    pub prev_rating: Option<i32>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// What one flush writes for one video: user rows first, then the totals, all with
/// `last_offset = through`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoRatingsWrite {
    pub video_id: Uuid,
    pub users: Vec<UserRatingWrite>,
    pub totals: StoredTotals,
}

/// A stored row already holds part of a flush: only possible if committed offsets
/// were moved back by hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "ratings of video {video_id} hold offset {offset}, inside the flush {first_offset}..={through_offset}; \
     were committed offsets rewound?"
)]
pub struct RatingOverlap {
    pub video_id: Uuid,
    pub offset: i64,
    pub first_offset: i64,
    pub through_offset: i64,
}

/// Applies one flush's changes for one video (all with this `video_id`) to what the
/// store holds. `None`: the totals already hold this flush, nothing to write.
/// `users` must hold the stored row of every user in `changes` that has one.
pub fn resolve_video(
    first_offset: i64,
    through_offset: i64,
    changes: &[RatingChange],
    totals: StoredTotals,
    users: &HashMap<Uuid, StoredRating>,
) -> Result<Option<VideoRatingsWrite>, RatingOverlap> {
    let Some(video_id) = changes.first().map(|c| c.video_id) else { return Ok(None) };
    let overlap = |offset| RatingOverlap { video_id, offset, first_offset, through_offset };
    if totals.offset >= through_offset {
        return Ok(None);
    }
    if totals.offset >= first_offset {
        return Err(overlap(totals.offset));
    }
    let (mut sum, mut count) = (totals.sum, totals.count);
    let mut writes = Vec::with_capacity(changes.len());
    for c in changes {
        debug_assert_eq!(c.video_id, video_id);
        // The user's rating before this flush, and when they first rated.
        let (before, created_at_ms) = match users.get(&c.user_id) {
            None => (None, c.occurred_at_ms),
            Some(u) if u.last_offset == through_offset => (u.prev_rating, u.created_at_ms),
            Some(u) if u.last_offset < first_offset => (Some(u.rating), u.created_at_ms),
            Some(u) => return Err(overlap(u.last_offset)),
        };
        sum += i64::from(c.rating) - i64::from(before.unwrap_or(0));
        count += i64::from(before.is_none());
        let created_at_ms = if before.is_none() { c.occurred_at_ms } else { created_at_ms };
        writes.push(UserRatingWrite {
            user_id: c.user_id,
            rating: c.rating,
            prev_rating: before,
            created_at_ms,
            updated_at_ms: c.occurred_at_ms,
        });
    }
    Ok(Some(VideoRatingsWrite { video_id, users: writes, totals: StoredTotals { sum, count, offset: through_offset } }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Folded, PartitionBuffer};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn id(i: u8) -> Uuid {
        Uuid::from_bytes([i; 16])
    }

    fn rate(v: u8, u: u8, rating: i32, at: i64) -> RatedEvent {
        RatedEvent { video_id: id(v), user_id: id(u), rating, occurred_at_ms: at, event_id: Uuid::nil() }
    }

    #[test]
    fn re_rating_replaces_and_the_buffer_keeps_the_latest() {
        let mut buf = PartitionBuffer::new(None);
        assert_eq!(buf.fold_rating(0, Some(&rate(1, 1, 5, 10))), Folded::Folded);
        let _ = buf.fold_rating(1, Some(&rate(1, 2, 3, 11)));
        let _ = buf.fold_rating(2, Some(&rate(1, 1, 2, 12)));
        let plan = buf.take().unwrap();
        assert_eq!((plan.first_offset, plan.through_offset, plan.events), (0, 2, 3));
        assert_eq!(plan.ratings.len(), 2, "one change per (video, user): the latest");
        let w = resolve_video(0, 2, &plan.ratings, StoredTotals { offset: -1, ..Default::default() }, &HashMap::new())
            .unwrap()
            .unwrap();
        assert_eq!(w.totals, StoredTotals { sum: 5, count: 2, offset: 2 });

        // The next flush: user 1 re-rates 2 → 4, user 3 is new.
        let mut stored = HashMap::new();
        for u in &w.users {
            let row = StoredRating { rating: u.rating, prev_rating: u.prev_rating, last_offset: 2, created_at_ms: 7 };
            stored.insert(u.user_id, row);
        }
        let changes = [
            RatingChange { video_id: id(1), user_id: id(1), rating: 4, occurred_at_ms: 20, event_id: Uuid::nil() },
            RatingChange { video_id: id(1), user_id: id(3), rating: 1, occurred_at_ms: 21, event_id: Uuid::nil() },
        ];
        let w2 = resolve_video(3, 9, &changes, w.totals, &stored).unwrap().unwrap();
        assert_eq!(w2.totals, StoredTotals { sum: 8, count: 3, offset: 9 });
        assert_eq!(w2.users[0].prev_rating, Some(2));
        assert_eq!((w2.users[0].created_at_ms, w2.users[0].updated_at_ms), (7, 20));
        assert_eq!(w2.users[1].created_at_ms, 21);
        // Already applied: nothing to do. Partly inside: refuse.
        assert_eq!(resolve_video(3, 9, &changes, w2.totals, &stored).unwrap(), None);
        let inside = StoredTotals { offset: 5, ..w.totals };
        assert_eq!(resolve_video(3, 9, &changes, inside, &stored).unwrap_err().offset, 5);
    }

    /// The store, as the adapter sees it.
    #[derive(Clone, Default)]
    struct Store {
        totals: HashMap<Uuid, StoredTotals>,
        users: HashMap<(Uuid, Uuid), StoredRating>,
    }

    impl Store {
        /// Runs one flush; `crash_after` user-row writes, stop (totals unwritten).
        fn flush(&mut self, first: i64, through: i64, changes: &[RatingChange], mut crash_after: Option<usize>) {
            let mut by_video: BTreeMap<Uuid, Vec<RatingChange>> = BTreeMap::new();
            for c in changes {
                by_video.entry(c.video_id).or_default().push(*c);
            }
            for (video, changes) in by_video {
                let totals =
                    self.totals.get(&video).copied().unwrap_or(StoredTotals { offset: -1, ..Default::default() });
                let users: HashMap<Uuid, StoredRating> = changes
                    .iter()
                    .filter_map(|c| self.users.get(&(video, c.user_id)).map(|r| (c.user_id, *r)))
                    .collect();
                let Some(w) = resolve_video(first, through, &changes, totals, &users).unwrap() else { continue };
                for u in &w.users {
                    if let Some(n) = crash_after.as_mut() {
                        if *n == 0 {
                            return;
                        }
                        *n -= 1;
                    }
                    let row = StoredRating {
                        rating: u.rating,
                        prev_rating: u.prev_rating,
                        last_offset: through,
                        created_at_ms: u.created_at_ms,
                    };
                    self.users.insert((video, u.user_id), row);
                }
                if crash_after.is_some_and(|n| n == 0) {
                    return; // crashed after the last user row, before the totals
                }
                self.totals.insert(video, w.totals);
            }
        }
    }

    proptest! {
        /// Whatever the crashes, the totals are the sum and count of each user's last
        /// rating, as if every flush had run once.
        #[test]
        fn crashes_mid_flush_never_count_twice(
            events in prop::collection::vec((0u8..3, 0u8..4, 1i32..=5), 1..60),
            cuts in prop::collection::vec(1usize..10, 1..10),
            crashes in prop::collection::vec(prop::option::of(0usize..4), 1..10),
        ) {
            let mut store = Store::default();
            let mut offset = 0i64;
            let mut rest = &events[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = cuts[i % cuts.len()].min(rest.len());
                let (chunk, tail) = rest.split_at(n);
                let mut buf = PartitionBuffer::new(None);
                let first = offset;
                for &(v, u, r) in chunk {
                    let _ = buf.fold_rating(offset, Some(&rate(v, u, r, offset)));
                    offset += 1;
                }
                let plan = buf.take().unwrap();
                prop_assert_eq!(plan.first_offset, first);
                if let Some(after) = crashes[i % crashes.len()] {
                    store.flush(plan.first_offset, plan.through_offset, &plan.ratings, Some(after));
                }
                // The replay (or the only run): the same flush, to completion.
                store.flush(plan.first_offset, plan.through_offset, &plan.ratings, None);
                rest = tail;
                i += 1;
            }
            let mut latest: HashMap<(u8, u8), i32> = HashMap::new();
            for &(v, u, r) in &events {
                latest.insert((v, u), r);
            }
            for v in 0u8..3 {
                let mine: Vec<i32> = latest.iter().filter(|((vv, _), _)| *vv == v).map(|(_, r)| *r).collect();
                let t = store.totals.get(&id(v)).copied().unwrap_or_default();
                prop_assert_eq!((t.sum, t.count), (mine.iter().map(|&r| i64::from(r)).sum::<i64>(), mine.len() as i64));
            }
        }
    }
}
