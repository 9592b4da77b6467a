//! getCount as a series (`step`) and getStats, on the real Cassandra, over rollup
//! rows written as fixtures (the aggregator writes them in production; its tests
//! cover that).

mod common;

use common::*;
use reqwest::StatusCode;

const HOUR: i64 = 3_600_000;

fn at(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test]
async fn series_and_stats_over_the_buckets_of_a_range() {
    let s = Service::start(SECRET).await;
    let cql = s.cql().await;
    let video = uuid::Uuid::new_v4();
    // Hour rows two and three hours ago (plays), and a minute row; nothing in between.
    let now = chrono::Utc::now().timestamp_millis();
    let h0 = counting::time::floor_to(now, HOUR) - 3 * HOUR;
    let insert = format!(
        "INSERT INTO {}.counts (video_id, event_type, granularity, bucket, value, last_offset, kafka_partition) \
         VALUES (?, ?, ?, ?, ?, 0, 0)",
        s.keyspace
    );
    for (granularity, bucket, value) in [("hour", h0, 4i64), ("hour", h0 + 2 * HOUR, 2), ("minute", h0 + 60_000, 4)] {
        let ts = scylla::value::CqlTimestamp(bucket);
        cql.query_unpaged(insert.as_str(), (video, "play", granularity, ts, value)).await.unwrap();
    }

    // A series over four hours, the range ragged at both ends: floored and ceiled.
    let path =
        format!("/videos/{video}/counts/play?from={}&to={}&step=hour", at(h0 + 60_000), at(h0 + 3 * HOUR + 1_000));
    let (status, c) = s.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!((c["from"].as_str(), c["to"].as_str()), (Some(at(h0).as_str()), Some(at(h0 + 4 * HOUR).as_str())));
    assert_eq!(
        (c["count"].as_i64(), c["step"].as_str(), c["granularity"].as_str()),
        (Some(6), Some("hour"), Some("hour"))
    );
    let series: Vec<(String, i64)> = c["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["start"].as_str().unwrap().to_owned(), p["count"].as_i64().unwrap()))
        .collect();
    let want: Vec<(String, i64)> =
        [4, 0, 2, 0].iter().enumerate().map(|(i, &n)| (at(h0 + i as i64 * HOUR), n)).collect();
    assert_eq!(series, want);
    // Minutes of the first hour: the one minute row, the rest zero.
    let path = format!("/videos/{video}/counts/play?from={}&to={}&step=minute", at(h0), at(h0 + HOUR));
    let (_, m) = s.get(&path).await;
    let minutes = m["series"].as_array().unwrap();
    assert_eq!((minutes.len(), minutes[1]["count"].as_i64(), m["count"].as_i64()), (60, Some(4), Some(4)));
    // Without step, the old answer: no series member.
    let (_, plain) = s.get(&format!("/videos/{video}/counts/play")).await;
    assert!(plain.get("series").is_none() && plain.get("step").is_none(), "{plain}");

    // getStats over the same four hours' buckets, by the hour.
    for (function, value) in [("count", 2.0), ("sum", 6.0), ("min", 0.0), ("max", 4.0), ("avg", 1.5)] {
        let path = format!(
            "/videos/{video}/stats/play?function={function}&from={}&to={}&step=hour&over=buckets",
            at(h0),
            at(h0 + 4 * HOUR)
        );
        let (status, st) = s.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{st}");
        assert_eq!(st["value"].as_f64(), Some(value), "{function}: {st}");
        assert_eq!(
            (st["buckets"].as_i64(), st["step"].as_str(), st["over"].as_str()),
            (Some(4), Some("hour"), Some("buckets"))
        );
        assert_eq!((st["coverage"].as_str(), st["unrecordedBuckets"].as_i64()), (Some("exact"), Some(0)), "{st}");
        // Over events (the default): the fixture's rows carry no event count (rows
        // from before value metrics), so only the sum is known, and the answer says why.
        let (status, st) = s.get(&path.replace("&over=buckets", "")).await;
        assert_eq!(status, StatusCode::OK, "{st}");
        let known = (function == "sum").then_some(value);
        assert_eq!((st["value"].as_f64(), st["over"].as_str()), (known, Some("events")), "{function}: {st}");
        assert!(st["value"].is_number() || st["value"].is_null(), "{st}");
        assert_eq!(st["unrecordedBuckets"].as_i64(), Some(2), "{function}: {st}");
    }
    // Without a step, the finest that fits: 240 minutes (the fixture's one minute row).
    let path = format!("/videos/{video}/stats/play?function=sum&from={}&to={}", at(h0), at(h0 + 4 * HOUR));
    let (_, st) = s.get(&path).await;
    assert_eq!(
        (st["buckets"].as_i64(), st["step"].as_str(), st["value"].as_f64()),
        (Some(240), Some("minute"), Some(4.0))
    );
    // A ragged series says its edges moved out to the step.
    assert_eq!(c["coverage"], "widened", "{c}");
    let reasons: Vec<(&str, &str)> = c["adjustments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["edge"].as_str().unwrap(), a["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(reasons, [("from", "step_alignment"), ("to", "step_alignment")]);

    // Each bad parameter is named.
    let range = format!("from={}&to={}", at(h0), at(h0 + 4 * HOUR));
    let cases = [
        (format!("/videos/{video}/counts/play?{range}&step=week"), "step"),
        (format!("/videos/{video}/counts/play?to={}&step=hour", at(h0)), "from"),
        (format!("/videos/{video}/counts/play?from={}&step=hour", at(h0)), "to"),
        (format!("/videos/{video}/counts/play?from={}&to={}&step=hour", at(h0 + HOUR), at(h0)), "to"),
        (format!("/videos/{video}/counts/play?from={}&to={}&step=minute", at(h0 - 48 * HOUR), at(h0)), "step"),
        (format!("/videos/{video}/counts/play?{range}&step=hour&stride=2"), "stride"),
        (format!("/videos/{video}/stats/play?{range}"), "function"),
        (format!("/videos/{video}/stats/play?{range}&function=median"), "function"),
        (format!("/videos/{video}/stats/play?{range}&function=sum&over=minutes"), "over"),
        (format!("/videos/{video}/stats/play?{range}&function=sum&over="), "over"),
        (format!("/videos/{video}/stats/plays?{range}&function=sum"), "eventType"),
        (format!("/videos/nope/stats/play?{range}&function=sum"), "videoId"),
    ];
    for (path, field) in cases {
        assert_eq!(invalid_field(&s.get(&path).await), Some(field), "{path}");
    }
}

/// An hour row: bucket, sum, events, min, max.
type HourRow = (i64, i64, i64, Option<i64>, Option<i64>);

/// getStats over event values, from rows as the aggregator writes them (sum and
/// tally in one write): count = events, sum, min and max of event values, avg =
/// sum / count, over every bucket of the range; null where there is no value.
#[tokio::test]
async fn stats_over_event_values() {
    let s = Service::start(SECRET).await;
    let cql = s.cql().await;
    let video = uuid::Uuid::new_v4();
    let now = chrono::Utc::now().timestamp_millis();
    let h0 = counting::time::floor_to(now, HOUR) - 3 * HOUR;
    let insert = format!(
        "INSERT INTO {}.counts (video_id, event_type, granularity, bucket, value, last_offset, events, min_value, \
         max_value) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)",
        s.keyspace
    );
    // Hour 0: events of 30, 5 and 12 seconds; hour 2: 3 and 7; hour 3: a bucket a
    // correction emptied (its sum and count 0, its min and max the events it had).
    let rows: [HourRow; 3] = [
        (h0, 47, 3, Some(5), Some(30)),
        (h0 + 2 * HOUR, 10, 2, Some(3), Some(7)),
        (h0 + 3 * HOUR, 0, 0, Some(2), Some(2)),
    ];
    for (bucket, value, events, min, max) in rows {
        let ts = scylla::value::CqlTimestamp(bucket);
        cql.query_unpaged(insert.as_str(), (video, "play", "hour", ts, value, events, min, max)).await.unwrap();
    }
    let stat = |function: &str, from: i64, to: i64| {
        format!("/videos/{video}/stats/play?function={function}&from={}&to={}&step=hour", at(from), at(to))
    };
    let all = (h0, h0 + 4 * HOUR);
    for (function, value) in
        [("count", Some(5.0)), ("sum", Some(57.0)), ("min", Some(2.0)), ("max", Some(30.0)), ("avg", Some(57.0 / 5.0))]
    {
        let (status, st) = s.get(&stat(function, all.0, all.1)).await;
        assert_eq!(status, StatusCode::OK, "{st}");
        assert_eq!((st["value"].as_f64(), st["over"].as_str()), (value, Some("events")), "{function}: {st}");
        assert_eq!((st["buckets"].as_i64(), st["unrecordedBuckets"].as_i64()), (Some(4), Some(0)), "{st}");
    }
    // One hour alone; an hour with no events: a count and a sum of 0, no min, max or avg.
    let (_, st) = s.get(&stat("avg", h0 + 2 * HOUR, h0 + 3 * HOUR)).await;
    assert_eq!(st["value"].as_f64(), Some(5.0), "{st}");
    for (function, value) in [("count", Some(0.0)), ("sum", Some(0.0)), ("min", None), ("max", None), ("avg", None)] {
        let (status, st) = s.get(&stat(function, h0 + HOUR, h0 + 2 * HOUR)).await;
        assert_eq!(status, StatusCode::OK, "{st}");
        assert_eq!(st["value"].as_f64(), value, "{function}: {st}");
        assert!(st.as_object().unwrap().contains_key("value"), "value is always there, null or not: {st}");
    }
    // The same range over buckets: the old statistic of the buckets' sums.
    let (_, st) = s.get(&format!("{}&over=buckets", stat("max", all.0, all.1))).await;
    assert_eq!((st["value"].as_f64(), st["over"].as_str()), (Some(47.0), Some("buckets")), "{st}");
    let (_, st) = s.get(&format!("{}&over=buckets", stat("count", all.0, all.1))).await;
    assert_eq!(st["value"].as_f64(), Some(2.0), "non-empty buckets: {st}");

    // A tally cell that the write of the sum did not write is not the row's:
    // here an older `events` under a newer sum (an aggregator from before value
    // metrics rewrote the row during a rolling upgrade).
    let stale = uuid::Uuid::new_v4();
    let ts = scylla::value::CqlTimestamp(h0);
    let with_tally = format!("{insert} USING TIMESTAMP 1000");
    cql.query_unpaged(with_tally.as_str(), (stale, "play", "hour", ts, 4i64, 4i64, Some(1i64), Some(1i64)))
        .await
        .unwrap();
    let sum_only = format!(
        "INSERT INTO {}.counts (video_id, event_type, granularity, bucket, value, last_offset) VALUES (?, ?, ?, ?, ?, 1) \
         USING TIMESTAMP 2000",
        s.keyspace
    );
    cql.query_unpaged(sum_only.as_str(), (stale, "play", "hour", ts, 9i64)).await.unwrap();
    let path = format!("/videos/{stale}/stats/play?function=count&from={}&to={}&step=hour", at(h0), at(h0 + HOUR));
    let (_, st) = s.get(&path).await;
    assert_eq!((st["value"].as_f64(), st["unrecordedBuckets"].as_i64()), (None, Some(1)), "{st}");
    let (_, st) = s.get(&path.replace("count", "sum")).await;
    assert_eq!(st["value"].as_f64(), Some(9.0), "the sum is exact whatever the tally: {st}");
}
