//! Dedup priming (protocol step P3, see `counting::protocol`). A client that
//! retries a request sends the same `eventId` again; the owner drops a repeat seen
//! within the dedup window (`counting::DedupWindow`). A new owner must decide
//! every replayed message exactly as the owner before it did, so before taking a
//! partition it re-reads the log before its start offset, collecting the client
//! ids seen there.
//!
//! The window is measured in log time, never on the wall clock: it starts
//! `window` before the broker timestamp of the last message before the start
//! offset. The topic uses `LogAppendTime` (checked at start-up), so timestamps
//! never decrease along a partition and every earlier copy the rule can match for
//! any message from the start offset on is in that range, however long ago the
//! previous owner stopped. The range is the same on every attempt, so a retry
//! reads the same window. When part of it is gone (deleted by retention), the
//! window cannot be whole and priming says so ([`PrimeError::Incomplete`]): the
//! owner halts the partition rather than decide a replay differently from the
//! owner that first counted it.
//!
//! The same read goes on past the start to `attempted` when the events topic's
//! rounds need a census (R2 in `counting::rounds`): every (video, event type)
//! series with an event in the replay region `start..=attempted`. The window's
//! rules are unchanged by it: only messages before the start enter the window.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use counting::{DedupWindow, EventTypes, SeriesKey};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::decode;

/// Reading the window fails (and is retried) after this long without a message.
const STALL: Duration = Duration::from_secs(30);

/// Why the window could not be re-read.
#[derive(Debug, thiserror::Error)]
pub enum PrimeError {
    #[error("creating the primer: {0}")]
    Create(#[source] KafkaError),
    #[error("finding the window's first offset: {0}")]
    FirstOffset(#[source] KafkaError),
    #[error("assigning the primer: {0}")]
    Assign(#[source] KafkaError),
    #[error("reading the window: {0}")]
    Read(#[source] KafkaError),
    #[error("reading the window before offset {start} stalled for {} s", STALL.as_secs())]
    Stalled { start: i64 },
    #[error("reading the replay region {start}..={through} stalled for {} s", STALL.as_secs())]
    CensusStalled { start: i64, through: i64 },
    /// Part of the window is no longer in the log: retrying cannot help.
    #[error("{0}")]
    Incomplete(String),
}

impl PrimeError {
    /// Retrying may succeed (Kafka was unreachable or slow).
    pub fn is_transient(&self) -> bool {
        !matches!(self, PrimeError::Incomplete(_))
    }
}

/// The dedup window of one consumer, and how to read it back.
#[derive(Clone)]
pub struct Primer {
    /// 0: no deduplication.
    pub window_ms: i64,
    /// Settings of the short-lived consumer that re-reads the window (its own
    /// group, nothing committed).
    pub client: ClientConfig,
    /// The event types this aggregator counts (`event_types`): the primer and the
    /// owner decode alike, so both see the same client ids.
    pub types: EventTypes,
}

impl Primer {
    pub fn enabled(&self) -> bool {
        self.window_ms > 0
    }

    /// The dedup window of partition `p` of `topic` for an owner starting at
    /// offset `start`, when the log's first stored offset is `low`: every client id
    /// the rule can still match for any offset from `start` on.
    pub fn prime(&self, topic: &str, p: i32, start: i64, low: i64) -> Result<DedupWindow, PrimeError> {
        self.read(topic, p, start, low, None).map(|r| r.window)
    }

    /// [`prime`](Self::prime), and with `census_through = Some(a)` the series of
    /// every event in `start..=a` too, in the same pass over the log.
    pub fn read(
        &self,
        topic: &str,
        p: i32,
        start: i64,
        low: i64,
        census_through: Option<i64>,
    ) -> Result<Primed, PrimeError> {
        let mut window = DedupWindow::new(self.window_ms);
        let through = census_through.filter(|&a| a >= start);
        let mut series = through.map(|_| HashSet::new());
        let prime = self.enabled() && start > 0;
        if !prime && through.is_none() {
            return Ok(Primed { window, series }); // nothing was ever before the start
        }
        if prime && start <= low {
            return Err(PrimeError::Incomplete(format!(
                "the messages before offset {start} were deleted (the log starts at {low}): \
                 the dedup window before it cannot be re-read"
            )));
        }
        let started = Instant::now();
        let timeout = Duration::from_secs(10);
        let primer: BaseConsumer = self.client.create().map_err(PrimeError::Create)?;
        let (first, since) = if prime {
            // The log time of the last message before the start, then the window before it.
            let last = read_one(&primer, topic, p, start - 1, timeout)?;
            let since = last.saturating_sub(self.window_ms);
            let mut by_time = TopicPartitionList::new();
            by_time.add_partition_offset(topic, p, Offset::Offset(since)).expect("valid offset");
            let first = primer
                .offsets_for_times(by_time, timeout)
                .map_err(PrimeError::FirstOffset)?
                .find_partition(topic, p)
                .and_then(|e| e.offset().to_raw())
                .filter(|&o| o >= 0)
                .unwrap_or(start - 1);
            if first <= low && low > 0 {
                return Err(PrimeError::Incomplete(format!(
                    "the dedup window before offset {start} (log time {since} on) reaches the log start {low}; \
                     older messages in it may have been deleted"
                )));
            }
            (first, since)
        } else {
            (start, 0)
        };
        // The last offset to read: the census region's end, or the one before the start.
        let end = through.unwrap_or(start - 1);
        let mut assign = TopicPartitionList::new();
        assign.add_partition_offset(topic, p, Offset::Offset(first)).expect("valid offset");
        primer.assign(&assign).map_err(PrimeError::Assign)?;
        let mut read = 0u64;
        let mut last = -1i64;
        let mut last_progress = Instant::now();
        loop {
            match primer.poll(Duration::from_millis(500)) {
                Some(Ok(m)) if m.offset() <= end => {
                    read += 1;
                    last = m.offset();
                    last_progress = Instant::now();
                    // A pack's every event, as the owner folds them.
                    let decoded = decode::events(m.payload(), &self.types).unwrap_or_default();
                    if m.offset() < start {
                        let at = m.timestamp().to_millis().unwrap_or(0);
                        for id in decoded.iter().filter_map(|d| d.client_id) {
                            window.observe(id, at);
                        }
                    } else if let Some(keys) = series.as_mut() {
                        keys.extend(decoded.iter().map(|d| SeriesKey::from(&d.event)));
                    }
                    if m.offset() >= end {
                        break;
                    }
                }
                // Past the end: nothing before it is left.
                Some(Ok(_)) => break,
                // Every message before the start was read (or none was wanted): the
                // log ends inside the replay region, and all of it was read.
                Some(Err(KafkaError::PartitionEOF(_))) if !prime || last >= start - 1 => break,
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    return Err(PrimeError::Incomplete(format!("the log ended before offset {start}")));
                }
                Some(Err(e)) => return Err(PrimeError::Read(e)),
                None if last_progress.elapsed() > STALL => {
                    return Err(match through {
                        Some(through) => PrimeError::CensusStalled { start, through },
                        None => PrimeError::Stalled { start },
                    });
                }
                None => {}
            }
        }
        tracing::info!(
            partition = p,
            start,
            since,
            read,
            ids = window.len(),
            census_series = series.as_ref().map_or(0, HashSet::len),
            ms = started.elapsed().as_millis() as u64,
            "primed dedup window"
        );
        Ok(Primed { window, series })
    }
}

/// What a read before (and past) the start found.
pub struct Primed {
    pub window: DedupWindow,
    /// The series with an event in the replay region (`None`: no census asked).
    pub series: Option<HashSet<SeriesKey>>,
}

/// The broker timestamp of the message at `offset`.
fn read_one(primer: &BaseConsumer, topic: &str, p: i32, offset: i64, timeout: Duration) -> Result<i64, PrimeError> {
    let mut assign = TopicPartitionList::new();
    assign.add_partition_offset(topic, p, Offset::Offset(offset)).expect("valid offset");
    primer.assign(&assign).map_err(PrimeError::Assign)?;
    let deadline = Instant::now() + timeout.max(STALL);
    while Instant::now() < deadline {
        match primer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) if m.offset() == offset => {
                return m.timestamp().to_millis().ok_or_else(|| {
                    PrimeError::Incomplete(format!("message {offset} has no timestamp: is the topic LogAppendTime?"))
                });
            }
            Some(Ok(m)) => {
                return Err(PrimeError::Incomplete(format!(
                    "message {offset} is missing (the log has {} next)",
                    m.offset()
                )));
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {
                return Err(PrimeError::Incomplete(format!("message {offset} is past the log end")));
            }
            Some(Err(e)) => return Err(PrimeError::Read(e)),
            None => {}
        }
    }
    Err(PrimeError::Stalled { start: offset + 1 })
}
