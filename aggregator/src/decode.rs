//! Kafka payloads to the counting core's events: protobuf decoding and the checks
//! a message must pass to be counted. A message that fails them is not an error of
//! the aggregator: the owner sends it to the dead-letter topic with the reason
//! ([`DecodeError`]'s text, in the `dlq.reason` header) and moves on.

use counting::{CountedEvent, RatedEvent};
use prost::Message;
use schemas::events::{Event, Rating};
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
    #[error("value {0} is not positive")]
    NotPositive(i64),
    #[error("occurred_at_ms is missing")]
    NoOccurredAt,
    #[error("rating {0} is not 1 to 5")]
    RatingOutOfRange(i32),
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

/// Decodes a message of the events topic into a counted event.
pub fn event(payload: Option<&[u8]>) -> Result<Decoded, DecodeError> {
    let payload = payload.ok_or(DecodeError::Empty)?;
    let e = Event::decode(payload).map_err(|source| DecodeError::NotProtobuf { message: "Event", source })?;
    let video_id = id("video_id", &e.video_id)?;
    let kind = e.kind().ok_or(DecodeError::UnknownEventType(e.event_type))?;
    if e.value < 1 {
        return Err(DecodeError::NotPositive(e.value));
    }
    if e.occurred_at_ms <= 0 {
        return Err(DecodeError::NoOccurredAt);
    }
    let client_id = match (e.client_event_id, <[u8; 16]>::try_from(e.event_id.as_slice())) {
        (false, _) => None,
        (true, Ok(id)) => Some(id),
        (true, Err(_)) => return Err(DecodeError::NotAnId("client event_id")),
    };
    // Only a token-verified user is an activity; a client's word is not.
    let viewer = match (e.user_verified && kind == counting::EventKind::View, Uuid::from_slice(&e.user_id)) {
        (true, Ok(user)) => Some((user, Uuid::from_slice(&e.event_id).unwrap_or_default())),
        _ => None,
    };
    let event = CountedEvent { video_id, kind, occurred_at_ms: e.occurred_at_ms, value: e.value };
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
    let event_id = id("event_id", &r.event_id)?;
    Ok(RatedEvent { video_id, user_id, rating: r.rating, occurred_at_ms: r.occurred_at_ms, event_id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use counting::EventKind;
    use schemas::events::EventType;

    fn reason(r: Result<impl std::fmt::Debug, DecodeError>) -> String {
        r.unwrap_err().to_string()
    }

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
        let d = event(Some(&good.encode_to_vec())).unwrap();
        let e = d.event;
        assert_eq!((e.kind, e.value, e.occurred_at_ms, d.client_id, d.viewer), (EventKind::Like, 3, 5, None, None));
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
        assert_eq!(reason(event(Some(&bad.encode_to_vec()))), "unknown event type 99");
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

    #[test]
    fn decode_rating_checks_every_field() {
        let good =
            Rating { event_id: vec![0; 16], video_id: vec![7; 16], user_id: vec![8; 16], rating: 4, occurred_at_ms: 5 };
        let r = rating(Some(&good.encode_to_vec())).unwrap();
        assert_eq!((r.video_id, r.user_id, r.rating), (Uuid::from_bytes([7; 16]), Uuid::from_bytes([8; 16]), 4));
        for (bad, why) in [
            (Rating { rating: 6, ..good.clone() }, "rating 6 is not 1 to 5"),
            (Rating { rating: 0, ..good.clone() }, "rating 0 is not 1 to 5"),
            (Rating { user_id: vec![], ..good.clone() }, "user_id is not 16 bytes"),
            (Rating { video_id: vec![1], ..good.clone() }, "video_id is not 16 bytes"),
            (Rating { event_id: vec![1], ..good.clone() }, "event_id is not 16 bytes"),
            (Rating { occurred_at_ms: 0, ..good.clone() }, "occurred_at_ms is missing"),
        ] {
            assert_eq!(reason(rating(Some(&bad.encode_to_vec()))), why);
        }
        assert!(reason(rating(Some(b"\xff\xff"))).starts_with("not a protobuf Rating: "));
        assert_eq!(reason(rating(None)), "empty payload");
    }
}
