//! The events the gateway counts, as the client sends them.

use chrono::{DateTime, Utc};
pub use counting::EventKind;
use serde::Serialize;
use uuid::Uuid;

/// One event, serialised exactly as `POST /api/v1/events` and the batch endpoint
/// take it. Without an `event_id`, the client picks a UUIDv7 before the first
/// attempt and sends that same id on every retry.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub video_id: Uuid,
    pub event_type: EventKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
}

impl Event {
    pub fn new(video_id: Uuid, event_type: EventKind) -> Self {
        Self { video_id, event_type, value: None, user_id: None, event_id: None, occurred_at: None }
    }

    pub fn view(video_id: Uuid) -> Self {
        Self::new(video_id, EventKind::View)
    }

    pub fn with_value(mut self, value: i64) -> Self {
        self.value = Some(value);
        self
    }

    pub fn with_user(mut self, user_id: Uuid) -> Self {
        self.user_id = Some(user_id);
        self
    }

    pub fn with_event_id(mut self, event_id: Uuid) -> Self {
        self.event_id = Some(event_id);
        self
    }

    pub fn occurred_at(mut self, at: DateTime<Utc>) -> Self {
        self.occurred_at = Some(at);
        self
    }

    /// The event's id, chosen now (UUIDv7) if it has none. A caller that may
    /// resend the event later, after an error, calls this first and keeps the id.
    pub fn ensure_id(&mut self) -> Uuid {
        *self.event_id.get_or_insert_with(Uuid::now_v7)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_the_gateway_reads_it() {
        let video = Uuid::parse_str("550e8400-e29b-41d4-a716-446655440000").unwrap();
        let at = DateTime::parse_from_rfc3339("2024-03-09T23:00:00Z").unwrap().with_timezone(&Utc);
        let e = Event::new(video, EventKind::Like).with_value(2).occurred_at(at);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"videoId": video, "eventType": "like", "value": 2, "occurredAt": "2024-03-09T23:00:00Z"})
        );
        let mut e = Event::view(video);
        let id = e.ensure_id();
        assert_eq!(e.ensure_id(), id, "an id, once chosen, stays");
        assert_eq!(id.get_version_num(), 7);
    }
}
