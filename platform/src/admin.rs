//! The operator's side of halted partitions (protocol step P11 in
//! `counting::protocol`, the aggregator's `halt` module), used by `vcount-admin
//! partitions` and by the system tests.
//!
//! `list` and `show` say what each partition's owner state is (epoch, attempted),
//! whether it is halted and why, and where the group and the log stand; `resume`
//! clears the halt. The aggregator that owns the partition notices within a flush
//! interval and takes it over again from the start (claim, fence, start offset,
//! dedup window), so a cause that is still there halts it again. Resuming from
//! another offset is only ever forward of the committed one: the operator accepts
//! that the messages in between are not counted (for a lag beyond retention, the
//! log's start is where counting can go on).

use std::time::Duration;

use anyhow::Context;
use futures::TryStreamExt;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, TopicPartitionList};
use scylla::DeserializeRow;
use scylla::client::session::Session;
use scylla::value::CqlTimestamp;

#[derive(DeserializeRow)]
struct StateRow {
    topic: String,
    kafka_partition: i32,
    epoch: Option<i64>,
    attempted: Option<i64>,
}

#[derive(DeserializeRow)]
struct HaltRow {
    topic: String,
    kafka_partition: i32,
    reason: Option<String>,
    detail: Option<String>,
    halted_at: Option<CqlTimestamp>,
    epoch: Option<i64>,
    at_offset: Option<i64>,
    resume_from: Option<i64>,
    resumed_at: Option<CqlTimestamp>,
}

/// A partition's halt record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaltView {
    /// `Some` while halted.
    pub reason: Option<String>,
    pub detail: String,
    pub halted_at_ms: Option<i64>,
    pub by_epoch: Option<i64>,
    pub at_offset: Option<i64>,
    pub resume_from: Option<i64>,
    pub resumed_at_ms: Option<i64>,
}

/// Where the group and the log stand for one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogView {
    pub committed: Option<i64>,
    pub low: i64,
    pub high: i64,
}

/// One partition the aggregator has owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionView {
    pub topic: String,
    pub partition: i32,
    pub epoch: Option<i64>,
    pub attempted: Option<i64>,
    pub halt: Option<HaltView>,
}

impl PartitionView {
    pub fn halted(&self) -> Option<&str> {
        self.halt.as_ref().and_then(|h| h.reason.as_deref())
    }
}

/// Where to resume a halted partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum From {
    /// The committed offset (the default).
    Committed,
    /// The log's first stored offset.
    Earliest,
    /// The log's end: nothing stored now is counted.
    Latest,
    Offset(i64),
}

impl std::str::FromStr for From {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "committed" => Ok(From::Committed),
            "earliest" => Ok(From::Earliest),
            "latest" => Ok(From::Latest),
            n => n.parse().map(From::Offset).map_err(|_| format!("{n:?}: committed, earliest, latest or an offset")),
        }
    }
}

/// The aggregator's partitions in one keyspace and consumer group.
pub struct PartitionAdmin {
    pub session: Session,
    pub keyspace: String,
    /// The events topic's group; a ratings topic's group is this plus `-ratings`.
    pub group: String,
    pub brokers: String,
}

fn ms(t: Option<CqlTimestamp>) -> Option<i64> {
    t.map(|t| t.0)
}

impl PartitionAdmin {
    pub fn new(session: Session, keyspace: &str, group: &str, brokers: &str) -> anyhow::Result<Self> {
        crate::cassandra::check_keyspace(keyspace)?;
        Ok(Self { session, keyspace: keyspace.into(), group: group.into(), brokers: brokers.into() })
    }

    /// Every partition with owner state or a halt record, sorted by topic and partition.
    pub async fn list(&self) -> anyhow::Result<Vec<PartitionView>> {
        let ks = &self.keyspace;
        let cql = format!("SELECT topic, kafka_partition, epoch, attempted FROM {ks}.partition_state");
        let states: Vec<StateRow> = self.session.query_iter(cql, &[]).await?.rows_stream()?.try_collect().await?;
        let cql = format!(
            "SELECT topic, kafka_partition, reason, detail, halted_at, epoch, at_offset, resume_from, resumed_at \
             FROM {ks}.partition_halts"
        );
        let halts: Vec<HaltRow> = self.session.query_iter(cql, &[]).await?.rows_stream()?.try_collect().await?;
        let mut out: Vec<PartitionView> = states
            .into_iter()
            .map(|s| PartitionView {
                topic: s.topic,
                partition: s.kafka_partition,
                epoch: s.epoch,
                attempted: s.attempted,
                halt: None,
            })
            .collect();
        for h in halts {
            let view = HaltView {
                reason: h.reason,
                detail: h.detail.unwrap_or_default(),
                halted_at_ms: ms(h.halted_at),
                by_epoch: h.epoch,
                at_offset: h.at_offset,
                resume_from: h.resume_from,
                resumed_at_ms: ms(h.resumed_at),
            };
            match out.iter_mut().find(|p| p.topic == h.topic && p.partition == h.kafka_partition) {
                Some(p) => p.halt = Some(view),
                None => out.push(PartitionView {
                    topic: h.topic,
                    partition: h.kafka_partition,
                    epoch: None,
                    attempted: None,
                    halt: Some(view),
                }),
            }
        }
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }

    /// One partition, if the aggregator has owned it.
    pub async fn show(&self, topic: &str, partition: i32) -> anyhow::Result<Option<PartitionView>> {
        Ok(self.list().await?.into_iter().find(|p| p.topic == topic && p.partition == partition))
    }

    /// The group the aggregator consumes `topic` in.
    pub fn group_of(&self, topic: &str) -> String {
        if topic.ends_with("video-ratings") { format!("{}-ratings", self.group) } else { self.group.clone() }
    }

    /// The group's committed offset and the log's watermarks.
    pub async fn log_view(&self, topic: &str, partition: i32) -> anyhow::Result<LogView> {
        let (brokers, group, topic) = (self.brokers.clone(), self.group_of(topic), topic.to_owned());
        tokio::task::spawn_blocking(move || -> anyhow::Result<LogView> {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("group.id", &group)
                .set("enable.auto.commit", "false")
                .create()
                .context("creating a kafka client")?;
            let timeout = Duration::from_secs(10);
            let (low, high) = consumer.fetch_watermarks(&topic, partition, timeout).context("reading watermarks")?;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&topic, partition);
            let committed = consumer
                .committed_offsets(tpl, timeout)
                .context("reading the committed offset")?
                .find_partition(&topic, partition)
                .and_then(|e| e.offset().to_raw())
                .filter(|&o| o >= 0);
            Ok(LogView { committed, low, high })
        })
        .await?
    }

    /// Clears the halt of `partition` of `topic`, to resume `from` there. Returns
    /// the offset it will resume from, when it is not the committed one.
    pub async fn resume(&self, topic: &str, partition: i32, from: From) -> anyhow::Result<Option<i64>> {
        let view = self.show(topic, partition).await?;
        anyhow::ensure!(
            view.as_ref().is_some_and(|v| v.halted().is_some()),
            "partition {partition} of {topic} is not halted"
        );
        let resume_from = match from {
            From::Committed => None,
            from => {
                let log = self.log_view(topic, partition).await?;
                let offset = match from {
                    From::Earliest => log.low,
                    From::Latest => log.high,
                    From::Offset(n) => n,
                    From::Committed => unreachable!(),
                };
                if let Some(c) = log.committed {
                    anyhow::ensure!(
                        offset >= c,
                        "resuming from {offset}, before the committed offset {c}, would count those messages twice"
                    );
                }
                anyhow::ensure!(
                    (log.low..=log.high).contains(&offset),
                    "offset {offset} is outside the log {}..{}",
                    log.low,
                    log.high
                );
                Some(offset)
            }
        };
        let cql = format!(
            "UPDATE {}.partition_halts SET reason = null, resume_from = ?, resumed_at = ? \
             WHERE topic = ? AND kafka_partition = ?",
            self.keyspace
        );
        let now = CqlTimestamp(chrono::Utc::now().timestamp_millis());
        self.session.query_unpaged(cql, (resume_from, now, topic, partition)).await?;
        Ok(resume_from)
    }
}

/// Why `copy_rollups_to_counts` refused to copy.
#[derive(Debug, thiserror::Error)]
pub enum CopyRefused {
    #[error("{keyspace}.counts already holds rows: copy only into an empty table, before any rounds aggregator ran")]
    CountsNotEmpty { keyspace: String },
    #[error(
        "{topic}/{partition}: a flush may be in doubt (attempted {attempted}, committed {committed:?}); stop every \
         aggregator with SIGTERM (a clean stop flushes and commits) and copy again"
    )]
    InDoubt { topic: String, partition: i32, attempted: i64, committed: Option<i64> },
}

/// The partitions whose last flush may be in doubt: `attempted` recorded and the
/// group's committed offset not past it. After a clean stop (SIGTERM) there are
/// none: the last flush committed `attempted + 1`.
pub fn in_doubt(states: &[(PartitionView, Option<i64>)]) -> Vec<CopyRefused> {
    states
        .iter()
        .filter_map(|(p, committed)| {
            let attempted = p.attempted?;
            (committed.is_none_or(|c| c <= attempted)).then(|| CopyRefused::InDoubt {
                topic: p.topic.clone(),
                partition: p.partition,
                attempted,
                committed: *committed,
            })
        })
        .collect()
}

#[derive(DeserializeRow)]
struct RollupRow {
    video_id: uuid::Uuid,
    event_type: String,
    granularity: String,
    bucket: CqlTimestamp,
    value: Option<i64>,
    last_offset: Option<i64>,
    kafka_partition: Option<i32>,
    ttl: Option<i32>,
    writetime: Option<i64>,
}

/// Copies every row of the per-flush aggregator's `rollups` table into the
/// rounds' `counts` table, unchanged: value, `last_offset`, `kafka_partition`,
/// its remaining TTL and its write time (the aggregator's `epoch << 40 | offset`
/// timestamps, so a later write still wins). The rounds need no other
/// translation: after a clean stop every row's `last_offset` is below its
/// partition's committed offset, so the first owner has no replay region to take
/// a census of and adds its new deltas to the copied values. Run it with every
/// aggregator stopped (`in_doubt` is the check) and before the first rounds
/// aggregator starts: it refuses a non-empty `counts`. Returns the rows copied.
pub async fn copy_rollups_to_counts(session: &Session, keyspace: &str) -> anyhow::Result<u64> {
    crate::cassandra::check_keyspace(keyspace)?;
    let any = format!("SELECT video_id FROM {keyspace}.counts LIMIT 1");
    if session.query_unpaged(any, &[]).await?.into_rows_result()?.rows_num() > 0 {
        return Err(CopyRefused::CountsNotEmpty { keyspace: keyspace.into() }.into());
    }
    let scan = format!(
        "SELECT video_id, event_type, granularity, bucket, value, last_offset, kafka_partition, \
         TTL(value) AS ttl, WRITETIME(value) AS writetime FROM {keyspace}.rollups"
    );
    let insert = session
        .prepare(format!(
            "INSERT INTO {keyspace}.counts (video_id, event_type, granularity, bucket, value, last_offset, \
             kafka_partition) VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
        ))
        .await?;
    let mut rows = session.query_iter(scan, &[]).await?.rows_stream::<RollupRow>()?;
    let mut copied = 0u64;
    while let Some(r) = rows.try_next().await? {
        // A row without a value (never written by the aggregator) has nothing to carry.
        let (Some(value), Some(writetime)) = (r.value, r.writetime) else { continue };
        let values = (
            r.video_id,
            r.event_type,
            r.granularity,
            r.bucket,
            value,
            r.last_offset,
            r.kafka_partition,
            r.ttl.unwrap_or(0),
            writetime,
        );
        session.execute_unpaged(&insert, values).await?;
        copied += 1;
    }
    Ok(copied)
}

#[cfg(test)]
mod copy_tests {
    use super::*;

    fn view(partition: i32, attempted: Option<i64>) -> PartitionView {
        PartitionView { topic: "t".into(), partition, epoch: Some(1), attempted, halt: None }
    }

    #[test]
    fn a_flush_is_in_doubt_until_the_commit_is_past_its_attempted_offset() {
        let states = [
            (view(0, Some(9)), Some(10)), // clean stop: committed attempted + 1
            (view(1, None), None),        // never flushed
            (view(2, Some(9)), Some(9)),  // marked, written maybe, not committed
            (view(3, Some(9)), None),     // marked, nothing committed
            (view(4, Some(9)), Some(4)),  // an older commit
        ];
        let doubts: Vec<i32> = in_doubt(&states)
            .iter()
            .map(|d| match d {
                CopyRefused::InDoubt { partition, .. } => *partition,
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(doubts, [2, 3, 4]);
    }
}
