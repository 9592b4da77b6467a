//! Cassandra adapter for the aggregator: rollup rows and partition ownership.
//! Every statement is prepared once at start-up.

use std::time::Duration;

use anyhow::{Context, bail};
use std::collections::HashMap;

use counting::ratings::{StoredRating, StoredTotals, UserRatingWrite};
use counting::{Activity, EventKind, Granularity, RangeRead, RatedEvent, RowKey, RowWrite, StoredRow, write_timestamp};
use futures::TryStreamExt;
use platform::cassandra::{applied, prepare};
use scylla::client::session::Session;
use scylla::statement::Consistency;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use uuid::Uuid;

use crate::config::Retention;

pub struct RollupStore {
    session: Session,
    read_from: PreparedStatement,
    read_between: PreparedStatement,
    write_row: PreparedStatement,
    read_state: PreparedStatement,
    create_state: PreparedStatement,
    bump_epoch: PreparedStatement,
    mark_attempted: PreparedStatement,
    write_copy: PreparedStatement,
    read_totals: PreparedStatement,
    read_user_ratings: PreparedStatement,
    write_user_rating: PreparedStatement,
    write_rating_by_user: PreparedStatement,
    write_totals: PreparedStatement,
    write_activity: PreparedStatement,
    retention: Retention,
}

/// The partition state as a new owner finds it after claiming the partition.
#[derive(Clone, Copy, Debug)]
pub struct Claim {
    pub epoch: i64,
    /// Last offset of the newest flush any owner started.
    pub attempted: Option<i64>,
}

impl RollupStore {
    pub async fn new(session: Session, keyspace: &str, retention: Retention) -> anyhow::Result<Self> {
        let ks = keyspace;
        let s = &session;
        let select = format!(
            "SELECT bucket, value, last_offset FROM {ks}.rollups \
             WHERE video_id = ? AND event_type = ? AND granularity = ? AND bucket >= ?"
        );
        let read_from = prepare(s, select.clone(), true).await?;
        let read_between = prepare(s, format!("{select} AND bucket < ?"), true).await?;
        // Absolute values at a fenced timestamp: replaying this write is harmless.
        let write_row = prepare(
            s,
            format!(
                "INSERT INTO {ks}.rollups \
                 (video_id, event_type, granularity, bucket, value, last_offset, kafka_partition) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ),
            true,
        )
        .await?;
        let mut read_state = prepare(
            s,
            format!("SELECT epoch, attempted FROM {ks}.partition_state WHERE topic = ? AND kafka_partition = ?"),
            true,
        )
        .await?;
        // Linearizable with the lightweight transactions below.
        read_state.set_consistency(Consistency::Serial);
        let create_state = prepare(
            s,
            format!("INSERT INTO {ks}.partition_state (topic, kafka_partition, epoch) VALUES (?, ?, 1) IF NOT EXISTS"),
            false,
        )
        .await?;
        let bump_epoch = prepare(
            s,
            format!("UPDATE {ks}.partition_state SET epoch = ? WHERE topic = ? AND kafka_partition = ? IF epoch = ?"),
            false,
        )
        .await?;
        let mark_attempted = prepare(
            s,
            format!(
                "UPDATE {ks}.partition_state SET attempted = ? WHERE topic = ? AND kafka_partition = ? IF epoch = ?"
            ),
            false,
        )
        .await?;
        // The same absolute values, keyed by bucket, for trending (migration 005).
        let write_copy = prepare(
            s,
            format!(
                "INSERT INTO {ks}.rollups_by_bucket (event_type, granularity, bucket, video_id, value) \
                 VALUES (?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ),
            true,
        )
        .await?;
        // Ratings (migration 004): totals are static columns of the video's partition.
        let read_totals = prepare(
            s,
            format!("SELECT rating_sum, rating_count, totals_offset FROM {ks}.video_ratings WHERE videoid = ? LIMIT 1"),
            true,
        )
        .await?;
        let read_user_ratings = prepare(
            s,
            format!(
                "SELECT userid, rating, prev_rating, last_offset, created_at FROM {ks}.video_ratings \
                 WHERE videoid = ? AND userid IN ?"
            ),
            true,
        )
        .await?;
        let write_user_rating = prepare(
            s,
            format!(
                "INSERT INTO {ks}.video_ratings \
                 (videoid, userid, rating, prev_rating, last_offset, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
            ),
            true,
        )
        .await?;
        let write_rating_by_user = prepare(
            s,
            format!(
                "INSERT INTO {ks}.ratings_by_user (userid, videoid, rating, updated_at) \
                 VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
            ),
            true,
        )
        .await?;
        let write_totals = prepare(
            s,
            format!(
                "UPDATE {ks}.video_ratings USING TIMESTAMP ? \
                 SET rating_sum = ?, rating_count = ?, totals_offset = ? WHERE videoid = ?"
            ),
            true,
        )
        .await?;
        // Users' activity feeds (migration 007): rows keyed by the event's own UUIDv7.
        let write_activity = prepare(
            s,
            format!(
                "INSERT INTO {ks}.user_activity (userid, activity_ts, activity_type, activity_id) \
                 VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
            ),
            true,
        )
        .await?;
        Ok(Self {
            session,
            read_from,
            write_copy,
            write_activity,
            read_totals,
            read_user_ratings,
            write_user_rating,
            write_rating_by_user,
            write_totals,
            read_between,
            write_row,
            read_state,
            create_state,
            bump_epoch,
            mark_attempted,
            retention,
        })
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Every row of `r.part` in the bucket range `r.from..r.until`, as (bucket, row).
    pub async fn read_range(&self, r: &RangeRead) -> anyhow::Result<Vec<(i64, StoredRow)>> {
        let (p, from) = (&r.part, CqlTimestamp(r.from));
        let key = (p.video_id, p.kind.as_str(), p.granularity.as_str());
        let pager = match r.until {
            None => self.session.execute_iter(self.read_from.clone(), (key.0, key.1, key.2, from)).await?,
            Some(until) => {
                let values = (key.0, key.1, key.2, from, CqlTimestamp(until));
                self.session.execute_iter(self.read_between.clone(), values).await?
            }
        };
        let rows = pager.rows_stream::<(CqlTimestamp, Option<i64>, Option<i64>)>()?;
        Ok(rows
            .map_ok(|(bucket, value, last_offset)| {
                (bucket.0, StoredRow { value: value.unwrap_or(0), last_offset: last_offset.unwrap_or(-1) })
            })
            .try_collect()
            .await?)
    }

    /// Writes rows of one Cassandra partition in a single unlogged batch (atomic
    /// and isolated within a partition, and one request instead of many).
    pub async fn write_batch(&self, rows: &[RowWrite], partition: i32, epoch: i64) -> anyhow::Result<()> {
        debug_assert!(rows.windows(2).all(|w| w[0].key.part() == w[1].key.part()));
        let mut batch = Batch::new(BatchType::Unlogged);
        batch.set_is_idempotent(true);
        let mut values = Vec::with_capacity(rows.len());
        for w in rows {
            batch.append_statement(self.write_row.clone());
            values.push((
                w.key.video_id,
                w.key.kind.as_str(),
                w.key.granularity.as_str(),
                CqlTimestamp(w.key.bucket_ms),
                w.value,
                w.last_offset,
                partition,
                self.retention.ttl_secs(w.key.granularity),
                write_timestamp(epoch, w.last_offset),
            ));
        }
        self.session.batch(&batch, values).await?;
        Ok(())
    }

    /// Writes copies of hour and day rows keyed by bucket (all of one
    /// `rollups_by_bucket` partition): `(key, value, last_offset)`.
    pub async fn write_copies(&self, rows: &[(RowKey, i64, i64)], epoch: i64) -> anyhow::Result<()> {
        let mut batch = Batch::new(BatchType::Unlogged);
        batch.set_is_idempotent(true);
        let mut values = Vec::with_capacity(rows.len());
        for (key, value, last_offset) in rows {
            batch.append_statement(self.write_copy.clone());
            values.push((
                key.kind.as_str(),
                key.granularity.as_str(),
                CqlTimestamp(key.bucket_ms),
                key.video_id,
                *value,
                self.retention.ttl_secs(key.granularity),
                write_timestamp(epoch, *last_offset),
            ));
        }
        self.session.batch(&batch, values).await?;
        Ok(())
    }

    /// A video's rating totals and the rows of `users` (those that exist).
    pub async fn read_ratings(
        &self,
        video: Uuid,
        users: &[Uuid],
    ) -> anyhow::Result<(StoredTotals, HashMap<Uuid, StoredRating>)> {
        let res = self.session.execute_unpaged(&self.read_totals, (video,)).await?.into_rows_result()?;
        let totals = match res.maybe_first_row::<(Option<i64>, Option<i64>, Option<i64>)>()? {
            Some((sum, count, offset)) => {
                StoredTotals { sum: sum.unwrap_or(0), count: count.unwrap_or(0), offset: offset.unwrap_or(-1) }
            }
            None => StoredTotals { sum: 0, count: 0, offset: -1 },
        };
        type Row = (Uuid, Option<i32>, Option<i32>, Option<i64>, Option<CqlTimestamp>);
        let mut rows = HashMap::new();
        // `IN` lists stay short: a popular video may get many raters in one flush.
        for chunk in users.chunks(100) {
            let res = self.session.execute_unpaged(&self.read_user_ratings, (video, chunk)).await?;
            for row in res.into_rows_result()?.rows::<Row>()? {
                let (user, rating, prev_rating, last_offset, created_at) = row?;
                // A row without a rating is only the static columns' placeholder.
                let Some(rating) = rating else { continue };
                let stored = StoredRating {
                    rating,
                    prev_rating,
                    last_offset: last_offset.unwrap_or(-1),
                    created_at_ms: created_at.map_or(0, |t| t.0),
                };
                rows.insert(user, stored);
            }
        }
        Ok((totals, rows))
    }

    /// Writes user rating rows (and their by-user copies) of one video in one batch.
    pub async fn write_user_ratings(
        &self,
        video: Uuid,
        users: &[UserRatingWrite],
        last_offset: i64,
        epoch: i64,
    ) -> anyhow::Result<()> {
        let ts = write_timestamp(epoch, last_offset);
        let mut batch = Batch::new(BatchType::Unlogged);
        batch.set_is_idempotent(true);
        let mut values = Vec::with_capacity(users.len());
        for u in users {
            batch.append_statement(self.write_user_rating.clone());
            values.push((
                video,
                u.user_id,
                u.rating,
                u.prev_rating,
                last_offset,
                CqlTimestamp(u.created_at_ms),
                CqlTimestamp(u.updated_at_ms),
                ts,
            ));
        }
        self.session.batch(&batch, values).await?;
        // The by-user copies live in other partitions: a separate request each, all
        // before the totals are written (the totals mark the flush as landed).
        futures::future::try_join_all(users.iter().map(|u| {
            let values = (u.user_id, video, u.rating, CqlTimestamp(u.updated_at_ms), ts);
            self.session.execute_unpaged(&self.write_rating_by_user, values)
        }))
        .await?;
        Ok(())
    }

    /// Writes activity entries of one user (one Cassandra partition) in one batch.
    /// Their keys come from the events, so writing them again changes nothing.
    pub async fn write_activities(&self, rows: &[Activity], last_offset: i64, epoch: i64) -> anyhow::Result<()> {
        debug_assert!(rows.windows(2).all(|w| w[0].user_id == w[1].user_id));
        let ts = write_timestamp(epoch, last_offset);
        let mut batch = Batch::new(BatchType::Unlogged);
        batch.set_is_idempotent(true);
        let mut values = Vec::with_capacity(rows.len());
        for a in rows {
            batch.append_statement(self.write_activity.clone());
            values.push((a.user_id, a.activity_ts, a.kind.as_str(), a.activity_id, ts));
        }
        self.session.batch(&batch, values).await?;
        Ok(())
    }

    /// Writes a video's totals: last, once every user row of the flush landed.
    pub async fn write_totals(&self, video: Uuid, t: StoredTotals, epoch: i64) -> anyhow::Result<()> {
        let values = (write_timestamp(epoch, t.offset), t.sum, t.count, t.offset, video);
        self.session.execute_unpaged(&self.write_totals, values).await?;
        Ok(())
    }

    /// Becomes the owner of `partition`: bumps its epoch with a lightweight
    /// transaction, then reads `attempted` linearizably. Any stale owner's later
    /// `mark_attempted` fails from here on, so the value read is final.
    pub async fn claim(&self, topic: &str, partition: i32) -> anyhow::Result<Claim> {
        for _ in 0..100 {
            let current = self.read_state_row(topic, partition).await?;
            let applied = match current {
                None => applied(self.session.execute_unpaged(&self.create_state, (topic, partition)).await?)?,
                Some((epoch, _)) => applied(
                    self.session.execute_unpaged(&self.bump_epoch, (epoch + 1, topic, partition, epoch)).await?,
                )?,
            };
            if applied {
                let (epoch, attempted) = self
                    .read_state_row(topic, partition)
                    .await?
                    .context("partition state vanished after claiming it")?;
                return Ok(Claim { epoch, attempted });
            }
        }
        bail!("could not claim partition {partition} of {topic}: too much contention")
    }

    async fn read_state_row(&self, topic: &str, partition: i32) -> anyhow::Result<Option<(i64, Option<i64>)>> {
        let res = self.session.execute_unpaged(&self.read_state, (topic, partition)).await?.into_rows_result()?;
        Ok(res
            .maybe_first_row::<(Option<i64>, Option<i64>)>()?
            .map(|(epoch, attempted)| (epoch.unwrap_or(0), attempted)))
    }

    /// Records that a flush through `offset` is starting. `false`: another owner has
    /// claimed the partition since, and this one must stop writing for it.
    pub async fn mark_attempted(&self, topic: &str, partition: i32, epoch: i64, offset: i64) -> anyhow::Result<bool> {
        applied(self.session.execute_unpaged(&self.mark_attempted, (offset, topic, partition, epoch)).await?)
    }
}

impl Retention {
    /// TTL for rows of `g`, in seconds; 0 keeps them forever.
    pub fn ttl_secs(&self, g: Granularity) -> i32 {
        let secs = match g {
            Granularity::Minute => self.minute_secs,
            Granularity::Hour => self.hour_secs,
            Granularity::Day => self.day_secs,
            Granularity::Total => 0,
        };
        secs.min(i32::MAX as u64) as i32
    }
}

/// Exponential backoff with a cap, for retrying writes that must not be dropped.
pub fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    initial.saturating_mul(1u32 << attempt.min(16)).min(max)
}

/// A decoded message: what it counts, its id if the client chose it, and the
/// verified viewer of a signed-in view (user id, event id).
#[derive(Debug)]
pub struct Decoded {
    pub event: counting::CountedEvent,
    pub client_id: Option<[u8; 16]>,
    pub viewer: Option<(Uuid, Uuid)>,
}

/// Decodes a message of the ratings topic, or says why it cannot be used.
pub fn decode_rating(payload: Option<&[u8]>) -> Result<RatedEvent, String> {
    use prost::Message;
    let payload = payload.ok_or("empty payload")?;
    let r = schemas::events::Rating::decode(payload).map_err(|err| format!("not a protobuf Rating: {err}"))?;
    let video_id = Uuid::from_slice(&r.video_id).map_err(|_| "video_id is not 16 bytes".to_owned())?;
    let user_id = Uuid::from_slice(&r.user_id).map_err(|_| "user_id is not 16 bytes".to_owned())?;
    if !(1..=5).contains(&r.rating) {
        return Err(format!("rating {} is not 1 to 5", r.rating));
    }
    if r.occurred_at_ms <= 0 {
        return Err("occurred_at_ms is missing".to_owned());
    }
    let event_id = Uuid::from_slice(&r.event_id).map_err(|_| "event_id is not 16 bytes".to_owned())?;
    Ok(RatedEvent { video_id, user_id, rating: r.rating, occurred_at_ms: r.occurred_at_ms, event_id })
}

/// Decodes a Kafka message into a counted event, or says why it cannot be counted.
pub fn decode(payload: Option<&[u8]>) -> Result<Decoded, String> {
    use prost::Message;
    use schemas::events::{Event, EventType};
    let payload = payload.ok_or("empty payload")?;
    let e = Event::decode(payload).map_err(|err| format!("not a protobuf Event: {err}"))?;
    let video_id = Uuid::from_slice(&e.video_id).map_err(|_| "video_id is not 16 bytes".to_owned())?;
    let kind = match EventType::try_from(e.event_type) {
        Ok(EventType::View) => EventKind::View,
        Ok(EventType::Play) => EventKind::Play,
        Ok(EventType::Like) => EventKind::Like,
        Ok(EventType::Share) => EventKind::Share,
        Ok(EventType::Complete) => EventKind::Complete,
        _ => return Err(format!("unknown event type {}", e.event_type)),
    };
    if e.value < 1 {
        return Err(format!("value {} is not positive", e.value));
    }
    if e.occurred_at_ms <= 0 {
        return Err("occurred_at_ms is missing".to_owned());
    }
    let client_id = match (e.client_event_id, <[u8; 16]>::try_from(e.event_id.as_slice())) {
        (false, _) => None,
        (true, Ok(id)) => Some(id),
        (true, Err(_)) => return Err("client event_id is not 16 bytes".to_owned()),
    };
    // Only a token-verified user is an activity; a client's word is not.
    let viewer = match (e.user_verified && kind == EventKind::View, Uuid::from_slice(&e.user_id)) {
        (true, Ok(user)) => Some((user, Uuid::from_slice(&e.event_id).unwrap_or_default())),
        _ => None,
    };
    let event = counting::CountedEvent { video_id, kind, occurred_at_ms: e.occurred_at_ms, value: e.value };
    Ok(Decoded { event, client_id, viewer })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use schemas::events::{Event, EventType};

    #[test]
    fn decode_accepts_events_and_explains_poison() {
        let good = Event {
            event_id: vec![0; 16],
            video_id: vec![7; 16],
            event_type: EventType::Like as i32,
            occurred_at_ms: 5,
            received_at_ms: 6,
            value: 3,
            user_id: vec![],
            client_event_id: false,
            user_verified: false,
        };
        let d = decode(Some(&good.encode_to_vec())).unwrap();
        let e = d.event;
        assert_eq!((e.kind, e.value, e.occurred_at_ms, d.client_id, d.viewer), (EventKind::Like, 3, 5, None, None));
        let viewed = Event { event_type: EventType::View as i32, user_id: vec![9; 16], ..good.clone() };
        assert_eq!(decode(Some(&viewed.encode_to_vec())).unwrap().viewer, None, "the client's word is no viewer");
        let verified = Event { user_verified: true, ..viewed.clone() };
        let viewer = decode(Some(&verified.encode_to_vec())).unwrap().viewer;
        assert_eq!(viewer, Some((Uuid::from_bytes([9; 16]), Uuid::from_bytes([0; 16]))));
        let mut chosen = good.clone();
        chosen.client_event_id = true;
        assert_eq!(decode(Some(&chosen.encode_to_vec())).unwrap().client_id, Some([0; 16]));
        assert!(decode(None).unwrap_err().contains("empty"));
        assert!(decode(Some(b"\xff\xff\xff")).unwrap_err().contains("protobuf"));
        let mut bad = good.clone();
        bad.video_id = vec![1; 3];
        assert!(decode(Some(&bad.encode_to_vec())).unwrap_err().contains("video_id"));
        bad = good.clone();
        bad.event_type = 99;
        assert!(decode(Some(&bad.encode_to_vec())).unwrap_err().contains("event type"));
    }

    #[test]
    fn decode_rating_checks_every_field() {
        use schemas::events::Rating;
        let good =
            Rating { event_id: vec![0; 16], video_id: vec![7; 16], user_id: vec![8; 16], rating: 4, occurred_at_ms: 5 };
        let r = decode_rating(Some(&good.encode_to_vec())).unwrap();
        assert_eq!((r.video_id, r.user_id, r.rating), (Uuid::from_bytes([7; 16]), Uuid::from_bytes([8; 16]), 4));
        for (bad, why) in [
            (Rating { rating: 6, ..good.clone() }, "1 to 5"),
            (Rating { rating: 0, ..good.clone() }, "1 to 5"),
            (Rating { user_id: vec![], ..good.clone() }, "user_id"),
            (Rating { video_id: vec![1], ..good.clone() }, "video_id"),
            (Rating { occurred_at_ms: 0, ..good.clone() }, "occurred_at_ms"),
        ] {
            assert!(decode_rating(Some(&bad.encode_to_vec())).unwrap_err().contains(why), "{why}");
        }
        assert!(decode_rating(Some(b"\xff\xff")).unwrap_err().contains("protobuf"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (i, m) = (Duration::from_millis(100), Duration::from_secs(5));
        assert_eq!(backoff(0, i, m), i);
        assert_eq!(backoff(3, i, m), Duration::from_millis(800));
        assert_eq!(backoff(40, i, m), m);
    }
}
