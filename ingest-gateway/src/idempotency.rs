//! `Idempotency-Key`: a client that retries a request whose answer it lost (a
//! KillrVideo `/view` whose 204 never arrived) sends the same key again, and the
//! retry counts once.
//!
//! The gateway keeps no state for it. It turns the key into the event's id, a
//! name-based UUID (v5) of who is asking, the video, the event type and the key,
//! and marks that id client-chosen: from there it is an `eventId` like any other,
//! and the aggregator's dedup window (`aggregator.dedup.window_secs`, 10 minutes by
//! default, decided from the log so it holds across owners and crashes) drops the
//! repeats. A retry later than the window counts again, as with `eventId`.
//!
//! The same mechanism makes a signed-in user's views of a video count once per
//! window when `events.view_once_per_user_secs` is set ([`once_per_window`]): the
//! id is then named by the user, the video and the window's index, so every view
//! in the window is a "retry" of the first. The aggregator decides it from the log
//! (its dedup window must be at least as long as the view window, or a repeat later
//! than the dedup window counts again), so it is exact under replays and owner
//! changes; its memory is the dedup window's, about 60 bytes per id seen in the
//! window on each partition.
//!
//! Who is asking is part of the name, so one caller's key can never silence
//! another's views: a signed-in user by id, a producer key by its position in the
//! config, and anonymous callers as one caller (not by IP: a phone that retries
//! from a new address must still count once; an anonymous key is a random string
//! nobody else knows).

use axum::http::HeaderMap;
use platform::http::Problem;
use schemas::events::Event;
use uuid::Uuid;

use crate::policy::Caller;

/// The header, as the IETF draft `draft-ietf-httpapi-idempotency-key-header` names it.
pub const HEADER: &str = "Idempotency-Key";
/// Longest key accepted, in bytes (the draft suggests a UUID; 255 leaves room).
pub const MAX_LEN: usize = 255;

/// Namespace of the ids made from keys (a fixed random UUID: changing it would
/// make a retry in flight during an upgrade count twice).
const NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a4e_93d7_4b8e_a0c5_1d2e_7f3a_9b60);

/// The event id a key stands for, or `None` without the header; 422 naming the
/// header for an empty, too long or non-printable key.
pub fn event_id(headers: &HeaderMap, caller: &Caller, video: Uuid, event_type: &str) -> Result<Option<Uuid>, Problem> {
    let Some(raw) = headers.get(HEADER) else { return Ok(None) };
    let key = raw.as_bytes();
    if key.is_empty() || key.len() > MAX_LEN || !key.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(Problem::invalid(HEADER, format!("must be 1 to {MAX_LEN} visible ASCII characters")));
    }
    let who = match caller {
        Caller::User(user) => format!("user:{user}"),
        Caller::Key { index } => format!("key:{index}"),
        Caller::Anonymous(_) => "anonymous".to_owned(),
    };
    let mut name = format!("{who}\n{video}\n{event_type}\n").into_bytes();
    name.extend_from_slice(key);
    Ok(Some(Uuid::new_v5(&NAMESPACE, &name)))
}

/// The event type as it enters a key's name: a built-in's wire number (as before
/// configured types existed, so a retry across the upgrade still counts once), or
/// a configured type's name (never all digits: names start with a letter).
pub fn type_tag(event: &Event) -> String {
    if event.event_type_name.is_empty() { event.event_type.to_string() } else { event.event_type_name.clone() }
}

/// The event id of a signed-in `user`'s view of `video` at `now_ms` when views
/// count once per `window_secs` (fixed windows from the Unix epoch).
pub fn once_per_window(user: Uuid, video: Uuid, window_secs: u64, now_ms: i64) -> Uuid {
    let window = now_ms.div_euclid(1000 * window_secs as i64);
    Uuid::new_v5(&NAMESPACE, format!("once\nuser:{user}\n{video}\n{window_secs}\n{window}").as_bytes())
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use axum::http::HeaderValue;

    use super::*;

    fn with_key(key: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_str(key).unwrap());
        h
    }

    #[test]
    fn the_same_key_is_the_same_event_only_for_the_same_caller_video_and_type() {
        let (v, w) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let anon = |last| Caller::Anonymous(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)));
        let user = Caller::User(Uuid::from_u128(7));
        let id = |h: &HeaderMap, c: &Caller, v, t: u8| event_id(h, c, v, &t.to_string()).unwrap().unwrap();
        let k = with_key("3f2c9a1e-retry-me");
        assert_eq!(id(&k, &anon(1), v, 1), id(&k, &anon(2), v, 1), "a retry from a new address");
        assert_ne!(id(&k, &anon(1), v, 1), id(&k, &anon(1), w, 1));
        assert_ne!(id(&k, &anon(1), v, 1), id(&k, &anon(1), v, 2));
        assert_ne!(id(&k, &anon(1), v, 1), id(&k, &user, v, 1));
        assert_ne!(id(&k, &Caller::Key { index: 0 }, v, 1), id(&k, &Caller::Key { index: 1 }, v, 1));
        let named = |name: &str| event_id(&k, &user, v, name).unwrap().unwrap();
        assert_ne!(named("watch_seconds"), named("clicks"), "configured types are told apart by name");
        let watch = Event { event_type_name: "watch_seconds".into(), ..Default::default() };
        assert_eq!(type_tag(&watch), "watch_seconds");
        assert_eq!(type_tag(&Event { event_type: 1, ..Default::default() }), "1", "built-ins keep their ids");
        assert_ne!(id(&k, &user, v, 1), id(&with_key("3f2c9a1e-retry-mf"), &user, v, 1));
        assert_eq!(event_id(&HeaderMap::new(), &user, v, "1").unwrap(), None);
    }

    #[test]
    fn a_users_views_share_an_id_within_a_window_only() {
        let (u, v, w) = (Uuid::from_u128(7), Uuid::from_u128(1), Uuid::from_u128(2));
        let hour = 3_600_000;
        let at = |ms| once_per_window(u, v, 3600, ms);
        assert_eq!(at(5 * hour), at(6 * hour - 1));
        assert_ne!(at(6 * hour - 1), at(6 * hour));
        assert_ne!(at(5 * hour), once_per_window(u, w, 3600, 5 * hour));
        assert_ne!(at(5 * hour), once_per_window(Uuid::from_u128(8), v, 3600, 5 * hour));
        assert_ne!(at(5 * hour), once_per_window(u, v, 7200, 5 * hour), "another setting, another window");
    }

    #[test]
    fn bad_keys_are_named() {
        let user = Caller::User(Uuid::from_u128(7));
        for bad in ["", "has space", &"k".repeat(MAX_LEN + 1)] {
            let p = event_id(&with_key(bad), &user, Uuid::nil(), "1").unwrap_err();
            assert_eq!(p.field.as_deref(), Some(HEADER), "{bad:?}");
        }
        assert!(event_id(&with_key(&"k".repeat(MAX_LEN)), &user, Uuid::nil(), "1").unwrap().is_some());
    }
}
