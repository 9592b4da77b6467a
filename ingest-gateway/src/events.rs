//! Validation of incoming events: JSON (or protobuf) in, protobuf `Event` out,
//! or a problem naming the field at fault.

use chrono::{DateTime, Utc};
use counting::{EventKind, EventTypes};
use platform::http::{Problem, parse_uuid};
use platform::openapi::EventTypeSchema;
use schemas::events::Event;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::config::EventRules;
use crate::metrics::EVENTS_OUT_OF_WINDOW;

/// One event as clients post it to `/events` or inside a batch. Optional members
/// may be left out, but not sent as `null`: the document says each is a string
/// (or an integer) when present, and a generated client must not be surprised.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EventIn {
    #[schema(format = Uuid)]
    pub video_id: String,
    /// Default `view`. A built-in, or a type the deployment lists in `event_types`
    /// (`watch_seconds` by default); any other is a 422.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<EventTypeSchema>, nullable = false)]
    pub event_type: Option<String>,
    /// Amount added (default 1); at most `events.max_value` (1,000,000 by default).
    #[serde(default, deserialize_with = "platform::http::some_whole_number")]
    #[schema(minimum = 1, maximum = 1000000, nullable = false)]
    pub value: Option<i64>,
    /// The client's word for who acted (never a verified viewer).
    #[serde(default, deserialize_with = "present")]
    #[schema(format = Uuid, nullable = false)]
    pub user_id: Option<String>,
    /// Client-chosen: a retry with the same id counts once.
    #[serde(default, deserialize_with = "present")]
    #[schema(format = Uuid, nullable = false)]
    pub event_id: Option<String>,
    /// When it happened (default: when received); within [now − 7 days, now + 5
    /// minutes] with the default `events.max_age_secs` and `events.max_future_secs`.
    #[serde(default, deserialize_with = "present")]
    #[schema(format = DateTime, nullable = false)]
    pub occurred_at: Option<String>,
}

/// An optional member that, when present, must not be `null`.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

impl EventRules {
    /// Checks `occurred_at_ms` against the accepted window around `now_ms`; a
    /// refusal is counted in `gateway_events_out_of_window_total` by edge, so an
    /// operator sees late data being turned away (how late may still count is
    /// `max_age_secs`; the README's "Late events").
    pub fn check_time(&self, field: &str, occurred_at_ms: i64, now_ms: i64) -> Result<(), Problem> {
        let out = |edge: &'static str| EVENTS_OUT_OF_WINDOW.counter_with(&[("edge", edge)]).increment(1);
        if occurred_at_ms < now_ms - self.max_age_secs * 1000 {
            out("late");
            return Err(Problem::invalid(field, format!("is more than {} seconds in the past", self.max_age_secs)));
        }
        if occurred_at_ms > now_ms + self.max_future_secs * 1000 {
            out("future");
            return Err(Problem::invalid(
                field,
                format!("is more than {} seconds in the future", self.max_future_secs),
            ));
        }
        Ok(())
    }

    /// A view of `video_id` happening now: the body-less `/view` endpoint.
    /// KillrVideo's view; `viewer` is the signed-in user, from a verified token.
    pub fn view_now(&self, video_id: Uuid, viewer: Option<Uuid>, now_ms: i64) -> Event {
        self.now(EventKind::View, video_id, viewer, 1, now_ms)
    }

    /// `value` of `kind` happening now, by `viewer` (verified) if signed in: the
    /// KillrVideo routes, which have no body to say more.
    pub fn now(&self, kind: EventKind, video_id: Uuid, viewer: Option<Uuid>, value: i64, now_ms: i64) -> Event {
        let mut event = Event {
            event_id: Uuid::now_v7().as_bytes().to_vec(),
            video_id: video_id.as_bytes().to_vec(),
            occurred_at_ms: now_ms,
            received_at_ms: now_ms,
            value,
            user_id: viewer.map(|u| u.as_bytes().to_vec()).unwrap_or_default(),
            client_event_id: false,
            user_verified: viewer.is_some(),
            correction: false,
            ..Default::default()
        };
        event.set_kind(kind);
        event
    }

    /// Validates one JSON event; `at` prefixes field names inside a batch (`[3].`).
    /// Its type must be on `types` (the config's `event_types`).
    pub fn validate(&self, types: &EventTypes, e: EventIn, at: &str, now_ms: i64) -> Result<Event, Problem> {
        let f = |name: &str| format!("{at}{name}");
        let video_id = parse_uuid(&f("videoId"), &e.video_id)?;
        let kind = match e.event_type.as_deref() {
            None => EventKind::View,
            Some(s) => types.parse(s).map_err(|err| Problem::invalid(f("eventType"), err.to_string()))?,
        };
        let value = e.value.unwrap_or(1);
        if !(1..=self.max_value).contains(&value) {
            return Err(Problem::invalid(f("value"), format!("must be between 1 and {}", self.max_value)));
        }
        let user_id = match e.user_id.as_deref() {
            None => Vec::new(),
            Some(s) => parse_uuid(&f("userId"), s)?.as_bytes().to_vec(),
        };
        let client_event_id = e.event_id.is_some();
        let event_id = match e.event_id.as_deref() {
            None => Uuid::now_v7(),
            Some(s) => parse_uuid(&f("eventId"), s)?,
        };
        let occurred_at_ms = match e.occurred_at.as_deref() {
            None => now_ms,
            Some(s) => {
                let t = DateTime::parse_from_rfc3339(s)
                    .map_err(|_| Problem::invalid(f("occurredAt"), format!("{s:?} is not an RFC 3339 timestamp")))?;
                let ms = t.with_timezone(&Utc).timestamp_millis();
                self.check_time(&f("occurredAt"), ms, now_ms)?;
                ms
            }
        };
        let mut event = Event {
            event_id: event_id.as_bytes().to_vec(),
            video_id: video_id.as_bytes().to_vec(),
            occurred_at_ms,
            received_at_ms: now_ms,
            value,
            user_id,
            client_event_id,
            // A client's userId is its word, never a verified viewer.
            user_verified: false,
            correction: false,
            ..Default::default()
        };
        event.set_kind(kind);
        Ok(event)
    }

    /// Validates an event that arrived as protobuf (in a batch).
    pub fn validate_proto(&self, types: &EventTypes, mut e: Event, at: &str, now_ms: i64) -> Result<Event, Problem> {
        let f = |name: &str| format!("{at}{name}");
        if e.video_id.len() != 16 {
            return Err(Problem::invalid(f("videoId"), "must be 16 bytes"));
        }
        if let Err(err) = e.kind_in(types) {
            return Err(Problem::invalid(f("eventType"), format!("{err}; expected one of {}", types.names())));
        }
        if e.correction || e.correction_events != 0 {
            // Compensating events come from the operator's tool, straight to Kafka.
            let field = if e.correction { "correction" } else { "correctionEvents" };
            return Err(Problem::invalid(f(field), "only an operator sets it (vcount-admin correct)"));
        }
        if !e.packed.is_empty() {
            // Packs are the gateway's own wire format, never a client's.
            return Err(Problem::invalid(f("packed"), "must be empty: send the events as items of the batch"));
        }
        if e.value == 0 {
            e.value = 1;
        }
        if !(1..=self.max_value).contains(&e.value) {
            return Err(Problem::invalid(f("value"), format!("must be between 1 and {}", self.max_value)));
        }
        if !(e.user_id.is_empty() || e.user_id.len() == 16) {
            return Err(Problem::invalid(f("userId"), "must be empty or 16 bytes"));
        }
        e.client_event_id = !e.event_id.is_empty();
        // Only the gateway's signed-in view route may vouch for a user.
        e.user_verified = false;
        if e.event_id.is_empty() {
            e.event_id = Uuid::now_v7().as_bytes().to_vec();
        } else if e.event_id.len() != 16 {
            return Err(Problem::invalid(f("eventId"), "must be 16 bytes"));
        }
        if e.occurred_at_ms == 0 {
            e.occurred_at_ms = now_ms;
        } else {
            self.check_time(&f("occurredAt"), e.occurred_at_ms, now_ms)?;
        }
        e.received_at_ms = now_ms;
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::events::EventType;

    const NOW: i64 = 1_710_028_800_000;

    fn types() -> EventTypes {
        EventTypes::new(&["watch_seconds", "gateway_test_clicks"]).unwrap()
    }

    fn event(json: &str) -> Result<Event, Problem> {
        let e: EventIn = serde_json::from_str(json).unwrap();
        EventRules::default().validate(&types(), e, "", NOW)
    }

    #[test]
    fn listed_types_are_accepted_and_others_refused_naming_the_field() {
        let v = "550e8400-e29b-41d4-a716-446655440000";
        let e = event(&format!(r#"{{"videoId":"{v}","eventType":"gateway_test_clicks","value":3}}"#)).unwrap();
        assert_eq!((e.event_type, e.event_type_name.as_str(), e.value), (0, "gateway_test_clicks", 3));
        let e = event(&format!(r#"{{"videoId":"{v}","eventType":"like"}}"#)).unwrap();
        assert_eq!((e.event_type, e.event_type_name.as_str()), (EventType::Like as i32, ""), "built-ins as before");
        for refused in ["gateway_test_never_listed", "Clicks", "watch-seconds", &"x".repeat(300)] {
            let p = event(&format!(r#"{{"videoId":"{v}","eventType":"{refused}"}}"#)).unwrap_err();
            assert_eq!((p.status, p.field.as_deref()), (422, Some("eventType")), "{refused}");
            assert!(p.detail.contains("expected one of view, play, like, share, complete, watch_seconds"), "{p:?}");
            assert!(p.detail.len() < 300, "a long name is not echoed back: {}", p.detail);
        }
        // The same by protobuf: a name must be listed, and not sent beside a built-in.
        let rules = EventRules::default();
        let named =
            Event { video_id: vec![1; 16], event_type_name: "gateway_test_clicks".into(), ..Default::default() };
        assert_eq!(
            rules.validate_proto(&types(), named.clone(), "", NOW).unwrap().event_type_name,
            "gateway_test_clicks"
        );
        for bad in [
            Event { event_type_name: "gateway_test_never_listed".into(), ..named.clone() },
            Event { event_type: EventType::View as i32, ..named.clone() },
            Event { event_type_name: String::new(), ..named.clone() },
        ] {
            let p = rules.validate_proto(&types(), bad, "[1].", NOW).unwrap_err();
            assert_eq!((p.status, p.field.as_deref()), (422, Some("[1].eventType")));
        }
    }

    #[test]
    fn null_is_not_an_absent_member() {
        for member in ["eventType", "value", "userId", "eventId", "occurredAt"] {
            let body = format!(r#"{{"videoId":"550e8400-e29b-41d4-a716-446655440000","{member}":null}}"#);
            let p = platform::http::parse_json::<EventIn>(body.as_bytes()).unwrap_err();
            assert_eq!(p.field.as_deref(), Some(member), "{body}");
        }
        let whole = r#"{"videoId":"550e8400-e29b-41d4-a716-446655440000","value":5.0}"#;
        assert_eq!(platform::http::parse_json::<EventIn>(whole.as_bytes()).unwrap().value, Some(5));
        let half = r#"{"videoId":"550e8400-e29b-41d4-a716-446655440000","value":5.5}"#;
        assert_eq!(platform::http::parse_json::<EventIn>(half.as_bytes()).unwrap_err().field.as_deref(), Some("value"));
        let absent = r#"{"videoId":"550e8400-e29b-41d4-a716-446655440000"}"#;
        assert!(platform::http::parse_json::<EventIn>(absent.as_bytes()).is_ok());
    }

    #[test]
    fn a_full_event_is_accepted() {
        let e = event(
            r#"{"videoId":"550e8400-e29b-41d4-a716-446655440000","eventType":"play","value":2,
                "userId":"7f3e1a2b-dead-beef-cafe-123456789abc","occurredAt":"2024-03-09T23:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(e.event_type, EventType::Play as i32);
        assert_eq!((e.value, e.occurred_at_ms, e.received_at_ms), (2, NOW - 3_600_000, NOW));
        assert_eq!((e.video_id.len(), e.user_id.len(), e.event_id.len()), (16, 16, 16));
        assert!(!e.user_verified, "a client's userId is never a verified viewer");
    }

    #[test]
    fn only_the_gateway_vouches_for_a_viewer() {
        let rules = EventRules::default();
        let forged = Event {
            video_id: vec![1; 16],
            event_type: EventType::View as i32,
            occurred_at_ms: NOW,
            user_id: vec![2; 16],
            user_verified: true,
            ..Default::default()
        };
        assert!(!rules.validate_proto(&types(), forged.clone(), "", NOW).unwrap().user_verified);
        // Nor may a client send a compensating event: it could take views away.
        let taking = Event { correction: true, value: 5, ..forged.clone() };
        let refused = rules.validate_proto(&types(), taking, "[2].", NOW).unwrap_err();
        assert!(format!("{refused:?}").contains("[2].correction"), "{refused:?}");
        let counting = Event { correction_events: -3, ..forged.clone() };
        let refused = rules.validate_proto(&types(), counting, "", NOW).unwrap_err();
        assert!(format!("{refused:?}").contains("correctionEvents"), "{refused:?}");
        // Nor a pack: its events would skip every check made here.
        let packing = Event { packed: vec![forged.clone(); 2], ..forged.clone() };
        let refused = rules.validate_proto(&types(), packing, "[1].", NOW).unwrap_err();
        assert!(format!("{refused:?}").contains("[1].packed"), "{refused:?}");
        let user = Uuid::from_bytes([3; 16]);
        let signed_in = rules.view_now(Uuid::from_bytes([1; 16]), Some(user), NOW);
        assert!(signed_in.user_verified && signed_in.user_id == user.as_bytes().to_vec());
        let anonymous = rules.view_now(Uuid::from_bytes([1; 16]), None, NOW);
        assert!(!anonymous.user_verified && anonymous.user_id.is_empty());
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (r#"{"videoId":"nope"}"#, "videoId"),
            (r#"{"videoId":"550e8400e29b41d4a716446655440000"}"#, "videoId"),
            (r#"{"videoId":"550e8400-e29b-41d4-a716-446655440000","eventType":"views"}"#, "eventType"),
            (r#"{"videoId":"550e8400-e29b-41d4-a716-446655440000","value":0}"#, "value"),
            (r#"{"videoId":"550e8400-e29b-41d4-a716-446655440000","occurredAt":"yesterday"}"#, "occurredAt"),
            (r#"{"videoId":"550e8400-e29b-41d4-a716-446655440000","occurredAt":"2020-01-01T00:00:00Z"}"#, "occurredAt"),
            (r#"{"videoId":"550e8400-e29b-41d4-a716-446655440000","occurredAt":"2030-01-01T00:00:00Z"}"#, "occurredAt"),
            (r#"{"videoId":"550e8400-e29b-41d4-a716-446655440000","userId":"x"}"#, "userId"),
        ];
        for (json, field) in cases {
            let p = event(json).unwrap_err();
            assert_eq!(p.status, 422, "{json}");
            assert_eq!(p.field.as_deref(), Some(field), "{json}");
        }
    }
}
