//! Metric declarations. Each crate declares its metrics once, as [`Metric`]
//! constants in its own `metrics` module (Vector's `internal_events`): the name,
//! the kind, the label keys and the help text together, plus an `ALL` list and one
//! `describe()`. Call sites use the constants, never a string literal, so a name
//! cannot drift between the code, the describe call and the dashboard; the system
//! tests (`e2e`) check the dashboard's queries and every scrape against the `ALL`
//! lists.
//!
//! A call such as [`Metric::counter`] looks the series up in the registry by name
//! and labels (building and hashing the key) on every call. Metrics recorded per
//! request or per event keep their handle instead: a [`Registered`] static for
//! those without labels, a small cache by label values in the HTTP middleware
//! ([`crate::http`]). Issue 15's profile found the lookups on the gateway's hot path.
//!
//! This module also declares the metrics of the HTTP middleware every service
//! shares ([`service_router`](crate::http::service_router)).

use std::sync::OnceLock;

use metrics::{IntoLabels, Unit};

/// The Prometheus type of a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    /// Always a real histogram: the name ends in `_seconds`, the suffix
    /// [`telemetry`](crate::telemetry) gives buckets to.
    Histogram,
}

impl Kind {
    /// As the exposition format's `# TYPE` line says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One declared metric.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    /// The label keys it is recorded with; their values come from bounded sets.
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

impl Metric {
    pub const fn new(kind: Kind, name: &'static str, labels: &'static [&'static str], help: &'static str) -> Self {
        Self { name, kind, labels, help }
    }

    /// Registers the help text and unit with the recorder.
    pub fn describe(&self) {
        match self.kind {
            Kind::Counter => metrics::describe_counter!(self.name, Unit::Count, self.help),
            Kind::Gauge => metrics::describe_gauge!(self.name, Unit::Count, self.help),
            Kind::Histogram => metrics::describe_histogram!(self.name, Unit::Seconds, self.help),
        }
    }

    /// The counter without labels.
    pub fn counter(&self) -> metrics::Counter {
        self.check(Kind::Counter, 0);
        metrics::counter!(self.name)
    }

    /// The counter with `labels` (values for the declared keys, in any order).
    pub fn counter_with<L: IntoLabels>(&self, labels: L) -> metrics::Counter {
        let labels = labels.into_labels();
        self.check(Kind::Counter, labels.len());
        metrics::counter!(self.name, labels)
    }

    pub fn gauge(&self) -> metrics::Gauge {
        self.check(Kind::Gauge, 0);
        metrics::gauge!(self.name)
    }

    pub fn gauge_with<L: IntoLabels>(&self, labels: L) -> metrics::Gauge {
        let labels = labels.into_labels();
        self.check(Kind::Gauge, labels.len());
        metrics::gauge!(self.name, labels)
    }

    pub fn histogram(&self) -> metrics::Histogram {
        self.check(Kind::Histogram, 0);
        metrics::histogram!(self.name)
    }

    pub fn histogram_with<L: IntoLabels>(&self, labels: L) -> metrics::Histogram {
        let labels = labels.into_labels();
        self.check(Kind::Histogram, labels.len());
        metrics::histogram!(self.name, labels)
    }

    /// Recording a metric as another kind, or with other labels than declared, is
    /// a bug: caught in debug builds (every test), free in release.
    fn check(&self, kind: Kind, labels: usize) {
        debug_assert_eq!(self.kind, kind, "{} is declared a {}", self.name, self.kind.as_str());
        debug_assert_eq!(self.labels.len(), labels, "{} is declared with labels {:?}", self.name, self.labels);
    }
}

/// The handle of a metric without labels, registered on first use and then kept, for
/// a `static` beside the crate's declarations:
/// `static PRODUCED: Registered<Counter> = Registered::counter(EVENTS_PRODUCED);`
pub struct Registered<T> {
    metric: Metric,
    make: fn(&Metric) -> T,
    handle: OnceLock<T>,
}

impl Registered<metrics::Counter> {
    pub const fn counter(metric: Metric) -> Self {
        Self { metric, make: Metric::counter, handle: OnceLock::new() }
    }
}

impl Registered<metrics::Gauge> {
    pub const fn gauge(metric: Metric) -> Self {
        Self { metric, make: Metric::gauge, handle: OnceLock::new() }
    }
}

impl<T> Registered<T> {
    pub fn get(&self) -> &T {
        self.handle.get_or_init(|| {
            // A handle taken before the recorder exists counts into the void, and
            // kept it would for the life of the process: install the recorder first.
            let _ = crate::telemetry::metrics_handle();
            (self.make)(&self.metric)
        })
    }
}

/// Requests answered by the HTTP middleware.
pub const HTTP_REQUESTS: Metric = Metric::new(
    Kind::Counter,
    "http_requests_total",
    &["route", "method", "status"],
    "HTTP requests answered, by route template, method and status",
);
/// Time to the response head.
pub const HTTP_REQUEST_DURATION: Metric = Metric::new(
    Kind::Histogram,
    "http_request_duration_seconds",
    &["route", "method"],
    "HTTP request latency until the response head, by route template and method",
);

/// Requests refused at once because `http.max_in_flight` were being handled
/// ([`crate::server`]).
pub const HTTP_REQUESTS_SHED: Metric = Metric::new(
    Kind::Counter,
    "http_requests_shed_total",
    &[],
    "Requests refused with 503 because http.max_in_flight were in flight",
);
/// Requests cut at `http.request_timeout_ms` ([`crate::server`]).
pub const HTTP_REQUEST_TIMEOUTS: Metric = Metric::new(
    Kind::Counter,
    "http_request_timeouts_total",
    &[],
    "Requests answered 503 after http.request_timeout_ms",
);

/// The metrics of every service's HTTP middleware and server loop.
pub const ALL: &[Metric] = &[HTTP_REQUESTS, HTTP_REQUEST_DURATION, HTTP_REQUESTS_SHED, HTTP_REQUEST_TIMEOUTS];

/// Installs the recorder (handles made before it exists count into the void) and
/// describes [`ALL`].
pub fn describe() {
    let _ = crate::telemetry::metrics_handle();
    ALL.iter().for_each(Metric::describe);
    // Error counters exist at 0, so `increase()` sees their first increment.
    HTTP_REQUESTS_SHED.counter().increment(0);
    HTTP_REQUEST_TIMEOUTS.counter().increment(0);
}
