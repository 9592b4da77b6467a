//! The consumer loop and the owner of assigned partitions.
//!
//! The loop runs on one blocking thread around a `BaseConsumer`, so rebalance
//! callbacks arrive on that same thread, in the middle of `poll`, where they can
//! flush and commit exactly the revoked partitions before giving them up (the
//! Vector/Quickwit rule: commit only what is durably written). Cassandra calls are
//! async; the thread enters the runtime with `block_on` for each flush.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use counting::ratings::{RatingChange, resolve_video};
use counting::{
    DedupWindow, FlushPlan, Folded, Granularity, PartitionBuffer, RangeRead, RatedEvent, RowCache, RowKey, StoredRow,
};
use futures::StreamExt;
use futures::future::join_all;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::FlushConfig;
use crate::store::{RollupStore, backoff, decode, decode_rating};

struct Slot {
    epoch: i64,
    buffer: PartitionBuffer,
    /// What this owner knows of its rows, so steady-state flushes write without
    /// reading. Only the owner writes them, so it stays true while the partition
    /// is ours; it is dropped with the partition.
    cache: RowCache,
    /// Written but not yet committed (the commit failed): commit before flushing again,
    /// or the in-doubt range would span two flushes.
    pending_commit: Option<i64>,
    /// Stopped: fenced by a newer owner, or an overlap that needs a human.
    halted: bool,
    /// Client-chosen event ids seen lately, to drop repeats.
    dedup: DedupWindow,
}

/// What a consumer's topic carries, and so how its messages fold and flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Counting events (`Event`): rollup rows and their by-bucket copies.
    Counts,
    /// Ratings (`Rating`): each user's latest rating and a video's sum and count.
    Ratings,
}

/// One decoded message.
enum Item {
    /// A counted event, and the verified viewer (user, event id) of a signed-in view.
    Count(counting::CountedEvent, Option<(Uuid, Uuid)>),
    Rate(RatedEvent),
    /// Dead-lettered or a dropped duplicate: consumes its offset, changes nothing.
    Nothing,
}

/// Everything the loop and the rebalance callbacks share.
pub struct Owner {
    family: Family,
    topic: String,
    dlq_topic: String,
    slots: HashMap<i32, Slot>,
    store: Arc<RollupStore>,
    dlq: FutureProducer,
    rt: Handle,
    cfg: FlushConfig,
    /// 0: no deduplication.
    dedup_window_ms: i64,
    /// Client settings for the consumer that re-reads the dedup window on assignment.
    primer: rdkafka::ClientConfig,
    shutdown: CancellationToken,
    /// Milliseconds since the epoch of the loop's last turn, for /readyz.
    pub heartbeat: Arc<AtomicI64>,
    /// Registered once: looking a metric up by name costs more than folding an event.
    messages: metrics::Counter,
    duplicates: metrics::Counter,
    assigned: metrics::Gauge,
    buffered: metrics::Gauge,
}

pub struct Ctx {
    pub owner: Arc<Mutex<Owner>>,
}

impl ClientContext for Ctx {
    /// Consumer lag per partition, from librdkafka's own statistics (no extra
    /// requests to the broker). Partition labels are bounded by the topic's size.
    fn stats(&self, stats: rdkafka::Statistics) {
        for (name, topic) in &stats.topics {
            for (p, part) in &topic.partitions {
                if *p >= 0 && part.consumer_lag >= 0 {
                    let (topic, partition) = (name.clone(), p.to_string());
                    metrics::gauge!("aggregator_consumer_lag_messages", "topic" => topic, "partition" => partition)
                        .set(part.consumer_lag as f64);
                }
            }
        }
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let parts = partitions(tpl);
                tracing::info!(?parts, "partitions revoked: flushing them before letting go");
                let mut owner = self.owner.lock().expect("owner lock");
                owner.flush(consumer, &parts);
                owner.release(&parts);
            }
            Rebalance::Error(e) => tracing::error!(error = %e, "rebalance error"),
            Rebalance::Assign(_) => {}
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let parts = partitions(tpl);
            tracing::info!(?parts, "partitions assigned");
            self.owner.lock().expect("owner lock").assign(consumer, &parts);
        }
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

/// What became of one partition's flush.
enum Outcome {
    Written {
        commit: i64,
        rows: usize,
        skipped: usize,
    },
    /// Another owner claimed the partition.
    Fenced,
    /// A row holds part of the flush (offsets rewound by hand): refuse to guess.
    Overlap(String),
    /// Shutdown ran out of patience while retrying; nothing was committed.
    Abandoned,
}

struct Job {
    partition: i32,
    epoch: i64,
    plan: FlushPlan,
    cache: RowCache,
}

impl Owner {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        family: Family,
        topic: String,
        dlq_topic: String,
        store: Arc<RollupStore>,
        dlq: FutureProducer,
        cfg: FlushConfig,
        dedup_window_ms: i64,
        primer: rdkafka::ClientConfig,
        shutdown: CancellationToken,
    ) -> Self {
        // Handles registered before the recorder exists would count into the void.
        let _ = platform::telemetry::metrics_handle();
        Self {
            family,
            dlq_topic,
            slots: HashMap::new(),
            store,
            dlq,
            rt: Handle::current(),
            cfg,
            dedup_window_ms,
            primer,
            shutdown,
            heartbeat: Arc::new(AtomicI64::new(0)),
            messages: metrics::counter!("aggregator_messages_total"),
            duplicates: metrics::counter!("aggregator_duplicates_dropped_total"),
            assigned: metrics::gauge!("aggregator_assigned_partitions", "topic" => topic.clone()),
            buffered: metrics::gauge!("aggregator_buffered_keys", "topic" => topic.clone()),
            topic,
        }
    }

    fn assign(&mut self, consumer: &BaseConsumer<Ctx>, parts: &[i32]) {
        for &p in parts {
            let store = self.store.clone();
            let topic = self.topic.clone();
            let claim = self.rt.block_on(retry(&self.cfg, &self.shutdown, "claim", || store.claim(&topic, p)));
            let Some(claim) = claim else { return };
            tracing::info!(topic = %self.topic, partition = p, epoch = claim.epoch, attempted = ?claim.attempted, "claimed partition");
            // An incomplete window could decide a replayed repeat differently from the
            // owner that first wrote it: retry until the window is whole.
            let mut attempt = 0;
            let dedup = loop {
                match self.prime_dedup(consumer, p) {
                    Ok(window) => break window,
                    Err(e) if !self.shutdown.is_cancelled() => {
                        metrics::counter!("aggregator_dedup_priming_errors_total").increment(1);
                        tracing::warn!(partition = p, error = %e, attempt, "dedup priming failed, retrying");
                        let (initial, max) = (
                            Duration::from_millis(self.cfg.retry_initial_ms),
                            Duration::from_millis(self.cfg.retry_max_ms),
                        );
                        std::thread::sleep(backoff(attempt, initial, max));
                        attempt += 1;
                    }
                    Err(_) => return,
                }
            };
            self.slots.insert(
                p,
                Slot {
                    epoch: claim.epoch,
                    buffer: PartitionBuffer::new(claim.attempted),
                    cache: RowCache::default(),
                    pending_commit: None,
                    halted: false,
                    dedup,
                },
            );
        }
        self.assigned.set(self.slots.len() as f64);
    }

    /// Re-reads the log before the committed offset, back to a dedup window (plus a
    /// margin) before now, so repeats of ids seen by earlier owners are recognised.
    /// The window then holds every id the rule can still match for any offset from
    /// the committed one on: replays decide exactly as the first pass did.
    /// Fails rather than return a partial window.
    fn prime_dedup(&self, consumer: &BaseConsumer<Ctx>, p: i32) -> Result<DedupWindow, String> {
        let mut window = DedupWindow::new(self.dedup_window_ms);
        if self.dedup_window_ms == 0 {
            return Ok(window);
        }
        let started = Instant::now();
        let timeout = Duration::from_secs(10);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.topic, p);
        let committed = consumer
            .committed_offsets(tpl, timeout)
            .map_err(|e| format!("reading the committed offset: {e}"))?
            .find_partition(&self.topic, p)
            .and_then(|e| e.offset().to_raw())
            .unwrap_or(-1);
        if committed <= 0 {
            return Ok(window); // no committed offset: consumption starts at the log's start
        }
        let since = chrono::Utc::now().timestamp_millis() - self.dedup_window_ms - 60_000;
        let primer: BaseConsumer = self.primer.create().map_err(|e| format!("creating the primer: {e}"))?;
        let mut by_time = TopicPartitionList::new();
        by_time.add_partition_offset(&self.topic, p, Offset::Offset(since)).expect("valid offset");
        // No offset at or after `since` (raw -1): nothing in the window precedes `committed`.
        let start = primer
            .offsets_for_times(by_time, timeout)
            .map_err(|e| format!("finding the window's first offset: {e}"))?
            .find_partition(&self.topic, p)
            .and_then(|e| e.offset().to_raw())
            .filter(|&o| o >= 0 && o < committed);
        let Some(start) = start else { return Ok(window) };
        let mut assign = TopicPartitionList::new();
        assign.add_partition_offset(&self.topic, p, Offset::Offset(start)).expect("valid offset");
        primer.assign(&assign).map_err(|e| format!("assigning the primer: {e}"))?;
        let mut read = 0u64;
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut complete = false;
        while !complete && Instant::now() < deadline {
            match primer.poll(Duration::from_millis(500)) {
                Some(Ok(m)) if m.offset() < committed => {
                    read += 1;
                    if let Ok(d) = decode(m.payload())
                        && let Some(id) = d.client_id
                    {
                        window.observe(id, m.timestamp().to_millis().unwrap_or(0));
                    }
                    complete = m.offset() + 1 >= committed;
                }
                // Past the committed offset, or at the end of the log: nothing before it is left.
                Some(Ok(_)) | Some(Err(KafkaError::PartitionEOF(_))) => complete = true,
                Some(Err(e)) => return Err(format!("reading the window: {e}")),
                None => {}
            }
        }
        if !complete {
            return Err(format!("the window before offset {committed} was not read within 120 s"));
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

    fn release(&mut self, parts: &[i32]) {
        for p in parts {
            self.slots.remove(p);
            // The new owner reports this partition's lag from now on.
            let (topic, partition) = (self.topic.clone(), p.to_string());
            metrics::gauge!("aggregator_consumer_lag_messages", "topic" => topic, "partition" => partition).set(0.0);
        }
        self.assigned.set(self.slots.len() as f64);
    }

    pub fn buffered_keys(&self) -> usize {
        self.slots.values().map(|s| s.buffer.buffered_keys()).sum()
    }

    /// Folds one message; dead-letters it if it cannot be decoded.
    pub fn handle(&mut self, consumer: &BaseConsumer<Ctx>, msg: &BorrowedMessage<'_>) {
        let (p, offset) = (msg.partition(), msg.offset());
        let Some(slot) = self.slots.get_mut(&p).filter(|s| !s.halted) else { return };
        let item = match self.family {
            Family::Counts => match decode(msg.payload()) {
                Ok(d) => match d.client_id {
                    Some(id)
                        if self.dedup_window_ms > 0
                            && slot.dedup.observe(id, msg.timestamp().to_millis().unwrap_or(0)) =>
                    {
                        self.duplicates.increment(1);
                        Item::Nothing
                    }
                    _ => Item::Count(d.event, d.viewer),
                },
                Err(reason) => {
                    self.dead_letter(msg, &reason);
                    Item::Nothing
                }
            },
            // A repeated rating needs no dedup: the latest per user replaces.
            Family::Ratings => match decode_rating(msg.payload()) {
                Ok(r) => Item::Rate(r),
                Err(reason) => {
                    self.dead_letter(msg, &reason);
                    Item::Nothing
                }
            },
        };
        loop {
            let Some(slot) = self.slots.get_mut(&p).filter(|s| !s.halted) else { return };
            let folded = match &item {
                Item::Count(e, viewer) => {
                    let folded = slot.buffer.fold(offset, Some(e));
                    if let (Some((user, event_id)), Folded::Folded | Folded::FlushNow) = (viewer, folded) {
                        slot.buffer.note_viewer(*user, e.video_id, e.occurred_at_ms, *event_id);
                    }
                    folded
                }
                Item::Rate(r) => slot.buffer.fold_rating(offset, Some(r)),
                Item::Nothing => slot.buffer.fold(offset, None),
            };
            match folded {
                Folded::Folded => {
                    self.messages.increment(1);
                    return;
                }
                Folded::FlushNow => {
                    self.messages.increment(1);
                    metrics::counter!("aggregator_fenced_flushes_total").increment(1);
                    tracing::info!(partition = p, offset, "replayed up to the in-doubt flush; flushing exactly there");
                    self.flush(consumer, &[p]);
                    return;
                }
                Folded::FlushFirst => self.flush(consumer, &[p]),
            }
        }
    }

    pub fn flush_all(&mut self, consumer: &BaseConsumer<Ctx>) {
        let parts: Vec<i32> = self.slots.keys().copied().collect();
        self.flush(consumer, &parts);
    }

    /// Writes the buffered rollups of `parts` and commits their offsets.
    pub fn flush(&mut self, consumer: &BaseConsumer<Ctx>, parts: &[i32]) {
        let start = Instant::now();
        let mut jobs = Vec::new();
        for &p in parts {
            let Some(slot) = self.slots.get_mut(&p).filter(|s| !s.halted) else { continue };
            if let Some(offset) = slot.pending_commit {
                if commit(consumer, &self.topic, &[(p, offset)]).is_err() {
                    continue;
                }
                slot.pending_commit = None;
            }
            if let Some(plan) = slot.buffer.take() {
                jobs.push(Job { partition: p, epoch: slot.epoch, plan, cache: std::mem::take(&mut slot.cache) });
            }
        }
        if jobs.is_empty() {
            return;
        }
        let events: u64 = jobs.iter().map(|j| j.plan.events).sum();
        let results = self.rt.block_on(write_jobs(&self.store, &self.topic, &self.cfg, &self.shutdown, jobs));
        let mut to_commit = Vec::new();
        for (p, cache, outcome) in results {
            let Some(slot) = self.slots.get_mut(&p) else { continue };
            slot.cache = cache;
            match outcome {
                Outcome::Written { commit, rows, skipped } => {
                    metrics::counter!("aggregator_rows_written_total").increment(rows as u64);
                    metrics::counter!("aggregator_rows_skipped_total").increment(skipped as u64);
                    slot.cache.sweep(self.cfg.cache_idle_flushes);
                    slot.pending_commit = Some(commit);
                    to_commit.push((p, commit));
                }
                Outcome::Fenced => {
                    tracing::warn!(partition = p, "a newer owner claimed this partition; stopping it here");
                    slot.halted = true;
                }
                Outcome::Overlap(e) => {
                    tracing::error!(partition = p, error = %e, "refusing to guess a count; partition halted");
                    metrics::counter!("aggregator_halted_partitions_total").increment(1);
                    slot.halted = true;
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition(&self.topic, p);
                    let _ = consumer.pause(&tpl);
                }
                Outcome::Abandoned => tracing::warn!(partition = p, "flush abandoned at shutdown; will be replayed"),
            }
        }
        if !to_commit.is_empty() && commit(consumer, &self.topic, &to_commit).is_ok() {
            for (p, _) in &to_commit {
                if let Some(slot) = self.slots.get_mut(p) {
                    slot.pending_commit = None;
                }
            }
        }
        metrics::counter!("aggregator_events_flushed_total").increment(events);
        metrics::histogram!("aggregator_flush_duration_seconds").record(start.elapsed().as_secs_f64());
    }

    /// Sends an undecodable message to the dead-letter topic, retrying until it is
    /// durable there: its offset will be committed, so it must not vanish.
    fn dead_letter(&self, msg: &BorrowedMessage<'_>, reason: &str) {
        tracing::warn!(partition = msg.partition(), offset = msg.offset(), reason, "dead-lettering message");
        let partition = msg.partition().to_string();
        let offset = msg.offset().to_string();
        let mut attempt = 0;
        loop {
            let mut headers = OwnedHeaders::new()
                .insert(Header { key: "dlq.reason", value: Some(reason) })
                .insert(Header { key: "dlq.source.topic", value: Some(self.topic.as_str()) })
                .insert(Header { key: "dlq.source.partition", value: Some(partition.as_str()) })
                .insert(Header { key: "dlq.source.offset", value: Some(offset.as_str()) });
            if let Some(h) = msg.headers() {
                for header in h.iter() {
                    headers = headers.insert(header);
                }
            }
            let mut record = FutureRecord::<[u8], [u8]>::to(&self.dlq_topic).headers(headers);
            if let Some(k) = msg.key() {
                record = record.key(k);
            }
            if let Some(v) = msg.payload() {
                record = record.payload(v);
            }
            match self.rt.block_on(self.dlq.send(record, Duration::from_secs(5))) {
                Ok(_) => {
                    metrics::counter!("aggregator_dead_letters_total").increment(1);
                    return;
                }
                Err((e, _)) => {
                    tracing::warn!(error = %e, attempt, "dead-letter produce failed, retrying");
                    std::thread::sleep(backoff(attempt, Duration::from_millis(100), Duration::from_secs(5)));
                    attempt += 1;
                }
            }
        }
    }
}

fn commit(consumer: &BaseConsumer<Ctx>, topic: &str, offsets: &[(i32, i64)]) -> Result<(), ()> {
    let mut tpl = TopicPartitionList::new();
    for &(p, offset) in offsets {
        tpl.add_partition_offset(topic, p, Offset::Offset(offset)).expect("valid offset");
    }
    consumer.commit(&tpl, CommitMode::Sync).map_err(|e| {
        metrics::counter!("aggregator_commit_errors_total").increment(1);
        tracing::warn!(error = %e, ?offsets, "offset commit failed; will retry before the next flush");
    })
}

/// Runs `f` until it succeeds. Gives up (`None`) only once shutdown has been
/// requested and its grace period has passed.
async fn retry<T, F, Fut>(cfg: &FlushConfig, shutdown: &CancellationToken, op: &'static str, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let initial = Duration::from_millis(cfg.retry_initial_ms);
    let max = Duration::from_millis(cfg.retry_max_ms);
    let mut give_up_at: Option<tokio::time::Instant> = None;
    let mut attempt = 0;
    let latency = metrics::histogram!("aggregator_cassandra_request_duration_seconds", "op" => op);
    loop {
        let started = tokio::time::Instant::now();
        let result = f().await;
        latency.record(started.elapsed().as_secs_f64());
        match result {
            Ok(v) => return Some(v),
            Err(e) => {
                metrics::counter!("aggregator_cassandra_errors_total", "op" => op).increment(1);
                tracing::warn!(error = %e, op, attempt, "cassandra request failed, retrying");
            }
        }
        if shutdown.is_cancelled() {
            let at = *give_up_at
                .get_or_insert_with(|| tokio::time::Instant::now() + Duration::from_millis(cfg.shutdown_grace_ms));
            if tokio::time::Instant::now() >= at {
                return None;
            }
        }
        tokio::time::sleep(backoff(attempt, initial, max)).await;
        attempt += 1;
    }
}

/// Rows per write request: a single-partition unlogged batch, kept well under
/// Cassandra's `batch_size_warn_threshold` (5 KiB; a row is about 80 bytes).
const MAX_BATCH_ROWS: usize = 50;

/// Row writes so far, for `flush.fail_after_writes`.
static WRITES: AtomicU64 = AtomicU64::new(0);

/// Fault injection (`flush.fail_after_writes`): counts `rows` written and aborts the
/// process, in the middle of a flush, once the configured number is reached.
fn maybe_abort(cfg: &FlushConfig, rows: usize) {
    let n = rows as u64;
    if cfg.fail_after_writes > 0 && WRITES.fetch_add(n, Ordering::SeqCst) + n >= cfg.fail_after_writes {
        tracing::error!("fault injection: aborting in the middle of a flush");
        std::process::abort();
    }
}

async fn write_jobs(
    store: &RollupStore,
    topic: &str,
    cfg: &FlushConfig,
    shutdown: &CancellationToken,
    jobs: Vec<Job>,
) -> Vec<(i32, RowCache, Outcome)> {
    let permits = Semaphore::new(cfg.concurrency.max(1));
    let permits = &permits;
    join_all(jobs.into_iter().map(|mut job| async move {
        let outcome = write_job(store, topic, cfg, shutdown, permits, &mut job).await;
        (job.partition, job.cache, outcome)
    }))
    .await
}

async fn write_job(
    store: &RollupStore,
    topic: &str,
    cfg: &FlushConfig,
    shutdown: &CancellationToken,
    permits: &Semaphore,
    job: &mut Job,
) -> Outcome {
    let (p, epoch, through) = (job.partition, job.epoch, job.plan.through_offset);
    // 1. Say what is about to be written; fails if we are no longer the owner.
    let marked = retry(cfg, shutdown, "mark_attempted", || store.mark_attempted(topic, p, epoch, through)).await;
    match marked {
        None => return Outcome::Abandoned,
        Some(false) => return Outcome::Fenced,
        Some(true) => {}
    }
    // 2. Learn the rows we do not know yet: one range read per Cassandra partition.
    let reads = job.cache.missing(job.plan.deltas.iter().map(|(k, _)| k));
    metrics::counter!("aggregator_row_reads_total").increment(reads.len() as u64);
    type Answer = Option<(RangeRead, Vec<(i64, StoredRow)>)>;
    let read: Vec<Answer> = futures::stream::iter(reads)
        .map(|r| async move {
            let _permit = permits.acquire().await.expect("semaphore open");
            retry(cfg, shutdown, "read", || store.read_range(&r)).await.map(|rows| (r, rows))
        })
        .buffer_unordered(cfg.concurrency.max(1))
        .collect()
        .await;
    for r in read {
        let Some((range, rows)) = r else { return Outcome::Abandoned };
        job.cache.learn(&range, rows);
    }
    // 3. The last_offset rule.
    let resolved = match job.plan.resolve(|k| job.cache.lookup(k).expect("every row is known after the reads")) {
        Ok(r) => r,
        Err(e) => return Outcome::Overlap(e.to_string()),
    };
    // 4. Write every row, retrying each batch until it lands. Writes are sorted by
    //    key, so the rows of one Cassandra partition are adjacent.
    let batches = resolved.writes.chunk_by(|a, b| a.key.part() == b.key.part()).flat_map(|c| c.chunks(MAX_BATCH_ROWS));
    //    Fault injection counts a batch once it landed.
    let landed = send_batches(cfg, shutdown, permits, "write", batches, |rows| async move {
        store.write_batch(rows, p, epoch).await?;
        maybe_abort(cfg, rows.len());
        Ok(())
    })
    .await;
    if !landed {
        // Some rows may hold this flush and others not: forget them all.
        job.cache = RowCache::default();
        return Outcome::Abandoned;
    }
    // 5. Remember what the rows hold now.
    for w in &resolved.writes {
        job.cache.put(w.key, StoredRow { value: w.value, last_offset: w.last_offset });
    }
    // 6. Hour and day rows again, keyed by bucket, for trending. Skipped rows too: a
    //    crash may have come between a row and its copy.
    let copies: Vec<(RowKey, i64, i64)> = job
        .plan
        .deltas
        .iter()
        .filter(|(k, _)| matches!(k.granularity, Granularity::Hour | Granularity::Day))
        .filter_map(|(k, _)| job.cache.lookup(k).flatten().map(|row| (*k, row.value, row.last_offset)))
        .collect();
    if !write_copies(store, cfg, shutdown, permits, copies, epoch).await {
        return Outcome::Abandoned;
    }
    // 7. Ratings.
    let (rated, rated_skipped) = match write_ratings(store, cfg, shutdown, permits, &job.plan, epoch).await {
        Ok(Some(n)) => n,
        Ok(None) => return Outcome::Abandoned,
        Err(e) => return Outcome::Overlap(e),
    };
    // 8. Activity feed entries (signed-in views, ratings): keyed by their events, so
    //    a replay rewrites the same rows.
    if !write_activities(store, cfg, shutdown, permits, &job.plan, epoch).await {
        return Outcome::Abandoned;
    }
    Outcome::Written {
        commit: job.plan.commit_offset(),
        rows: resolved.writes.len() + rated,
        skipped: resolved.skipped + rated_skipped,
    }
}

/// Writes the by-bucket copies, a batch per `rollups_by_bucket` partition. `false`:
/// abandoned at shutdown.
async fn write_copies(
    store: &RollupStore,
    cfg: &FlushConfig,
    shutdown: &CancellationToken,
    permits: &Semaphore,
    mut copies: Vec<(RowKey, i64, i64)>,
    epoch: i64,
) -> bool {
    let part = |k: &RowKey| (k.kind, k.granularity, k.bucket_ms);
    copies.sort_unstable_by_key(|(k, _, _)| (part(k), k.video_id));
    let batches = copies.chunk_by(|a, b| part(&a.0) == part(&b.0)).flat_map(|c| c.chunks(MAX_BATCH_ROWS));
    send_batches(cfg, shutdown, permits, "write_copy", batches, |rows| store.write_copies(rows, epoch)).await
}

/// Writes the flush's activity entries, a batch per user. `false`: abandoned.
async fn write_activities(
    store: &RollupStore,
    cfg: &FlushConfig,
    shutdown: &CancellationToken,
    permits: &Semaphore,
    plan: &FlushPlan,
    epoch: i64,
) -> bool {
    let through = plan.through_offset;
    let batches = plan.activities.chunk_by(|a, b| a.user_id == b.user_id).flat_map(|c| c.chunks(MAX_BATCH_ROWS));
    let write = |rows| store.write_activities(rows, through, epoch);
    send_batches(cfg, shutdown, permits, "write_activity", batches, write).await
}

/// Sends `batches` concurrently (within the flush's permits), each retried until it
/// lands. `false`: some batch was abandoned at shutdown.
async fn send_batches<'a, T: 'a, F, Fut>(
    cfg: &FlushConfig,
    shutdown: &CancellationToken,
    permits: &Semaphore,
    op: &'static str,
    batches: impl Iterator<Item = &'a [T]>,
    write: F,
) -> bool
where
    F: Fn(&'a [T]) -> Fut + Copy,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let results: Vec<bool> = futures::stream::iter(batches)
        .map(|rows| async move {
            let _permit = permits.acquire().await.expect("semaphore open");
            metrics::counter!("aggregator_write_requests_total").increment(1);
            retry(cfg, shutdown, op, || write(rows)).await.is_some()
        })
        .buffer_unordered(cfg.concurrency.max(1))
        .collect()
        .await;
    results.into_iter().all(|ok| ok)
}

/// Applies the flush's ratings, video by video: read the totals and the users'
/// rows, resolve (see `counting::ratings`), write the user rows, then the totals.
/// `Ok(None)`: abandoned at shutdown; `Err`: an overlap. Counts (user rows written,
/// videos already holding the flush).
async fn write_ratings(
    store: &RollupStore,
    cfg: &FlushConfig,
    shutdown: &CancellationToken,
    permits: &Semaphore,
    plan: &FlushPlan,
    epoch: i64,
) -> Result<Option<(usize, usize)>, String> {
    let (first, through) = (plan.first_offset, plan.through_offset);
    let videos = plan.ratings.chunk_by(|a, b| a.video_id == b.video_id);
    let results: Vec<Result<Option<usize>, String>> = futures::stream::iter(videos)
        .map(|changes: &[RatingChange]| async move {
            let _permit = permits.acquire().await.expect("semaphore open");
            let video = changes[0].video_id;
            let users: Vec<_> = changes.iter().map(|c| c.user_id).collect();
            let Some((totals, stored)) =
                retry(cfg, shutdown, "read_ratings", || store.read_ratings(video, &users)).await
            else {
                return Ok(None);
            };
            let Some(w) = resolve_video(first, through, changes, totals, &stored).map_err(|e| e.to_string())? else {
                return Ok(Some(0));
            };
            for chunk in w.users.chunks(MAX_BATCH_ROWS) {
                let write = || store.write_user_ratings(video, chunk, through, epoch);
                if retry(cfg, shutdown, "write_ratings", write).await.is_none() {
                    return Ok(None);
                }
                metrics::counter!("aggregator_write_requests_total").increment(1);
                maybe_abort(cfg, chunk.len());
            }
            if retry(cfg, shutdown, "write_totals", || store.write_totals(video, w.totals, epoch)).await.is_none() {
                return Ok(None);
            }
            metrics::counter!("aggregator_rated_videos_total").increment(1);
            Ok(Some(w.users.len()))
        })
        .buffer_unordered(cfg.concurrency.max(1))
        .collect()
        .await;
    let (mut written, mut skipped) = (0, 0);
    for r in results {
        match r? {
            None => return Ok(None),
            Some(0) => skipped += 1,
            Some(n) => written += n,
        }
    }
    Ok(Some((written, skipped)))
}

/// The consumer loop: poll, fold, flush on the interval, until shutdown; then a
/// last flush and commit before the consumer leaves the group.
pub fn run(consumer: BaseConsumer<Ctx>, shutdown: CancellationToken, interval: Duration, max_keys: usize) {
    /// Messages folded between two looks at the clock, the buffer size and the gauges.
    const CHECK_EVERY: u32 = 256;
    let owner = consumer.context().owner.clone();
    let heartbeat = owner.lock().expect("owner lock").heartbeat.clone();
    let buffered = owner.lock().expect("owner lock").buffered.clone();
    let errors = metrics::counter!("aggregator_consumer_errors_total");
    let mut next_flush = Instant::now() + interval;
    let mut since_check = 0u32;
    while !shutdown.is_cancelled() {
        let msg = consumer.poll(Duration::from_millis(100));
        let mut o = owner.lock().expect("owner lock");
        match msg {
            Some(Ok(m)) => {
                o.handle(&consumer, &m);
                since_check += 1;
                if since_check < CHECK_EVERY {
                    continue;
                }
            }
            Some(Err(e)) => {
                errors.increment(1);
                tracing::warn!(error = %e, "consumer error");
            }
            None => {}
        }
        since_check = 0;
        let keys = o.buffered_keys();
        buffered.set(keys as f64);
        if Instant::now() >= next_flush || keys >= max_keys {
            o.flush_all(&consumer);
            next_flush = Instant::now() + interval;
        }
        heartbeat.store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
    }
    tracing::info!("stopping: final flush and commit");
    owner.lock().expect("owner lock").flush_all(&consumer);
    consumer.unsubscribe();
    drop(consumer);
    tracing::info!("consumer closed");
}
