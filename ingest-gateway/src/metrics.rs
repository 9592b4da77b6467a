//! The gateway's metrics, declared once (the per-route HTTP ones are
//! `platform::metrics`). [`describe`] runs at start-up and registers the error
//! counters at zero: a counter that first appears at 1 hides its first increment
//! from `increase()`.

use platform::metrics::{Kind, Metric};

pub const EVENTS_PRODUCED: Metric =
    Metric::new(Kind::Counter, "gateway_events_produced_total", &[], "Events acknowledged by Kafka (acks=all)");
pub const EVENTS_REJECTED: Metric = Metric::new(
    Kind::Counter,
    "gateway_events_rejected_total",
    &[],
    "Items of batch requests rejected by validation (whole-request rejections are in http_requests_total)",
);
pub const PRODUCE_ERRORS: Metric = Metric::new(
    Kind::Counter,
    "gateway_produce_errors_total",
    &["kind"],
    "Requests answered 503 because Kafka did not acknowledge an event, by kind",
);
pub const EVENTS_DISCARDED: Metric = Metric::new(
    Kind::Counter,
    "gateway_events_discarded_total",
    &[],
    "Events accepted and dropped by the null sink (producer.sink = \"null\", benchmarks only)",
);
pub const PRODUCER_IN_FLIGHT: Metric = Metric::new(
    Kind::Gauge,
    "kafka_producer_in_flight_messages",
    &[],
    "Messages queued in or in flight from the producer, not yet acknowledged (sampled every second)",
);
pub const PRODUCER_QUEUE_CAPACITY: Metric = Metric::new(
    Kind::Gauge,
    "kafka_producer_queue_capacity_messages",
    &[],
    "The producer queue's ceiling (producer.queue_max_messages); in-flight / capacity is the saturation",
);

pub const STRICT_VIDEOS: Metric =
    Metric::new(Kind::Gauge, "gateway_strict_videos", &[], "Videos strict mode knows (from VideoAdded catalog events)");
pub const STRICT_REFUSED: Metric = Metric::new(
    Kind::Counter,
    "gateway_strict_refused_total",
    &[],
    "Views, events and ratings refused by strict mode (unknown video)",
);
pub const STRICT_DROPPED: Metric = Metric::new(
    Kind::Counter,
    "gateway_strict_videos_dropped_total",
    &[],
    "VideoAdded events not learned because strict.max_videos was reached",
);
pub const EVENTS_OUT_OF_WINDOW: Metric = Metric::new(
    Kind::Counter,
    "gateway_events_out_of_window_total",
    &["edge"],
    "Events refused (422) because occurredAt lay outside [now - events.max_age_secs, now + events.max_future_secs]; edge = late or future",
);

/// The `edge` label values of [`EVENTS_OUT_OF_WINDOW`].
pub const WINDOW_EDGES: [&str; 2] = ["late", "future"];

/// Every metric the gateway records itself.
pub const ALL: &[Metric] = &[
    EVENTS_PRODUCED,
    EVENTS_REJECTED,
    PRODUCE_ERRORS,
    EVENTS_DISCARDED,
    PRODUCER_IN_FLIGHT,
    PRODUCER_QUEUE_CAPACITY,
    STRICT_VIDEOS,
    STRICT_REFUSED,
    STRICT_DROPPED,
    EVENTS_OUT_OF_WINDOW,
];

/// The handles of the metrics recorded on every request, registered once (a lookup
/// by name per request showed in the profile); the rest are looked up where they
/// count, on paths that are not hot.
pub mod handles {
    use metrics::{Counter, Gauge};
    use platform::metrics::Registered;

    pub static EVENTS_PRODUCED: Registered<Counter> = Registered::counter(super::EVENTS_PRODUCED);
    pub static EVENTS_REJECTED: Registered<Counter> = Registered::counter(super::EVENTS_REJECTED);
    pub static EVENTS_DISCARDED: Registered<Counter> = Registered::counter(super::EVENTS_DISCARDED);
    pub static PRODUCER_IN_FLIGHT: Registered<Gauge> = Registered::gauge(super::PRODUCER_IN_FLIGHT);
}

/// Why a produce failed: the `kind` label values of [`PRODUCE_ERRORS`].
pub const PRODUCE_ERROR_KINDS: [&str; 3] = ["queue_full", "timed_out", "other"];

pub fn describe(queue_capacity: u64) {
    platform::metrics::describe();
    ALL.iter().for_each(Metric::describe);
    EVENTS_PRODUCED.counter().increment(0);
    EVENTS_REJECTED.counter().increment(0);
    for kind in PRODUCE_ERROR_KINDS {
        PRODUCE_ERRORS.counter_with(&[("kind", kind)]).increment(0);
    }
    PRODUCER_QUEUE_CAPACITY.gauge().set(queue_capacity as f64);
    STRICT_REFUSED.counter().increment(0);
    STRICT_DROPPED.counter().increment(0);
    STRICT_VIDEOS.gauge().set(0.0);
    for edge in WINDOW_EDGES {
        EVENTS_OUT_OF_WINDOW.counter_with(&[("edge", edge)]).increment(0);
    }
}
