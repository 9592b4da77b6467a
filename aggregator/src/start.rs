//! Where a new owner starts reading a partition (protocol step P3a in
//! `counting::protocol`).
//!
//! Kafka's `auto.offset.reset` decides silently: with `earliest`, a committed
//! offset that fell out of the log (lag beyond retention, a recreated topic)
//! restarts from whatever is there, skipping what was deleted or re-reading
//! offsets the rows already hold, and nobody is told. The consumer therefore runs
//! with `auto.offset.reset=error`, and the owner decides here, explicitly, from
//! what it can see when it claims the partition: the committed offset, the log's
//! low and high watermarks, `attempted`, and an operator's `resume_from`. Only a
//! partition with no state at all (no committed offset and no flush ever
//! attempted) starts at the configured end of the log; every other surprise halts.

use crate::halt::{Halt, Reason};

/// Where a partition with no state at all starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewPartitions {
    Earliest,
    Latest,
}

impl NewPartitions {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "earliest" => Some(Self::Earliest),
            "latest" => Some(Self::Latest),
            _ => None,
        }
    }
}

/// What the new owner sees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// The group's committed offset, if it has one.
    pub committed: Option<i64>,
    /// The log's first offset still stored and its end (the next offset written).
    pub low: i64,
    pub high: i64,
    /// The last offset of the newest flush any owner started (P2).
    pub attempted: Option<i64>,
    /// Where an operator said to resume.
    pub resume_from: Option<i64>,
}

/// Where to start, and whether that offset must be committed before consuming
/// (a start the group does not know yet: a new partition, an operator's resume).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Start {
    pub offset: i64,
    pub commit_first: bool,
}

/// Decides where the owner starts, or why it must not.
pub fn decide(seen: Seen, new_partitions: NewPartitions) -> Result<Start, Halt> {
    let Seen { committed, low, high, attempted, resume_from } = seen;
    if let Some(a) = attempted.filter(|&a| a >= high) {
        let detail = format!(
            "a flush through offset {a} was attempted, but the log ends at {high}: was the topic recreated or truncated? \
             Rows hold offsets of another log: count it into a new keyspace"
        );
        return Err(Halt::new(Reason::OffsetBeyondLog, detail, committed));
    }
    if let Some(x) = resume_from {
        // The operator accepts losing what lies between the committed offset and
        // `x`; going back would count the rows' offsets twice.
        if let Some(c) = committed.filter(|&c| x < c) {
            let detail = format!("resume_from {x} is before the committed offset {c}: it would count twice");
            return Err(Halt::new(Reason::OffsetOutOfRange, detail, Some(c)));
        }
        if x < low || x > high {
            let detail = format!("resume_from {x} is outside the log {low}..{high}");
            return Err(Halt::new(Reason::OffsetOutOfRange, detail, committed));
        }
        return Ok(Start { offset: x, commit_first: true });
    }
    match committed {
        Some(c) if c < low => {
            let detail = format!(
                "committed offset {c} is before the log start {low}: {} messages were deleted before they were counted",
                low - c
            );
            Err(Halt::new(Reason::OffsetOutOfRange, detail, Some(c)))
        }
        Some(c) if c > high => {
            let detail = format!("committed offset {c} is past the log end {high}: was the topic recreated?");
            Err(Halt::new(Reason::OffsetBeyondLog, detail, Some(c)))
        }
        Some(c) => Ok(Start { offset: c, commit_first: false }),
        // Nothing was ever flushed: nothing is written, so counting from the
        // configured end loses or doubles nothing that was counted.
        None if attempted.is_none() => {
            let offset = match new_partitions {
                NewPartitions::Earliest => low,
                NewPartitions::Latest => high,
            };
            Ok(Start { offset, commit_first: true })
        }
        None => {
            let detail = format!(
                "flushes through offset {} were attempted, but the group has no committed offset \
                 (expired group offsets, a renamed group, a recreated topic?)",
                attempted.unwrap_or(-1)
            );
            Err(Halt::new(Reason::NoCommittedOffset, detail, None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(committed: Option<i64>, low: i64, high: i64, attempted: Option<i64>) -> Seen {
        Seen { committed, low, high, attempted, resume_from: None }
    }

    fn reason(r: Result<Start, Halt>) -> Reason {
        r.unwrap_err().reason
    }

    #[test]
    fn a_committed_offset_inside_the_log_is_where_the_owner_starts() {
        let s = decide(seen(Some(40), 0, 100, Some(55)), NewPartitions::Earliest).unwrap();
        assert_eq!(s, Start { offset: 40, commit_first: false });
        // At either watermark is still inside: all read, or the oldest kept.
        assert_eq!(decide(seen(Some(100), 0, 100, Some(99)), NewPartitions::Earliest).unwrap().offset, 100);
        assert_eq!(decide(seen(Some(10), 10, 100, Some(9)), NewPartitions::Earliest).unwrap().offset, 10);
    }

    #[test]
    fn only_a_partition_with_no_state_at_all_starts_by_itself() {
        let fresh = seen(None, 7, 90, None);
        assert_eq!(decide(fresh, NewPartitions::Earliest).unwrap(), Start { offset: 7, commit_first: true });
        assert_eq!(decide(fresh, NewPartitions::Latest).unwrap(), Start { offset: 90, commit_first: true });
        // Flushed before, but the group forgot its offset.
        assert_eq!(reason(decide(seen(None, 0, 90, Some(12)), NewPartitions::Earliest)), Reason::NoCommittedOffset);
    }

    #[test]
    fn offsets_outside_the_log_halt_instead_of_resetting() {
        // Lag beyond retention: 20 messages deleted unread.
        let h = decide(seen(Some(30), 50, 100, Some(29)), NewPartitions::Earliest).unwrap_err();
        assert_eq!((h.reason, h.at_offset), (Reason::OffsetOutOfRange, Some(30)));
        assert!(h.detail.contains("20 messages were deleted"), "{}", h.detail);
        // A recreated topic: offsets start again at 0.
        assert_eq!(reason(decide(seen(Some(500), 0, 12, Some(499)), NewPartitions::Earliest)), Reason::OffsetBeyondLog);
        // The committed offset was kept but the log is shorter than a flush already attempted.
        assert_eq!(reason(decide(seen(Some(10), 0, 12, Some(12)), NewPartitions::Earliest)), Reason::OffsetBeyondLog);
        assert_eq!(reason(decide(seen(None, 0, 12, Some(40)), NewPartitions::Earliest)), Reason::OffsetBeyondLog);
    }

    #[test]
    fn an_operator_may_skip_ahead_but_never_back() {
        let mut s = seen(Some(30), 50, 100, Some(29));
        s.resume_from = Some(50);
        assert_eq!(decide(s, NewPartitions::Earliest).unwrap(), Start { offset: 50, commit_first: true });
        s.resume_from = Some(20);
        assert_eq!(reason(decide(s, NewPartitions::Earliest)), Reason::OffsetOutOfRange);
        s.resume_from = Some(101);
        assert_eq!(reason(decide(s, NewPartitions::Earliest)), Reason::OffsetOutOfRange);
        s.resume_from = Some(40);
        assert_eq!(reason(decide(s, NewPartitions::Earliest)), Reason::OffsetOutOfRange, "before the log start");
        // No resume helps a recreated topic: the rows hold offsets of the old log.
        let recreated = Seen { resume_from: Some(0), ..seen(None, 0, 12, Some(499)) };
        assert_eq!(reason(decide(recreated, NewPartitions::Earliest)), Reason::OffsetBeyondLog);
    }
}
