//! What the aggregator's metrics mean. They are recorded in `pipeline`; this only
//! describes them once at start-up and registers the error counters and gauges
//! at zero, so they exist before the first failure (a counter that first appears
//! at 1 hides that increment from `increase()`) and dashboards show 0, not "no data".

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// The `op` label values of `aggregator_cassandra_errors_total` (see `pipeline::retry`).
pub const CASSANDRA_OPS: [&str; 9] = [
    "claim",
    "mark_attempted",
    "read",
    "write",
    "write_copy",
    "read_ratings",
    "write_ratings",
    "write_totals",
    "write_activity",
];

pub fn describe() {
    let _ = platform::telemetry::metrics_handle();
    let n = Unit::Count;
    describe_counter!("aggregator_messages_total", n, "Messages taken from owned partitions (events, repeats, poison)");
    describe_counter!("aggregator_events_flushed_total", n, "Events in flushes whose rows were written");
    describe_counter!("aggregator_rows_written_total", n, "Rollup rows written to Cassandra");
    describe_counter!("aggregator_rows_skipped_total", n, "Rollup rows a flush skipped: they already held its events");
    describe_counter!(
        "aggregator_row_reads_total",
        n,
        "Range reads of a rollup partition before writing to it (what the owner's cache did not know)"
    );
    describe_counter!("aggregator_write_requests_total", n, "Write requests (single-partition batches of rows)");
    describe_counter!(
        "aggregator_rated_videos_total",
        n,
        "Videos whose rating totals a flush wrote (after their users' rows)"
    );
    describe_counter!(
        "aggregator_dead_letters_total",
        n,
        "Undecodable or invalid messages sent to the dead-letter topic"
    );
    describe_counter!("aggregator_cassandra_errors_total", n, "Failed Cassandra requests (each is retried), by op");
    describe_counter!("aggregator_commit_errors_total", n, "Failed offset commits (retried before the next flush)");
    describe_counter!("aggregator_consumer_errors_total", n, "Errors returned by the Kafka consumer's poll");
    describe_counter!(
        "aggregator_fenced_flushes_total",
        n,
        "Flushes made exactly at the in-doubt boundary after a takeover"
    );
    describe_counter!("aggregator_halted_partitions_total", n, "Partitions halted: a row held only part of a flush");
    describe_counter!(
        "aggregator_duplicates_dropped_total",
        n,
        "Repeats of a client eventId dropped within the window"
    );
    describe_counter!("aggregator_dedup_priming_errors_total", n, "Failed re-reads of the dedup window on assignment");
    describe_gauge!(
        "aggregator_buffered_keys",
        n,
        "(video, type, minute) and (video, user) keys buffered, not yet flushed, by topic"
    );
    describe_gauge!("aggregator_assigned_partitions", n, "Partitions this member owns, by topic");
    describe_gauge!(
        "aggregator_consumer_lag_messages",
        n,
        "Messages between the committed offset and the end of the log, by topic and partition (librdkafka statistics, every 5 s)"
    );
    describe_histogram!(
        "aggregator_cassandra_request_duration_seconds",
        Unit::Seconds,
        "One Cassandra request of the aggregator, successful or not, by op"
    );
    describe_histogram!(
        "aggregator_flush_duration_seconds",
        Unit::Seconds,
        "One flush: the Cassandra reads and writes of every partition with buffered events, then the commit"
    );
    for name in [
        "aggregator_dead_letters_total",
        "aggregator_commit_errors_total",
        "aggregator_consumer_errors_total",
        "aggregator_halted_partitions_total",
        "aggregator_dedup_priming_errors_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    for op in CASSANDRA_OPS {
        metrics::counter!("aggregator_cassandra_errors_total", "op" => op).increment(0);
    }
}
