//! Freshness from the owner (issue 15): what the owner of a series holds and has
//! not written yet, and the rule by which a reader adds it to the rows it read
//! without ever counting an event twice.
//!
//! A series reaches the store only when a round takes it ([`crate::rounds`]): up
//! to `flush.max_age_ms` after its first pending event, plus the round's own time.
//! A reader that wants the count *now* asks the owner of the series' Kafka
//! partition for a [`Held`]: the series' pending minutes and their first offset
//! `f`, and the minutes of the round in flight (taken, not yet acknowledged) with
//! the round's offset `b`. It asks **before** it reads the rows, then adds each
//! held part to every row that covers its minutes, by the row's own `last_offset`
//! `lo` and the epoch in its write timestamp:
//!
//! - **in flight** (offset `b`): counts in the row only if `lo < b`. A row the
//!   round reached has `lo ≥ b` (R6 writes `last_offset = b`), so its events are in
//!   the row already; a row it did not reach has `lo` from an earlier round, whose
//!   offsets are all below the round's first event (rounds of a partition run one
//!   after the other, R4).
//! - **pending** (offset `f`): counts in the row if `lo < f`. A row with `lo ≥ f`
//!   was written by a round that took these events after the owner answered (a
//!   round takes a whole series): [`Stale::Landed`], ask again.
//! - a row written by a **newer owner** (its write timestamp's epoch above the
//!   answer's, [`crate::rollup::write_timestamp`]): [`Stale::Replaced`]. A replaced
//!   owner may still answer until it learns it lost the partition; its successor
//!   recounts from the committed offset and may write rows at offsets inside the
//!   old owner's round, so only rows the old owner's epochs wrote are safe to add
//!   to. Rows of older epochs only are: the successor wrote none of them yet.
//!
//! An owner short of its fenced round (after a claim with a replay region) answers
//! nothing ([`Held::ready`] false): the store may hold part of an in-doubt round.
//!
//! So every event the answer counts is in exactly one place it was added from: a
//! row up to its `lo`, or one held part whose offsets are past `lo`. The answer
//! counts the series' events through the owner's `consumed` offset in every row
//! the held parts touch, and what the store holds in the others.
//! `rounds::tests` checks this against the log after every write of every
//! schedule, crash and late landing the round simulation produces.

use serde::{Deserialize, Serialize};

use crate::range::Span;
use crate::rollup::{RowDelta, Tally};
use crate::time::Granularity;

/// What an owner holds of one series and has not written (as far as it knows).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Held {
    /// False while the owner is short of its fenced round: add nothing.
    pub ready: bool,
    /// The owner's epoch (fencing token) for the partition.
    pub epoch: i64,
    /// The last offset it had folded when it answered.
    pub consumed: i64,
    /// Events folded since the series was last taken into a round; `offset` is
    /// the first of them (`f`).
    pub pending: Option<HeldPart>,
    /// The series' part of the round being written; `offset` is the round's (`b`).
    pub in_flight: Option<HeldPart>,
}

/// Held minutes of one series and the offset their rule compares rows with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldPart {
    pub offset: i64,
    /// Sorted by minute, one entry per minute.
    pub minutes: Vec<HeldMinute>,
}

/// One minute's delta: its events' sum and tally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldMinute {
    /// The minute's first millisecond.
    pub minute: i64,
    pub value: i64,
    pub events: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
}

impl HeldMinute {
    pub fn new(minute: i64, d: RowDelta) -> Self {
        Self { minute, value: d.value, events: d.tally.events, min: d.tally.min(), max: d.tally.max() }
    }

    pub fn delta(&self) -> RowDelta {
        RowDelta { value: self.value, tally: Tally::new(self.events, self.min, self.max) }
    }
}

/// A stored row as a reader needs it for the rule: its `last_offset` and the
/// epoch of the write that wrote it (`WRITETIME(value) >> 40`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowStamp {
    pub last_offset: i64,
    pub epoch: i64,
}

impl RowStamp {
    /// From a row's `last_offset` and the write timestamp of its sum.
    pub fn new(last_offset: i64, written: i64) -> Self {
        Self { last_offset, epoch: written >> 40 }
    }
}

/// Why a held answer cannot be added to the rows read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    /// A round took the pending events and reached a row after the owner
    /// answered: ask the owner again.
    #[error("a round landed the held events while the rows were read")]
    Landed,
    /// A newer owner wrote a row the answer touches: the answer came from a
    /// replaced owner.
    #[error("a newer owner wrote the rows")]
    Replaced,
}

impl Held {
    /// Nothing held: the rows alone are the answer.
    pub fn is_empty(&self) -> bool {
        self.pending.is_none() && self.in_flight.is_none()
    }

    /// What to add to the row of `granularity` at `bucket` (its bucket's first
    /// millisecond; 0 for the all-time row), given its stamp (`None`: no row),
    /// counting only minutes within `[from, until)` (the span the row answers for).
    pub fn delta_for(
        &self,
        granularity: Granularity,
        bucket: i64,
        within: (i64, i64),
        row: Option<RowStamp>,
    ) -> Result<RowDelta, Stale> {
        if !self.ready {
            return Ok(RowDelta::default());
        }
        let covered =
            |m: &HeldMinute| granularity.bucket(m.minute) == bucket && (within.0..within.1).contains(&m.minute);
        let sum = |part: &HeldPart| {
            part.minutes
                .iter()
                .filter(|m| covered(m))
                .fold(None, |acc: Option<RowDelta>, m| Some(acc.map_or(m.delta(), |a| a.merge(m.delta()))))
        };
        let pending = self.pending.as_ref().and_then(|p| Some((p.offset, sum(p)?)));
        let in_flight = self.in_flight.as_ref().and_then(|p| Some((p.offset, sum(p)?)));
        if pending.is_none() && in_flight.is_none() {
            return Ok(RowDelta::default());
        }
        let (lo, epoch) = row.map_or((-1, i64::MIN), |r| (r.last_offset, r.epoch));
        if epoch > self.epoch {
            return Err(Stale::Replaced);
        }
        let mut out = RowDelta::default();
        if let Some((b, d)) = in_flight
            && lo < b
        {
            out = out.merge(d);
        }
        if let Some((f, d)) = pending {
            if lo >= f {
                return Err(Stale::Landed);
            }
            out = out.merge(d);
        }
        Ok(out)
    }

    /// What to add to a span's rows: `rows` maps each row read for the span (by
    /// bucket) to its stamp; rows not in it are absent.
    pub fn delta_for_span(&self, span: &Span, row: impl Fn(i64) -> Option<RowStamp>) -> Result<RowDelta, Stale> {
        let mut out = RowDelta::default();
        for bucket in self.buckets(span) {
            let within = match span.granularity {
                Granularity::Total => (i64::MIN, i64::MAX),
                _ => (span.start, span.end),
            };
            out = out.merge(self.delta_for(span.granularity, bucket, within, row(bucket))?);
        }
        Ok(out)
    }

    /// The buckets of `span` that held minutes fall in, each once, ascending.
    fn buckets(&self, span: &Span) -> Vec<i64> {
        let mut out: Vec<i64> = [&self.pending, &self.in_flight]
            .into_iter()
            .flatten()
            .flat_map(|p| &p.minutes)
            .filter(|m| span.granularity == Granularity::Total || (span.start..span.end).contains(&m.minute))
            .map(|m| span.granularity.bucket(m.minute))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{HOUR_MS, MINUTE_MS};

    const T0: i64 = 1_710_028_800_000;

    fn part(offset: i64, minutes: &[(i64, i64)]) -> HeldPart {
        HeldPart {
            offset,
            minutes: minutes
                .iter()
                .map(|&(m, v)| HeldMinute {
                    minute: T0 + m * MINUTE_MS,
                    value: v,
                    events: v,
                    min: Some(1),
                    max: Some(1),
                })
                .collect(),
        }
    }

    fn held(pending: Option<HeldPart>, in_flight: Option<HeldPart>) -> Held {
        Held { ready: true, epoch: 3, consumed: 100, pending, in_flight }
    }

    fn stamp(lo: i64, epoch: i64) -> Option<RowStamp> {
        Some(RowStamp { last_offset: lo, epoch })
    }

    #[test]
    fn pending_counts_below_its_first_offset_and_asks_again_at_or_past_it() {
        let h = held(Some(part(50, &[(0, 2), (61, 1)])), None);
        let within = (i64::MIN, i64::MAX);
        let minute = |lo| h.delta_for(Granularity::Minute, T0, within, lo).map(|d| d.value);
        assert_eq!(minute(None), Ok(2), "no row yet");
        assert_eq!(minute(stamp(49, 3)), Ok(2));
        assert_eq!(minute(stamp(50, 3)), Err(Stale::Landed));
        assert_eq!(h.delta_for(Granularity::Total, 0, within, stamp(10, 3)).map(|d| d.value), Ok(3));
        assert_eq!(
            h.delta_for(Granularity::Hour, T0 + HOUR_MS, within, stamp(10, 3)).map(|d| d.value),
            Ok(1),
            "only the minute in that hour"
        );
        assert_eq!(h.delta_for(Granularity::Minute, T0 + MINUTE_MS, within, None).map(|d| d.value), Ok(0));
    }

    #[test]
    fn the_round_in_flight_counts_only_where_it_has_not_landed() {
        let h = held(Some(part(60, &[(0, 1)])), Some(part(55, &[(0, 4)])));
        let within = (i64::MIN, i64::MAX);
        let total = |lo| h.delta_for(Granularity::Total, 0, within, lo).map(|d| d.value);
        assert_eq!(total(stamp(40, 3)), Ok(5), "neither landed");
        assert_eq!(total(stamp(55, 3)), Ok(1), "the round landed there");
        assert_eq!(total(stamp(60, 3)), Err(Stale::Landed), "a later round took the pending events");
    }

    #[test]
    fn a_row_a_newer_owner_wrote_voids_the_answer_and_an_unready_owner_adds_nothing() {
        let h = held(Some(part(50, &[(0, 2)])), None);
        let within = (i64::MIN, i64::MAX);
        assert_eq!(h.delta_for(Granularity::Total, 0, within, stamp(10, 4)), Err(Stale::Replaced));
        assert_eq!(h.delta_for(Granularity::Total, 0, within, stamp(10, 2)).map(|d| d.value), Ok(2));
        // A row the answer does not touch says nothing either way.
        assert_eq!(h.delta_for(Granularity::Minute, T0 + MINUTE_MS, within, stamp(99, 9)).map(|d| d.value), Ok(0));
        let unready = Held { ready: false, ..h };
        assert_eq!(unready.delta_for(Granularity::Total, 0, within, stamp(99, 9)), Ok(RowDelta::default()));
    }

    #[test]
    fn a_span_adds_only_the_minutes_it_answers_for() {
        // Minutes 0, 30 and 90; the span is the hour [T0, T0 + 1h) read as minutes 20..60.
        let h = held(Some(part(50, &[(0, 1), (30, 2), (90, 4)])), None);
        let span = Span { granularity: Granularity::Minute, start: T0 + 20 * MINUTE_MS, end: T0 + HOUR_MS };
        assert_eq!(h.delta_for_span(&span, |_| None).map(|d| d.value), Ok(2));
        let hours = Span { granularity: Granularity::Hour, start: T0, end: T0 + 2 * HOUR_MS };
        assert_eq!(h.delta_for_span(&hours, |_| stamp(1, 1)).map(|d| d.value), Ok(7));
        let total = Span { granularity: Granularity::Total, start: 0, end: 0 };
        assert_eq!(h.delta_for_span(&total, |b| stamp(if b == 0 { 50 } else { 1 }, 1)), Err(Stale::Landed));
    }

    #[test]
    fn the_answer_is_plain_json() {
        let h = held(Some(part(50, &[(0, 2)])), None);
        let json = serde_json::to_string(&h).unwrap();
        assert!(json.contains("\"inFlight\":null") && json.contains("\"minute\":"), "{json}");
        assert_eq!(serde_json::from_str::<Held>(&json).unwrap(), h);
    }
}
