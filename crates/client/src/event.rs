//! The events the gateway counts, as the client sends them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What happened to a video. Views are what `getViewsCount` answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    #[default]
    View,
    Play,
    Like,
    Share,
    Complete,
}

impl EventType {
    pub const ALL: [EventType; 5] = [Self::View, Self::Play, Self::Like, Self::Share, Self::Complete];

    /// The name on the wire and in the query service's paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Play => "play",
            Self::Like => "like",
            Self::Share => "share",
            Self::Complete => "complete",
        }
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| format!("unknown event type {s:?}"))
    }
}

/// One event, serialised exactly as `POST /api/v1/events` and the batch endpoint
/// take it. Without an `event_id`, the client picks a UUIDv7 before the first
/// attempt and sends that same id on every retry.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub video_id: Uuid,
    pub event_type: EventType,
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
    pub fn new(video_id: Uuid, event_type: EventType) -> Self {
        Self { video_id, event_type, value: None, user_id: None, event_id: None, occurred_at: None }
    }

    pub fn view(video_id: Uuid) -> Self {
        Self::new(video_id, EventType::View)
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
        let e = Event::new(video, EventType::Like).with_value(2).occurred_at(at);
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

    #[test]
    fn types_round_trip_through_their_names() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), t);
        }
        assert!("views".parse::<EventType>().is_err());
    }
}
