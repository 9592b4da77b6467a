//! Countable event types: the five built-ins, plus the names an operator
//! allowlists in config (`event_types`, read by the gateway, the aggregator and the
//! query service alike), so a new type needs no code change.
//!
//! The set is still closed, only no longer fixed at compile time: every type is a
//! set of rollup partitions per video (minute, hour, day and total rows, trending
//! buckets), so accepting arbitrary strings from clients would let anyone grow the
//! database without bound. Hence a name pattern ([`NAME_PATTERN`]) and a cap on the
//! list ([`MAX_EVENT_TYPES`], built-ins included); anything else is refused at the
//! gateway and dead-lettered by the aggregator.
//!
//! [`EventKind`] stays a one-byte `Copy` value, because it sits in every row key
//! (`RowKey`, `SeriesKey`) and is hashed and compared on the hot path: it is an
//! index into a process-wide, append-only table of names. The built-ins are the
//! first five entries, always, so `EventKind::View` and friends are constants and
//! keep the order and wire values they always had. Other names enter the table
//! only through [`EventTypes::new`] (a service's config) or [`EventKind::intern`]
//! (trusted input: rows already in the store, an operator's command line), never
//! from a client's request, which is only looked up; the table holds at most
//! [`TABLE_CAPACITY`] names for the life of the process. Which types a service
//! *accepts* is its own [`EventTypes`] allowlist, not the table: tests run several
//! services with different lists in one process.

use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};

/// Most event types one allowlist may hold, the five built-ins included. Each is
/// more rollup partitions per video (and more work per flush); raise it knowingly.
pub const MAX_EVENT_TYPES: usize = 32;

/// What an event type's name looks like: a lowercase letter, then up to 31
/// lowercase letters, digits or underscores.
pub const NAME_PATTERN: &str = "^[a-z][a-z0-9_]{0,31}$";

/// Longest name, in bytes (the pattern's bound).
pub const MAX_NAME_LEN: usize = 32;

/// Most distinct names one process ever knows (allowlists of several services in
/// one test process, plus names read back from the store).
pub const TABLE_CAPACITY: usize = 256;

/// The type KillrVideo's watch-time route counts, in the default allowlist.
pub const WATCH_SECONDS: &str = "watch_seconds";

const BUILT_IN_NAMES: [&str; 5] = ["view", "play", "like", "share", "complete"];

/// Names past the built-ins, by index; each set once, never changed.
static TABLE: [OnceLock<&'static str>; TABLE_CAPACITY] = [const { OnceLock::new() }; TABLE_CAPACITY];
/// Serialises interning (the next free index); reads never take it.
static NEXT: Mutex<usize> = Mutex::new(BUILT_IN_NAMES.len());

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventKind(u8);

// The built-ins keep the names they had as enum variants, so every `EventKind::View`
// in the code base (and in other branches) still reads and compiles the same.
#[allow(non_upper_case_globals)]
impl EventKind {
    pub const View: EventKind = EventKind(0);
    pub const Play: EventKind = EventKind(1);
    pub const Like: EventKind = EventKind(2);
    pub const Share: EventKind = EventKind(3);
    pub const Complete: EventKind = EventKind(4);
}

impl EventKind {
    /// The five types every deployment counts, in their wire order.
    pub const BUILT_IN: [EventKind; 5] = [Self::View, Self::Play, Self::Like, Self::Share, Self::Complete];

    pub fn as_str(self) -> &'static str {
        match BUILT_IN_NAMES.get(self.0 as usize) {
            Some(name) => name,
            // Only `intern` makes an index past the built-ins, after setting its name.
            None => TABLE[self.0 as usize].get().expect("an interned event kind has a name"),
        }
    }

    /// One of the five built-ins (which travel as the proto enum)?
    pub fn is_built_in(self) -> bool {
        (self.0 as usize) < BUILT_IN_NAMES.len()
    }

    /// The kind of a name this process already knows; never adds one, so it is
    /// safe on a client's input.
    pub fn known(name: &str) -> Option<EventKind> {
        if let Some(i) = BUILT_IN_NAMES.iter().position(|n| *n == name) {
            return Some(EventKind(i as u8));
        }
        // Lock-free: slots fill in order, so the first empty one ends the table.
        TABLE[BUILT_IN_NAMES.len()..]
            .iter()
            .map_while(OnceLock::get)
            .position(|n| *n == name)
            .map(|i| EventKind((BUILT_IN_NAMES.len() + i) as u8))
    }

    /// The kind of `name`, adding it to the process's table if new. For trusted
    /// input only (config, the store, an operator): the table is bounded, and a
    /// full one refuses new names.
    pub fn intern(name: &str) -> Result<EventKind, BadEventType> {
        check_name(name)?;
        let mut next = NEXT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = BUILT_IN_NAMES.iter().position(|n| *n == name) {
            return Ok(EventKind(i as u8));
        }
        if let Some(i) = (BUILT_IN_NAMES.len()..*next).find(|&i| TABLE[i].get() == Some(&name)) {
            return Ok(EventKind(i as u8));
        }
        if *next >= TABLE_CAPACITY {
            return Err(BadEventType::TableFull(name.to_owned()));
        }
        // Leaked once per distinct name, bounded by the table: a `&'static str`
        // keeps `as_str` a plain load.
        let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
        TABLE[*next].set(leaked).expect("only the holder of NEXT sets a slot");
        let kind = EventKind(*next as u8);
        *next += 1;
        Ok(kind)
    }
}

/// Whether `name` matches [`NAME_PATTERN`].
pub fn is_valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= MAX_NAME_LEN
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn check_name(name: &str) -> Result<(), BadEventType> {
    if is_valid_name(name) { Ok(()) } else { Err(BadEventType::Name(shown(name))) }
}

/// A name fit for a log line or an error: hostile input can be long or binary.
pub fn shown(name: &str) -> String {
    if name.len() <= MAX_NAME_LEN && name.chars().all(|c| c.is_ascii_graphic()) {
        name.to_owned()
    } else {
        format!("<{} bytes not matching {NAME_PATTERN}>", name.len())
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Names this process knows (a service checks its own allowlist after).
impl<'de> serde::Deserialize<'de> for EventKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown event type {0:?}; expected one of {1}")]
pub struct UnknownKind(pub String, pub String);

/// Names this process knows; a client's input never adds one.
impl FromStr for EventKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::known(s).ok_or_else(|| UnknownKind(shown(s), BUILT_IN_NAMES.join(", ") + " or a configured type"))
    }
}

/// A config's event types that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BadEventType {
    #[error("event type {0:?} does not match {NAME_PATTERN}")]
    Name(String),
    #[error("event type {0:?} is listed twice (the five built-ins are always counted; list only others)")]
    Duplicate(String),
    #[error(
        "{0} event types are more than {MAX_EVENT_TYPES} (the five built-ins included): each is more rollup partitions per video"
    )]
    TooMany(usize),
    #[error("event type {0:?} would be the process's {TABLE_CAPACITY}th distinct name")]
    TableFull(String),
}

/// One service's allowlist: the built-ins, then the configured names, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventTypes {
    kinds: Vec<EventKind>,
}

impl EventTypes {
    /// The built-ins and `extra` (the config's `event_types`).
    pub fn new<S: AsRef<str>>(extra: &[S]) -> Result<Self, BadEventType> {
        let total = EventKind::BUILT_IN.len() + extra.len();
        if total > MAX_EVENT_TYPES {
            return Err(BadEventType::TooMany(total));
        }
        let mut kinds = EventKind::BUILT_IN.to_vec();
        for name in extra {
            let kind = EventKind::intern(name.as_ref())?;
            if kinds.contains(&kind) {
                return Err(BadEventType::Duplicate(name.as_ref().to_owned()));
            }
            kinds.push(kind);
        }
        Ok(Self { kinds })
    }

    /// The built-ins alone.
    pub fn built_in() -> Self {
        Self { kinds: EventKind::BUILT_IN.to_vec() }
    }

    pub fn contains(&self, kind: EventKind) -> bool {
        self.kinds.contains(&kind)
    }

    /// The allowlisted kind of a name (a client's input: nothing is added).
    pub fn parse(&self, name: &str) -> Result<EventKind, UnknownKind> {
        EventKind::known(name).filter(|k| self.contains(*k)).ok_or_else(|| UnknownKind(shown(name), self.names()))
    }

    /// Every kind, built-ins first.
    pub fn kinds(&self) -> &[EventKind] {
        &self.kinds
    }

    /// `view, play, …`: for error messages.
    pub fn names(&self) -> String {
        self.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// The config default for `event_types`: KillrVideo's watch time.
pub fn default_extra() -> Vec<String> {
    vec![WATCH_SECONDS.to_owned()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in EventKind::BUILT_IN {
            assert_eq!(k.as_str().parse::<EventKind>().unwrap(), k);
            assert!(k.is_built_in());
        }
        assert!("views".parse::<EventKind>().is_err());
        assert_eq!(serde_json::to_string(&EventKind::Like).unwrap(), r#""like""#);
    }

    #[test]
    fn an_allowlist_accepts_its_names_only() {
        let types = EventTypes::new(&["kind_test_clicks", "kind_test_a1"]).unwrap();
        let clicks = types.parse("kind_test_clicks").unwrap();
        assert!(!clicks.is_built_in());
        assert_eq!((clicks.as_str(), types.parse("view").unwrap()), ("kind_test_clicks", EventKind::View));
        assert_eq!(EventTypes::new(&["kind_test_clicks"]).unwrap().parse("kind_test_clicks").unwrap(), clicks);
        // Known to the process, but not on this list.
        let other = EventTypes::built_in();
        let refused = other.parse("kind_test_clicks").unwrap_err().to_string();
        assert!(refused.contains("expected one of view, play, like, share, complete"), "{refused}");
        assert!(types.parse("kind_test_never_listed").is_err());
        assert!(EventKind::known("kind_test_never_listed").is_none(), "a lookup adds nothing");
        assert_eq!(serde_json::from_str::<EventKind>(r#""kind_test_a1""#).unwrap().as_str(), "kind_test_a1");
    }

    #[test]
    fn bad_lists_are_refused() {
        for bad in ["", "Clicks", "1st", "_x", "a-b", "a b", "é", &"a".repeat(33)] {
            assert!(matches!(EventTypes::new(&[bad]), Err(BadEventType::Name(_))), "{bad:?}");
        }
        assert!(EventTypes::new(&["a".repeat(32)]).is_ok(), "32 bytes is the longest");
        assert!(matches!(EventTypes::new(&["view"]), Err(BadEventType::Duplicate(_))));
        assert!(matches!(EventTypes::new(&["kind_test_d", "kind_test_d"]), Err(BadEventType::Duplicate(_))));
        let many: Vec<String> = (0..MAX_EVENT_TYPES - 4).map(|i| format!("kind_test_n{i}")).collect();
        assert!(matches!(EventTypes::new(&many), Err(BadEventType::TooMany(33))));
        assert_eq!(EventTypes::new(&many[1..]).unwrap().kinds().len(), MAX_EVENT_TYPES);
        let long = "x".repeat(1000);
        assert_eq!(shown(&long), format!("<1000 bytes not matching {NAME_PATTERN}>"));
    }
}
