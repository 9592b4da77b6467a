//! Retention for real: the aggregator writes minute rows that live 20 s and hour
//! rows that live 40 s after their bucket ends (day rows forever), Cassandra
//! expires them, and every answer must still equal the ledger over the effective
//! range it states, read only rows still kept, and say which rows answered and why
//! each edge moved.
//!
//! Old events (up to two days back; the gateway is told to accept them) land in
//! minute and hour rows that have already expired: the aggregator writes those
//! with a 1 s TTL and only their day rows stay. Events of the current minute are
//! read from minute rows first, then, once the test has watched that minute row
//! disappear from Cassandra, from the hour row.
//!
//! The test runs inside one UTC hour (at least 3 minutes in, 4 before its end),
//! so the current hour row is kept throughout; it waits for such a moment first.

use std::time::Duration;

use counting::{Granularity, Retention};
use e2e::*;
use serde_json::Value;
use uuid::Uuid;

fn retention() -> Retention {
    Retention { minute_secs: 20, hour_secs: 40, day_secs: 0, expiry_margin_secs: 2 }
}

fn ms(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
}

fn floor(t: i64, w: i64) -> i64 {
    t.div_euclid(w) * w
}

fn ceil(t: i64, w: i64) -> i64 {
    -(-t).div_euclid(w) * w
}

/// (edge, reason) of each adjustment.
fn moves(v: &Value) -> Vec<(String, String)> {
    v["adjustments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["edge"].as_str().unwrap().to_owned(), a["reason"].as_str().unwrap().to_owned()))
        .collect()
}

fn want(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// (granularity, from, to) of each span.
fn spans(v: &Value) -> Vec<(String, i64, i64)> {
    v["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["granularity"].as_str().unwrap().to_owned(), ms(&s["from"]), ms(&s["to"])))
        .collect()
}

struct Check<'a> {
    env: &'a TestEnv,
    ledger: &'a Ledger,
}

impl Check<'_> {
    /// GETs `path` until its count equals the ledger over the range the answer
    /// states (an answer can only be short while the aggregator catches up), and
    /// checks what every answer must hold: its spans tile that range with rows
    /// still kept, and `coverage` agrees with its adjustments.
    async fn answer(&self, video: Uuid, path: &str, count: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let asked_at = now_ms();
            let res = self.env.http.get(self.env.query_url(path)).send().await.unwrap();
            let status = res.status();
            let v: Value = res.json().await.unwrap();
            assert_eq!(status, 200, "{path}: {v}");
            let (from, to) = (ms(&v["from"]), ms(&v["to"]));
            let want = self.ledger.count_exact(video, from, to);
            if v[count].as_i64() == Some(want) || v[count].as_f64() == Some(want as f64) {
                let kept = retention().horizons(asked_at);
                let mut cursor = from;
                for (g, a, b) in spans(&v) {
                    assert_eq!(a, cursor, "{path}: spans do not tile: {v}");
                    let g = Granularity::parse(&g).unwrap();
                    assert!(kept.kept(g, a), "{path}: read {g:?} rows from {} that have expired: {v}", rfc3339(a));
                    cursor = b;
                }
                assert_eq!(cursor, to, "{path}: spans do not reach `to`: {v}");
                assert_eq!(v["coverage"] == "exact", moves(&v).is_empty(), "{v}");
                return v;
            }
            assert!(std::time::Instant::now() < deadline, "{path}: {count} never equalled the ledger's {want}: {v}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn refused(&self, path: &str) -> Value {
        let res = self.env.http.get(self.env.query_url(path)).send().await.unwrap();
        let status = res.status();
        let p: Value = res.json().await.unwrap();
        assert_eq!(status, 422, "{path}: {p}");
        p
    }
}

/// Rows of `video` at `g` with buckets in `[from, to)`, read straight from
/// Cassandra (the table the aggregator writes).
async fn stored_rows(env: &TestEnv, video: Uuid, g: Granularity, from: i64, to: i64) -> Vec<(i64, i64)> {
    let cfg = platform::cassandra::CassandraConfig { nodes: cassandra_nodes(), ..Default::default() };
    let session = platform::cassandra::connect(&cfg, Duration::from_secs(10)).await.unwrap();
    let cql = format!(
        "SELECT bucket, value FROM {}.counts WHERE video_id = ? AND event_type = 'view' AND granularity = ? \
         AND bucket >= ? AND bucket < ?",
        env.keyspace
    );
    use scylla::value::CqlTimestamp;
    let rows = session
        .query_unpaged(cql, (video, g.as_str(), CqlTimestamp(from), CqlTimestamp(to)))
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    rows.rows::<(CqlTimestamp, Option<i64>)>()
        .unwrap()
        .map(|r| r.unwrap())
        .map(|(b, v)| (b.0, v.unwrap_or(0)))
        .collect()
}

/// Waits (at most 15 s) until Cassandra has no row of `g` in `[from, to)`. Rows
/// written after their retention get a TTL of 1 s (`Retention::ttl_secs`), so
/// they vanish within about 2 s of the flush that last rewrote them; a flush may
/// still be rewriting them when the first answers converge.
async fn assert_expired(env: &TestEnv, video: Uuid, g: Granularity, from: i64, to: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let rows = stored_rows(env, video, g, from, to).await;
        if rows.is_empty() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{g:?} rows past retention still stored: {rows:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Sleeps until at least 3 minutes into a UTC hour with 4 minutes left, and at
/// most 30 s into a minute.
async fn wait_for_a_quiet_moment() {
    loop {
        let now = now_ms();
        let (in_hour, in_minute) = (now.rem_euclid(HOUR), now.rem_euclid(MINUTE));
        let wait = if in_hour < 3 * MINUTE {
            3 * MINUTE - in_hour
        } else if in_hour > HOUR - 4 * MINUTE {
            HOUR - in_hour + 3 * MINUTE
        } else if in_minute > 30_000 {
            MINUTE - in_minute + 500
        } else {
            return;
        };
        eprintln!("[retention] waiting {} s for a moment well inside an hour", wait / 1000);
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answers_stay_exact_while_rows_expire() {
    let r = retention();
    let mut env = TestEnv::start_configured("retention", 3, |gw, q| {
        gw.events.max_age_secs = 3 * 86_400;
        q.retention = r.clone();
    })
    .await;
    env.spawn_aggregator_with(&[
        ("AGGREGATOR__RETENTION__MINUTE_SECS", "20"),
        ("AGGREGATOR__RETENTION__HOUR_SECS", "40"),
        ("AGGREGATOR__RETENTION__DAY_SECS", "0"),
        ("AGGREGATOR__RETENTION__EXPIRY_MARGIN_SECS", "2"),
    ]);
    wait_for_a_quiet_moment().await;
    let now = now_ms();
    let (m0, h, today) = (floor(now, MINUTE), floor(now, HOUR), floor(now, DAY));

    // The ledger: per video, a view every 9 min 7 s from an hour back to two days
    // back (rows expired but the days), some earlier this hour (minutes expired,
    // the hour kept) and some in this minute (all kept, for now).
    let videos = uuids(3);
    let mut ledger = Ledger::default();
    let mut events = Vec::new();
    for (i, &v) in videos.iter().enumerate() {
        let mut t = now - HOUR - i as i64 * 61_000;
        while t > now - 2 * DAY {
            events.push((v, t));
            t -= 9 * MINUTE + 7_000;
        }
        for k in 0..5 {
            events.push((v, h + 17_000 + k * 23_000)); // before m0 - 1 min: h + 3 min > this
        }
        for k in 0..=i as i64 + 3 {
            events.push((v, m0 + (now - m0) * k / (i as i64 + 3)));
        }
    }
    for chunk in events.chunks(200) {
        env.post_batch(&chunk.iter().map(|&(v, t)| view(v, t)).collect::<Vec<_>>()).await;
        for &(v, t) in chunk {
            ledger.record(v, t);
        }
    }
    eprintln!("[retention] {} views posted at {}", events.len(), rfc3339(now));
    let check = Check { env: &env, ledger: &ledger };
    let v0 = videos[0];
    let views = |query: String| format!("/api/v1/videos/{v0}/views?{query}");

    // --- while this minute's rows are kept ---
    // This minute, from a ragged start: minute rows, `from` down to the minute.
    let a = check.answer(v0, &views(format!("from={}", rfc3339(m0 + 1_000))), "views").await;
    assert_eq!((ms(&a["from"]), &a["granularity"]), (m0, &"minute".into()), "{a}");
    assert_eq!(moves(&a), want(&[("from", "minute_alignment")]));
    let exact_minute = views(format!("from={}&to={}", rfc3339(m0), rfc3339(m0 + MINUTE)));
    let a = check.answer(v0, &exact_minute, "views").await;
    assert_eq!((&a["coverage"], spans(&a)), (&"exact".into(), vec![("minute".into(), m0, m0 + MINUTE)]));
    let in_m0 = ledger.count_exact(v0, m0, m0 + MINUTE);
    // The answers may come from the owner before its round writes the row
    // (freshness from the owner): wait for the row itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let rows = stored_rows(&env, v0, Granularity::Minute, m0, m0 + MINUTE).await;
        if rows == [(m0, in_m0)] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "minute row of {v0}: {rows:?}, the ledger has {in_m0}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let series =
        format!("/api/v1/videos/{v0}/counts/view?from={}&to={}&step=minute", rfc3339(m0), rfc3339(m0 + MINUTE));
    let s = check.answer(v0, &series, "count").await;
    assert_eq!(s["series"][0]["count"].as_i64(), Some(in_m0));

    // "Views in the last 30 days": the minutes and hours there expired long ago, so
    // `from` moves to its day; this hour's earlier minutes have expired too, so
    // `to` moves to the end of the hour, or of the day if earlier hours of today
    // (expired) lie between.
    let a = check.answer(v0, &views(format!("from={}", rfc3339(now - 30 * DAY))), "views").await;
    assert_eq!(ms(&a["from"]), floor(now - 30 * DAY, DAY), "{a}");
    assert_eq!(a["coverage"], "widened");
    if h == today {
        // The day's first hour (00:xx UTC, which CI found): the hour of `from`
        // starts its day too, so leaving the expired minutes reaches the day row.
        assert_eq!(ms(&a["to"]), h + HOUR, "{a}");
        assert_eq!(moves(&a), want(&[("from", "minute_rows_expired"), ("to", "minute_rows_expired")]));
        assert_eq!(a["granularity"], "day+hour");
    } else if h + HOUR == today + DAY {
        // The day's last hour: its end is the day's, so moving out of the expired
        // minutes already reaches the day row (CI at 23:xx UTC found this case).
        assert_eq!(ms(&a["to"]), today + DAY, "{a}");
        assert_eq!(moves(&a), want(&[("from", "hour_rows_expired"), ("to", "minute_rows_expired")]));
        assert_eq!(a["granularity"], "day", "{a}");
    } else {
        assert_eq!(ms(&a["to"]), today + DAY, "{a}");
        assert_eq!(moves(&a), want(&[("from", "hour_rows_expired"), ("to", "hour_rows_expired")]));
        assert_eq!(a["granularity"], "day");
    }

    // This hour so far: its minutes before this one have expired; the hour row
    // answers the whole hour.
    let a = check.answer(v0, &views(format!("from={}", rfc3339(h))), "views").await;
    assert_eq!((ms(&a["from"]), ms(&a["to"])), (h, h + HOUR), "{a}");
    assert_eq!(moves(&a), want(&[("to", "minute_rows_expired")]));
    assert_eq!(spans(&a), [("hour".to_owned(), h, h + HOUR)]);

    // Whole hours 5 to 3 hours back: their hour rows are gone from Cassandra
    // (reading them would give a short count with no sign), so the day rows answer.
    let (a5, a3) = (h - 5 * HOUR, h - 3 * HOUR);
    assert!(ledger.count_exact(v0, a5, a3) > 0);
    assert_expired(&env, v0, Granularity::Hour, a5, a3).await;
    assert_expired(&env, v0, Granularity::Minute, a5, a3).await;
    let hours_back = format!("from={}&to={}", rfc3339(a5), rfc3339(a3));
    let a = check.answer(v0, &views(hours_back.clone()), "views").await;
    assert_eq!((ms(&a["from"]), ms(&a["to"])), (floor(a5, DAY), ceil(a3, DAY)), "{a}");
    assert_eq!(a["granularity"], "day");
    let mut expected = Vec::new();
    if a5 % DAY != 0 {
        expected.push(("from", "hour_rows_expired"));
    }
    if a3 % DAY != 0 {
        expected.push(("to", "hour_rows_expired"));
    }
    assert_eq!(moves(&a), want(&expected));
    // A series by the hour there is refused; without a step, days answer.
    let p = check.refused(&format!("/api/v1/videos/{v0}/counts/view?{hours_back}&step=hour")).await;
    assert_eq!(p["field"], "from", "{p}");
    let st = check.answer(v0, &format!("/api/v1/videos/{v0}/stats/view?function=sum&{hours_back}"), "value").await;
    assert_eq!(st["step"], "day", "{st}");
    // Every video, all time: the all-time row never expires.
    for &v in &videos {
        assert_eq!(env.views(v, None).await, Ok(ledger.count(v, None)));
    }

    // --- after this minute's rows have expired, for real ---
    // Minute m0's row lives until 20 s after the minute (whole seconds); wait past it.
    let gone = m0 + MINUTE + 20_000 + 1_500;
    tokio::time::sleep(Duration::from_millis((gone - now_ms()).max(0) as u64)).await;
    assert_eq!(stored_rows(&env, v0, Granularity::Minute, m0, m0 + MINUTE).await, [], "minute row still there");
    let in_hour = ledger.count_exact(v0, h, h + HOUR);
    assert_eq!(stored_rows(&env, v0, Granularity::Hour, h, h + HOUR).await, [(h, in_hour)]);
    // The same question now gets the hour row, and says so.
    let a = check.answer(v0, &exact_minute, "views").await;
    assert_eq!((ms(&a["from"]), ms(&a["to"]), &a["coverage"]), (h, h + HOUR, &"widened".into()), "{a}");
    assert_eq!(moves(&a), want(&[("from", "minute_rows_expired"), ("to", "minute_rows_expired")]));
    assert_eq!(a["spans"][0]["granularity"], "hour");
    // A minute series there is refused now; without a step, the hour answers.
    let p = check.refused(&series).await;
    assert_eq!(p["field"], "from", "{p}");
    let q = format!("from={}&to={}", rfc3339(m0), rfc3339(m0 + MINUTE));
    let st = check.answer(v0, &format!("/api/v1/videos/{v0}/stats/view?function=sum&{q}"), "value").await;
    assert_eq!((&st["step"], ms(&st["from"]), st["value"].as_f64()), (&"hour".into(), h, Some(in_hour as f64)));
    // And every video's counts still equal the ledger, over whatever they state.
    for &v in &videos {
        let path = format!("/api/v1/videos/{v}/views?from={}", rfc3339(now - 3 * DAY + 17 * MINUTE));
        check.answer(v, &path, "views").await;
    }
    env.terminate_aggregator(0);
}
