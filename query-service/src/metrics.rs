//! The query service's metrics, declared once (the per-route HTTP ones are
//! `platform::metrics`). [`describe`] runs at start-up and registers the error
//! counters at zero: a counter that first appears at 1 hides that increment from
//! `increase()`.

use platform::metrics::{Kind, Metric};

pub const CASSANDRA_READ_DURATION: Metric = Metric::new(
    Kind::Histogram,
    "query_cassandra_read_duration_seconds",
    &["granularity"],
    "One rollup range read from Cassandra (all its pages), by granularity; failed reads included",
);
pub const CASSANDRA_ERRORS: Metric =
    Metric::new(Kind::Counter, "query_cassandra_errors_total", &["op"], "Failed Cassandra requests, by op");
pub const OWNER_READS: Metric = Metric::new(
    Kind::Counter,
    "query_owner_reads_total",
    &["outcome"],
    "Counts and series that asked the owner of the video's partition for what it holds (counts.owner_reads), by \
     outcome: fresh (its answer was added, or it held nothing), and rows only for unowned (no owner \
     recorded), not_owner (404), busy (503), timeout, error, not_ready (short of its fenced round), landed \
     (a round landed the held events twice in a row), replaced (a newer owner wrote the rows), backoff (the \
     owner failed moments ago and was not asked)",
);
pub const OWNER_ASK_DURATION: Metric = Metric::new(
    Kind::Histogram,
    "query_owner_ask_duration_seconds",
    &[],
    "One question to a partition's owner over HTTP (GET /owner/held), answered or not; asks not made (unowned, \
     backoff) are not timed",
);
pub const ROWS_CACHE: Metric = Metric::new(
    Kind::Counter,
    "query_rows_cache_total",
    &["outcome"],
    "Span reads of counts (one clustering range each) answered from the rows cache (hit: read while the \
     series' all-time row was the one read now) or read from Cassandra (miss), counts.rows_cache_rows",
);
pub const CATALOG_EVENTS_PUBLISHED: Metric = Metric::new(
    Kind::Counter,
    "query_catalog_events_published_total",
    &["kind"],
    "Catalog events (user created, video added, comment added) acknowledged by Kafka, by kind",
);
pub const CATALOG_EVENTS_FAILED: Metric = Metric::new(
    Kind::Counter,
    "query_catalog_events_failed_total",
    &["kind"],
    "Catalog events not delivered within the producer's timeout, by kind (the change itself is stored)",
);

pub const PASSWORD_HASHES: Metric = Metric::new(
    Kind::Counter,
    "query_password_hashes_total",
    &[],
    "argon2id hashes computed (registrations, and every login: one each, known email or not)",
);
pub const PASSWORD_HASHES_REFUSED: Metric = Metric::new(
    Kind::Counter,
    "query_password_hashes_refused_total",
    &[],
    "Registrations and logins answered 503 because the password hashing pool was full",
);
pub const RATE_LIMITED: Metric = Metric::new(
    Kind::Counter,
    "query_rate_limited_total",
    &["limit"],
    "Requests answered 429, by the limit they hit (login_ip, login_account, register_ip, register_account)",
);

/// Every metric the query service records itself.
pub const ALL: &[Metric] = &[
    CASSANDRA_READ_DURATION,
    CASSANDRA_ERRORS,
    OWNER_READS,
    OWNER_ASK_DURATION,
    ROWS_CACHE,
    CATALOG_EVENTS_PUBLISHED,
    CATALOG_EVENTS_FAILED,
    PASSWORD_HASHES,
    PASSWORD_HASHES_REFUSED,
    RATE_LIMITED,
];

/// The `limit` label values of [`RATE_LIMITED`].
pub const RATE_LIMITS: [&str; 4] = ["login_ip", "login_account", "register_ip", "register_account"];

/// The `op` label value of [`CASSANDRA_ERRORS`]: a rollup range read.
pub const OP_READ: &str = "read";

/// The `kind` label values of the catalog event counters.
pub const CATALOG_EVENT_KINDS: [&str; 3] = ["user_created", "video_added", "comment_added"];

pub fn describe() {
    platform::metrics::describe();
    ALL.iter().for_each(Metric::describe);
    CASSANDRA_ERRORS.counter_with(&[("op", OP_READ)]).increment(0);
    for outcome in crate::store::owners::Outcome::ALL {
        OWNER_READS.counter_with(&[("outcome", outcome.as_str())]).increment(0);
    }
    for kind in CATALOG_EVENT_KINDS {
        CATALOG_EVENTS_FAILED.counter_with(&[("kind", kind)]).increment(0);
    }
    PASSWORD_HASHES.counter().increment(0);
    PASSWORD_HASHES_REFUSED.counter().increment(0);
    for limit in RATE_LIMITS {
        RATE_LIMITED.counter_with(&[("limit", limit)]).increment(0);
    }
}
