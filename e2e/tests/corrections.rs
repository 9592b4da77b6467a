//! `vcount-admin correct` (issue 13: a per-video correction through the same log as
//! compensating events, exact and auditable) on the real Kafka and Cassandra. A
//! bot's minutes are zeroed and a minute is added to; every minute, hour and
//! all-time answer equals the ledger with the same change made to it; a second
//! zeroing sends nothing; a correction sent twice with the same id is dropped the
//! second time (the test sees the aggregator drop it); each correction is in the
//! moderation audit log; the other video is untouched.

use std::sync::Arc;
use std::time::Duration;

use counting::EventKind;
use e2e::*;
use futures::TryStreamExt;
use uuid::Uuid;
use vcount_admin::correct::{Change, Correction, Target, run};

const DROPPED: &str = "aggregator_duplicates_dropped_total";

/// getStats' event count of `video`'s views in `[from, to)` (whole minutes).
async fn stats_count(env: &TestEnv, video: Uuid, from: i64, to: i64) -> i64 {
    let path = format!(
        "/api/v1/videos/{video}/stats/view?function=count&from={}&to={}&step=minute",
        rfc3339(from),
        rfc3339(to)
    );
    let body: serde_json::Value = env.http.get(env.query_url(&path)).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["unrecordedBuckets"].as_i64(), Some(0), "{body}");
    body["value"].as_f64().unwrap_or_else(|| panic!("{body}")) as i64
}

/// An audit entry: action, target type, target id, status, notes.
type AuditRow = (String, String, Uuid, Option<String>, Option<String>);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corrections_change_exactly_what_they_say_once_and_on_the_record() {
    let mut env = TestEnv::start("corrections", 2).await;
    env.spawn_aggregator();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut ledger = Ledger::default();
    send_views(&env, &mut ledger, &[a, b], 300, 40 * MINUTE).await;
    env.wait_active(0).await;
    let now = now_ms();
    let minute = now - now % MINUTE;
    // The bot's range: ten whole minutes in the middle of the traffic.
    let (from, to) = (minute - 25 * MINUTE, minute - 15 * MINUTE);
    let ranges =
        [None, Some((from, to)), Some((now - 2 * HOUR, now + MINUTE)), Some((from - 7 * MINUTE, to + 3 * MINUTE))];
    env.assert_converges(&ledger, &ranges, Duration::from_secs(60)).await;

    let cfg = platform::cassandra::CassandraConfig { nodes: cassandra_nodes(), ..Default::default() };
    let session = Arc::new(platform::cassandra::connect(&cfg, Duration::from_secs(30)).await.unwrap());
    let mut kafka = platform::kafka::KafkaConfig { brokers: brokers(), ..Default::default() };
    kafka.topic_prefix = env.topic_prefix.clone();
    let target =
        Target { session: session.clone(), keyspace: env.keyspace.clone(), kafka, minute_retention_ms: 8 * 86_400_000 };
    let zero = Correction {
        id: Uuid::new_v4(),
        video: a,
        kind: EventKind::View,
        change: Change::Zero { from_ms: from, to_ms: to },
        reason: "bot 203.0.113.7".into(),
    };

    // A dry run reads the ledger's minutes and sends nothing.
    let dry = run(&target, &zero, true).await.unwrap();
    let want: Vec<(i64, i64)> = (from..to)
        .step_by(MINUTE as usize)
        .map(|m| (m, ledger.count_exact(a, m, m + MINUTE)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let planned: Vec<(i64, i64)> = dry.sent.iter().map(|k| (k.minute_ms, -k.value)).collect();
    assert_eq!(planned, want, "one compensating event per nonzero minute, minus its count");
    assert!(want.len() >= 5, "the range had traffic: {want:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.assert_converges(&ledger, &ranges, Duration::from_secs(5)).await;

    // The zeroing: the range is 0, every answer around it exact.
    let done = run(&target, &zero, false).await.unwrap();
    assert_eq!(done.sent, dry.sent);
    let removed = ledger.remove(a, from, to);
    assert_eq!(removed as i64, want.iter().map(|(_, n)| n).sum::<i64>());
    env.assert_converges(&ledger, &ranges, Duration::from_secs(60)).await;
    assert_eq!(env.views(a, Some((from, to))).await, Ok(0));
    env.assert_minute_rows_exact(&ledger).await;
    // getStats counts events: the zeroing took the bot's events back with its views.
    for (f, t) in [(from, to), (from - 7 * MINUTE, minute + MINUTE)] {
        assert_eq!(stats_count(&env, a, f, t).await, ledger.count_exact(a, f, t), "events in [{f}, {t})");
    }
    // Again: it reads zeros and sends nothing.
    assert!(run(&target, &zero, false).await.unwrap().sent.is_empty(), "a second zeroing sends nothing");

    // Adding back three views at one minute, sent twice with the same id (a
    // rerun after a failure): counted once, the copy dropped.
    let at = minute - 5 * MINUTE;
    let add = Correction {
        id: Uuid::new_v4(),
        video: a,
        kind: EventKind::View,
        change: Change::Add { at_ms: at, amount: 3, events: 3 },
        reason: "views lost upstream".into(),
    };
    let dropped_before = env.aggregator_metric(0, DROPPED).await;
    run(&target, &add, false).await.unwrap();
    for _ in 0..3 {
        ledger.record(a, at);
    }
    env.assert_converges(&ledger, &ranges, Duration::from_secs(60)).await;
    run(&target, &add, false).await.unwrap();
    let dropped = env.wait_metric(0, DROPPED, "", dropped_before + 1.0, Duration::from_secs(60)).await;
    assert_eq!(dropped - dropped_before, 1.0, "the resent correction reached the log and was dropped");
    env.assert_converges(&ledger, &ranges, Duration::from_secs(30)).await;
    env.assert_minute_rows_exact(&ledger).await;
    // Three views are three events (`--add 3` counts them as such), added once.
    let (f, t) = (from - 7 * MINUTE, minute + MINUTE);
    assert_eq!(stats_count(&env, a, f, t).await, ledger.count_exact(a, f, t));
    assert_eq!(stats_count(&env, a, at, at + MINUTE).await, ledger.count_exact(a, at, at + MINUTE));

    // On the record: what, how much, which correction, why.
    let q = format!("SELECT action, target_type, target_id, status, notes FROM {}.moderation_audit", env.keyspace);
    let rows: Vec<AuditRow> =
        session.query_iter(q, ()).await.unwrap().rows_stream().unwrap().try_collect().await.unwrap();
    let of =
        |c: &Correction| rows.iter().filter(|r| r.3.as_deref().is_some_and(|s| s.contains(&c.id.to_string()))).count();
    assert_eq!((of(&zero), of(&add)), (1, 2), "one entry per run that sent something: {rows:?}");
    for r in &rows {
        assert_eq!((r.0.as_str(), r.1.as_str(), r.2), ("correct_counts", "video", a), "{r:?}");
    }
    let zeroed = rows.iter().find(|r| r.3.as_deref().is_some_and(|s| s.contains(&zero.id.to_string()))).unwrap();
    assert!(zeroed.3.as_deref().unwrap().starts_with(&format!("view -{removed} over ")), "{zeroed:?}");
    assert_eq!(zeroed.4.as_deref(), Some("bot 203.0.113.7"));
}
