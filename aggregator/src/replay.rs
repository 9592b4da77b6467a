//! Replaying the dead-letter topic (`vcount-admin dlq replay`). A message goes to
//! the dead-letter topic when the aggregator that read it could not count it: a
//! producer's bug, or an event type newer than that aggregator. Once the cause is
//! fixed (a new aggregator deployed), the operator sends what the current decoder
//! accepts back into the partition it came from, where it is counted like any
//! event; what it still refuses stays in the dead-letter topic and is listed.
//!
//! Exactly once, through the rule that already drops a client's retries: every
//! replayed event is marked as carrying a client-chosen id (`client_event_id`,
//! appended to the original bytes; protobuf keeps the last value of a field, and
//! unknown fields survive untouched). The replay commits its own consumer group's
//! offset after each batch is durable, so a replay that dies between the two
//! sends that batch again on its next run; the aggregator drops each repeat that
//! reaches the log within `dedup.window_secs` (600 s by default) of the first
//! copy. Run an interrupted replay again within that window. (With deduplication
//! off, `dedup.window_secs = 0`, a replay interrupted between a batch's produce
//! and its commit counts that batch twice.)
//!
//! What is never replayed:
//! - ratings: a video's ratings keep each user's latest in log order, so a
//!   dead-lettered rating sent again now would undo a newer re-rating; they are
//!   listed, and the user rates again;
//! - a message from a topic that is not this deployment's events topic, one whose
//!   key is not its video id, or one without a 16-byte event id (it could not be
//!   deduplicated).
//!
//! The replay reads up to the dead-letter topic's end as it was when it started,
//! so it always ends; its group's offsets only move forward, so what it skipped
//! is not offered again (the listing says where each skipped message is).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

use platform::kafka::KafkaConfig;

use counting::EventTypes;

use crate::decode;

/// `client_event_id = true`: field 8, varint wire type, value 1.
const MARK_CLIENT_ID: [u8; 2] = [8 << 3, 1];

/// What to replay and how.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    pub kafka: KafkaConfig,
    /// The replay's own consumer group on the dead-letter topic.
    pub group: String,
    /// Classify and report only: nothing is produced, no offset moves.
    pub dry_run: bool,
    /// Messages read at most in this run.
    pub max_messages: u64,
    /// Events produced (and made durable) before each offset commit.
    pub batch: usize,
    /// The aggregators' `event_types` (with the built-ins): a dead letter of a
    /// type not on it stays where it is.
    pub types: EventTypes,
}

impl ReplayOptions {
    pub fn new(kafka: KafkaConfig) -> Self {
        let types = EventTypes::new(&counting::kind::default_extra()).expect("the default event types are valid");
        Self { kafka, group: "vcount-dlq-replay".into(), dry_run: false, max_messages: 1_000_000, batch: 500, types }
    }
}

/// One dead letter the replay did not send back, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub dlq_partition: i32,
    pub dlq_offset: i64,
    pub why: String,
}

/// What a replay did.
#[derive(Clone, Debug, Default)]
pub struct ReplayReport {
    /// Dead letters read.
    pub read: u64,
    /// Sent back to the events topic (in a dry run: would have been).
    pub replayed: u64,
    /// Sent back, per (events topic partition).
    pub by_partition: BTreeMap<i32, u64>,
    pub skipped: Vec<Skipped>,
    /// The run stopped at `max_messages` before the topic's end.
    pub stopped_at_max: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("kafka client: {0}")]
    Client(#[source] KafkaError),
    #[error("the dead-letter topic's partitions: {0}")]
    Metadata(#[source] platform::kafka::KafkaAdminError),
    #[error("reading the dead-letter topic {topic}: {source}")]
    Read { topic: String, source: KafkaError },
    #[error("the events topic did not take a replayed event (nothing of this batch is committed; run again): {0}")]
    Produce(#[source] KafkaError),
    #[error(
        "committing the replay group's offset (the batch is durable; a rerun within the dedup window drops its repeats): {0}"
    )]
    Commit(#[source] KafkaError),
    #[error("timed out reading the dead-letter topic {topic} at offset {offset} (its end was {end})")]
    Stalled { topic: String, offset: i64, end: i64 },
}

/// A dead letter on its way back.
struct Outgoing {
    partition: i32,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: OwnedHeaders,
}

/// Sends batches back and moves the replay group's offset after each.
struct Sender<'a> {
    consumer: &'a BaseConsumer,
    producer: &'a FutureProducer,
    dry_run: bool,
    events_topic: &'a str,
    dlq: &'a str,
}

impl Sender<'_> {
    /// Makes `batch` durable on the events topic, then commits `next` on the
    /// dead-letter topic's partition `p` for the replay's group (nothing in a dry run).
    async fn send_and_commit(&self, p: i32, next: i64, batch: &mut Vec<Outgoing>) -> Result<(), ReplayError> {
        if self.dry_run {
            batch.clear();
            return Ok(());
        }
        let sends = batch.drain(..).map(|o| async move {
            let mut record =
                FutureRecord::<[u8], [u8]>::to(self.events_topic).partition(o.partition).payload(&o.payload);
            record = record.headers(o.headers);
            if let Some(k) = o.key.as_deref() {
                record = record.key(k);
            }
            self.producer.send(record, Duration::from_secs(30)).await.map(|_| ()).map_err(|(e, _)| e)
        });
        for sent in futures::future::join_all(sends).await {
            sent.map_err(ReplayError::Produce)?;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(self.dlq, p, Offset::Offset(next)).expect("valid offset");
        self.consumer.commit(&tpl, rdkafka::consumer::CommitMode::Sync).map_err(ReplayError::Commit)
    }
}

/// How one dead letter is treated.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Send these bytes to this partition of the events topic.
    Replay {
        partition: i32,
        payload: Vec<u8>,
    },
    Skip(String),
}

fn header<'a>(msg: &'a BorrowedMessage<'_>, key: &str) -> Option<&'a str> {
    let headers = msg.headers()?;
    headers.iter().find(|h| h.key == key).and_then(|h| h.value).and_then(|v| std::str::from_utf8(v).ok())
}

/// Decides what to do with a dead letter of `events_topic`'s deployment.
fn verdict(
    types: &EventTypes,
    events_topic: &str,
    ratings_topic: &str,
    source_topic: Option<&str>,
    source_partition: Option<&str>,
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
) -> Verdict {
    let skip = |why: &str| Verdict::Skip(why.to_owned());
    match source_topic {
        Some(t) if t == events_topic => {}
        Some(t) if t == ratings_topic => {
            return skip("a rating: replaying it could undo the user's newer rating (they can rate again)");
        }
        Some(t) => return Verdict::Skip(format!("from topic {t}, not this deployment's events topic")),
        None => return skip("no dlq.source.topic header"),
    }
    let Some(partition) = source_partition.and_then(|p| p.parse::<i32>().ok()).filter(|p| *p >= 0) else {
        return skip("no valid dlq.source.partition header");
    };
    let decoded = match decode::events(payload, types) {
        Ok(d) => d,
        Err(e) => return Verdict::Skip(format!("still not countable: {e}")),
    };
    // A pack is keyed by its first event's video id, like a single event.
    if key != decoded.first().map(|d| d.event.video_id.as_bytes().as_slice()) {
        return skip("its key is not its video id");
    }
    let Some(marked) = mark(payload.unwrap_or_default()) else {
        return skip("a pack with fields of its own");
    };
    // The ids the aggregator's dedup rule will see; without 16 bytes there are none.
    match decode::events(Some(&marked), types) {
        Ok(d) if d.iter().all(|d| d.client_id.is_some()) => Verdict::Replay { partition, payload: marked },
        _ => skip("no 16-byte event id: a second copy could not be told apart"),
    }
}

/// The payload with `client_event_id` set on its event, or on every event of a
/// pack, by appending the mark to each event's own bytes: whatever else they hold
/// (fields this build does not know) travels on untouched. `None`: a pack with a
/// field besides `packed` (the decoder refuses those anyway).
fn mark(payload: &[u8]) -> Option<Vec<u8>> {
    use prost::Message as _;
    use prost::encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint};
    const PACKED: u32 = schemas::events::Event::PACKED_FIELD;
    let is_pack = schemas::events::Event::decode(payload).is_ok_and(|e| !e.packed.is_empty());
    let mut out = Vec::with_capacity(payload.len() + MARK_CLIENT_ID.len());
    if !is_pack {
        out.extend_from_slice(payload);
        out.extend_from_slice(&MARK_CLIENT_ID);
        return Some(out);
    }
    let mut buf = payload;
    while !buf.is_empty() {
        let (PACKED, WireType::LengthDelimited) = decode_key(&mut buf).ok()? else { return None };
        let len = usize::try_from(decode_varint(&mut buf).ok()?).ok().filter(|&n| n <= buf.len())?;
        let (event, rest) = buf.split_at(len);
        encode_key(PACKED, WireType::LengthDelimited, &mut out);
        encode_varint((len + MARK_CLIENT_ID.len()) as u64, &mut out);
        out.extend_from_slice(event);
        out.extend_from_slice(&MARK_CLIENT_ID);
        buf = rest;
    }
    Some(out)
}

/// Replays the dead-letter topic of `opts.kafka`'s deployment (see the module doc).
pub async fn replay(opts: &ReplayOptions) -> Result<ReplayReport, ReplayError> {
    let (events_topic, ratings_topic, dlq) =
        (opts.kafka.events_topic(), opts.kafka.ratings_topic(), opts.kafka.dead_letter_topic());
    let consumer: BaseConsumer = opts
        .kafka
        .client_config()
        .set("group.id", &opts.group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .map_err(ReplayError::Client)?;
    let producer: FutureProducer = opts
        .kafka
        .client_config()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .map_err(ReplayError::Client)?;
    let read_err = |source| ReplayError::Read { topic: dlq.clone(), source };
    let timeout = Duration::from_secs(10);
    let partitions = platform::kafka::partition_count(&opts.kafka, &dlq, timeout).map_err(ReplayError::Metadata)?;
    let sender = Sender {
        consumer: &consumer,
        producer: &producer,
        dry_run: opts.dry_run,
        events_topic: &events_topic,
        dlq: &dlq,
    };
    let mut report = ReplayReport::default();
    for p in 0..partitions as i32 {
        let (low, end) = consumer.fetch_watermarks(&dlq, p, timeout).map_err(read_err)?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&dlq, p);
        let committed = consumer.committed_offsets(tpl, timeout).map_err(read_err)?;
        let start = committed.find_partition(&dlq, p).and_then(|e| e.offset().to_raw()).filter(|&o| o >= 0);
        let mut next = start.unwrap_or(low).max(low);
        if next >= end {
            continue;
        }
        let mut assign = TopicPartitionList::new();
        assign.add_partition_offset(&dlq, p, Offset::Offset(next)).expect("valid offset");
        consumer.assign(&assign).map_err(read_err)?;
        let mut batch = Vec::new();
        while next < end {
            if report.read >= opts.max_messages {
                report.stopped_at_max = true;
                break;
            }
            let msg = match consumer.poll(timeout) {
                Some(Ok(m)) => m,
                Some(Err(e)) => return Err(read_err(e)),
                None => return Err(ReplayError::Stalled { topic: dlq.clone(), offset: next, end }),
            };
            next = msg.offset() + 1;
            report.read += 1;
            let v = verdict(
                &opts.types,
                &events_topic,
                &ratings_topic,
                header(&msg, "dlq.source.topic"),
                header(&msg, "dlq.source.partition"),
                msg.key(),
                msg.payload(),
            );
            match v {
                Verdict::Skip(why) => {
                    report.skipped.push(Skipped { dlq_partition: p, dlq_offset: msg.offset(), why });
                }
                Verdict::Replay { partition, payload } => {
                    report.replayed += 1;
                    *report.by_partition.entry(partition).or_default() += 1;
                    // The original headers travel on (a producer's tracing, say);
                    // the dead-letter ones are replaced by where it came from.
                    let mut headers = OwnedHeaders::new();
                    if let Some(h) = msg.headers() {
                        for h in h.iter().filter(|h| !h.key.starts_with("dlq.")) {
                            headers = headers.insert(h);
                        }
                    }
                    let from = format!("{dlq}/{p}/{}", msg.offset());
                    headers = headers.insert(Header { key: "dlq.replayed.from", value: Some(&from) });
                    batch.push(Outgoing { partition, key: msg.key().map(<[u8]>::to_vec), payload, headers });
                }
            }
            if batch.len() >= opts.batch || next >= end {
                sender.send_and_commit(p, next, &mut batch).await?;
            }
        }
        sender.send_and_commit(p, next, &mut batch).await?;
        if report.stopped_at_max {
            break;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;
    use schemas::events::{Event, EventType};

    const NOW: i64 = 1_780_000_000_000;

    fn event(video: [u8; 16], event_id: Vec<u8>, client: bool) -> Event {
        Event {
            event_id,
            video_id: video.to_vec(),
            event_type: EventType::Like as i32,
            occurred_at_ms: NOW - 1000,
            received_at_ms: NOW,
            value: 2,
            user_id: vec![],
            client_event_id: client,
            user_verified: false,
            correction: false,
            event_type_name: String::new(),
            correction_events: 0,
            packed: vec![],
        }
    }

    fn judge(src: Option<&str>, part: Option<&str>, key: Option<&[u8]>, payload: Option<&[u8]>) -> Verdict {
        verdict(&EventTypes::built_in(), "x.video-events", "x.video-ratings", src, part, key, payload)
    }

    #[test]
    fn a_countable_event_goes_back_to_its_partition_marked_for_dedup() {
        let video = [7u8; 16];
        let original = event(video, vec![9; 16], false).encode_to_vec();
        let Verdict::Replay { partition, payload } =
            judge(Some("x.video-events"), Some("3"), Some(&video), Some(&original))
        else {
            panic!("not replayed")
        };
        assert_eq!(partition, 3);
        let back = Event::decode(payload.as_slice()).unwrap();
        assert_eq!(back, event(video, vec![9; 16], true), "only client_event_id changed");
        assert!(payload.starts_with(&original), "the original bytes (and any unknown fields) are kept");
        // Already marked: stays marked, decodes the same.
        let client = event(video, vec![9; 16], true).encode_to_vec();
        let Verdict::Replay { payload, .. } = judge(Some("x.video-events"), Some("0"), Some(&video), Some(&client))
        else {
            panic!("not replayed")
        };
        assert_eq!(Event::decode(payload.as_slice()).unwrap(), event(video, vec![9; 16], true));
    }

    #[test]
    fn what_cannot_be_replayed_exactly_once_is_skipped_with_a_reason() {
        let video = [7u8; 16];
        let good = event(video, vec![9; 16], false).encode_to_vec();
        let why = |v: Verdict| match v {
            Verdict::Skip(why) => why,
            Verdict::Replay { .. } => panic!("replayed"),
        };
        let events = Some("x.video-events");
        assert!(why(judge(Some("x.video-ratings"), Some("0"), Some(&video), Some(&good))).starts_with("a rating"));
        assert!(why(judge(Some("y.video-events"), Some("0"), Some(&video), Some(&good))).contains("not this"));
        assert!(why(judge(None, Some("0"), Some(&video), Some(&good))).contains("dlq.source.topic"));
        assert!(why(judge(events, None, Some(&video), Some(&good))).contains("dlq.source.partition"));
        assert!(why(judge(events, Some("-1"), Some(&video), Some(&good))).contains("dlq.source.partition"));
        assert!(why(judge(events, Some("0"), Some(&[1; 16]), Some(&good))).contains("key"));
        assert!(why(judge(events, Some("0"), None, Some(&good))).contains("key"));
        assert!(why(judge(events, Some("0"), Some(&video), Some(b"garbage"))).starts_with("still not countable"));
        let unknown = Event { event_type: 99, ..event(video, vec![9; 16], false) }.encode_to_vec();
        assert!(why(judge(events, Some("0"), Some(&video), Some(&unknown))).starts_with("still not countable"));
        let short_id = event(video, vec![9; 4], false).encode_to_vec();
        assert!(why(judge(events, Some("0"), Some(&video), Some(&short_id))).contains("16-byte"));
    }

    /// A dead-lettered pack goes back whole, every event of it marked (its own
    /// bytes kept), keyed by its first event's video like the gateway's packs.
    #[test]
    fn a_pack_goes_back_whole_with_every_event_marked() {
        let (a, b) = ([7u8; 16], [8u8; 16]);
        let packed = vec![event(a, vec![1; 16], false), event(b, vec![2; 16], true)];
        let pack = Event { packed: packed.clone(), ..Default::default() }.encode_to_vec();
        let events = Some("x.video-events");
        let Verdict::Replay { partition, payload } = judge(events, Some("2"), Some(&a), Some(&pack)) else {
            panic!("not replayed")
        };
        assert_eq!(partition, 2);
        let back = Event::decode(payload.as_slice()).unwrap();
        let marked: Vec<Event> = packed.iter().map(|e| Event { client_event_id: true, ..e.clone() }).collect();
        assert_eq!(back, Event { packed: marked, ..Default::default() });
        let why = |v: Verdict| match v {
            Verdict::Skip(why) => why,
            Verdict::Replay { .. } => panic!("replayed"),
        };
        assert!(why(judge(events, Some("2"), Some(&b), Some(&pack))).contains("key"), "keyed by the first");
        let short =
            Event { packed: vec![event(a, vec![1; 16], false), event(b, vec![2; 3], false)], ..Default::default() };
        assert!(why(judge(events, Some("2"), Some(&a), Some(&short.encode_to_vec()))).contains("16-byte"));
        // Whatever this build does not know inside a pack's events travels on.
        let mut unknown = event(a, vec![1; 16], false).encode_to_vec();
        unknown.extend_from_slice(&[0xa8, 0x06, 0x2a]); // field 101, varint 42
        let mut raw = Vec::new();
        prost::encoding::bytes::encode(13, &unknown, &mut raw);
        let Verdict::Replay { payload, .. } = judge(events, Some("0"), Some(&a), Some(&raw)) else {
            panic!("not replayed")
        };
        let inner = Event::decode(payload.as_slice()).unwrap().packed.remove(0);
        assert!(inner.client_event_id);
        let mut kept = Vec::new();
        prost::encoding::bytes::encode(13, &[unknown, MARK_CLIENT_ID.to_vec()].concat(), &mut kept);
        assert_eq!(payload, kept, "the unknown field is still there");
    }
}
