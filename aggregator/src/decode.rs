//! Kafka payloads to the counting core's events: protobuf decoding and the checks
//! a message must pass to be counted. A message that fails them is not an error of
//! the aggregator: the owner sends it to the dead-letter topic with the reason
//! ([`DecodeError`]'s text, in the `dlq.reason` header) and moves on.
//!
//! The gateway validates what it produces, but anything with access to the topic
//! can write to it, so every bound is checked again here (`schemas::limits`): a
//! `value` of 1 to 1,000,000 (sums of those cannot overflow a 64-bit count), a
//! `received_at_ms` between 2020 and 2100, an `occurred_at_ms` from 30 days before
//! it to an hour after. The bounds are fixed rather than read off the clock, so a
//! message counts or not whenever it is read: a replay after a crash decides as the
//! first reading did.
//!
//! A compensating event (`correction`, made by `vcount-admin correct`) may carry a
//! negative value, up to `MAX_CORRECTION_VALUE` either way but never 0. It must
//! carry a client event id, so that a retried correction is dropped like a
//! client's retry, and no viewer (a correction is nobody's view). Its
//! `correction_events` (up to `MAX_CORRECTION_VALUE` either way) is what it does to
//! the rows' event counts; a correction may move only the count (value 0), only
//! the sum (events 0, as every correction from before value metrics), or both,
//! never neither. Any other event is one event and carries no `correction_events`.
//!
//! Event types: the five built-ins travel as the proto enum, configured ones by name
//! (`event_type_name`), checked against this aggregator's `event_types`
//! (`counting::kind`). A name not on the list ([`DecodeError::NotListed`]) is
//! dead-lettered like any other refusal, never halts the partition: the list is
//! config, so the fix is to add the name to every aggregator's list and replay the
//! dead letters (`vcount-admin dlq replay`, with the same list); the README's
//! "Event types" gives the rollout order (aggregators first).
//!
//! One failure is not poison: a well-formed event whose enum value this build does
//! not know ([`DecodeError::NewerEventType`]) comes from a newer producer's code,
//! and dead-lettering it would lose it for good (its offset committed, never
//! counted). The owner halts the partition at it instead (P4, P11), and counting
//! resumes once an aggregator that knows the value runs. (New types are names now,
//! so this is only a guard against build skew.)

use counting::{CountedEvent, EventTypes, RatedEvent};
use prost::Message;
use schemas::events::{Event, Rating};
use schemas::kind::KindError;
use schemas::limits::{
    EARLIEST_MS, LATEST_MS, MAX_CORRECTION_VALUE, MAX_EVENT_AGE_MS, MAX_EVENT_FUTURE_MS, MAX_EVENT_VALUE,
};
use uuid::Uuid;

/// Why a message cannot be counted.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("empty payload")]
    Empty,
    #[error("not a protobuf {message}: {source}")]
    NotProtobuf { message: &'static str, source: prost::DecodeError },
    /// An id field that is not 16 bytes.
    #[error("{0} is not 16 bytes")]
    NotAnId(&'static str),
    #[error("unknown event type {0}")]
    UnknownEventType(i32),
    /// Everything else about the event is valid: a newer producer's type.
    #[error("event type {0} is not known to this aggregator (a newer producer?)")]
    NewerEventType(i32),
    /// A named type that is not (yet) in this aggregator's `event_types`; the name
    /// is shown only when it matches the pattern (it lands in a header).
    #[error("event type {0:?} is not in this aggregator's event_types (add it, then replay the dead letters)")]
    NotListed(String),
    /// Both the enum and a name set.
    #[error("{0}")]
    BadEventType(KindError),
    #[error("value {0} is not positive")]
    NotPositive(i64),
    #[error("value {0} is above the largest an event may carry ({MAX_EVENT_VALUE})")]
    ValueTooLarge(i64),
    #[error("correction value {0} is 0 or beyond {MAX_CORRECTION_VALUE} either way")]
    CorrectionValue(i64),
    #[error("correction events {0} are beyond {MAX_CORRECTION_VALUE} either way")]
    CorrectionEvents(i64),
    #[error("correction_events {0} on an event that is not a correction")]
    EventsWithoutCorrection(i64),
    #[error("a correction must carry a client event id (a retried correction is dropped by it)")]
    CorrectionWithoutId,
    #[error("a correction has no viewer")]
    CorrectionWithViewer,
    #[error("occurred_at_ms is missing")]
    NoOccurredAt,
    /// A time outside [2020, 2100): `received_at_ms` of an event, `occurred_at_ms`
    /// of a rating.
    #[error("{field} {ms} is not between 2020 and 2100")]
    TimeOutOfRange { field: &'static str, ms: i64 },
    #[error(
        "occurred_at_ms {occurred} is outside [received_at_ms - 30 days, received_at_ms + 1 hour] \
         (received_at_ms {received})"
    )]
    OutsideWindow { occurred: i64, received: i64 },
    #[error("rating {0} is not 1 to 5")]
    RatingOutOfRange(i32),
    /// A pack (`packed` set) with a field of its own set.
    #[error("a pack carries fields besides packed")]
    PackWithFields,
    #[error("a pack inside a pack")]
    PackInPack,
    /// The first refused event of a pack, by its index.
    #[error("packed event {index}: {source}")]
    InPack { index: usize, source: Box<DecodeError> },
}

/// A decoded event: what it counts, its id if the client chose it, and the
/// verified viewer of a signed-in view (user id, event id).
#[derive(Debug)]
pub struct Decoded {
    pub event: CountedEvent,
    pub client_id: Option<[u8; 16]>,
    pub viewer: Option<(Uuid, Uuid)>,
}

fn id(field: &'static str, bytes: &[u8]) -> Result<Uuid, DecodeError> {
    Uuid::from_slice(bytes).map_err(|_| DecodeError::NotAnId(field))
}

fn in_range(field: &'static str, ms: i64) -> Result<(), DecodeError> {
    if (EARLIEST_MS..LATEST_MS).contains(&ms) { Ok(()) } else { Err(DecodeError::TimeOutOfRange { field, ms }) }
}

/// Decodes a message of the events topic into its counted events, if `types`
/// counts them: one event, or a pack's events in order. A pack counts whole or
/// not at all: one refused event refuses the message (the gateway produces none
/// such; whatever did is better looked at whole in the dead letters), and one of a
/// newer producer's type halts at the message like a single one.
pub fn events(payload: Option<&[u8]>, types: &EventTypes) -> Result<Vec<Decoded>, DecodeError> {
    let payload = payload.ok_or(DecodeError::Empty)?;
    let mut e = Event::decode(payload).map_err(|source| DecodeError::NotProtobuf { message: "Event", source })?;
    if e.packed.is_empty() {
        return Ok(vec![event(e, types)?]);
    }
    let packed = std::mem::take(&mut e.packed);
    // Nothing else set: proto3 encodes no default value, so this is `e ==
    // Event::default()` without comparing every field (a `memcmp` per field and
    // message, up to 5% of the aggregator's samples in some builds; README, Measured).
    if e.encoded_len() != 0 {
        return Err(DecodeError::PackWithFields);
    }
    let mut out = Vec::with_capacity(packed.len());
    for (index, e) in packed.into_iter().enumerate() {
        if !e.packed.is_empty() {
            return Err(DecodeError::InPack { index, source: Box::new(DecodeError::PackInPack) });
        }
        match event(e, types) {
            Ok(d) => out.push(d),
            Err(newer @ DecodeError::NewerEventType(_)) => return Err(newer),
            Err(source) => return Err(DecodeError::InPack { index, source: Box::new(source) }),
        }
    }
    Ok(out)
}

/// One event (of a message or of a pack).
fn event(e: Event, types: &EventTypes) -> Result<Decoded, DecodeError> {
    let video_id = id("video_id", &e.video_id)?;
    // Unspecified (0) without a name is a producer's bug; a value the enum does not
    // name is only "newer" if everything else about the event is valid.
    let kind = match e.kind_in(types) {
        Ok(kind) => Some(kind),
        Err(KindError::Unnamed(_)) => None,
        Err(KindError::Unspecified) => return Err(DecodeError::UnknownEventType(0)),
        Err(KindError::NotListed(name)) => return Err(DecodeError::NotListed(name)),
        Err(both @ KindError::Both(..)) => return Err(DecodeError::BadEventType(both)),
    };
    let unknown = DecodeError::UnknownEventType(e.event_type);
    if e.correction {
        let changes_nothing = e.value == 0 && e.correction_events == 0;
        if changes_nothing || e.value.unsigned_abs() > MAX_CORRECTION_VALUE.unsigned_abs() {
            return Err(DecodeError::CorrectionValue(e.value));
        }
        if e.correction_events.unsigned_abs() > MAX_CORRECTION_VALUE.unsigned_abs() {
            return Err(DecodeError::CorrectionEvents(e.correction_events));
        }
        if !e.client_event_id {
            return Err(DecodeError::CorrectionWithoutId);
        }
        if !e.user_id.is_empty() || e.user_verified {
            return Err(DecodeError::CorrectionWithViewer);
        }
    } else if e.correction_events != 0 {
        return Err(DecodeError::EventsWithoutCorrection(e.correction_events));
    } else if e.value < 1 {
        return Err(DecodeError::NotPositive(e.value));
    } else if e.value > MAX_EVENT_VALUE {
        return Err(DecodeError::ValueTooLarge(e.value));
    }
    if e.occurred_at_ms <= 0 {
        return Err(DecodeError::NoOccurredAt);
    }
    in_range("received_at_ms", e.received_at_ms)?;
    // Both are within [2020, 2100), so neither bound can overflow.
    let window = e.received_at_ms - MAX_EVENT_AGE_MS..=e.received_at_ms + MAX_EVENT_FUTURE_MS;
    if !window.contains(&e.occurred_at_ms) {
        return Err(DecodeError::OutsideWindow { occurred: e.occurred_at_ms, received: e.received_at_ms });
    }
    let client_id = match (e.client_event_id, <[u8; 16]>::try_from(e.event_id.as_slice())) {
        (false, _) => None,
        (true, Ok(id)) => Some(id),
        (true, Err(_)) => return Err(DecodeError::NotAnId("client event_id")),
    };
    let kind = match kind {
        Some(k) => k,
        None if e.event_id.len() != 16 => return Err(unknown),
        None => return Err(DecodeError::NewerEventType(e.event_type)),
    };
    // Only a token-verified user is an activity; a client's word is not.
    let viewer = match (e.user_verified && kind == counting::EventKind::View, Uuid::from_slice(&e.user_id)) {
        (true, Ok(user)) => Some((user, Uuid::from_slice(&e.event_id).unwrap_or_default())),
        _ => None,
    };
    let correction = e.correction.then_some(e.correction_events);
    let event = CountedEvent { video_id, kind, occurred_at_ms: e.occurred_at_ms, value: e.value, correction };
    Ok(Decoded { event, client_id, viewer })
}

/// Decodes a message of the ratings topic.
pub fn rating(payload: Option<&[u8]>) -> Result<RatedEvent, DecodeError> {
    let payload = payload.ok_or(DecodeError::Empty)?;
    let r = Rating::decode(payload).map_err(|source| DecodeError::NotProtobuf { message: "Rating", source })?;
    let video_id = id("video_id", &r.video_id)?;
    let user_id = id("user_id", &r.user_id)?;
    if !(1..=5).contains(&r.rating) {
        return Err(DecodeError::RatingOutOfRange(r.rating));
    }
    if r.occurred_at_ms <= 0 {
        return Err(DecodeError::NoOccurredAt);
    }
    in_range("occurred_at_ms", r.occurred_at_ms)?;
    let event_id = id("event_id", &r.event_id)?;
    Ok(RatedEvent { video_id, user_id, rating: r.rating, occurred_at_ms: r.occurred_at_ms, event_id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use counting::EventKind;
    use schemas::events::EventType;

    fn event(payload: Option<&[u8]>) -> Result<Decoded, DecodeError> {
        one(payload, &EventTypes::built_in())
    }

    /// A message that is one event.
    fn one(payload: Option<&[u8]>, types: &EventTypes) -> Result<Decoded, DecodeError> {
        let mut all = events(payload, types)?;
        assert_eq!(all.len(), 1, "one event: {all:?}");
        Ok(all.pop().unwrap())
    }

    /// 2024-03-10T00:00:00Z.
    const T: i64 = 1_710_028_800_000;

    fn reason(r: Result<impl std::fmt::Debug, DecodeError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn decode_accepts_events_and_explains_poison() {
        let good = Event {
            event_id: vec![0; 16],
            video_id: vec![7; 16],
            event_type: EventType::Like as i32,
            occurred_at_ms: T - 5,
            received_at_ms: T,
            value: 3,
            user_id: vec![],
            client_event_id: false,
            user_verified: false,
            correction: false,
            event_type_name: String::new(),
            correction_events: 0,
            packed: vec![],
        };
        let d = event(Some(&good.encode_to_vec())).unwrap();
        let e = d.event;
        assert_eq!((e.kind, e.value, e.occurred_at_ms, d.client_id, d.viewer), (EventKind::Like, 3, T - 5, None, None));
        let viewed = Event { event_type: EventType::View as i32, user_id: vec![9; 16], ..good.clone() };
        assert_eq!(event(Some(&viewed.encode_to_vec())).unwrap().viewer, None, "the client's word is no viewer");
        let verified = Event { user_verified: true, ..viewed.clone() };
        let viewer = event(Some(&verified.encode_to_vec())).unwrap().viewer;
        assert_eq!(viewer, Some((Uuid::from_bytes([9; 16]), Uuid::from_bytes([0; 16]))));
        let mut chosen = good.clone();
        chosen.client_event_id = true;
        assert_eq!(event(Some(&chosen.encode_to_vec())).unwrap().client_id, Some([0; 16]));
        assert_eq!(reason(event(None)), "empty payload");
        assert!(reason(event(Some(b"\xff\xff\xff"))).starts_with("not a protobuf Event: "));
        let mut bad = good.clone();
        bad.video_id = vec![1; 3];
        assert_eq!(reason(event(Some(&bad.encode_to_vec()))), "video_id is not 16 bytes");
        bad = good.clone();
        bad.event_type = 99;
        let newer = event(Some(&bad.encode_to_vec())).unwrap_err();
        assert!(matches!(newer, DecodeError::NewerEventType(99)), "a valid event of a newer type is not poison");
        bad.event_id = vec![];
        assert_eq!(reason(event(Some(&bad.encode_to_vec()))), "unknown event type 99", "garbage is poison");
        bad = Event { event_type: 99, value: 0, ..good.clone() };
        assert_eq!(reason(event(Some(&bad.encode_to_vec()))), "value 0 is not positive");
        bad = good.clone();
        bad.event_type = EventType::Unspecified as i32;
        assert_eq!(reason(event(Some(&bad.encode_to_vec()))), "unknown event type 0");
        bad = good.clone();
        bad.value = 0;
        assert_eq!(reason(event(Some(&bad.encode_to_vec()))), "value 0 is not positive");
        bad = Event { occurred_at_ms: 0, ..good.clone() };
        assert_eq!(reason(event(Some(&bad.encode_to_vec()))), "occurred_at_ms is missing");
        bad = Event { client_event_id: true, event_id: vec![1; 5], ..good.clone() };
        assert_eq!(reason(event(Some(&bad.encode_to_vec()))), "client event_id is not 16 bytes");
    }

    /// A gateway's view of video 7 at `T`.
    fn view_at_t() -> Event {
        Event {
            event_id: vec![0; 16],
            video_id: vec![7; 16],
            event_type: EventType::View as i32,
            occurred_at_ms: T,
            received_at_ms: T,
            value: 1,
            user_id: vec![],
            client_event_id: false,
            user_verified: false,
            correction: false,
            event_type_name: String::new(),
            correction_events: 0,
            packed: vec![],
        }
    }

    /// A configured type counts where it is listed and is a dead letter (never a
    /// halt) where it is not; the built-ins count everywhere.
    #[test]
    fn a_named_type_counts_only_where_it_is_listed() {
        let listed = EventTypes::new(&["decode_test_clicks"]).unwrap();
        let mut named = Event { value: 7, ..view_at_t() };
        named.set_kind(listed.parse("decode_test_clicks").unwrap());
        assert_eq!((named.event_type, named.event_type_name.as_str()), (0, "decode_test_clicks"));
        let payload = named.encode_to_vec();
        let d = one(Some(&payload), &listed).unwrap();
        assert_eq!((d.event.kind.as_str(), d.event.value), ("decode_test_clicks", 7));
        let refused = one(Some(&payload), &EventTypes::built_in()).unwrap_err();
        assert!(matches!(refused, DecodeError::NotListed(_)), "a dead letter, not a halt: {refused:?}");
        assert_eq!(
            refused.to_string(),
            "event type \"decode_test_clicks\" is not in this aggregator's event_types \
             (add it, then replay the dead letters)"
        );
        // A hostile name is not echoed into the dead letter's header.
        let junk = Event { event_type_name: "\u{7}".repeat(5000), ..view_at_t() };
        let junk = Event { event_type: 0, ..junk };
        assert!(reason(one(Some(&junk.encode_to_vec()), &listed)).contains("<5000 bytes not matching"));
        let both = Event { event_type_name: "decode_test_clicks".into(), ..view_at_t() };
        assert!(matches!(one(Some(&both.encode_to_vec()), &listed), Err(DecodeError::BadEventType(_))));
        // A built-in from before the field existed decodes the same under any list.
        assert_eq!(one(Some(&view_at_t().encode_to_vec()), &listed).unwrap().event.kind, EventKind::View);
    }

    /// What a producer with access to the topic could write, past the gateway.
    #[test]
    fn decode_refuses_values_and_times_the_gateway_would_refuse() {
        let good = view_at_t();
        let decoded = |e: &Event| event(Some(&e.encode_to_vec()));
        let max = Event { value: MAX_EVENT_VALUE, ..good.clone() };
        assert_eq!(decoded(&max).unwrap().event.value, MAX_EVENT_VALUE);
        for (bad, why) in [
            (
                Event { value: MAX_EVENT_VALUE + 1, ..good.clone() },
                "value 1000001 is above the largest an event may carry (1000000)",
            ),
            (
                Event { value: 1 << 62, ..good.clone() },
                "value 4611686018427387904 is above the largest an event may carry (1000000)",
            ),
            (Event { value: i64::MIN, ..good.clone() }, "value -9223372036854775808 is not positive"),
            (Event { received_at_ms: 0, ..good.clone() }, "received_at_ms 0 is not between 2020 and 2100"),
            (
                Event { received_at_ms: LATEST_MS, occurred_at_ms: LATEST_MS, ..good.clone() },
                "received_at_ms 4102444800000 is not between 2020 and 2100",
            ),
            (
                Event { received_at_ms: i64::MAX, occurred_at_ms: i64::MAX, ..good.clone() },
                "received_at_ms 9223372036854775807 is not between 2020 and 2100",
            ),
            (Event { occurred_at_ms: T - MAX_EVENT_AGE_MS - 1, ..good.clone() }, "outside"),
            (Event { occurred_at_ms: T + MAX_EVENT_FUTURE_MS + 1, ..good.clone() }, "outside"),
            (Event { occurred_at_ms: 1, ..good.clone() }, "outside"),
        ] {
            let got = reason(decoded(&bad));
            assert!(got == why || (why == "outside" && got.contains("is outside [received_at_ms")), "{got}");
        }
        // The edges of the window are in.
        assert!(decoded(&Event { occurred_at_ms: T - MAX_EVENT_AGE_MS, ..good.clone() }).is_ok());
        assert!(decoded(&Event { occurred_at_ms: T + MAX_EVENT_FUTURE_MS, ..good.clone() }).is_ok());
        assert!(decoded(&Event { received_at_ms: EARLIEST_MS, occurred_at_ms: EARLIEST_MS - 1, ..good }).is_ok());
    }

    /// A compensating event may take counts away, but only as a correction: with a
    /// client id (so its retry is dropped), no viewer, and a bounded nonzero value.
    #[test]
    fn only_a_correction_may_carry_a_negative_value() {
        let fix = Event { event_id: vec![3; 16], value: -40, client_event_id: true, correction: true, ..view_at_t() };
        let decoded = |e: &Event| event(Some(&e.encode_to_vec()));
        let d = decoded(&fix).unwrap();
        assert_eq!((d.event.value, d.client_id, d.viewer), (-40, Some([3; 16]), None));
        assert_eq!(d.event.correction, Some(0), "a correction from before value metrics moves only the sum");
        let both = decoded(&Event { correction_events: -40, ..fix.clone() }).unwrap();
        assert_eq!((both.event.value, both.event.correction), (-40, Some(-40)));
        let count_only = decoded(&Event { value: 0, correction_events: 2, ..fix.clone() }).unwrap();
        assert_eq!((count_only.event.value, count_only.event.correction), (0, Some(2)));
        assert_eq!(decoded(&view_at_t()).unwrap().event.correction, None);
        let most = Event { value: -MAX_CORRECTION_VALUE, ..fix.clone() };
        assert_eq!(decoded(&most).unwrap().event.value, -MAX_CORRECTION_VALUE);
        assert_eq!(decoded(&Event { value: 12, ..fix.clone() }).unwrap().event.value, 12, "adding back is allowed");
        for (bad, why) in [
            (Event { correction: false, ..fix.clone() }, "value -40 is not positive"),
            (Event { value: 0, ..fix.clone() }, "correction value 0 is 0 or beyond 1000000000000 either way"),
            (
                Event { value: -MAX_CORRECTION_VALUE - 1, ..fix.clone() },
                "correction value -1000000000001 is 0 or beyond 1000000000000 either way",
            ),
            (
                Event { value: i64::MIN, ..fix.clone() },
                "correction value -9223372036854775808 is 0 or beyond 1000000000000 either way",
            ),
            (
                Event { client_event_id: false, ..fix.clone() },
                "a correction must carry a client event id (a retried correction is dropped by it)",
            ),
            (Event { user_id: vec![9; 16], ..fix.clone() }, "a correction has no viewer"),
            (Event { user_verified: true, ..fix.clone() }, "a correction has no viewer"),
            (
                Event { correction_events: MAX_CORRECTION_VALUE + 1, ..fix.clone() },
                "correction events 1000000000001 are beyond 1000000000000 either way",
            ),
            (Event { correction_events: 1, ..view_at_t() }, "correction_events 1 on an event that is not a correction"),
        ] {
            assert_eq!(reason(decoded(&bad)), why);
        }
    }

    /// A pack decodes to its events in order, whole or not at all; a newer type in
    /// it halts like a single one, and nothing else may ride on the pack.
    #[test]
    fn a_pack_counts_whole_or_not_at_all() {
        let types = EventTypes::built_in();
        let a = view_at_t();
        let b = Event { video_id: vec![8; 16], event_type: EventType::Like as i32, value: 4, ..view_at_t() };
        let signed_in = Event { user_id: vec![9; 16], user_verified: true, event_id: vec![5; 16], ..view_at_t() };
        let pack = |events: Vec<Event>| Event { packed: events, ..Default::default() }.encode_to_vec();
        let all = events(Some(&pack(vec![a.clone(), b.clone(), signed_in.clone()])), &types).unwrap();
        let got: Vec<_> = all.iter().map(|d| (d.event.video_id, d.event.kind, d.event.value)).collect();
        let (seven, eight) = (Uuid::from_bytes([7; 16]), Uuid::from_bytes([8; 16]));
        assert_eq!(got, [(seven, EventKind::View, 1), (eight, EventKind::Like, 4), (seven, EventKind::View, 1)]);
        assert_eq!(all[2].viewer, Some((Uuid::from_bytes([9; 16]), Uuid::from_bytes([5; 16]))));
        assert_eq!(events(Some(&pack(vec![b.clone()])), &types).unwrap().len(), 1, "a pack of one");

        let bad = Event { value: 0, ..b.clone() };
        let refused = events(Some(&pack(vec![a.clone(), bad])), &types).unwrap_err();
        assert_eq!(refused.to_string(), "packed event 1: value 0 is not positive");
        let newer = Event { event_type: 99, ..b.clone() };
        assert!(matches!(events(Some(&pack(vec![a.clone(), newer])), &types), Err(DecodeError::NewerEventType(99))));
        let inner = Event { packed: vec![a.clone()], ..Default::default() };
        assert_eq!(reason(events(Some(&pack(vec![a.clone(), inner])), &types)), "packed event 1: a pack inside a pack");
        // A pack that is also an event (or says anything of its own) is refused:
        // its own fields would otherwise go uncounted, or unchecked.
        let riding = Event { packed: vec![a.clone()], ..b.clone() }.encode_to_vec();
        assert_eq!(reason(events(Some(&riding), &types)), "a pack carries fields besides packed");
        let marked = Event { packed: vec![a.clone()], client_event_id: true, ..Default::default() }.encode_to_vec();
        assert_eq!(reason(events(Some(&marked), &types)), "a pack carries fields besides packed");
        // Every field, one at a time (the check is by encoded length, not field by field).
        let pack_of_a = Event { packed: vec![a], ..Default::default() };
        for (field, with) in [
            ("event_id", Event { event_id: vec![1], ..pack_of_a.clone() }),
            ("video_id", Event { video_id: vec![1], ..pack_of_a.clone() }),
            ("event_type", Event { event_type: 1, ..pack_of_a.clone() }),
            ("occurred_at_ms", Event { occurred_at_ms: 1, ..pack_of_a.clone() }),
            ("received_at_ms", Event { received_at_ms: -1, ..pack_of_a.clone() }),
            ("value", Event { value: 1, ..pack_of_a.clone() }),
            ("user_id", Event { user_id: vec![1], ..pack_of_a.clone() }),
            ("client_event_id", Event { client_event_id: true, ..pack_of_a.clone() }),
            ("user_verified", Event { user_verified: true, ..pack_of_a.clone() }),
            ("correction", Event { correction: true, ..pack_of_a.clone() }),
            ("event_type_name", Event { event_type_name: "x".into(), ..pack_of_a.clone() }),
            ("correction_events", Event { correction_events: 1, ..pack_of_a.clone() }),
        ] {
            let why = reason(events(Some(&with.encode_to_vec()), &types));
            assert_eq!(why, "a pack carries fields besides packed", "a pack with {field}");
        }
        assert_eq!(events(Some(&pack_of_a.encode_to_vec()), &types).unwrap().len(), 1);
    }

    #[test]
    fn decode_rating_checks_every_field() {
        let good =
            Rating { event_id: vec![0; 16], video_id: vec![7; 16], user_id: vec![8; 16], rating: 4, occurred_at_ms: T };
        let r = rating(Some(&good.encode_to_vec())).unwrap();
        assert_eq!((r.video_id, r.user_id, r.rating), (Uuid::from_bytes([7; 16]), Uuid::from_bytes([8; 16]), 4));
        for (bad, why) in [
            (Rating { rating: 6, ..good.clone() }, "rating 6 is not 1 to 5"),
            (Rating { rating: 0, ..good.clone() }, "rating 0 is not 1 to 5"),
            (Rating { user_id: vec![], ..good.clone() }, "user_id is not 16 bytes"),
            (Rating { video_id: vec![1], ..good.clone() }, "video_id is not 16 bytes"),
            (Rating { event_id: vec![1], ..good.clone() }, "event_id is not 16 bytes"),
            (Rating { occurred_at_ms: 0, ..good.clone() }, "occurred_at_ms is missing"),
            (Rating { occurred_at_ms: 5, ..good.clone() }, "occurred_at_ms 5 is not between 2020 and 2100"),
            (
                Rating { occurred_at_ms: i64::MAX, ..good.clone() },
                "occurred_at_ms 9223372036854775807 is not between 2020 and 2100",
            ),
        ] {
            assert_eq!(reason(rating(Some(&bad.encode_to_vec()))), why);
        }
        assert!(reason(rating(Some(b"\xff\xff"))).starts_with("not a protobuf Rating: "));
        assert_eq!(reason(rating(None)), "empty payload");
    }
}
