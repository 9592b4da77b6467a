//! Trending (KillrVideo's `/videos/trending` and the counting API's `/trending`)
//! and playback statistics, on the real Cassandra. The counts are the aggregator's
//! rows (`rollups_by_bucket`, `rollups`), inserted here as fixtures; the videos are
//! submitted through the API.

mod common;

use common::*;
use counting::Granularity;
use counting::time::{DAY_MS, HOUR_MS};
use reqwest::StatusCode;
use scylla::client::session::Session;
use scylla::value::CqlTimestamp;
use serde_json::{Value, json};
use uuid::Uuid;

async fn by_bucket(s: &Service, cql: &Session, kind: &str, g: Granularity, bucket: i64, video: &str, value: i64) {
    let ks = &s.keyspace;
    cql.query_unpaged(
        format!(
            "INSERT INTO {ks}.rollups_by_bucket (event_type, granularity, bucket, video_id, value) VALUES (?, ?, ?, ?, ?)"
        ),
        (kind, g.as_str(), CqlTimestamp(bucket), Uuid::parse_str(video).unwrap(), value),
    )
    .await
    .unwrap();
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn items(v: &Value) -> Vec<(String, i64)> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {v}"))
        .iter()
        .map(|i| (i["videoId"].as_str().unwrap().to_owned(), i["count"].as_i64().unwrap()))
        .collect()
}

#[tokio::test]
async fn trending_sums_the_buckets_of_the_window() {
    // The fixtures sit in this hour and the previous one; the 1 h window covers both
    // only while the hour does not change under the test, so start clear of its end.
    let to_next_hour = HOUR_MS - chrono::Utc::now().timestamp_millis().rem_euclid(HOUR_MS);
    if to_next_hour < 120_000 {
        tokio::time::sleep(std::time::Duration::from_millis(to_next_hour as u64 + 1_000)).await;
    }
    let s = Service::start(SECRET).await;
    let (_, token) = signed_in(&s, "Tia").await;
    let mut t = Vec::new(); // T1..T5, ids ascending (UUIDv7)
    for i in 1..=5 {
        t.push(submit(&s, &token, &format!("T{i}"), "", &[]).await);
    }
    let unknown = Uuid::new_v4().to_string(); // counted, but no video

    let now = chrono::Utc::now().timestamp_millis();
    let (hour, day) = (Granularity::Hour.bucket(now), Granularity::Day.bucket(now));
    let cql = s.cql().await;
    let (h, d) = (Granularity::Hour, Granularity::Day);
    // Hours: this one, the previous one, and one 30 hours ago (outside 24 h).
    for (bucket, video, n) in [
        (hour, &t[0], 5),
        (hour, &t[4], 5),
        (hour, &t[1], 3),
        (hour, &unknown, 1000),
        (hour - HOUR_MS, &t[1], 4),
        (hour - HOUR_MS, &t[2], 1),
        (hour - 30 * HOUR_MS, &t[3], 100),
    ] {
        by_bucket(&s, &cql, "view", h, bucket, video, n).await;
    }
    // Days: today, 5 days ago, 20 days ago (inside 30 d only).
    for (bucket, video, n) in
        [(day, &t[3], 100), (day, &t[0], 5), (day - 5 * DAY_MS, &t[2], 50), (day - 20 * DAY_MS, &t[1], 1000)]
    {
        by_bucket(&s, &cql, "view", d, bucket, video, n).await;
    }
    by_bucket(&s, &cql, "like", h, hour - 3 * HOUR_MS, &t[2], 9).await;
    // Zero counts are no trend.
    by_bucket(&s, &cql, "like", h, hour, &t[0], 0).await;

    // Counting API: the 1 h window is this hour and the previous one. Equal counts
    // go by video id.
    let v = ok(&s, "/trending?window=1h").await;
    assert_eq!(
        (&v["window"], &v["eventType"], &v["granularity"]),
        (&json!("1h"), &json!("view"), &json!("hour")),
        "{v}"
    );
    assert_eq!(
        (v["from"].as_str().unwrap(), v["to"].as_str().unwrap()),
        (&*rfc3339(hour - HOUR_MS), &*rfc3339(hour + HOUR_MS))
    );
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 7, "{v}");
    assert_eq!(v["complete"], true, "every bucket read whole: {v}");
    assert_eq!(
        items(&v),
        [(unknown.clone(), 1000), (t[1].clone(), 7), (t[0].clone(), 5), (t[4].clone(), 5), (t[2].clone(), 1)]
    );
    assert_eq!(v["items"][0], json!({"videoId": unknown, "count": 1000}));
    // 24 h is the default window: 25 hour buckets, still not 30 hours ago.
    let v = ok(&s, "/trending?eventType=view&limit=3").await;
    assert_eq!((v["window"].as_str(), v["from"].as_str()), (Some("24h"), Some(&*rfc3339(hour - 24 * HOUR_MS))));
    assert_eq!(items(&v), [(unknown.clone(), 1000), (t[1].clone(), 7), (t[0].clone(), 5)]);
    let v = ok(&s, "/trending?window=7d&limit=100").await;
    assert_eq!((v["granularity"].as_str(), v["from"].as_str()), (Some("day"), Some(&*rfc3339(day - 7 * DAY_MS))));
    assert_eq!(v["to"].as_str(), Some(&*rfc3339(day + DAY_MS)));
    assert_eq!(items(&v), [(t[3].clone(), 100), (t[2].clone(), 50), (t[0].clone(), 5)]);
    let v = ok(&s, "/trending?window=24h&eventType=like").await;
    assert_eq!((v["eventType"].as_str(), items(&v)), (Some("like"), vec![(t[2].clone(), 9)]));
    assert!(items(&ok(&s, "/trending?window=1h&eventType=share").await).is_empty());
    for (q, field) in [
        ("window=30d", "window"),
        ("window=2h", "window"),
        ("eventType=views", "eventType"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("from=2024-01-01T00:00:00Z", "from"),
    ] {
        assert_eq!(invalid_field(&s.get(&format!("/trending?{q}")).await), Some(field), "{q}");
    }

    // KillrVideo: VideoSummary of the most viewed videos; ids that are no video are
    // passed over.
    let v = ok(&s, "/videos/trending").await;
    assert_eq!(ids(&v), [t[1].as_str(), t[0].as_str(), t[4].as_str(), t[2].as_str()]);
    assert_eq!(v[0]["title"], "T2");
    assert_summary(&v[0]);
    assert_eq!(ids(&ok(&s, "/videos/trending?intervalDays=1&limit=2").await), [t[1].as_str(), t[0].as_str()]);
    assert_eq!(ids(&ok(&s, "/videos/trending?intervalDays=7").await), [t[3].as_str(), t[2].as_str(), t[0].as_str()]);
    assert_eq!(
        ids(&ok(&s, "/videos/trending?intervalDays=30&limit=10").await),
        [t[1].as_str(), t[3].as_str(), t[2].as_str(), t[0].as_str()]
    );
    for (q, field) in [
        ("intervalDays=2", "intervalDays"),
        ("intervalDays=x", "intervalDays"),
        ("limit=11", "limit"),
        ("limit=0", "limit"),
        ("window=1h", "window"),
    ] {
        assert_eq!(invalid_field(&s.get(&format!("/videos/trending?{q}")).await), Some(field), "{q}");
    }
}

#[tokio::test]
async fn playback_stats_are_all_time_views() {
    let s = Service::start(SECRET).await;
    let (_, token) = signed_in(&s, "Pat").await;
    let a = submit(&s, &token, "A", "", &[]).await;
    let b = submit(&s, &token, "B", "", &[]).await;
    // `b` was never viewed.
    all_time_views(&s, &s.cql().await, &a, 42).await;

    assert_eq!(ok(&s, &format!("/videos/{a}/playback-stats")).await, json!({"videoId": a, "views": 42}));
    assert_eq!(ok(&s, &format!("/videos/{b}/playback-stats")).await, json!({"videoId": b, "views": 0}));
    let (status, p) = s.get(&format!("/videos/{}/playback-stats", Uuid::new_v4())).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{p}");
    assert_eq!(invalid_field(&s.get("/videos/abc/playback-stats").await), Some("videoId"));

    // Many at once: in the given order, duplicates once, unknown ids left out.
    let unknown = Uuid::new_v4();
    let v = ok(&s, &format!("/videos/playback-stats?videoIds={b},{a},{unknown},{b}")).await;
    assert_eq!(v, json!([{"videoId": b, "views": 0}, {"videoId": a, "views": 42}]));
    let v = ok(&s, &format!("/videos/playback-stats?videoIds={a}")).await;
    assert_eq!(v, json!([{"videoId": a, "views": 42}]));
    let hundred = vec![a.clone(); 100].join(",");
    assert_eq!(
        ok(&s, &format!("/videos/playback-stats?videoIds={hundred}")).await,
        json!([{"videoId": a, "views": 42}])
    );
    for q in [
        String::new(),
        "videoIds=".into(),
        format!("videoIds={a},nope"),
        format!("videoIds={a},"),
        format!("videoIds={hundred},{b}"),
        format!("ids={a}"),
    ] {
        let field = if q.starts_with("ids=") { "ids" } else { "videoIds" };
        assert_eq!(invalid_field(&s.get(&format!("/videos/playback-stats?{q}")).await), Some(field), "{q}");
    }
}
