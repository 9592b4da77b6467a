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
