//! Fuzz targets: what a client sends, through the code that first reads it. Each
//! target takes arbitrary bytes and checks properties beyond "does not panic".
//!
//! Why libFuzzer, on stable Rust: coverage guidance finds the inputs random
//! generation never reaches (a varint that overflows a length, a JSON array whose
//! 1001st element is malformed). cargo-fuzz wants nightly for its sanitizer flags,
//! but libFuzzer itself only needs the sanitizer-coverage instrumentation, which
//! stable rustc exposes as ordinary `-C` codegen options (`-Cpasses=sancov-module`
//! and LLVM's `-sanitizer-coverage-*`); `scripts/fuzz` builds the binaries with them,
//! no `RUSTC_BOOTSTRAP`. Our code forbids `unsafe`, so AddressSanitizer, the main
//! thing nightly would add, has little to find here. afl.rs would also need its
//! own AFL++ build and LLVM plugins; proptest/bolero without an engine generate
//! blindly.
//!
//! The same functions run in the ordinary test build over the kept corpus
//! (`fuzz/corpus/<target>/`, `tests/corpus.rs`), so every input that once found a
//! bug stays a regression test without the instrumented build.

use chrono::{DateTime, Utc};
use counting::series::{bucket_count, buckets_at_most};
use counting::time::{Granularity, MINUTE_MS};
use ingest_gateway::batch::{count_proto_events, decode_json};
use ingest_gateway::config::EventRules;
use ingest_gateway::events::EventIn;
use prost::Message;
use schemas::events::EventBatch;

// Fuzzed where it is, without moving it out of the query service: it is pure and
// depends on nothing but `std`.
#[allow(dead_code)]
#[path = "../../query-service/src/domain/youtube.rs"]
mod youtube;

/// A fixed "now" (2024-03-10T00:00:00Z), so a crash reproduces.
const NOW: i64 = 1_710_028_800_000;

/// One JSON event as `POST /events` reads it: parsed, then validated. Accepted
/// events are well-formed; refusals are 422s naming a field.
pub fn event_json(data: &[u8]) {
    let rules = EventRules::default();
    match platform::http::parse_json::<EventIn>(data) {
        Ok(e) => match rules.validate(&types(), e, "", NOW) {
            Ok(ev) => check_event(&rules, &ev),
            Err(p) => assert!(p.status == 422 && p.field.is_some(), "{p:?}"),
        },
        Err(p) => assert!(p.status == 422 && p.field.is_some(), "{p:?}"),
    }
}

/// The gateway's default allowlist (the built-ins and `watch_seconds`).
fn types() -> counting::EventTypes {
    counting::EventTypes::new(&counting::kind::default_extra()).expect("the default list is valid")
}

fn check_event(rules: &EventRules, ev: &schemas::events::Event) {
    assert_eq!((ev.video_id.len(), ev.event_id.len()), (16, 16));
    assert!(ev.user_id.is_empty() || ev.user_id.len() == 16);
    assert!((1..=rules.max_value).contains(&ev.value), "{}", ev.value);
    assert!(ev.occurred_at_ms >= NOW - rules.max_age_secs * 1000);
    assert!(ev.occurred_at_ms <= NOW + rules.max_future_secs * 1000);
    assert!(!ev.user_verified, "no client input may vouch for a viewer");
    assert!(ev.packed.is_empty(), "no client input is a pack");
}

/// A batch body. The first byte picks the encoding and a cap (1..=16, so the cap
/// is hit often); the rest is the body. The bounded readers must agree with the
/// unbounded ones wherever both succeed, and never let more than the cap through.
pub fn event_batch(data: &[u8]) {
    let Some((&head, body)) = data.split_first() else { return };
    let max = usize::from(head & 0x0f) + 1;
    let rules = EventRules::default();
    let types = types();
    if head & 0x80 != 0 {
        let counted = count_proto_events(body, max);
        let decoded = EventBatch::decode(body);
        if let (Ok(n), Ok(batch)) = (&counted, &decoded) {
            assert_eq!(*n, batch.events.len(), "the pre-scan and prost disagree on the count");
        }
        if let Ok(batch) = &decoded
            && (batch.events.is_empty() || batch.events.len() > max)
        {
            assert!(counted.is_err(), "{} events passed a cap of {max}", batch.events.len());
        }
        if let (Ok(_), Ok(batch)) = (counted, decoded) {
            for (i, e) in batch.events.into_iter().enumerate() {
                if let Ok(ev) = rules.validate_proto(&types, e, &format!("[{i}]."), NOW) {
                    check_event(&rules, &ev);
                }
            }
        }
    } else {
        let bounded = decode_json(body, max);
        let full = serde_json::from_slice::<Vec<serde_json::Value>>(body);
        match (&bounded, &full) {
            (Ok(items), Ok(all)) => assert_eq!(items, all),
            (Ok(items), Err(e)) => panic!("the bounded parse took {} items the full parse refuses: {e}", items.len()),
            (Err(p), Ok(all)) => {
                assert!(all.is_empty() || all.len() > max, "{} items refused under a cap of {max}: {p:?}", all.len())
            }
            (Err(_), Err(_)) => {}
        }
        if let Ok(items) = bounded {
            assert!((1..=max).contains(&items.len()));
            for (i, v) in items.into_iter().enumerate() {
                if let Ok(e) = serde_json::from_value::<EventIn>(v)
                    && let Ok(ev) = rules.validate(&types, e, &format!("[{i}]."), NOW)
                {
                    check_event(&rules, &ev);
                }
            }
        }
    }
}

/// A pasted YouTube URL: an id, when there is one, is 11 URL-safe characters.
pub fn youtube_url(data: &[u8]) {
    let Ok(url) = std::str::from_utf8(data) else { return };
    if let Some(id) = youtube::video_id(url) {
        assert_eq!(id.len(), 11, "{url:?} -> {id:?}");
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{url:?} -> {id:?}");
        assert_eq!(youtube::video_id(url).as_deref(), Some(id.as_str()));
    }
}

/// `from|to|step` as the counts API takes them: RFC 3339 bounds (parsed as the query
/// service parses them) and a step. The bucket count comes before any allocation,
/// at most 1440 buckets are ever built, the range plan tiles the range, and the
/// retention-aware plans the API answers with read only rows still kept.
pub fn query_range(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(3, '|');
    let (Some(from), Some(to), step) = (parts.next(), parts.next(), parts.next()) else { return };
    let parse = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc).timestamp_millis());
    let (Ok(from), Ok(to)) = (parse(from), parse(to)) else { return };
    if let Some(step) = step.and_then(Granularity::parse)
        && let Some(n) = bucket_count(from, to, step)
    {
        match buckets_at_most(from, to, step, 1440) {
            Some(Ok(b)) => {
                let width = step.width_ms().expect("a stepped granularity");
                assert_eq!(b.len() as u64, n);
                assert!(b[0] <= from && b[b.len() - 1] + width >= to);
                assert!(b.windows(2).all(|w| w[1] - w[0] == width));
            }
            Some(Err(over)) => assert!(over == n && n > 1440),
            None => panic!("counted {n} buckets but built none"),
        }
    }
    let spans = counting::range::plan_range(from, to);
    let (a, b) = (from.div_euclid(MINUTE_MS) * MINUTE_MS, to.div_euclid(MINUTE_MS) * MINUTE_MS);
    if a >= b {
        assert!(spans.is_empty());
    } else {
        assert_eq!((spans[0].start, spans[spans.len() - 1].end), (a, b));
        assert!(spans.windows(2).all(|w| w[0].end == w[1].start), "{spans:?}");
        assert!(spans.len() <= 5, "{spans:?}");
    }
    // What the API runs, with the default retention at the fixed now: a plan of
    // kept rows only, in at most 5 reads, covering at least the asked range (days
    // are kept forever by default, so no edge moves in); a series of kept buckets
    // only, at most 1440, at the step asked or the finest that fits.
    let kept = counting::Retention::default().horizons(NOW);
    if from < to {
        let p = counting::plan(from, to, &kept).expect("day rows are kept forever by default");
        assert!(p.from <= from && p.to >= to, "{p:?}");
        assert!(p.spans.len() <= 5 && !p.spans.is_empty(), "{p:?}");
        assert_eq!((p.spans[0].start, p.spans[p.spans.len() - 1].end), (p.from, p.to));
        assert!(p.spans.windows(2).all(|w| w[0].end == w[1].start), "{p:?}");
        assert!(p.spans.iter().all(|s| kept.kept(s.granularity, s.start)), "{p:?} {kept:?}");
    }
    let step = step.and_then(Granularity::parse).filter(|g| *g != Granularity::Total);
    if let Ok(s) = counting::series::plan_series(from, to, step, &kept) {
        let width = s.step.width_ms().expect("a stepped granularity");
        assert!(s.buckets.len() <= 1440 && step.is_none_or(|g| g == s.step));
        assert!(s.buckets[0] <= from && s.buckets[s.buckets.len() - 1] + width >= to);
        assert!(kept.kept(s.step, s.buckets[0]), "{s:?} {kept:?}");
    }
}
