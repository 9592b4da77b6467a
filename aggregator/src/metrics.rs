//! The aggregator's metrics, declared once; call sites use these constants.
//! [`describe`] runs at start-up and registers the error counters at zero, so they
//! exist before the first failure (a counter that first appears at 1 hides that
//! increment from `increase()`) and dashboards show 0, not "no data".

use platform::metrics::{Kind, Metric};

pub const MESSAGES: Metric = Metric::new(
    Kind::Counter,
    "aggregator_messages_total",
    &[],
    "Messages taken from owned partitions (events, repeats, poison)",
);
pub const EVENTS: Metric = Metric::new(
    Kind::Counter,
    "aggregator_events_total",
    &[],
    "Events in the messages taken (each of a pack; repeats included, dead letters not)",
);
pub const EVENTS_FLUSHED: Metric =
    Metric::new(Kind::Counter, "aggregator_events_flushed_total", &[], "Events in flushes whose rows were written");
pub const ROWS_WRITTEN: Metric =
    Metric::new(Kind::Counter, "aggregator_rows_written_total", &[], "Count rows written to Cassandra");
pub const ROWS_SKIPPED: Metric = Metric::new(
    Kind::Counter,
    "aggregator_rows_skipped_total",
    &[],
    "Count rows a round (or flush) skipped: they already held its events",
);
pub const ROW_READS: Metric = Metric::new(
    Kind::Counter,
    "aggregator_row_reads_total",
    &[],
    "Range reads of a series' rows of one granularity before writing them (what the owner's cache did not know)",
);
pub const WRITE_REQUESTS: Metric = Metric::new(
    Kind::Counter,
    "aggregator_write_requests_total",
    &[],
    "Write requests (single-partition batches of rows)",
);
pub const SERIES_WRITTEN: Metric = Metric::new(
    Kind::Counter,
    "aggregator_series_written_total",
    &[],
    "(video, event type) series written by a round: one single-partition batch, the all-time row included, for most",
);
pub const SERIES_UNREAD: Metric = Metric::new(
    Kind::Counter,
    "aggregator_series_unread_total",
    &[],
    "Series a round found without an all-time row, so without rows: their other rows needed no read",
);
pub const HELD_ANSWERS: Metric = Metric::new(
    Kind::Counter,
    "aggregator_held_answers_total",
    &["outcome"],
    "Readers' questions on /owner/held: held (answered), not_owner, busy (a blocking round held the owner), invalid",
);
pub const HELD_WAIT: Metric = Metric::new(
    Kind::Histogram,
    "aggregator_held_wait_seconds",
    &[],
    "From a reader's question on /owner/held to its answer (held, not_owner or busy)",
);
pub const ROUNDS: Metric = Metric::new(
    Kind::Counter,
    "aggregator_rounds_total",
    &[],
    "Flush rounds of the events topic that wrote something (each one attempted record, R4)",
);
pub const CENSUS_SERIES: Metric = Metric::new(
    Kind::Counter,
    "aggregator_census_series_total",
    &["topic"],
    "Series whose floor (all-time row's last_offset) a census of a replay region read after a claim (R2)",
);
pub const CENSUS_IN_DOUBT: Metric = Metric::new(
    Kind::Counter,
    "aggregator_census_in_doubt_series_total",
    &["topic"],
    "Series whose floor a census found at the in-doubt round's offset: the round in doubt had written them whole",
);
pub const CENSUS_ROUNDS: Metric = Metric::new(
    Kind::Counter,
    "aggregator_census_rounds_total",
    &["topic"],
    "Distinct floors inside a replay region found by a census: the previous owner's rounds that completed there",
);
pub const REPLAYED_SKIPPED: Metric = Metric::new(
    Kind::Counter,
    "aggregator_replayed_events_skipped_total",
    &[],
    "Replayed events at or below their series' floor, skipped because the store held them (R3)",
);
pub const RATED_VIDEOS: Metric = Metric::new(
    Kind::Counter,
    "aggregator_rated_videos_total",
    &[],
    "Videos whose rating totals a flush wrote (after their users' rows)",
);
pub const DEAD_LETTERS: Metric = Metric::new(
    Kind::Counter,
    "aggregator_dead_letters_total",
    &[],
    "Undecodable or invalid messages sent to the dead-letter topic",
);
pub const UNREADABLE_SKETCHES: Metric = Metric::new(
    Kind::Counter,
    "aggregator_viewer_sketches_unreadable_total",
    &[],
    "Stored viewer sketches that did not decode and were replaced by the flush's viewers alone",
);
pub const CASSANDRA_ERRORS: Metric = Metric::new(
    Kind::Counter,
    "aggregator_cassandra_errors_total",
    &["op"],
    "Failed Cassandra requests (each is retried), by op",
);
pub const COMMIT_ERRORS: Metric = Metric::new(
    Kind::Counter,
    "aggregator_commit_errors_total",
    &[],
    "Failed offset commits (retried before the next flush)",
);
pub const CONSUMER_ERRORS: Metric =
    Metric::new(Kind::Counter, "aggregator_consumer_errors_total", &[], "Errors returned by the Kafka consumer's poll");
pub const FENCED_FLUSHES: Metric = Metric::new(
    Kind::Counter,
    "aggregator_fenced_flushes_total",
    &[],
    "Flushes (or rounds) made exactly at the in-doubt boundary after a takeover",
);
pub const HALTED_PARTITIONS: Metric = Metric::new(
    Kind::Counter,
    "aggregator_halted_partitions_total",
    &["topic", "reason"],
    "Partitions this process halted (or found halted at a claim), by topic and reason (see halt::Reason)",
);
pub const PARTITIONS_HALTED: Metric = Metric::new(
    Kind::Gauge,
    "aggregator_partitions_halted",
    &["topic"],
    "Partitions this process owns that are halted now, waiting for an operator (vcount-admin partitions resume)",
);
pub const RESUMED_PARTITIONS: Metric = Metric::new(
    Kind::Counter,
    "aggregator_resumed_partitions_total",
    &["topic"],
    "Halted partitions taken up again after an operator cleared the halt",
);
pub const FENCED_OUT: Metric = Metric::new(
    Kind::Counter,
    "aggregator_fenced_out_total",
    &["topic"],
    "Flushes refused at P5 (mark_attempted IF epoch): a newer owner had claimed the partition",
);
pub const DEAD_LETTER_ERRORS: Metric = Metric::new(
    Kind::Counter,
    "aggregator_dead_letter_errors_total",
    &[],
    "Failed dead-letter sends (retried until dead_letter.timeout_ms, then the partition halts)",
);
pub const DUPLICATES_DROPPED: Metric = Metric::new(
    Kind::Counter,
    "aggregator_duplicates_dropped_total",
    &[],
    "Repeats of a client eventId dropped within the window",
);
pub const DEDUP_PRIMING_ERRORS: Metric = Metric::new(
    Kind::Counter,
    "aggregator_dedup_priming_errors_total",
    &[],
    "Failed re-reads of the dedup window on assignment",
);
pub const BUFFERED_KEYS: Metric = Metric::new(
    Kind::Gauge,
    "aggregator_buffered_keys",
    &["topic"],
    "(video, type, minute) and (video, user) keys buffered, not yet flushed, by topic",
);
pub const ASSIGNED_PARTITIONS: Metric =
    Metric::new(Kind::Gauge, "aggregator_assigned_partitions", &["topic"], "Partitions this member owns, by topic");
pub const CONSUMER_LAG: Metric = Metric::new(
    Kind::Gauge,
    "aggregator_consumer_lag_messages",
    &["topic", "partition"],
    "Messages not consumed yet (after the next offset the owner folds), by topic and partition (librdkafka statistics, every 5 s)",
);
pub const UNCOMMITTED: Metric = Metric::new(
    Kind::Gauge,
    "aggregator_uncommitted_messages",
    &["topic", "partition"],
    "Messages between the committed offset and the end of the log, by topic and partition: a crash replays them (librdkafka statistics, every 5 s)",
);
pub const CASSANDRA_REQUEST_DURATION: Metric = Metric::new(
    Kind::Histogram,
    "aggregator_cassandra_request_duration_seconds",
    &["op"],
    "One Cassandra request of the aggregator, successful or not, by op",
);
pub const FLUSH_DURATION: Metric = Metric::new(
    Kind::Histogram,
    "aggregator_flush_duration_seconds",
    &[],
    "One flush on the poll thread (every partition it takes, then the commit), or one round beside it (taken to settled)",
);

/// Every metric the aggregator records itself.
pub const ALL: &[Metric] = &[
    MESSAGES,
    EVENTS,
    HELD_ANSWERS,
    HELD_WAIT,
    EVENTS_FLUSHED,
    ROWS_WRITTEN,
    ROWS_SKIPPED,
    ROW_READS,
    WRITE_REQUESTS,
    SERIES_WRITTEN,
    SERIES_UNREAD,
    ROUNDS,
    CENSUS_SERIES,
    CENSUS_IN_DOUBT,
    CENSUS_ROUNDS,
    REPLAYED_SKIPPED,
    RATED_VIDEOS,
    DEAD_LETTERS,
    UNREADABLE_SKETCHES,
    CASSANDRA_ERRORS,
    COMMIT_ERRORS,
    CONSUMER_ERRORS,
    FENCED_FLUSHES,
    HALTED_PARTITIONS,
    PARTITIONS_HALTED,
    RESUMED_PARTITIONS,
    FENCED_OUT,
    DEAD_LETTER_ERRORS,
    DUPLICATES_DROPPED,
    DEDUP_PRIMING_ERRORS,
    BUFFERED_KEYS,
    ASSIGNED_PARTITIONS,
    CONSUMER_LAG,
    UNCOMMITTED,
    CASSANDRA_REQUEST_DURATION,
    FLUSH_DURATION,
];

/// The `op` label values of [`CASSANDRA_ERRORS`] and [`CASSANDRA_REQUEST_DURATION`]:
/// what the request was for (see `retry::Retry::cassandra`).
pub mod op {
    pub const CLAIM: &str = "claim";
    pub const MARK_ATTEMPTED: &str = "mark_attempted";
    pub const READ: &str = "read";
    pub const WRITE: &str = "write";
    pub const WRITE_COPY: &str = "write_copy";
    pub const READ_RATINGS: &str = "read_ratings";
    pub const WRITE_RATINGS: &str = "write_ratings";
    pub const WRITE_TOTALS: &str = "write_totals";
    pub const WRITE_ACTIVITY: &str = "write_activity";
    pub const READ_SKETCH: &str = "read_sketch";
    pub const WRITE_SKETCH: &str = "write_sketch";
    pub const WRITE_VIEWERS: &str = "write_viewers";
    pub const HALT: &str = "halt";
}

/// Every [`op`].
pub const CASSANDRA_OPS: [&str; 13] = [
    op::CLAIM,
    op::MARK_ATTEMPTED,
    op::READ,
    op::WRITE,
    op::WRITE_COPY,
    op::READ_RATINGS,
    op::WRITE_RATINGS,
    op::WRITE_TOTALS,
    op::WRITE_ACTIVITY,
    op::READ_SKETCH,
    op::WRITE_SKETCH,
    op::WRITE_VIEWERS,
    op::HALT,
];

pub fn describe() {
    platform::metrics::describe();
    ALL.iter().for_each(Metric::describe);
    for counter in [DEAD_LETTERS, COMMIT_ERRORS, CONSUMER_ERRORS, DEDUP_PRIMING_ERRORS, DEAD_LETTER_ERRORS] {
        counter.counter().increment(0);
    }
    for op in CASSANDRA_OPS {
        CASSANDRA_ERRORS.counter_with(&[("op", op)]).increment(0);
    }
}
