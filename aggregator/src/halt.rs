//! Halting a partition: the aggregator's answer to anything it cannot count
//! without guessing (protocol step P11 in `counting::protocol`).
//!
//! A halted partition is paused in the consumer (its messages stay in Kafka,
//! uncommitted), its buffer is dropped (nothing of it was committed, so the next
//! owner replays it), and the reason is recorded in `partition_halts`, so the halt
//! outlives the process: every later owner finds it when it claims the partition
//! (P1) and stays halted too. Only an operator clears it, with
//! `vcount-admin partitions resume` (see the README's "Halted partitions"); the
//! owner that holds the partition notices within a flush interval and takes it
//! over again from P1, optionally from an offset the operator chose.
//!
//! Every halt is a counter increment (`aggregator_halted_partitions_total` by
//! reason), the gauge `aggregator_partitions_halted`, and one error line that
//! names the partition, the reason and the command that resumes it.

use std::fmt;

use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

use crate::metrics::{HALTED_PARTITIONS, op};
use crate::owner::Shared;

/// Why a partition halted. The `as_str` names are the metric's `reason` label and
/// what `partition_halts.reason` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A stored row holds part of a flush (P7), or was written from another
    /// Kafka partition: committed offsets were rewound, or the topic grew.
    Overlap,
    /// The committed offset is before the log start: messages were deleted by
    /// retention before they were counted (P3a).
    OffsetOutOfRange,
    /// The committed offset, or `attempted`, is at or past the log end: the topic
    /// was recreated or truncated (P3a).
    OffsetBeyondLog,
    /// The partition has been flushed before, but the group has no committed
    /// offset: expired group offsets, a renamed group, a recreated topic (P3a).
    NoCommittedOffset,
    /// The dedup window before the start offset cannot be re-read whole (P3).
    DedupWindow,
    /// The dead-letter topic did not acknowledge within `dead_letter.timeout_ms` (P4).
    DeadLetter,
    /// A well-formed event of a type this aggregator does not know: a newer
    /// producer. Counting resumes once an aggregator that knows it runs (P4).
    UnknownEventType,
    /// An epoch or offset outside the fenced write timestamp's domain (P8).
    TimestampDomain,
    /// The topic's partition count is not the one it was counted with (P1).
    PartitionCount,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::Overlap,
        Reason::OffsetOutOfRange,
        Reason::OffsetBeyondLog,
        Reason::NoCommittedOffset,
        Reason::DedupWindow,
        Reason::DeadLetter,
        Reason::UnknownEventType,
        Reason::TimestampDomain,
        Reason::PartitionCount,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Overlap => "overlap",
            Reason::OffsetOutOfRange => "offset_out_of_range",
            Reason::OffsetBeyondLog => "offset_beyond_log",
            Reason::NoCommittedOffset => "no_committed_offset",
            Reason::DedupWindow => "dedup_window",
            Reason::DeadLetter => "dead_letter",
            Reason::UnknownEventType => "unknown_event_type",
            Reason::TimestampDomain => "timestamp_domain",
            Reason::PartitionCount => "partition_count",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decision to halt: why, in words, and at which offset (the first message not
/// consumed, when there is one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Halt {
    pub reason: Reason,
    pub detail: String,
    pub at_offset: Option<i64>,
}

impl Halt {
    pub fn new(reason: Reason, detail: impl Into<String>, at_offset: Option<i64>) -> Self {
        Self { reason, detail: detail.into(), at_offset }
    }
}

/// The command that resumes partition `p` of `topic`, for log lines.
pub(crate) fn resume_command(shared: &Shared, p: i32) -> String {
    format!(
        "vcount-admin partitions resume --keyspace {} --topic {} --partition {p}",
        shared.store.keyspace(),
        shared.topic
    )
}

/// Records `halt` for partition `p` (retried until it lands, or shutdown), says
/// so and counts it once recorded (so whoever sees the count finds the record). The
/// caller pauses the partition and drops its buffer.
pub(crate) fn record(shared: &Shared, p: i32, epoch: i64, halt: &Halt) {
    tracing::error!(
        topic = %shared.topic,
        partition = p,
        reason = %halt.reason,
        detail = %halt.detail,
        at_offset = ?halt.at_offset,
        resume = %resume_command(shared, p),
        "partition halted: nothing more is counted from it until an operator resumes it"
    );
    let store = &shared.store;
    let write = || store.record_halt(&shared.topic, p, epoch, halt);
    if shared.rt.block_on(shared.retry.cassandra(op::HALT, write)).is_none() {
        tracing::warn!(partition = p, "shutting down before the halt was recorded; the next owner decides again");
    }
    HALTED_PARTITIONS
        .counter_with(&[("topic", shared.topic.clone()), ("reason", halt.reason.as_str().to_owned())])
        .increment(1);
}

/// Pauses partition `p` of `topic` in `consumer`: no more of its messages are fetched.
pub(crate) fn pause<C: ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str, p: i32) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, p);
    if let Err(e) = consumer.pause(&tpl) {
        tracing::warn!(partition = p, error = %e, "could not pause the partition; its messages are ignored");
    }
}

/// Resumes partition `p` of `topic` in `consumer` (a pause from an earlier
/// ownership of the same partition survives a reassignment).
pub(crate) fn resume<C: ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str, p: i32) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, p);
    if let Err(e) = consumer.resume(&tpl) {
        tracing::error!(partition = p, error = %e, "could not resume the partition; it will not be read");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_through_their_names() {
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
        assert_eq!(Reason::parse("nonsense"), None);
    }
}
