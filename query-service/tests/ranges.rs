//! Ranges past the rows' retention, on the real Cassandra: the query service is
//! given a short retention (minutes 1 day, hours 20 days, days 45 days) and fixture
//! rows are written only where the aggregator's TTLs would still keep them, as
//! if everything older had expired. Every answer must equal the ledger over the
//! effective range it states, read only kept rows, and say how its range relates
//! to the asked one. (`e2e/tests/retention.rs` lets real TTLs expire.)

mod common;

use common::*;
use counting::{Granularity, Retention};
use query_service::domain::ranges::resolve_range;
use reqwest::StatusCode;
use serde_json::Value;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

fn retention() -> Retention {
    Retention { minute_secs: 86_400, hour_secs: 20 * 86_400, day_secs: 45 * 86_400, expiry_margin_secs: 60 }
}

fn iso(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn ms(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
        .timestamp_millis()
}

/// Views at known times over the last 60 days, with their `counts` rows written the
/// way the aggregator would, minus the rows whose TTL has run out.
struct Fixture {
    video: uuid::Uuid,
    events: Vec<i64>,
}

impl Fixture {
    async fn write(s: &Service, now: i64) -> Self {
        let video = uuid::Uuid::new_v4();
        // One view every 4 h 7 min 13 s back from now: every minute holds at most
        // one, and they are spread over minutes, hours and days of all ages.
        let events: Vec<i64> = (0..350).map(|k| now - 30_000 - k * (4 * HOUR + 7 * MINUTE + 13_000)).collect();
        let r = retention();
        let mut rows = std::collections::BTreeMap::<(Granularity, i64), i64>::new();
        for &t in &events {
            for g in [Granularity::Minute, Granularity::Hour, Granularity::Day] {
                *rows.entry((g, g.bucket(t))).or_default() += 1;
            }
        }
        let cql = s.cql().await;
        let insert = format!(
            "INSERT INTO {}.counts (video_id, event_type, granularity, bucket, value, last_offset, kafka_partition) \
             VALUES (?, 'view', ?, ?, ?, 0, 0)",
            s.keyspace
        );
        let insert = cql.prepare(insert).await.unwrap();
        let mut written = 0;
        for ((g, bucket), value) in &rows {
            if r.expires_at(*g, *bucket).is_some_and(|e| e <= now) {
                continue; // expired: Cassandra would no longer have it
            }
            cql.execute_unpaged(&insert, (video, g.as_str(), scylla::value::CqlTimestamp(*bucket), *value))
                .await
                .unwrap();
            written += 1;
        }
        cql.execute_unpaged(&insert, (video, "total", scylla::value::CqlTimestamp(0), events.len() as i64))
            .await
            .unwrap();
        assert!(written < rows.len(), "some rows must have expired for this test to mean anything");
        Fixture { video, events }
    }

    fn count(&self, from: i64, to: i64) -> i64 {
        self.events.iter().filter(|&&t| t >= from && t < to).count() as i64
    }

    /// GETs a views answer and checks what every answer must hold: the count is
    /// the ledger's over the stated range, the spans tile it with kept rows, and
    /// `coverage` agrees with the edges.
    async fn views(&self, s: &Service, query: &str) -> Value {
        let (status, v) = s.get(&format!("/videos/{}/views?{query}", self.video)).await;
        assert_eq!(status, StatusCode::OK, "{query}: {v}");
        let (from, to) = (ms(&v["from"]), ms(&v["to"]));
        assert_eq!(v["views"].as_i64(), Some(self.count(from, to)), "{query}: {v}");
        let kept = retention().horizons(chrono::Utc::now().timestamp_millis() - 5_000);
        let mut cursor = from;
        for span in v["spans"].as_array().unwrap() {
            let g = Granularity::parse(span["granularity"].as_str().unwrap()).unwrap();
            assert_eq!(ms(&span["from"]), cursor, "{v}");
            assert!(kept.kept(g, cursor), "{query}: reads expired {g:?} rows: {v}");
            cursor = ms(&span["to"]);
        }
        assert_eq!(cursor, to, "{v}");
        let adjusted = !v["adjustments"].as_array().unwrap().is_empty();
        assert_eq!(v["coverage"] != "exact", adjusted, "{v}");
        v
    }
}

fn reasons(v: &Value) -> Vec<(String, String)> {
    v["adjustments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["edge"].as_str().unwrap().to_owned(), a["reason"].as_str().unwrap().to_owned()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// What "views in the last 30 days" (`from` 30 days before `now`, no `to`) must
/// answer at `now` under [`retention`]: the effective `from`, the reason it moved,
/// and the granularities that answer. It depends on the time of day, which CI
/// keeps finding: `from`'s hour starts its day at 00:xx, so leaving the expired
/// minutes reaches the day row directly; within a day's first minute only the
/// minute alignment moves it; and `to` (the end of this minute) is a whole hour in
/// an hour's last minute, so no minute row answers then, and a whole day in the
/// day's last minute, so the day rows answer it all.
fn last_30_days(now: i64) -> (i64, &'static str, String) {
    let asked = now - 30 * DAY;
    let from = asked.div_euclid(DAY) * DAY;
    let why = match asked - from {
        d if d < MINUTE => "minute_alignment",
        d if d < HOUR => "minute_rows_expired",
        _ => "hour_rows_expired",
    };
    let to = now.div_euclid(MINUTE) * MINUTE + MINUTE;
    let mut parts = vec!["day"];
    if to.div_euclid(HOUR) * HOUR > to.div_euclid(DAY) * DAY {
        parts.push("hour");
    }
    if to % HOUR != 0 {
        parts.push("minute");
    }
    (from, why, parts.join("+"))
}

/// [`last_30_days`] agrees with the planner at every 7 s of a day (a day whose
/// length is ordinary), so the test on Cassandra holds whenever it runs.
#[test]
fn the_last_30_days_expectation_holds_at_every_time_of_day() {
    let midnight = 1_764_547_200_000; // 2025-12-01T00:00:00Z
    let mut seen = std::collections::BTreeSet::new();
    for k in 0..DAY / 7_000 {
        let now = midnight + k * 7_000 + 123;
        let range = resolve_range(Some(&iso(now - 30 * DAY)), None, now, &retention()).unwrap();
        let (from, why, granularity) = last_30_days(now);
        let res = serde_json::to_value(range.resolution()).unwrap();
        let got = (range.bounds().unwrap().0, res["adjustments"][0]["reason"].as_str().unwrap(), range.granularity());
        assert_eq!(got, (from, why, granularity.clone()), "at {}", iso(now));
        seen.insert((why, granularity));
    }
    // Every case the doc names was met.
    assert_eq!(seen.len(), 6, "{seen:?}");
}

#[tokio::test]
async fn ranges_past_retention_are_answered_from_kept_rows_and_say_so() {
    let s = Service::start_with(SECRET, |c| c.retention = retention()).await;
    let now = chrono::Utc::now().timestamp_millis();
    let f = Fixture::write(&s, now).await;
    let hour = now.div_euclid(HOUR) * HOUR;

    // "Views in the last 30 days": from 30 days ago to the second. Hours there
    // have expired (20 days), so the day row answers from that day's start.
    let (from, why, granularity) = last_30_days(now);
    let v = f.views(&s, &format!("from={}", iso(now - 30 * DAY))).await;
    assert_eq!(ms(&v["from"]), from);
    assert_eq!(reasons(&v), pairs(&[("from", why)]), "{v}");
    assert_eq!((&v["coverage"], &v["granularity"]), (&"widened".into(), &granularity.into()), "{v}");
    assert_eq!(v["adjustments"][0]["requested"].as_str().map(|t| ms(&t.into())), Some(now - 30 * DAY));

    // The last 7 days: the hour row answers where the minute rows have expired.
    let v = f.views(&s, &format!("from={}&to={}", iso(now - 7 * DAY), iso(now))).await;
    assert_eq!(ms(&v["from"]), (now - 7 * DAY).div_euclid(HOUR) * HOUR);
    assert_eq!(ms(&v["to"]), now.div_euclid(MINUTE) * MINUTE + MINUTE);
    assert_eq!(reasons(&v), pairs(&[("from", "minute_rows_expired"), ("to", "minute_alignment")]));

    // An hour-aligned range older than the hour rows (once answered short, with
    // no sign): the day row answers, both edges out to the day.
    // (03:00 to 05:00 of a day, whatever the hour now: at 22:xx and 23:xx UTC
    // `hour - 25 d + 2 h` crossed into the next day, at 00:xx it started one.)
    let a = (hour - 25 * DAY).div_euclid(DAY) * DAY + 3 * HOUR;
    let b = a + 2 * HOUR;
    let v = f.views(&s, &format!("from={}&to={}", iso(a), iso(b))).await;
    assert_eq!((ms(&v["from"]), ms(&v["to"])), (a.div_euclid(DAY) * DAY, a.div_euclid(DAY) * DAY + DAY));
    assert_eq!(reasons(&v), pairs(&[("from", "hour_rows_expired"), ("to", "hour_rows_expired")]));
    assert_eq!(v["granularity"], "day");
    assert!(v["views"].as_i64().unwrap() > 0, "the fixture has views that day: {v}");

    // Within the minute rows, aligned to the minute: exact.
    let (a, b) = (now.div_euclid(MINUTE) * MINUTE - 5 * HOUR, now.div_euclid(MINUTE) * MINUTE);
    let v = f.views(&s, &format!("from={}&to={}", iso(a), iso(b))).await;
    assert_eq!((&v["coverage"], reasons(&v)), (&"exact".into(), vec![]));

    // Reaching past the day rows (45 days): `from` moves in, and says so.
    let v = f.views(&s, &format!("from={}", iso(now - 50 * DAY))).await;
    assert_eq!((&v["coverage"], reasons(&v)), (&"narrowed".into(), pairs(&[("from", "day_rows_expired")])));
    assert!(ms(&v["from"]) > now - 50 * DAY);
    assert!(f.count(now - 50 * DAY, now + MINUTE) > v["views"].as_i64().unwrap(), "older views exist: {v}");
    let v = f.views(&s, "to=2100-01-01T00:00:00Z").await;
    assert_eq!(v["coverage"], "narrowed", "{v}");
    assert_eq!(v["adjustments"][0]["requested"], Value::Null);
    // Wholly past them: nothing is kept to answer with.
    let (status, p) =
        s.get(&format!("/videos/{}/views?from={}&to={}", f.video, iso(now - 58 * DAY), iso(now - 50 * DAY))).await;
    assert_eq!((status, invalid_field(&(status, p.clone()))), (StatusCode::UNPROCESSABLE_ENTITY, Some("to")), "{p}");

    // getCount without a step follows the same rules and says the same.
    let (_, c) = s.get(&format!("/videos/{}/counts/view?from={}", f.video, iso(now - 30 * DAY))).await;
    assert_eq!((&c["coverage"], reasons(&c)), (&"widened".into(), pairs(&[("from", why)])));
    assert_eq!(c["count"].as_i64(), Some(f.count(ms(&c["from"]), ms(&c["to"]))), "{c}");

    // Series: a step whose rows have expired is refused, naming the field...
    let q = format!("from={}&to={}", iso(hour - 3 * DAY), iso(hour - 3 * DAY + HOUR));
    let (status, p) = s.get(&format!("/videos/{}/counts/view?{q}&step=minute", f.video)).await;
    assert_eq!(invalid_field(&(status, p.clone())), Some("from"), "{p}");
    let q25 = format!("from={}&to={}", iso(hour - 25 * DAY), iso(hour - 25 * DAY + 3 * HOUR));
    let (status, p) = s.get(&format!("/videos/{}/stats/view?function=sum&{q25}&step=hour", f.video)).await;
    assert_eq!(invalid_field(&(status, p.clone())), Some("from"), "{p}");
    // ...and without one the finest step that fits answers: hours 3 days ago, days
    // 25 days ago, every bucket equal to the ledger.
    for (q, step) in [(&q, "hour"), (&q25, "day")] {
        let (status, st) = s.get(&format!("/videos/{}/stats/view?function=sum&{q}", f.video)).await;
        assert_eq!(status, StatusCode::OK, "{st}");
        assert_eq!(st["step"], step, "{st}");
        assert_eq!(st["value"].as_f64(), Some(f.count(ms(&st["from"]), ms(&st["to"])) as f64), "{st}");
        assert_eq!(st["spans"][0]["granularity"], step);
    }
    let (status, c) = s.get(&format!("/videos/{}/counts/view?{q25}&step=day", f.video)).await;
    assert_eq!(status, StatusCode::OK, "{c}");
    for point in c["series"].as_array().unwrap() {
        let start = ms(&point["start"]);
        assert_eq!(point["count"].as_i64(), Some(f.count(start, start + DAY)), "{c}");
    }
}
