//! `vcount-admin correct`: taking counts back (a bot's views) or adding them (views
//! lost upstream) through the same log as every event, so the correction is exact
//! and replayable like any count, and on the record.
//!
//! A correction is a set of compensating events: one per minute it changes, with
//! `correction = true` and the (negative or positive) amount as its value, produced
//! to the video's partition of the events topic. The aggregator counts them like
//! any event (`aggregator::decode` says what it accepts), so minute, hour, day and
//! all-time rows stay consistent with each other and the fence still holds.
//!
//! - `--zero`: every minute of `[from, to)` goes to 0, as the counts read when the
//!   command runs: each nonzero minute gets `-count`. Running it again reads zeros
//!   and sends nothing, so a zeroing is idempotent however often it is retried.
//!   Events of the range still on their way (in the log, not yet counted, or
//!   arriving late) are counted after it: the range is zero as of the read. The
//!   read is a reader's (the rows plus what the owner holds, `counting::fresh`),
//!   so a rerun sees the first run's compensations as soon as the owner folded
//!   them, before their round writes them.
//! - `--at T --add N [--events M]`: one minute changes by N (negative or
//!   positive), and its event count by M (default N: N events of value 1, as
//!   views are; `--add 300 --events 1` for one lost event of value 300).
//!
//! Each compensating event also carries the change to the minute's event count
//! (`correction_events`), so getStats' `count` and `avg` stay exact: `--zero`
//! takes back the minute's events too (a minute whose rows predate event counts
//! has none to take back, and its count stays unknown). Min and max cannot be
//! corrected (which values went is not known) and are left alone.
//!
//! Each event's id is a UUIDv5 of the correction's id, the video, the type and the
//! minute, marked as a client id: a correction resent (the command died between
//! sending and finishing, or was run twice with the same `--id`) is dropped by the
//! aggregator's dedup window like a client's retry.
//!
//! The record: an entry in the moderation audit log (`platform::moderation`, action
//! `correct_counts`), written before the events are sent, with the amount, the
//! range, the correction id and the reason; and on each event, headers naming the
//! correction and its reason.
//!
//! Minutes past the minute rows' retention cannot be read, so a range must lie
//! within it (and within the decoder's 30-day window for `occurred_at_ms`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use counting::series::BucketRow;
use counting::{EventKind, Granularity};
use prost::Message;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::events::Event;
use schemas::limits::{MAX_CORRECTION_VALUE, MAX_EVENT_AGE_MS};
use uuid::Uuid;

/// Namespace of the compensating events' ids (UUIDv5).
const NAMESPACE: Uuid = Uuid::from_u128(0x6b1c_8f0e_2f44_4a0d_9a53_0c5e_7d21_c0de);

const MINUTE_MS: i64 = 60_000;

/// What to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Every minute of `[from, to)` to 0.
    Zero { from_ms: i64, to_ms: i64 },
    /// One minute by `amount`, and its event count by `events`.
    Add { at_ms: i64, amount: i64, events: i64 },
}

/// One correction, as the operator asked for it.
#[derive(Clone, Debug)]
pub struct Correction {
    pub id: Uuid,
    pub video: Uuid,
    pub kind: EventKind,
    pub change: Change,
    pub reason: String,
}

/// A compensating event to send: the minute it goes to, its amount and its
/// change to the minute's event count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compensation {
    pub minute_ms: i64,
    pub value: i64,
    pub events: i64,
}

/// The minutes a change covers, checked against what can be read and counted:
/// minute-aligned, within the minute rows' retention (`minute_retention_ms`) and
/// the decoder's window before `now_ms`, not in the future, at most 8 days.
pub fn minutes(change: &Change, now_ms: i64, minute_retention_ms: i64) -> anyhow::Result<Vec<i64>> {
    let (from, to) = match *change {
        Change::Zero { from_ms, to_ms } => (from_ms, to_ms),
        Change::Add { at_ms, amount, events } => {
            anyhow::ensure!(
                amount != 0 && amount.unsigned_abs() <= MAX_CORRECTION_VALUE.unsigned_abs(),
                "--add must be nonzero and at most {MAX_CORRECTION_VALUE} either way"
            );
            anyhow::ensure!(
                events.unsigned_abs() <= MAX_CORRECTION_VALUE.unsigned_abs(),
                "--events must be at most {MAX_CORRECTION_VALUE} either way"
            );
            (at_ms, at_ms.saturating_add(MINUTE_MS))
        }
    };
    anyhow::ensure!(from % MINUTE_MS == 0 && to % MINUTE_MS == 0, "times must be whole minutes (…:00Z)");
    anyhow::ensure!(from < to, "the range is empty");
    anyhow::ensure!(to - from <= 8 * 86_400_000, "at most 8 days at a time");
    anyhow::ensure!(to <= now_ms - now_ms.rem_euclid(MINUTE_MS) + MINUTE_MS, "the range lies in the future");
    // A minute's row lives `minute_retention_ms` after the minute ends: the first
    // whole minute after `now - retention` is still there to read.
    let back = now_ms - minute_retention_ms.min(MAX_EVENT_AGE_MS);
    let oldest = back + (MINUTE_MS - back.rem_euclid(MINUTE_MS)) % MINUTE_MS;
    anyhow::ensure!(
        from >= oldest,
        "minutes before {} are past the minute rows' retention (or the 30-day event window): they cannot be read or corrected",
        rfc3339(oldest)
    );
    Ok((from..to).step_by(MINUTE_MS as usize).collect())
}

/// The compensating events for `change`, given the rows read for `minutes`
/// (sum and tally; an unknown tally has no events to take back).
pub fn compensations(change: &Change, minutes: &[i64], rows: &[BucketRow]) -> Vec<Compensation> {
    match *change {
        Change::Zero { .. } => minutes
            .iter()
            .zip(rows)
            .map(|(m, (value, tally))| Compensation {
                minute_ms: *m,
                value: -value,
                events: -tally.map_or(0, |t| t.events),
            })
            .filter(|k| k.value != 0 || k.events != 0)
            .collect(),
        Change::Add { at_ms, amount, events } => vec![Compensation { minute_ms: at_ms, value: amount, events }],
    }
}

/// The id of the compensating event of `correction` for `minute`: the same on
/// every run of the same correction.
pub fn event_id(c: &Correction, minute_ms: i64) -> Uuid {
    let name = format!("{}/{}/{}/{minute_ms}", c.id, c.video, c.kind.as_str());
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

/// The wire form of one compensating event.
pub fn encode(c: &Correction, k: Compensation, now_ms: i64) -> Vec<u8> {
    let mut event = Event {
        event_id: event_id(c, k.minute_ms).as_bytes().to_vec(),
        video_id: c.video.as_bytes().to_vec(),
        occurred_at_ms: k.minute_ms,
        received_at_ms: now_ms,
        value: k.value,
        user_id: vec![],
        client_event_id: true,
        user_verified: false,
        correction: true,
        correction_events: k.events,
        ..Default::default()
    };
    event.set_kind(c.kind);
    event.encode_to_vec()
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

/// Where a correction reads and writes.
pub struct Target {
    pub session: Arc<scylla::client::session::Session>,
    pub keyspace: String,
    pub kafka: platform::kafka::KafkaConfig,
    pub minute_retention_ms: i64,
}

/// What a run did.
#[derive(Debug)]
pub struct Outcome {
    pub sent: Vec<Compensation>,
    pub dry_run: bool,
}

/// Reads, records and sends one correction (nothing is recorded or sent in a dry run).
pub async fn run(t: &Target, c: &Correction, dry_run: bool) -> anyhow::Result<Outcome> {
    let now = chrono::Utc::now().timestamp_millis();
    let minutes = minutes(&c.change, now, t.minute_retention_ms)?;
    // The counts as readers see them: the rows plus what the owners hold and have
    // not written (freshness from the owner), so a rerun right after a correction
    // sees it even before its round lands. An owner that cannot answer leaves the
    // rows alone, as before.
    let owners = query_service::store::owners::Owners::new(
        t.session.clone(),
        &t.keyspace,
        t.kafka.events_topic(),
        Duration::from_secs(2),
        Duration::from_secs(1),
        Duration::from_secs(1),
    )
    .await?;
    let rollups =
        query_service::store::rollups::Rollups::new(t.session.clone(), &t.keyspace).await?.with_owners(owners);
    let mut counts = Vec::with_capacity(minutes.len());
    for chunk in minutes.chunks(1440) {
        counts.extend(rollups.series_rows(c.video, c.kind, Granularity::Minute, chunk).await?);
    }
    let sent = compensations(&c.change, &minutes, &counts);
    if dry_run || sent.is_empty() {
        return Ok(Outcome { sent, dry_run });
    }
    let total: i64 = sent.iter().map(|k| k.value).sum();
    let events: i64 = sent.iter().map(|k| k.events).sum();
    let (first, last) = (minutes[0], minutes[minutes.len() - 1] + MINUTE_MS);
    let moderation = platform::moderation::Moderation::new(&t.session, &t.keyspace).await?;
    let mut entry = platform::moderation::AuditEntry::now(
        platform::moderation::Actor::Admin,
        platform::moderation::Action::CorrectCounts,
        c.video,
    );
    entry.status = Some(format!(
        "{} {total:+} over [{}, {}) in {} minutes, {events:+} events; correction {}",
        c.kind.as_str(),
        rfc3339(first),
        rfc3339(last),
        sent.len(),
        c.id
    ));
    entry.notes = Some(c.reason.clone());
    moderation.append(&t.session, &entry).await.context("writing the audit entry")?;

    let producer: FutureProducer = t
        .kafka
        .client_config()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        // Same partition for a key as the gateway: the video's.
        .set("partitioner", "murmur2_random")
        .create()?;
    let topic = t.kafka.events_topic();
    let id = c.id.to_string();
    let sends = sent.iter().map(|k| {
        let payload = encode(c, *k, now);
        let headers = OwnedHeaders::new()
            .insert(Header { key: "correction.id", value: Some(id.as_str()) })
            .insert(Header { key: "correction.reason", value: Some(c.reason.as_str()) });
        let topic = topic.as_str();
        let producer = &producer;
        async move {
            let record = FutureRecord::to(topic).key(&c.video.as_bytes()[..]).payload(&payload).headers(headers);
            producer.send(record, Duration::from_secs(30)).await.map(|_| ()).map_err(|(e, _)| e)
        }
    });
    for r in futures::future::join_all(sends).await {
        r.context("sending a compensating event (run the same command with --id again: what was sent is dropped)")?;
    }
    Ok(Outcome { sent, dry_run })
}

#[cfg(test)]
mod tests {
    use super::*;
    use counting::Tally;

    const NOW: i64 = 1_780_000_000_000 - 1_780_000_000_000 % MINUTE_MS + 17_000;
    const DAY: i64 = 86_400_000;

    fn correction(change: Change) -> Correction {
        Correction {
            id: Uuid::from_u128(1),
            video: Uuid::from_u128(2),
            kind: EventKind::View,
            change,
            reason: "bot".into(),
        }
    }

    #[test]
    fn zeroing_takes_back_each_nonzero_minute_and_nothing_else() {
        let change = Change::Zero { from_ms: NOW - NOW % MINUTE_MS - 4 * MINUTE_MS, to_ms: NOW - NOW % MINUTE_MS };
        let m = minutes(&change, NOW, 8 * DAY).unwrap();
        assert_eq!(m.len(), 4);
        let t = |n: i64| Some(Tally::new(n, Some(1), Some(1)));
        let got = compensations(&change, &m, &[(3, t(3)), (0, Some(Tally::EMPTY)), (7, None), (-2, t(1))]);
        assert_eq!(
            got,
            vec![
                Compensation { minute_ms: m[0], value: -3, events: -3 },
                Compensation { minute_ms: m[2], value: -7, events: 0 },
                Compensation { minute_ms: m[3], value: 2, events: -1 },
            ]
        );
        let zeros = [(0, Some(Tally::new(0, Some(1), Some(1)))); 4];
        assert!(compensations(&change, &m, &zeros).is_empty(), "a second run sends nothing");
        let only_events = compensations(&change, &m[..1], &[(0, Some(Tally::new(2, None, None)))]);
        assert_eq!(only_events, vec![Compensation { minute_ms: m[0], value: 0, events: -2 }]);
    }

    #[test]
    fn ranges_that_cannot_be_read_or_counted_are_refused() {
        let minute = NOW - NOW % MINUTE_MS;
        let err = |c: Change, keep: i64| minutes(&c, NOW, keep).unwrap_err().to_string();
        assert!(err(Change::Zero { from_ms: minute + 1, to_ms: minute + MINUTE_MS }, DAY).contains("whole minutes"));
        assert!(err(Change::Zero { from_ms: minute, to_ms: minute }, DAY).contains("empty"));
        assert!(err(Change::Zero { from_ms: minute - 9 * DAY, to_ms: minute }, 30 * DAY).contains("8 days"));
        assert!(err(Change::Zero { from_ms: minute, to_ms: minute + 2 * MINUTE_MS }, DAY).contains("future"));
        assert!(err(Change::Zero { from_ms: minute - DAY, to_ms: minute }, DAY).contains("retention"));
        assert!(err(Change::Add { at_ms: minute - 31 * DAY, amount: -1, events: 1 }, 400 * DAY).contains("30-day"));
        assert!(err(Change::Add { at_ms: minute, amount: 0, events: 1 }, DAY).contains("nonzero"));
        assert!(err(Change::Add { at_ms: minute, amount: i64::MIN, events: 1 }, DAY).contains("nonzero"));
        // The current minute and the oldest minute still kept are fine.
        assert_eq!(minutes(&Change::Add { at_ms: minute, amount: -5, events: 1 }, NOW, DAY).unwrap(), vec![minute]);
        assert_eq!(
            minutes(&Change::Add { at_ms: minute - DAY + MINUTE_MS, amount: 5, events: 1 }, NOW, DAY).unwrap().len(),
            1
        );
    }

    #[test]
    fn a_rerun_sends_the_same_ids_as_corrections_the_aggregator_accepts() {
        let c = correction(Change::Add { at_ms: NOW - NOW % MINUTE_MS, amount: -5, events: 1 });
        let k = Compensation { minute_ms: NOW - NOW % MINUTE_MS, value: -5, events: -1 };
        assert_eq!(event_id(&c, k.minute_ms), event_id(&c.clone(), k.minute_ms), "deterministic");
        let other = Correction { id: Uuid::from_u128(9), ..c.clone() };
        assert_ne!(event_id(&c, k.minute_ms), event_id(&other, k.minute_ms), "another correction, other ids");
        assert_ne!(event_id(&c, k.minute_ms), event_id(&c, k.minute_ms + MINUTE_MS), "one id per minute");
        let mut d = aggregator::decode::events(Some(&encode(&c, k, NOW)), &counting::EventTypes::built_in()).unwrap();
        let d = d.pop().filter(|_| d.is_empty()).expect("one event");
        assert_eq!((d.event.value, d.event.occurred_at_ms, d.event.kind), (-5, k.minute_ms, EventKind::View));
        assert_eq!(d.event.correction, Some(-1), "the event count's change travels with it");
        assert_eq!(d.client_id, Some(*event_id(&c, k.minute_ms).as_bytes()));
    }
}
