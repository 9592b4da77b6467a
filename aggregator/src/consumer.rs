//! The consumer: the rdkafka context with its rebalance callbacks, and the poll
//! loop.
//!
//! The loop runs on one blocking thread around a `BaseConsumer`, so rebalance
//! callbacks arrive on that same thread, in the middle of `poll`, where they can
//! flush and commit exactly the revoked partitions before giving them up (P10; the
//! Vector/Quickwit rule: commit only what is durably written). Cassandra calls are
//! async: a partition's round of due series runs as a task on the runtime while
//! this thread goes on polling and folding (at most one per partition; the loop
//! settles and commits it when it is done), and the thread enters the runtime
//! with `block_on` for what must finish before it goes on (a claim, the fenced
//! round, a revoke, a halt, shutdown, memory pressure, ratings).
//!
//! The context handles the whole rebalance itself rather than librdkafka's
//! default: on an assignment the owner takes each partition over (P1–P3) *before*
//! the consumer starts fetching it, and assigns each at the offset it decided
//! (P3a) with `auto.offset.reset=error`, so the consumer never picks an offset on
//! its own; halted partitions are assigned (nobody else gets them) and paused.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::held::Desk;
use crate::metrics::{CONSUMER_ERRORS, CONSUMER_LAG, UNCOMMITTED};
use crate::owner::Owner;

/// The rdkafka context of a consumer: its owner, shared by the loop and the
/// rebalance callbacks.
pub struct OwnerContext {
    pub owner: Arc<Mutex<Owner>>,
    /// Readers' questions for the owner (`/owner/held`), answered by the loop
    /// between two messages.
    pub desk: Arc<Desk>,
}

impl ClientContext for OwnerContext {
    /// Lag per partition, from librdkafka's own statistics (no extra requests to
    /// the broker). Partition labels are bounded by the topic's size. Two figures:
    /// what is not consumed yet (the end of the log less the next offset the owner
    /// will fold: how far fresh answers trail the log), and what is not committed
    /// (which the rounds keep up to `flush.max_age_ms` behind by design: what a
    /// crash would replay).
    fn stats(&self, stats: rdkafka::Statistics) {
        for (name, topic) in &stats.topics {
            for (p, part) in &topic.partitions {
                if *p < 0 || part.consumer_lag < 0 {
                    continue;
                }
                let labels = [("topic", name.clone()), ("partition", p.to_string())];
                UNCOMMITTED.gauge_with(&labels).set(part.consumer_lag as f64);
                CONSUMER_LAG.gauge_with(&labels).set(unconsumed(part) as f64);
            }
        }
    }
}

impl ConsumerContext for OwnerContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let parts = partitions(tpl);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                tracing::info!(?parts, "partitions assigned");
                let mut owner = self.owner.lock().expect("owner lock");
                // P1–P3 for each, before any of their messages is fetched.
                let starts = owner.assign(consumer, &parts);
                let topic = owner.topic().to_owned();
                for (p, start) in starts {
                    // A halted (or untaken) partition is assigned at the end and paused.
                    let offset = start.map_or(Offset::End, Offset::Offset);
                    if let Err(e) = tpl.set_partition_offset(&topic, p, offset) {
                        tracing::error!(partition = p, error = %e, "could not set the start offset");
                    }
                }
                if let Err(e) = consumer.assign(tpl) {
                    tracing::error!(error = %e, "assigning partitions failed");
                }
                owner.after_assign(consumer, &parts);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // P10: flush and commit exactly the revoked partitions, then let go.
                tracing::info!(?parts, "partitions revoked: flushing them before letting go");
                let mut owner = self.owner.lock().expect("owner lock");
                owner.flush(consumer, &parts);
                owner.release(&parts);
                if let Err(e) = consumer.unassign() {
                    tracing::error!(error = %e, "unassigning partitions failed");
                }
            }
            other => {
                let code: RDKafkaErrorCode = other.into();
                tracing::error!(error = %code, "rebalance error");
                let mut owner = self.owner.lock().expect("owner lock");
                owner.release(&parts);
                let _ = consumer.unassign();
            }
        }
    }
}

/// Messages after the next one the owner will fold: the end of the log (the last
/// stable offset, which is the high watermark unless transactions are open) less
/// `app_offset`. Before the owner has been handed any message of the partition,
/// `app_offset` is unknown and it resumes from the committed offset, so the
/// committed lag is that figure.
fn unconsumed(part: &rdkafka::statistics::Partition) -> i64 {
    let end = if part.ls_offset >= 0 { part.ls_offset } else { part.hi_offset };
    if part.app_offset >= 0 && end >= 0 { (end - part.app_offset).max(0) } else { part.consumer_lag }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

/// The consumer loop: poll, fold (P4, R3), and every `tick` the owner's timer
/// (rounds of the series that are due, R4–R7; ratings and chores on their own
/// interval), or at once when `max_keys` are buffered, until shutdown; then a last
/// flush and commit of everything before the consumer leaves the group.
pub fn run(consumer: BaseConsumer<OwnerContext>, shutdown: CancellationToken, tick: Duration, max_keys: usize) {
    /// Messages folded between two looks at the clock, the buffer size and the gauges.
    const CHECK_EVERY: u32 = 256;
    let owner = consumer.context().owner.clone();
    let desk = consumer.context().desk.clone();
    let (heartbeat, buffered) = {
        let o = owner.lock().expect("owner lock");
        (o.heartbeat.clone(), o.buffered_gauge())
    };
    let errors = CONSUMER_ERRORS.counter();
    let mut next_tick = Instant::now() + tick;
    let mut since_check = 0u32;
    while !shutdown.is_cancelled() {
        let msg = consumer.poll(Duration::from_millis(100).min(tick));
        let mut o = owner.lock().expect("owner lock");
        match msg {
            Some(Ok(m)) => {
                o.handle(&consumer, &m);
                desk.serve(|p, k| o.held(p, k));
                since_check += 1;
                if since_check < CHECK_EVERY {
                    continue;
                }
            }
            Some(Err(e)) => {
                errors.increment(1);
                tracing::warn!(error = %e, "consumer error");
                // With auto.offset.reset=error, a fetch offset that fell out of the
                // log surfaces here (without its partition): find it, halt it.
                if matches!(
                    e,
                    KafkaError::MessageConsumption(
                        RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange
                    )
                ) {
                    o.check_offsets(&consumer);
                }
            }
            None => {}
        }
        since_check = 0;
        // Rounds run beside this loop (`flush::start_rounds`): settle the ones done.
        o.complete(&consumer);
        let now_ms = chrono::Utc::now().timestamp_millis();
        heartbeat.store(now_ms, Ordering::Relaxed);
        o.now_ms = now_ms;
        let keys = o.buffered_keys();
        buffered.set(keys as f64);
        if Instant::now() >= next_tick || keys >= max_keys {
            o.tick(&consumer, keys >= max_keys);
            next_tick = Instant::now() + tick;
        }
        desk.serve(|p, k| o.held(p, k));
    }
    tracing::info!("stopping: final flush and commit");
    owner.lock().expect("owner lock").flush_all(&consumer);
    consumer.unsubscribe();
    drop(consumer);
    tracing::info!("consumer closed");
}

#[cfg(test)]
mod tests {
    use rdkafka::statistics::Partition;

    use super::unconsumed;

    fn part(app: i64, committed_lag: i64, hi: i64, ls: i64) -> Partition {
        Partition { app_offset: app, consumer_lag: committed_lag, hi_offset: hi, ls_offset: ls, ..Default::default() }
    }

    #[test]
    fn unconsumed_is_the_end_of_the_log_less_the_next_offset_folded() {
        // A round pending: 900 messages not committed, 40 not consumed.
        assert_eq!(unconsumed(&part(1_960, 900, 2_000, 2_000)), 40);
        // Open transactions: the last stable offset is the end a consumer reaches.
        assert_eq!(unconsumed(&part(1_960, 900, 2_000, 1_980)), 20);
        // No last stable offset reported: the high watermark.
        assert_eq!(unconsumed(&part(1_960, 900, 2_000, -1)), 40);
        // Nothing handed to the owner yet: it resumes from the committed offset.
        assert_eq!(unconsumed(&part(-1_001, 900, 2_000, 2_000)), 900);
        // Never negative (statistics are sampled, not atomic).
        assert_eq!(unconsumed(&part(2_010, 0, 2_000, 2_000)), 0);
    }
}
