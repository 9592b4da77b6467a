//! The one mapping between the wire's event type and the counting core's
//! [`EventKind`]. The gateway encodes with it and the aggregator decodes with it.
//!
//! The five built-ins travel as the `EventType` enum, as they always did, so old
//! messages decode unchanged and old readers read new built-in events; a configured
//! type travels by name in `event_type_name` with the enum unspecified. Whether a
//! name counts is the reader's allowlist ([`EventTypes`]), decided here once.

use counting::EventKind;
use counting::kind::{EventTypes, shown};

use crate::events::{Event, EventType};

impl EventType {
    /// The wire value of a built-in kind; `None` for a configured one.
    pub fn of(kind: EventKind) -> Option<EventType> {
        EventType::BUILT_IN.iter().zip(EventKind::BUILT_IN).find(|(_, k)| *k == kind).map(|(t, _)| *t)
    }

    /// In `EventKind::BUILT_IN`'s order.
    const BUILT_IN: [EventType; 5] =
        [EventType::View, EventType::Play, EventType::Like, EventType::Share, EventType::Complete];

    /// What this wire type counts; `None` for `EVENT_TYPE_UNSPECIFIED`.
    pub fn kind(self) -> Option<EventKind> {
        EventType::BUILT_IN.iter().position(|t| *t == self).map(|i| EventKind::BUILT_IN[i])
    }
}

/// Why an event's type does not count here.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KindError {
    /// Neither an enum value nor a name: a producer's bug.
    #[error("unknown event type 0")]
    Unspecified,
    /// An enum value this build does not know.
    #[error("unknown event type {0}")]
    Unnamed(i32),
    /// A built-in value and a name at once: a producer's bug.
    #[error("event type {0} and event_type_name {1:?} are both set")]
    Both(i32, String),
    /// A name the reader's allowlist does not hold (yet).
    #[error("event type {0:?} is not in this service's event_types")]
    NotListed(String),
}

impl Event {
    /// Sets `event_type` and `event_type_name` for `kind`.
    pub fn set_kind(&mut self, kind: EventKind) {
        match EventType::of(kind) {
            Some(t) => (self.event_type, self.event_type_name) = (t as i32, String::new()),
            None => (self.event_type, self.event_type_name) = (EventType::Unspecified as i32, kind.as_str().to_owned()),
        }
    }

    /// The event's kind, if `types` counts it.
    pub fn kind_in(&self, types: &EventTypes) -> Result<EventKind, KindError> {
        match (self.event_type, self.event_type_name.as_str()) {
            (0, "") => Err(KindError::Unspecified),
            (0, name) => types.parse(name).map_err(|_| KindError::NotListed(shown(name))),
            (t, "") => EventType::try_from(t).ok().and_then(EventType::kind).ok_or(KindError::Unnamed(t)),
            (t, name) => Err(KindError::Both(t, shown(name))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_and_nothing_else_counts() {
        let types = EventTypes::new(&["schemas_test_clicks"]).unwrap();
        for &kind in types.kinds() {
            let mut event = Event::default();
            event.set_kind(kind);
            assert_eq!(event.kind_in(&types), Ok(kind));
            assert_eq!(event.event_type_name.is_empty(), kind.is_built_in(), "{kind}");
        }
        // Built-ins keep their enum values: old messages decode unchanged.
        let view = Event { event_type: 1, ..Default::default() };
        assert_eq!(view.kind_in(&EventTypes::built_in()), Ok(EventKind::View));
        let named = Event { event_type_name: "schemas_test_clicks".into(), ..Default::default() };
        assert_eq!(
            named.kind_in(&EventTypes::built_in()),
            Err(KindError::NotListed("schemas_test_clicks".into())),
            "known to the process is not listed"
        );
        for (event, err) in [
            (Event::default(), KindError::Unspecified),
            (Event { event_type: 99, ..Default::default() }, KindError::Unnamed(99)),
            (Event { event_type: -1, ..Default::default() }, KindError::Unnamed(-1)),
            (
                Event { event_type: 1, event_type_name: "view".into(), ..Default::default() },
                KindError::Both(1, "view".into()),
            ),
            (
                Event { event_type_name: "x".repeat(100), ..Default::default() },
                KindError::NotListed("<100 bytes not matching ^[a-z][a-z0-9_]{0,31}$>".into()),
            ),
        ] {
            assert_eq!(event.kind_in(&types), Err(err));
        }
    }
}
