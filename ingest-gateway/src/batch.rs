//! Batch bodies, decoded only once their size is known to be within the cap.
//!
//! A 1 MiB protobuf body of empty events is ~500K repeated-field entries of 2 bytes
//! each; decoding it first and counting after would build ~500K structs to throw
//! them away. So the protobuf body is first pre-scanned: a walk over the top-level
//! field tags and lengths (no allocation) that counts the `events` entries and stops
//! at the cap. A JSON array is read element by element and the parse stops at the
//! element past the cap, so at most `max` elements are ever built.

use std::cell::Cell;

use platform::http::{Problem, parse_json};
use prost::Message;
use schemas::events::{Event, EventBatch};
use serde::de::{DeserializeSeed, Error as _, SeqAccess, Visitor};

/// `EventBatch.events`: field 1.
const EVENTS_FIELD: u64 = 1;

/// The batch cap, said the same way for both encodings.
pub fn size_problem(max: usize, got: &str) -> Problem {
    Problem::invalid("body", format!("a batch holds 1 to {max} events, got {got}"))
}

/// Counts `EventBatch.events` entries without decoding them; stops past `max`.
/// `Ok(n)` with `n <= max`, or the problem to answer.
pub fn count_proto_events(mut buf: &[u8], max: usize) -> Result<usize, Problem> {
    let bad = |why: &str| Problem::invalid("body", format!("not a protobuf EventBatch: {why}"));
    let mut n = 0usize;
    while !buf.is_empty() {
        let key = prost::encoding::decode_varint(&mut buf).map_err(|_| bad("bad field key"))?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                prost::encoding::decode_varint(&mut buf).map_err(|_| bad("bad varint"))?;
            }
            1 => buf = buf.get(8..).ok_or_else(|| bad("truncated fixed64"))?,
            5 => buf = buf.get(4..).ok_or_else(|| bad("truncated fixed32"))?,
            2 => {
                let len = prost::encoding::decode_varint(&mut buf).map_err(|_| bad("bad length"))?;
                let len =
                    usize::try_from(len).ok().filter(|l| *l <= buf.len()).ok_or_else(|| bad("truncated field"))?;
                buf = &buf[len..];
                if field == EVENTS_FIELD {
                    n += 1;
                    if n > max {
                        return Err(size_problem(max, &format!("more than {max}")));
                    }
                }
            }
            _ => return Err(bad("unsupported wire type")),
        }
    }
    if n == 0 {
        return Err(size_problem(max, "0"));
    }
    Ok(n)
}

/// A protobuf `EventBatch`, decoded only after [`count_proto_events`] passed.
pub fn decode_proto(bytes: &[u8], max: usize) -> Result<Vec<Event>, Problem> {
    count_proto_events(bytes, max)?;
    let batch =
        EventBatch::decode(bytes).map_err(|e| Problem::invalid("body", format!("not a protobuf EventBatch: {e}")))?;
    Ok(batch.events)
}

/// A JSON array of at most `max` elements, each kept as a JSON value (each item is
/// then validated on its own, so one bad item names its index and field).
pub fn decode_json(bytes: &[u8], max: usize) -> Result<Vec<serde_json::Value>, Problem> {
    let over = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Capped { max, over: &over }.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(items) if items.is_empty() => Err(size_problem(max, "0")),
        Ok(items) => Ok(items),
        Err(_) if over.get() => Err(size_problem(max, &format!("more than {max}"))),
        // Not an array, or malformed: let the usual parser name what is wrong.
        Err(_) => {
            parse_json::<Vec<serde_json::Value>>(bytes).and_then(|_| Err(Problem::invalid("body", "malformed JSON")))
        }
    }
}

struct Capped<'a> {
    max: usize,
    over: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for Capped<'_> {
    type Value = Vec<serde_json::Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Capped<'_> {
    type Value = Vec<serde_json::Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an array of at most {} events", self.max)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<serde_json::Value>()? {
            if out.len() == self.max {
                self.over.set(true);
                return Err(A::Error::custom("too many events"));
            }
            out.push(v);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto(n: usize) -> Vec<u8> {
        EventBatch { events: vec![Event::default(); n] }.encode_to_vec()
    }

    #[test]
    fn the_protobuf_count_stops_at_the_cap() {
        assert_eq!(count_proto_events(&proto(3), 5).unwrap(), 3);
        assert_eq!(count_proto_events(&proto(5), 5).unwrap(), 5);
        assert_eq!(count_proto_events(&proto(6), 5).unwrap_err().field.as_deref(), Some("body"));
        assert!(count_proto_events(&[], 5).is_err());
        // Unknown fields are skipped, as prost would; truncation and groups are refused.
        let mut with_unknown = vec![0x10, 0x05, 0x1d, 1, 2, 3, 4];
        with_unknown.extend(proto(2));
        assert_eq!(count_proto_events(&with_unknown, 5).unwrap(), 2);
        assert!(count_proto_events(&[0x0a, 0x05, 0x00], 5).is_err());
        assert!(count_proto_events(&[0x0b], 5).is_err());
        assert_eq!(decode_proto(&proto(4), 5).unwrap().len(), 4);
    }

    #[test]
    fn the_json_parse_stops_past_the_cap() {
        assert_eq!(decode_json(b"[{},{},{}]", 3).unwrap().len(), 3);
        let p = decode_json(b"[{},{},{},{}", 3).unwrap_err();
        assert!(p.detail.contains("more than 3"), "the cap is found before the syntax error: {p:?}");
        assert!(decode_json(b"[]", 3).unwrap_err().detail.contains("got 0"));
        assert_eq!(decode_json(b"{}", 3).unwrap_err().field.as_deref(), Some("body"));
        assert_eq!(decode_json(b"[{},", 3).unwrap_err().field.as_deref(), Some("body"));
    }
}
