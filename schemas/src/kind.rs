//! The one mapping between the wire's `EventType` and the counting core's
//! [`EventKind`]. The gateway encodes with it and the aggregator decodes with it;
//! both matches are exhaustive, so a type added on one side and not the other
//! fails to compile instead of being dead-lettered at run time.

use counting::EventKind;

use crate::events::{Event, EventType};

impl From<EventKind> for EventType {
    fn from(kind: EventKind) -> Self {
        match kind {
            EventKind::View => EventType::View,
            EventKind::Play => EventType::Play,
            EventKind::Like => EventType::Like,
            EventKind::Share => EventType::Share,
            EventKind::Complete => EventType::Complete,
        }
    }
}

impl EventType {
    /// What this wire type counts; `None` for `EVENT_TYPE_UNSPECIFIED`.
    pub fn kind(self) -> Option<EventKind> {
        match self {
            EventType::Unspecified => None,
            EventType::View => Some(EventKind::View),
            EventType::Play => Some(EventKind::Play),
            EventType::Like => Some(EventKind::Like),
            EventType::Share => Some(EventKind::Share),
            EventType::Complete => Some(EventKind::Complete),
        }
    }
}

impl Event {
    /// The event's kind; `None` when the wire value is unspecified or unknown
    /// (a newer producer's type, or garbage).
    pub fn kind(&self) -> Option<EventKind> {
        EventType::try_from(self.event_type).ok().and_then(EventType::kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_and_nothing_else_counts() {
        for kind in EventKind::ALL {
            let event = Event { event_type: EventType::from(kind) as i32, ..Default::default() };
            assert_eq!(event.kind(), Some(kind));
        }
        for unknown in [EventType::Unspecified as i32, 99, -1] {
            assert_eq!(Event { event_type: unknown, ..Default::default() }.kind(), None, "{unknown}");
        }
    }
}
