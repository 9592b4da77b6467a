//! Moderation rules: what can be flagged and why, a flag's statuses and which of
//! them resolve it, and the limits on moderators' free text.
//!
//! Approving a flag soft-deletes the content; rejecting it, or moving it back to
//! open or under review, changes nothing on the content: unhiding is always an
//! explicit restore. (How a status change is made safe against concurrent actions
//! is `store::flags`.)

use chrono::{DateTime, Utc};
use platform::http::Problem;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// What can be flagged and hidden.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContentType {
    Video,
    Comment,
}

impl ContentType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Video => "video",
            Self::Comment => "comment",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Video, Self::Comment].into_iter().find(|v| v.as_str() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    Spam,
    Inappropriate,
    Harassment,
    Copyright,
    Other,
}

impl ReasonCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spam => "spam",
            Self::Inappropriate => "inappropriate",
            Self::Harassment => "harassment",
            Self::Copyright => "copyright",
            Self::Other => "other",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlagStatus {
    Open,
    UnderReview,
    Approved,
    Rejected,
}

impl FlagStatus {
    pub const ALL: [Self; 4] = [Self::Open, Self::UnderReview, Self::Approved, Self::Rejected];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::UnderReview => "under_review",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn resolves(self) -> bool {
        matches!(self, Self::Approved | Self::Rejected)
    }
}

/// The listing partition that holds every flag, whatever its status.
pub const ALL_FLAGS: &str = "all";
pub const MAX_REASON_CHARS: usize = 500;
pub const MAX_NOTES_CHARS: usize = 1000;
/// User search: answers at most this many users, scanning at most that many rows.
pub const USER_SEARCH_LIMIT: usize = 50;
pub const USER_SEARCH_SCAN: usize = 10_000;

/// KillrVideo's Flag.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Flag {
    pub flag_id: Uuid,
    #[schema(value_type = ContentType)]
    pub content_type: String,
    pub content_id: Option<Uuid>,
    #[schema(value_type = ReasonCode)]
    pub reason_code: String,
    pub reason_text: Option<String>,
    pub user_id: Option<Uuid>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    #[schema(value_type = FlagStatus)]
    pub status: String,
    pub moderator_id: Option<Uuid>,
    pub moderator_notes: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Bumped by every action; fences the listing writes.
    #[serde(skip)]
    #[schema(ignore)]
    pub version: i32,
}

impl Flag {
    /// Write timestamp (µs) of the listing rows written at `version`.
    pub fn listing_ts(&self, version: i32) -> i64 {
        self.created_at.map_or(0, |t| t.timestamp_micros()) + i64::from(version)
    }
}

/// Optional free text: trimmed, empty is none, at most `max` characters.
pub fn optional_text(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, Problem> {
    match value.map(|v| v.trim().to_owned()) {
        Some(v) if v.chars().count() > max => Err(Problem::invalid(field, format!("at most {max} characters"))),
        Some(v) if v.is_empty() => Ok(None),
        v => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_from_their_wire_names_only() {
        for s in FlagStatus::ALL {
            assert_eq!(FlagStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(FlagStatus::parse("closed"), None);
        assert_eq!(FlagStatus::parse("Open"), None);
        assert!(FlagStatus::Approved.resolves() && FlagStatus::Rejected.resolves());
        assert!(!FlagStatus::Open.resolves() && !FlagStatus::UnderReview.resolves());
    }
}
