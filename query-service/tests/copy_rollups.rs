//! Moving a keyspace from the per-flush aggregator (`rollups`) to the rounds
//! (`counts`), on the real Cassandra: rows planted the way the old aggregator
//! wrote them (minute rows with a TTL, hour, day and all-time rows, write times
//! in its `epoch << 40 | offset` domain) are copied by
//! `platform::admin::copy_rollups_to_counts`; the query service, which reads only
//! `counts`, must then answer the ledger, and every copied row keep its value,
//! `last_offset`, partition, write time and TTL. A second copy is refused.

mod common;

use common::*;
use scylla::value::CqlTimestamp;

const MINUTE: i64 = 60_000;

#[tokio::test]
async fn rollups_copied_into_counts_are_served_unchanged() {
    let s = Service::start(SECRET).await;
    let cql = s.cql().await;
    let ks = &s.keyspace;
    let now = chrono::Utc::now().timestamp_millis();
    let insert = cql
        .prepare(format!(
            "INSERT INTO {ks}.rollups (video_id, event_type, granularity, bucket, value, last_offset, kafka_partition) \
             VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
        ))
        .await
        .unwrap();
    // Two videos, views and likes, over the last three hours: one event per
    // (video, type) every 7 minutes, minute rows with an 8-day TTL as the old
    // aggregator wrote them, coarser rows without.
    let videos = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()];
    let mut ledger = std::collections::BTreeMap::<(uuid::Uuid, &str), Vec<i64>>::new();
    let mut planted = 0;
    for (v, video) in videos.iter().enumerate() {
        for (k, kind) in ["view", "like"].into_iter().enumerate() {
            let events: Vec<i64> =
                (0..26).map(|i| now - 20_000 - i * 7 * MINUTE - (v * 13 + k) as i64 * 1_000).collect();
            let mut rows = std::collections::BTreeMap::<(&str, i64), i64>::new();
            for &t in &events {
                for g in [counting::Granularity::Minute, counting::Granularity::Hour, counting::Granularity::Day] {
                    *rows.entry((g.as_str(), g.bucket(t))).or_default() += 1;
                }
            }
            rows.insert(("total", 0), events.len() as i64);
            let partition = (v * 2 + k) as i32;
            for (i, ((g, bucket), value)) in rows.iter().enumerate() {
                let ttl = if *g == "minute" { 8 * 86_400 } else { 0 };
                let offset = 1_000 + i as i64;
                let writetime = (3_i64 << 40) | offset;
                let values = (video, kind, g, CqlTimestamp(*bucket), value, offset, partition, ttl, writetime);
                cql.execute_unpaged(&insert, values).await.unwrap();
                planted += 1;
            }
            ledger.insert((*video, kind), events);
        }
    }

    let copied = platform::admin::copy_rollups_to_counts(&cql, ks).await.unwrap();
    assert_eq!(copied, planted);

    // Row by row: the same value, offset, partition and write time, the TTL kept.
    let read = |table: &str| {
        format!(
            "SELECT video_id, event_type, granularity, bucket, value, last_offset, kafka_partition, TTL(value), \
             WRITETIME(value) FROM {ks}.{table}"
        )
    };
    type Row = (uuid::Uuid, String, String, CqlTimestamp, i64, i64, i32, Option<i32>, i64);
    let rows = |table: &'static str| {
        let cql = &cql;
        let q = read(table);
        async move {
            use futures::TryStreamExt;
            let mut v: Vec<Row> =
                cql.query_iter(q, &[]).await.unwrap().rows_stream::<Row>().unwrap().try_collect().await.unwrap();
            v.sort_by_key(|r| (r.0, r.1.clone(), r.2.clone(), r.3.0));
            v
        }
    };
    let (old, new) = (rows("rollups").await, rows("counts").await);
    assert_eq!(old.len(), planted as usize);
    assert_eq!(new.len(), old.len());
    for (o, n) in old.iter().zip(&new) {
        assert_eq!((&o.0, &o.1, &o.2, o.3.0, o.4, o.5, o.6, o.8), (&n.0, &n.1, &n.2, n.3.0, n.4, n.5, n.6, n.8));
        match (o.7, n.7) {
            (None, None) => assert_ne!(o.2, "minute", "minute rows carry their TTL"),
            (Some(a), Some(b)) => assert!((a - b).abs() <= 5 && b > 86_400, "TTL {a} became {b}"),
            other => panic!("TTL changed: {other:?} for {o:?}"),
        }
    }

    // The query service reads counts only: its answers are the ledger's.
    for ((video, kind), events) in &ledger {
        let from = now - 4 * 60 * MINUTE;
        let (_, c) = s.get(&format!("/videos/{video}/counts/{kind}?from={}", iso(from))).await;
        let expect = events.iter().filter(|&&t| t >= ms(&c["from"]) && t < ms(&c["to"])).count() as i64;
        assert_eq!(c["count"].as_i64(), Some(expect), "{video} {kind}: {c}");
        assert!(expect > 0);
    }

    // Once rows are in counts (a rounds aggregator may have written them), a copy
    // would overwrite newer counts: refused.
    let again = platform::admin::copy_rollups_to_counts(&cql, ks).await.unwrap_err();
    assert!(again.to_string().contains("already holds rows"), "{again}");
}

fn iso(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn ms(v: &serde_json::Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
        .timestamp_millis()
}
