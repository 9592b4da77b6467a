//! The counting core, free of I/O.
//!
//! Kafka and Cassandra are adapters around this crate: the aggregator feeds it
//! events with their (partition, offset) and the rows it has read, and gets back
//! the rows to write and the offset it may commit; the query service asks it
//! which rollup rows cover a time range. Keeping it pure makes the exactly-once
//! rule property-testable without servers.
//!
//! The exactly-once protocol (steps P1–P11, with P3a), its proof and its tests are described
//! in one place: [`protocol`].

pub mod cache;
pub mod dedup;
pub mod fresh;
pub mod kind;
pub mod protocol;
pub mod range;
pub mod ratings;
pub mod retention;
pub mod rollup;
pub mod rounds;
pub mod series;
pub mod time;
pub mod timestamp;
pub mod viewers;

pub use cache::{PartKey, RangeRead, RowCache};
pub use dedup::DedupWindow;
pub use kind::{EventKind, EventTypes};
pub use range::{AllExpired, Moved, Plan, Span, plan, plan_range};
pub use ratings::{RatedEvent, RatingChange};
pub use retention::{Horizons, Retention};
pub use rollup::{
    Activity, ActivityKind, CountedEvent, FlushPlan, Folded, Overlap, PartitionBuffer, Resolved, RowDelta, RowKey,
    RowWrite, SignedInView, StoredRow, Tally, add_count, write_timestamp,
};
pub use rounds::{Cadence, Census, PartitionCounts, Round, SeriesFlush, SeriesKey};
pub use time::Granularity;
