//! The ledger of acknowledged events, and the check of the counts against it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use uuid::Uuid;
use vcount_client::EventKind;

use crate::workload::Record;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;

#[derive(Default)]
pub struct Ledger {
    totals: HashMap<(Uuid, EventKind), u64>,
    /// Views of the sampled videos whose `occurredAt` the harness chose, for
    /// the range checks.
    sampled: HashSet<Uuid>,
    times: HashMap<Uuid, Vec<i64>>,
    /// A sampled video got an event whose time the server chose: no range check.
    untimed: bool,
    /// Events whose request failed without saying they were not written: each
    /// may be counted or not (see `drive::Sent::unconfirmed`).
    unconfirmed: HashMap<(Uuid, EventKind), u64>,
    unconfirmed_times: HashMap<Uuid, Vec<i64>>,
}

impl Ledger {
    pub fn new(sampled: impl IntoIterator<Item = Uuid>) -> Self {
        Self { sampled: sampled.into_iter().collect(), ..Self::default() }
    }

    pub fn add(&mut self, r: &Record) {
        *self.totals.entry((r.video, r.kind)).or_insert(0) += 1;
        if r.kind == EventKind::View && self.sampled.contains(&r.video) {
            match r.at_ms {
                Some(t) => self.times.entry(r.video).or_default().push(t),
                None => self.untimed = true,
            }
        }
    }

    pub fn events(&self) -> u64 {
        self.totals.values().sum()
    }

    /// An event whose fate is unknown: counting it or not are both right.
    pub fn add_unconfirmed(&mut self, r: &Record) {
        *self.unconfirmed.entry((r.video, r.kind)).or_insert(0) += 1;
        if r.kind == EventKind::View && self.sampled.contains(&r.video) {
            match r.at_ms {
                Some(t) => self.unconfirmed_times.entry(r.video).or_default().push(t),
                None => self.untimed = true,
            }
        }
    }

    pub fn unconfirmed(&self) -> u64 {
        self.unconfirmed.values().sum()
    }
}

#[derive(Debug, Serialize)]
pub struct RangeCheck {
    pub name: String,
    pub from: String,
    pub to: String,
    pub videos: usize,
    pub expected: i64,
    pub counted: i64,
    pub lost: i64,
    pub double_counted: i64,
}

#[derive(Debug, Serialize)]
pub struct Exactness {
    /// Videos in the ledger.
    pub videos: usize,
    pub ledger_events: u64,
    pub counted_events: i64,
    /// All-time counts, summed over videos and event types: below the
    /// acknowledged events (lost), above the acknowledged and unconfirmed ones
    /// (double-counted).
    pub lost: i64,
    pub double_counted: i64,
    /// Events whose request failed without saying they were not written, and how
    /// many of them were counted (the counts beyond the acknowledged ones).
    pub unconfirmed_events: u64,
    pub unconfirmed_counted: i64,
    /// Seconds from the last answer of the load until every count matched (or the
    /// timeout), the wait for the freshness probes included.
    pub drain_secs: f64,
    /// Per event type: (ledger, counted), all time.
    pub by_type: BTreeMap<String, (u64, i64)>,
    /// Time ranges over a sample of videos, against the `occurredAt` in the ledger.
    pub ranges: Vec<RangeCheck>,
    /// Why there are no range checks, when there are none.
    pub ranges_skipped: Option<String>,
}

impl Exactness {
    pub fn is_exact(&self) -> bool {
        self.lost == 0 && self.double_counted == 0 && self.ranges.iter().all(|r| r.lost == 0 && r.double_counted == 0)
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A count `got` against `want` acknowledged events and `maybe` unconfirmed ones:
/// (lost, double-counted, unconfirmed events counted). Anything from `want` to
/// `want + maybe` is exact.
fn judge(want: i64, maybe: i64, got: i64) -> (i64, i64, i64) {
    ((want - got).max(0), (got - want - maybe).max(0), (got - want).clamp(0, maybe))
}

/// `[from, to)` in ms, minute-aligned, as the query service reads it.
struct Range {
    name: &'static str,
    from: i64,
    to: i64,
}

fn ranges(now_ms: i64, spread_ms: i64) -> Vec<Range> {
    let floor = |t: i64, unit: i64| t.div_euclid(unit) * unit;
    let to = floor(now_ms, MINUTE_MS) + MINUTE_MS;
    let mut out = vec![
        Range { name: "last_1h", from: to - HOUR_MS, to },
        // Hour-aligned: minute rows that old have expired.
        Range { name: "last_30d", from: floor(now_ms - 30 * 24 * HOUR_MS, HOUR_MS), to },
    ];
    // Ragged at both ends, inside the spread: stitched from minute and hour rows.
    let (from, mid_to) = (floor(now_ms - spread_ms * 3 / 4, MINUTE_MS), floor(now_ms - spread_ms / 4, MINUTE_MS));
    if mid_to > from {
        out.push(Range { name: "middle_half", from, to: mid_to });
    }
    out
}

async fn count(
    http: &reqwest::Client,
    query: &str,
    video: Uuid,
    kind: EventKind,
    range: Option<&Range>,
) -> Option<i64> {
    let (url, key) = match kind {
        EventKind::View => (format!("{query}/api/v1/videos/{video}/views"), "views"),
        k => (format!("{query}/api/v1/videos/{video}/counts/{k}"), "count"),
    };
    let mut req = http.get(url);
    if let Some(r) = range {
        req = req.query(&[("from", rfc3339(r.from)), ("to", rfc3339(r.to))]);
    }
    let body: serde_json::Value = req.send().await.ok()?.error_for_status().ok()?.json().await.ok()?;
    body[key].as_i64()
}

/// Waits until every count equals the ledger (all time per video and type, and
/// the ranges of the sampled videos), or the timeout; then reports what is
/// missing and what is extra.
pub async fn check(
    http: &reqwest::Client,
    query: &str,
    ledger: &Ledger,
    spread_secs: i64,
    load_done: Instant,
    timeout: Duration,
) -> anyhow::Result<Exactness> {
    let start = Instant::now();
    let ranges = ranges(chrono::Utc::now().timestamp_millis(), spread_secs * 1000);
    let timed: Vec<(&Uuid, &Vec<i64>)> = if ledger.untimed { Vec::new() } else { ledger.times.iter().collect() };
    let keys: Vec<(Uuid, EventKind)> =
        ledger.totals.keys().chain(ledger.unconfirmed.keys()).copied().collect::<HashSet<_>>().into_iter().collect();
    loop {
        let totals: Vec<((Uuid, EventKind), Option<i64>)> = futures::stream::iter(keys.iter().copied())
            .map(|(v, k)| async move { ((v, k), count(http, query, v, k, None).await) })
            .buffer_unordered(64)
            .collect()
            .await;
        let mut unanswered = 0;
        let (mut lost, mut double, mut counted, mut extra) = (0i64, 0i64, 0i64, 0i64);
        let mut by_type: BTreeMap<String, (u64, i64)> = BTreeMap::new();
        for (key, got) in &totals {
            let want = ledger.totals.get(key).copied().unwrap_or(0) as i64;
            let maybe = ledger.unconfirmed.get(key).copied().unwrap_or(0) as i64;
            let Some(g) = got else {
                unanswered += 1;
                continue;
            };
            counted += g;
            let (l, d, x) = judge(want, maybe, *g);
            (lost, double, extra) = (lost + l, double + d, extra + x);
            let t = by_type.entry(key.1.to_string()).or_default();
            t.0 += want as u64;
            t.1 += g;
        }
        let mut checks = Vec::new();
        for r in &ranges {
            let got: Vec<Option<i64>> = futures::stream::iter(timed.iter())
                .map(|(v, _)| count(http, query, **v, EventKind::View, Some(r)))
                .buffered(32)
                .collect()
                .await;
            let mut c = RangeCheck {
                name: r.name.into(),
                from: rfc3339(r.from),
                to: rfc3339(r.to),
                videos: timed.len(),
                expected: 0,
                counted: 0,
                lost: 0,
                double_counted: 0,
            };
            for ((video, times), g) in timed.iter().zip(got) {
                let inside = |ts: &[i64]| ts.iter().filter(|t| (r.from..r.to).contains(t)).count() as i64;
                let want = inside(times);
                let maybe = ledger.unconfirmed_times.get(*video).map_or(0, |ts| inside(ts));
                let Some(g) = g else {
                    unanswered += 1;
                    continue;
                };
                c.expected += want;
                c.counted += g;
                let (l, d, _) = judge(want, maybe, g);
                c.lost += l;
                c.double_counted += d;
            }
            checks.push(c);
        }
        let settled =
            unanswered == 0 && lost == 0 && double == 0 && checks.iter().all(|c| c.lost + c.double_counted == 0);
        if settled || start.elapsed() > timeout {
            anyhow::ensure!(unanswered == 0, "{unanswered} count queries did not answer");
            let ranges_skipped = if ledger.untimed {
                Some("the server chose occurredAt (body-less view endpoint)".to_owned())
            } else if timed.is_empty() {
                Some("no sampled video received a view".to_owned())
            } else {
                None
            };
            return Ok(Exactness {
                videos: ledger.totals.keys().map(|(v, _)| v).collect::<HashSet<_>>().len(),
                ledger_events: ledger.events(),
                counted_events: counted,
                lost,
                double_counted: double,
                unconfirmed_events: ledger.unconfirmed(),
                unconfirmed_counted: extra,
                drain_secs: load_done.elapsed().as_secs_f64(),
                by_type,
                ranges: if ledger.untimed { Vec::new() } else { checks },
                ranges_skipped,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_minute_aligned_and_the_long_one_hour_aligned() {
        let now = 1_710_072_030_000; // 2024-03-10T12:00:30Z
        let rs = ranges(now, 3 * HOUR_MS);
        assert_eq!(rs.len(), 3);
        for r in &rs {
            assert_eq!((r.from % MINUTE_MS, r.to % MINUTE_MS), (0, 0), "{}", r.name);
            assert!(r.from < r.to);
        }
        assert_eq!(rs[0].to - rs[0].from, HOUR_MS);
        assert_eq!(rs[1].from % HOUR_MS, 0);
        assert_eq!(ranges(now, 0).len(), 2, "no middle range without a spread");
    }

    #[test]
    fn unconfirmed_events_may_be_counted_or_not_but_nothing_else() {
        assert_eq!(judge(10, 0, 10), (0, 0, 0));
        assert_eq!(judge(10, 3, 10), (0, 0, 0), "none of the unconfirmed were written");
        assert_eq!(judge(10, 3, 13), (0, 0, 3), "all of them were");
        assert_eq!(judge(10, 3, 14), (0, 1, 3), "one more than could have been written");
        assert_eq!(judge(10, 3, 9), (1, 0, 0), "an acknowledged event is missing");
    }

    #[test]
    fn the_ledger_keeps_times_only_for_sampled_views() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut l = Ledger::new([a]);
        l.add(&Record { video: a, kind: EventKind::View, at_ms: Some(5) });
        l.add(&Record { video: a, kind: EventKind::Like, at_ms: Some(6) });
        l.add(&Record { video: b, kind: EventKind::View, at_ms: Some(7) });
        assert_eq!(l.events(), 3);
        assert_eq!(l.times[&a], [5]);
        assert!(!l.times.contains_key(&b) && !l.untimed);
        l.add(&Record { video: a, kind: EventKind::View, at_ms: None });
        assert!(l.untimed);
    }
}
