//! Who holds a series' unwritten events, and asking them (issue 15).
//!
//! The aggregator writes a series only when its round is due, so the rows alone
//! can be up to `flush.max_age_ms` late. The owner of the video's Kafka
//! partition holds the rest in memory and answers `GET /owner/held` on its
//! operational port with a [`Held`]; `Rollups::count` adds that answer to the
//! rows by the rule in `counting::fresh`.
//!
//! A video's partition is found the way the producers pick it (murmur2 of the
//! video id's 16 bytes modulo the events topic's partition count, as recorded
//! once in `topic_state`), and its owner's address in `partition_owners`, written
//! at every claim. Both are hints: a stale owner costs freshness, never
//! exactness, because its answer names its epoch and a row a newer epoch wrote
//! voids it. So the owner row is cached for `counts.owner_cache_ms` and dropped
//! at once when the owner fails, denies owning the partition, or is found
//! replaced; the partition count never changes for a topic's life (the
//! aggregators refuse to count a grown topic) and is cached until restart.
//!
//! Any failure (no owner recorded, timeout, refused connection, 404, 503, an
//! oversized or unreadable answer) means no answer: the read answers from the
//! rows alone, as it did before owners answered. An owner that failed is not
//! asked again for `counts.owner_backoff_ms` while its row is unchanged, so a
//! dead aggregator costs each count one owner-row read, not a timeout; a new
//! claim (another epoch or address) is asked at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use counting::EventKind;
use counting::fresh::Held;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use super::prepare;
use crate::metrics::OWNER_ASK_DURATION;

/// The largest owner answer read. A series' held minutes are bounded by the
/// owner's memory, in practice a few hundred (about 80 bytes each); more is a
/// broken or hostile peer.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// The events topic's partition count, as far as this process knows.
enum Partitions {
    Known(i32),
    /// Not recorded (no aggregator has counted the topic yet) as of then.
    Absent(Instant),
    Unread,
}

/// A partition's owner, from its `partition_owners` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub partition: i32,
    pub epoch: i64,
    /// `host:port` of the owner's operational HTTP port.
    pub address: String,
}

/// Why a read answered from the rows alone, or that it did not: the `outcome`
/// label of `query_owner_reads_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The owner's answer was added (or it held nothing of the series).
    Fresh,
    /// No partition count or no owner recorded.
    Unowned,
    /// The recorded owner answered 404: it no longer owns the partition.
    NotOwner,
    /// The owner answered 503: too busy to answer within its own deadline.
    Busy,
    Timeout,
    /// Refused connection, another status, an oversized or unreadable answer,
    /// unstamped rows, or the owner rows could not be read.
    Error,
    /// The owner is short of its fenced round: the store may hold part of it.
    NotReady,
    /// Rounds landed the held events while the rows were read, twice.
    Landed,
    /// A newer owner wrote rows the answer touches.
    Replaced,
    /// The recorded owner failed moments ago and its row has not changed: not asked.
    Backoff,
}

impl Outcome {
    pub const ALL: [Self; 10] = [
        Self::Fresh,
        Self::Unowned,
        Self::NotOwner,
        Self::Busy,
        Self::Timeout,
        Self::Error,
        Self::NotReady,
        Self::Landed,
        Self::Replaced,
        Self::Backoff,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fresh => "fresh",
            Self::Unowned => "unowned",
            Self::NotOwner => "not_owner",
            Self::Busy => "busy",
            Self::Timeout => "timeout",
            Self::Error => "error",
            Self::NotReady => "not_ready",
            Self::Landed => "landed",
            Self::Replaced => "replaced",
            Self::Backoff => "backoff",
        }
    }
}

#[derive(scylla::DeserializeRow)]
struct PartitionsRow {
    partitions: Option<i32>,
}

#[derive(scylla::DeserializeRow)]
struct OwnerRow {
    epoch: Option<i64>,
    address: Option<String>,
}

/// Finds and asks the owners of the events topic's partitions.
pub struct Owners {
    session: Arc<Session>,
    topic: String,
    partitions_stmt: PreparedStatement,
    owner_stmt: PreparedStatement,
    http: reqwest::Client,
    cache_for: Duration,
    backoff: Duration,
    partitions: Mutex<Partitions>,
    owners: Mutex<HashMap<i32, (Instant, Option<Owner>)>>,
    /// The last owner of a partition that failed, and when.
    failed: Mutex<HashMap<i32, (Instant, Owner)>>,
}

impl Owners {
    /// `keyspace` is the counts keyspace (the aggregator's tables), `topic` the
    /// events topic (`kafka.events_topic()`).
    pub async fn new(
        session: Arc<Session>,
        keyspace: &str,
        topic: String,
        timeout: Duration,
        cache_for: Duration,
        backoff: Duration,
    ) -> anyhow::Result<Self> {
        let partitions_stmt =
            prepare(&session, format!("SELECT partitions FROM {keyspace}.topic_state WHERE topic = ?"), true).await?;
        let owner_stmt = prepare(
            &session,
            format!("SELECT epoch, address FROM {keyspace}.partition_owners WHERE topic = ? AND kafka_partition = ?"),
            true,
        )
        .await?;
        let http = reqwest::Client::builder().timeout(timeout).connect_timeout(timeout).build()?;
        Ok(Self {
            session,
            topic,
            partitions_stmt,
            owner_stmt,
            http,
            cache_for,
            backoff,
            partitions: Mutex::new(Partitions::Unread),
            owners: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
        })
    }

    /// What the owner of `video`'s partition holds of the series `(video, kind)`,
    /// or why there is no answer.
    pub async fn ask(&self, video: Uuid, kind: EventKind) -> Result<(Held, Owner), Outcome> {
        let Some(partitions) = self.partition_count().await? else {
            return Err(Outcome::Unowned);
        };
        let partition = platform::kafka::murmur2_partition(video.as_bytes(), partitions);
        let Some(owner) = self.owner(partition).await? else {
            return Err(Outcome::Unowned);
        };
        if let Some((at, failed)) = lock(&self.failed).get(&partition)
            && *failed == owner
            && at.elapsed() < self.backoff
        {
            return Err(Outcome::Backoff);
        }
        let asked = Instant::now();
        let answer = self.held(&owner, video, kind).await;
        OWNER_ASK_DURATION.histogram().record(asked.elapsed().as_secs_f64());
        match answer {
            Ok(held) => Ok((held, owner)),
            // Busy is the right owner: ask it next time.
            Err(Outcome::Busy) => Err(Outcome::Busy),
            Err(outcome) => {
                self.forget(partition);
                lock(&self.failed).insert(partition, (Instant::now(), owner));
                Err(outcome)
            }
        }
    }

    /// Drops the cached owner of `partition`: the next read asks Cassandra.
    pub fn forget(&self, partition: i32) {
        lock(&self.owners).remove(&partition);
    }

    async fn partition_count(&self) -> Result<Option<i32>, Outcome> {
        match *lock(&self.partitions) {
            Partitions::Known(n) => return Ok(Some(n)),
            Partitions::Absent(at) if at.elapsed() < self.cache_for => return Ok(None),
            _ => {}
        }
        let row = self
            .session
            .execute_unpaged(&self.partitions_stmt, (&self.topic,))
            .await
            .map_err(|e| read_failed("topic_state", &e))?
            .into_rows_result()
            .map_err(|e| read_failed("topic_state", &e))?
            .maybe_first_row::<PartitionsRow>()
            .map_err(|e| read_failed("topic_state", &e))?;
        let n = row.and_then(|r| r.partitions).filter(|&n| n > 0);
        let mut partitions = lock(&self.partitions);
        if n.is_none() && !matches!(*partitions, Partitions::Absent(_)) {
            // Once, not per read: a query service whose `kafka.topic_prefix` is not
            // the aggregators' would otherwise serve counts a round old in silence.
            tracing::warn!(
                topic = %self.topic,
                "no partition count recorded for this topic in topic_state (no aggregator has counted it yet, \
                 or kafka.topic_prefix is not the aggregators'): counts come from the rows alone, up to \
                 the aggregators' flush.max_age_ms old"
            );
        }
        *partitions = n.map_or_else(|| Partitions::Absent(Instant::now()), Partitions::Known);
        Ok(n)
    }

    async fn owner(&self, partition: i32) -> Result<Option<Owner>, Outcome> {
        if let Some((at, owner)) = lock(&self.owners).get(&partition)
            && at.elapsed() < self.cache_for
        {
            return Ok(owner.clone());
        }
        let row = self
            .session
            .execute_unpaged(&self.owner_stmt, (&self.topic, partition))
            .await
            .map_err(|e| read_failed("partition_owners", &e))?
            .into_rows_result()
            .map_err(|e| read_failed("partition_owners", &e))?
            .maybe_first_row::<OwnerRow>()
            .map_err(|e| read_failed("partition_owners", &e))?;
        let owner = row.and_then(|r| Some(Owner { partition, epoch: r.epoch?, address: r.address? }));
        lock(&self.owners).insert(partition, (Instant::now(), owner.clone()));
        Ok(owner)
    }

    async fn held(&self, owner: &Owner, video: Uuid, kind: EventKind) -> Result<Held, Outcome> {
        let url = format!("http://{}/owner/held", owner.address);
        let partition = owner.partition.to_string();
        let video_s = video.to_string();
        let query = [("partition", partition.as_str()), ("video", video_s.as_str()), ("type", kind.as_str())];
        let failed = |e: reqwest::Error| {
            if e.is_timeout() {
                Outcome::Timeout
            } else {
                tracing::debug!(address = %owner.address, error = %e, "owner did not answer");
                Outcome::Error
            }
        };
        let mut res = self.http.get(&url).query(&query).send().await.map_err(failed)?;
        match res.status() {
            reqwest::StatusCode::OK => {}
            reqwest::StatusCode::NOT_FOUND => return Err(Outcome::NotOwner),
            reqwest::StatusCode::SERVICE_UNAVAILABLE => return Err(Outcome::Busy),
            status => {
                tracing::warn!(address = %owner.address, %status, "owner answered an unexpected status");
                return Err(Outcome::Error);
            }
        }
        if res.content_length().is_some_and(|n| n > MAX_ANSWER_BYTES as u64) {
            tracing::warn!(address = %owner.address, "owner answer too large");
            return Err(Outcome::Error);
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                tracing::warn!(address = %owner.address, "owner answer too large");
                return Err(Outcome::Error);
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice::<Held>(&body).map_err(|e| {
            tracing::warn!(address = %owner.address, error = %e, "owner answer unreadable");
            Outcome::Error
        })
    }
}

/// A poisoned lock only means another read panicked mid-update of a cache of hints.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read_failed(table: &'static str, e: &dyn std::error::Error) -> Outcome {
    tracing::warn!(table, error = %e, "could not read the owner of a partition");
    Outcome::Error
}
