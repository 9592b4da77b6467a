//! `vcount-admin rebuild`: recount everything the log still holds into a fresh
//! keyspace, with the aggregator's own code, and compare the result with the live
//! counts.
//!
//! The rebuild is an aggregator (`aggregator::Application`, in this process) with
//! the live one's settings except three: the keyspace (`--into`, made with the
//! whole schema), the consumer group (`--group`: a new group starts every
//! partition at the log's first offset, P3a) and no HTTP port worth keeping. It
//! runs until its group has committed the ends the events and ratings topics had
//! when it started, then stops as an aggregator does (flush, commit, leave). So it
//! is as exact as the aggregator (same protocol, fences, dedup window, dead
//! letters), and it can be interrupted and run again: the new group's offsets and
//! the keyspace's partition state make it resume, not start over.
//!
//! The comparison reads every (video, event type) all-time row of both keyspaces.
//! It is exact when both have counted the same prefix of the log: the log starts
//! at offset 0 on every partition (retention deleted nothing yet), the live group
//! has committed the same offsets as the rebuild, and no event arrived since. The
//! report says whether that held; otherwise differences can be events the two
//! have not both counted (deleted from the log, or arriving during the rebuild).
//!
//! Readers move onto the rebuilt keyspace by configuration, in three steps the
//! tool prints (README, "Rebuilding the counts"): aggregators of the rebuild's group
//! count on into it, with `feed.keyspace` at the catalog's keyspace; the query
//! services read it as `counts.keyspace`; the old aggregators stop. Nothing is
//! switched behind the operator's back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregator::AggregatorConfig;
use anyhow::Context;
use counting::EventKind;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A rebuild's settings.
#[derive(Clone, Debug)]
pub struct Rebuild {
    /// The live aggregator's configuration (its keyspace is the one compared with).
    pub live: AggregatorConfig,
    /// The fresh keyspace to count into.
    pub into: String,
    /// The rebuild's consumer group (a ratings group of the same name plus
    /// `-ratings`, as the aggregator names it).
    pub group: String,
    /// Give up if the ends are not reached in this long.
    pub timeout: Duration,
}

/// One series whose all-time counts differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub video: Uuid,
    pub kind: EventKind,
    pub live: i64,
    pub rebuilt: i64,
}

/// What a rebuild found.
#[derive(Clone, Debug)]
pub struct Report {
    /// Offsets the rebuild group committed, per (topic, partition).
    pub rebuilt_through: BTreeMap<(String, i32), i64>,
    /// True when the comparison is exact (see the module doc).
    pub exact: bool,
    /// Why it is not, when it is not.
    pub caveats: Vec<String>,
    /// Series in either keyspace.
    pub series: usize,
    pub differences: Vec<Difference>,
}

fn committed(consumer: &BaseConsumer, topic: &str, partitions: i32) -> anyhow::Result<Vec<i64>> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
    Ok((0..partitions)
        .map(|p| got.find_partition(topic, p).and_then(|e| e.offset().to_raw()).filter(|o| *o >= 0).unwrap_or(0))
        .collect())
}

fn group_client(cfg: &AggregatorConfig, group: &str) -> anyhow::Result<BaseConsumer> {
    Ok(cfg.kafka.client_config().set("group.id", group).set("enable.auto.commit", "false").create()?)
}

/// Runs the rebuild and the comparison.
pub async fn rebuild(r: &Rebuild) -> anyhow::Result<Report> {
    anyhow::ensure!(r.into != r.live.cassandra.keyspace, "--into must be a keyspace other than the live one");
    anyhow::ensure!(r.group != r.live.consumer.group_id, "--group must be a consumer group other than the live one");
    let mut cfg = r.live.clone();
    cfg.cassandra.keyspace = r.into.clone();
    // Its feed entries stay in it too: rewriting the live feed from the whole log
    // would bring back entries the feed's TTL already let go.
    cfg.feed.keyspace = r.into.clone();
    cfg.cassandra.create_schema = true;
    cfg.consumer.group_id = r.group.clone();
    cfg.consumer.auto_offset_reset = "earliest".into();
    cfg.kafka.create_topics = false;
    cfg.http.listen = "127.0.0.1:0".into();

    // Where the log ends now, and whether it still starts at 0.
    let timeout = Duration::from_secs(10);
    let topics =
        [(cfg.kafka.events_topic(), r.group.clone()), (cfg.kafka.ratings_topic(), format!("{}-ratings", r.group))];
    let probe = group_client(&cfg, &r.group)?;
    let mut ends = Vec::new();
    let mut caveats = Vec::new();
    for (topic, _) in &topics {
        let n = platform::kafka::partition_count(&cfg.kafka, topic, timeout)? as i32;
        let mut e = Vec::new();
        for p in 0..n {
            let (low, high) = probe.fetch_watermarks(topic, p, timeout)?;
            if low > 0 {
                caveats
                    .push(format!("{topic} partition {p} starts at offset {low}: older events are gone from the log"));
            }
            e.push(high);
        }
        ends.push(e);
    }

    let app = aggregator::Application::build(cfg.clone()).await.context("starting the rebuild's aggregator")?;
    let shutdown = CancellationToken::new();
    let mut run = tokio::spawn(app.run(shutdown.clone()));
    let clients: Vec<BaseConsumer> = topics.iter().map(|(_, g)| group_client(&cfg, g)).collect::<Result<_, _>>()?;
    let deadline = Instant::now() + r.timeout;
    loop {
        let mut behind = Vec::new();
        for (((topic, _), client), want) in topics.iter().zip(&clients).zip(&ends) {
            let got = committed(client, topic, want.len() as i32)?;
            for (p, (g, w)) in got.iter().zip(want).enumerate() {
                if g < w {
                    behind.push(format!("{topic}/{p} at {g} of {w}"));
                }
            }
        }
        if behind.is_empty() {
            break;
        }
        if run.is_finished() {
            return match (&mut run).await {
                Ok(Err(e)) => Err(e.context("the rebuild's aggregator stopped")),
                _ => anyhow::bail!("the rebuild's aggregator stopped before reaching the log's ends"),
            };
        }
        if Instant::now() > deadline {
            shutdown.cancel();
            let _ = run.await;
            anyhow::bail!("not caught up within {:?} (run again: it resumes): {}", r.timeout, behind.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    shutdown.cancel();
    run.await.context("joining the rebuild")??;

    // Both groups' offsets and the ends now: the comparison is exact when all agree.
    let live_groups = [r.live.consumer.group_id.clone(), format!("{}-ratings", r.live.consumer.group_id)];
    let mut rebuilt_through = BTreeMap::new();
    for (((topic, _), client), live_group) in topics.iter().zip(&clients).zip(&live_groups) {
        let n = platform::kafka::partition_count(&cfg.kafka, topic, timeout)? as i32;
        let rebuilt = committed(client, topic, n)?;
        let live = committed(&group_client(&cfg, live_group)?, topic, n)?;
        for p in 0..n {
            let (_, high) = probe.fetch_watermarks(topic, p, timeout)?;
            let (rb, lv) = (rebuilt[p as usize], live[p as usize]);
            rebuilt_through.insert((topic.clone(), p), rb);
            if rb != lv || rb != high {
                caveats.push(format!(
                    "{topic} partition {p}: the rebuild committed {rb}, the live group {lv}, the log ends at {high}"
                ));
            }
        }
    }

    let session = Arc::new(platform::cassandra::connect(&cfg.cassandra, Duration::from_secs(30)).await?);
    let live = query_service::store::rollups::Rollups::new(session.clone(), &r.live.cassandra.keyspace).await?;
    let rebuilt = query_service::store::rollups::Rollups::new(session, &r.into).await?;
    let mut series: Vec<(Uuid, EventKind)> = live.all_series().await?;
    series.extend(rebuilt.all_series().await?);
    series.sort_by_key(|(v, k)| (*v, k.as_str()));
    series.dedup();
    let mut differences = Vec::new();
    for (video, kind) in &series {
        let (l, b) = (live.total(*video, *kind).await?, rebuilt.total(*video, *kind).await?);
        if l != b {
            differences.push(Difference { video: *video, kind: *kind, live: l, rebuilt: b });
        }
    }
    Ok(Report { rebuilt_through, exact: caveats.is_empty(), caveats, series: series.len(), differences })
}
