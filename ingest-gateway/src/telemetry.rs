//! The gateway's own metrics (the per-route HTTP ones come from `platform`).
//! Described once at start-up, and the error counters registered at zero: a
//! counter that first appears at 1 hides its first increment from `increase()`.

use metrics::{Unit, describe_counter, describe_gauge};

/// Why a produce failed, as counted in `gateway_produce_errors_total{kind}`.
pub const PRODUCE_ERROR_KINDS: [&str; 3] = ["queue_full", "timed_out", "other"];

pub fn describe(queue_capacity: u64) {
    let _ = platform::telemetry::metrics_handle();
    describe_counter!("gateway_events_produced_total", Unit::Count, "Events acknowledged by Kafka (acks=all)");
    describe_counter!(
        "gateway_events_rejected_total",
        Unit::Count,
        "Items of batch requests rejected by validation (whole-request rejections are in http_requests_total)"
    );
    describe_counter!(
        "gateway_produce_errors_total",
        Unit::Count,
        "Requests answered 503 because Kafka did not acknowledge an event, by kind"
    );
    describe_counter!(
        "gateway_events_discarded_total",
        Unit::Count,
        "Events accepted and dropped by the null sink (producer.sink = \"null\", benchmarks only)"
    );
    describe_gauge!(
        "kafka_producer_in_flight_messages",
        Unit::Count,
        "Messages queued in or in flight from the producer, not yet acknowledged (sampled every second)"
    );
    describe_gauge!(
        "kafka_producer_queue_capacity_messages",
        Unit::Count,
        "The producer queue's ceiling (producer.queue_max_messages); in-flight / capacity is the saturation"
    );
    metrics::counter!("gateway_events_produced_total").increment(0);
    metrics::counter!("gateway_events_rejected_total").increment(0);
    for kind in PRODUCE_ERROR_KINDS {
        metrics::counter!("gateway_produce_errors_total", "kind" => kind).increment(0);
    }
    metrics::gauge!("kafka_producer_queue_capacity_messages").set(queue_capacity as f64);
}
