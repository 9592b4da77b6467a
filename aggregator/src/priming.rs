//! Dedup priming (protocol step P3, see `counting::protocol`). A client that
//! retries a request sends the same `eventId` again; the owner drops a repeat seen
//! within the dedup window (`counting::DedupWindow`). A new owner must decide
//! every replayed message exactly as the owner before it did, so before taking a
//! partition it re-reads the log from a window before now up to its committed
//! offset, collecting the client ids seen there. A partial window could decide a
//! replayed repeat differently, so priming fails rather than return one, and the
//! owner retries it.

use std::time::{Duration, Instant};

use counting::DedupWindow;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::decode;

/// How long reading the window may take before priming is retried.
const READ_DEADLINE: Duration = Duration::from_secs(120);
/// Extra history read before the window: broker clocks and ours differ.
const MARGIN_MS: i64 = 60_000;

/// Why the window could not be re-read.
#[derive(Debug, thiserror::Error)]
pub enum PrimeError {
    #[error("reading the committed offset: {0}")]
    Committed(#[source] KafkaError),
    #[error("creating the primer: {0}")]
    Create(#[source] KafkaError),
    #[error("finding the window's first offset: {0}")]
    FirstOffset(#[source] KafkaError),
    #[error("assigning the primer: {0}")]
    Assign(#[source] KafkaError),
    #[error("reading the window: {0}")]
    Read(#[source] KafkaError),
    #[error("the window before offset {committed} was not read within {} s", READ_DEADLINE.as_secs())]
    TooSlow { committed: i64 },
}

/// The dedup window of one consumer, and how to read it back.
#[derive(Clone)]
pub struct Primer {
    /// 0: no deduplication.
    pub window_ms: i64,
    /// Settings of the short-lived consumer that re-reads the window (its own
    /// group, nothing committed).
    pub client: ClientConfig,
}

impl Primer {
    pub fn enabled(&self) -> bool {
        self.window_ms > 0
    }

    /// The dedup window of partition `p` of `topic` as of `consumer`'s committed
    /// offset: every client id the rule can still match for any offset from the
    /// committed one on, so replays decide exactly as the first pass did.
    pub fn prime<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        topic: &str,
        p: i32,
    ) -> Result<DedupWindow, PrimeError> {
        let mut window = DedupWindow::new(self.window_ms);
        if !self.enabled() {
            return Ok(window);
        }
        let started = Instant::now();
        let timeout = Duration::from_secs(10);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, p);
        let committed = consumer
            .committed_offsets(tpl, timeout)
            .map_err(PrimeError::Committed)?
            .find_partition(topic, p)
            .and_then(|e| e.offset().to_raw())
            .unwrap_or(-1);
        if committed <= 0 {
            return Ok(window); // no committed offset: consumption starts at the log's start
        }
        let since = chrono::Utc::now().timestamp_millis() - self.window_ms - MARGIN_MS;
        let primer: BaseConsumer = self.client.create().map_err(PrimeError::Create)?;
        let mut by_time = TopicPartitionList::new();
        by_time.add_partition_offset(topic, p, Offset::Offset(since)).expect("valid offset");
        // No offset at or after `since` (raw -1): nothing in the window precedes `committed`.
        let start = primer
            .offsets_for_times(by_time, timeout)
            .map_err(PrimeError::FirstOffset)?
            .find_partition(topic, p)
            .and_then(|e| e.offset().to_raw())
            .filter(|&o| o >= 0 && o < committed);
        let Some(start) = start else { return Ok(window) };
        let mut assign = TopicPartitionList::new();
        assign.add_partition_offset(topic, p, Offset::Offset(start)).expect("valid offset");
        primer.assign(&assign).map_err(PrimeError::Assign)?;
        let mut read = 0u64;
        let deadline = Instant::now() + READ_DEADLINE;
        let mut complete = false;
        while !complete && Instant::now() < deadline {
            match primer.poll(Duration::from_millis(500)) {
                Some(Ok(m)) if m.offset() < committed => {
                    read += 1;
                    if let Ok(d) = decode::event(m.payload())
                        && let Some(id) = d.client_id
                    {
                        window.observe(id, m.timestamp().to_millis().unwrap_or(0));
                    }
                    complete = m.offset() + 1 >= committed;
                }
                // Past the committed offset, or at the end of the log: nothing before it is left.
                Some(Ok(_)) | Some(Err(KafkaError::PartitionEOF(_))) => complete = true,
                Some(Err(e)) => return Err(PrimeError::Read(e)),
                None => {}
            }
        }
        if !complete {
            return Err(PrimeError::TooSlow { committed });
        }
        tracing::info!(
            partition = p,
            read,
            ids = window.len(),
            ms = started.elapsed().as_millis() as u64,
            "primed dedup window"
        );
        Ok(window)
    }
}
