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

    // getStats over the same four hours, by the hour.
    for (function, value) in [("count", 2.0), ("sum", 6.0), ("min", 0.0), ("max", 4.0), ("avg", 1.5)] {
        let path = format!(
            "/videos/{video}/stats/play?function={function}&from={}&to={}&step=hour",
            at(h0),
            at(h0 + 4 * HOUR)
        );
        let (status, st) = s.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{st}");
        assert_eq!(st["value"].as_f64(), Some(value), "{function}: {st}");
        assert_eq!((st["buckets"].as_i64(), st["step"].as_str()), (Some(4), Some("hour")));
        assert_eq!(st["coverage"], "exact", "{st}");
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
        (format!("/videos/{video}/stats/plays?{range}&function=sum"), "eventType"),
        (format!("/videos/nope/stats/play?{range}&function=sum"), "videoId"),
    ];
    for (path, field) in cases {
        assert_eq!(invalid_field(&s.get(&path).await), Some(field), "{path}");
    }
}
