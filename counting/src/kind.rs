//! The closed set of countable event types. Closed on purpose: every type is a
//! set of rollup partitions per video, so accepting arbitrary strings from clients
//! would let anyone grow the database without bound.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    View,
    Play,
    Like,
    Share,
    Complete,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [Self::View, Self::Play, Self::Like, Self::Share, Self::Complete];

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

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown event type {0:?}; expected one of view, play, like, share, complete")]
pub struct UnknownKind(pub String);

impl FromStr for EventKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>().unwrap(), k);
        }
        assert!("views".parse::<EventKind>().is_err());
    }
}
