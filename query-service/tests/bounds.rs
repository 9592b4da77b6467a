//! Every expensive read path has a bound, on the real Cassandra, with the bounds
//! set small so a few rows cross them: search reads at most
//! `limits.search_rows_per_word` videos per word (the newest), trending at most
//! `limits.trending_rows` rows per request and says when it did not read them all,
//! related at most 100 view counts. One test in this binary, so the read counter
//! it watches (`query_cassandra_read_duration_seconds_count`) moves for it alone.

mod common;

use common::*;
use counting::Granularity;
use reqwest::StatusCode;
use scylla::value::CqlTimestamp;
use serde_json::Value;
use uuid::Uuid;

/// All-time-row reads so far (`granularity="total"`): view counts.
async fn total_reads(s: &Service) -> f64 {
    let text = reqwest::get(format!("{}/metrics", s.admin)).await.unwrap().text().await.unwrap();
    let prefix = "query_cassandra_read_duration_seconds_count{granularity=\"total\"} ";
    text.lines().find_map(|l| l.strip_prefix(prefix)).map_or(0.0, |n| n.parse().unwrap())
}

#[tokio::test]
async fn search_trending_and_related_read_a_bounded_number_of_rows() {
    let s = Service::start_with(SECRET, |c| {
        c.limits.search_rows_per_word = 3;
        c.limits.trending_rows = 4;
    })
    .await;
    let (_, token) = signed_in(&s, "Bo").await;
    let cql = s.cql().await;
    let ks = s.keyspace.clone();

    // Search: five videos share a word; each search reads the newest three of them.
    let mut common = Vec::new();
    for i in 0..5 {
        common.push(submit(&s, &token, &format!("Common word {i}"), "", &[]).await);
    }
    let found = ok(&s, "/search/videos?query=common&pageSize=100").await;
    let newest: Vec<String> = common.iter().rev().take(3).cloned().collect();
    assert_eq!(ids(&found), newest, "the newest 3 of 5: {found}");
    assert_eq!(pagination(&found), [1, 100, 3, 1]);
    // A rarer word is still found whole.
    let one = ok(&s, "/search/videos?query=common%204").await;
    assert_eq!(ids(&one), vec![common[4].clone()]);

    // Trending: 4 rows per request over the 1 h window's two hour buckets, so two
    // per bucket; this hour holds five videos.
    let now = chrono::Utc::now().timestamp_millis();
    let hour = Granularity::Hour.bucket(now);
    let insert = format!(
        "INSERT INTO {ks}.rollups_by_bucket (event_type, granularity, bucket, video_id, value) VALUES (?, ?, ?, ?, ?)"
    );
    let counted: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    for (i, v) in counted.iter().enumerate() {
        cql.query_unpaged(insert.clone(), ("view", "hour", CqlTimestamp(hour), *v, 10 + i as i64)).await.unwrap();
    }
    let top = ok(&s, "/trending?window=1h&limit=100").await;
    assert_eq!(top["complete"], false, "{top}");
    let read: Vec<&str> = top["items"].as_array().unwrap().iter().map(|i| i["videoId"].as_str().unwrap()).collect();
    assert_eq!(read.len(), 2, "this hour's share of the budget: {top}");
    assert!(read.iter().all(|r| counted.iter().any(|c| c.to_string() == *r)), "{top}");
    // With a window whose buckets hold less than their share, the answer is whole.
    let day_top = ok(&s, "/trending?window=7d").await;
    assert_eq!((day_top["complete"].as_bool(), day_top["items"].as_array().map(Vec::len)), (Some(true), Some(0)));
    // KillrVideo's trending list is bounded the same way (no row for these ids).
    let (status, list) = s.get("/videos/trending?intervalDays=1").await;
    assert_eq!((status, list), (StatusCode::OK, Value::Array(vec![])));

    // Related: one video and 150 others sharing its tag; every candidate ties, and
    // the tie is broken by views for at most 100 of them.
    let source = submit(&s, &token, "Source", "", &["shared"]).await;
    let by_tag = format!("INSERT INTO {ks}.videos_by_tag (tag, videoid) VALUES ('shared', ?)");
    for _ in 0..150 {
        cql.query_unpaged(by_tag.clone(), (Uuid::now_v7(),)).await.unwrap();
    }
    let before = total_reads(&s).await;
    let (status, related) = s.get(&format!("/videos/id/{source}/related?limit=5")).await;
    assert_eq!(status, StatusCode::OK, "{related}");
    let reads = total_reads(&s).await - before;
    assert_eq!(reads, 100.0, "view counts read for 150 tied candidates");
}
