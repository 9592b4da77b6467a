//! The log's own faults (issue 11 items 2, 3, 4, 7): what the aggregator cannot
//! count without guessing halts that one partition (protocol step P11), visibly
//! (a metric, a log line, `vcount-admin partitions`), until an operator resumes it;
//! the other partitions keep counting exactly. Every test first proves the halt
//! happened for the reason it names, then that counts equal the ledger of what was
//! counted, and, where resuming makes sense, that resuming ends exact.

use std::collections::HashMap;
use std::time::Duration;

use e2e::*;
use platform::admin::From;
use uuid::Uuid;

const HALTED: &str = "aggregator_halted_partitions_total";

/// Views sent straight to the topic (valid events, as the gateway encodes them),
/// recording each one's partition and offset.
async fn raw_views(env: &TestEnv, videos: &[Uuid], n: usize, ledger: &mut Ledger) -> Vec<(Uuid, i64, i32, i64)> {
    let mut sent = Vec::new();
    for i in 0..n {
        let video = videos[i % videos.len()];
        let at = now_ms() - (i as i64 % 50) * MINUTE;
        let (p, offset) = produce_raw(&env.events_topic(), video, &encoded_event(video, 1, at)).await;
        ledger.record(video, at);
        sent.push((video, at, p, offset));
    }
    sent
}

/// Each video's partition, learned from the raw views.
fn partitions_of(sent: &[(Uuid, i64, i32, i64)]) -> HashMap<Uuid, i32> {
    sent.iter().map(|(v, _, p, _)| (*v, *p)).collect()
}

/// The ledger without the events of videos in `partition`.
fn without_partition(ledger: &Ledger, parts: &HashMap<Uuid, i32>, partition: i32) -> Ledger {
    let mut out = Ledger::default();
    for (video, times) in ledger.videos() {
        if parts.get(&video) != Some(&partition) {
            for t in times {
                out.record(video, *t);
            }
        }
    }
    out
}

fn merge(a: &Ledger, b: &Ledger) -> Ledger {
    let mut out = Ledger::default();
    for l in [a, b] {
        for (video, times) in l.videos() {
            for t in times {
                out.record(video, *t);
            }
        }
    }
    out
}

/// A well-formed event of a type this aggregator does not know (a newer gateway)
/// halts its partition instead of being dead-lettered and lost. Resuming at the
/// committed offset halts again (the type is still unknown); resuming past it, as
/// an operator who accepts losing that one event would, counts the rest exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unknown_event_type_halts_its_partition_until_an_operator_resumes_it() {
    let mut env = TestEnv::start("newtype", 4).await;
    let videos = uuids(12);
    let mut before = Ledger::default();
    let sent = raw_views(&env, &videos, 120, &mut before).await;
    let parts = partitions_of(&sent);
    let agg = env.spawn_aggregator();
    env.assert_converges(&before, &[None], Duration::from_secs(60)).await;

    let (p, offset) = produce_raw(&env.events_topic(), videos[0], &encoded_event(videos[0], 99, now_ms())).await;
    let mut after = Ledger::default();
    raw_views(&env, &videos, 120, &mut after).await;
    env.wait_metric(agg, HALTED, "reason=\"unknown_event_type\"", 1.0, Duration::from_secs(60)).await;
    assert_eq!(env.aggregator_metric(agg, "aggregator_partitions_halted").await, 1.0);
    assert_eq!(env.aggregator_metric(agg, "aggregator_dead_letters_total").await, 0.0, "not poison");
    assert!(env.aggregator_log(agg).contains("vcount-admin partitions resume"), "the log says how to resume");
    let admin = env.admin().await;
    let view = admin.show(&env.events_topic(), p).await.unwrap().expect("the partition is known");
    assert_eq!(view.halted(), Some("unknown_event_type"));
    assert_eq!(view.halt.as_ref().unwrap().at_offset, Some(offset));
    assert_eq!(admin.log_view(&env.events_topic(), p).await.unwrap().committed, Some(offset), "stopped right there");

    // Every other partition counts on; the halted one stops at the unknown event.
    let partial = merge(&before, &without_partition(&after, &parts, p));
    env.assert_converges(&partial, &[None], Duration::from_secs(60)).await;

    // Resumed as it is, the same event halts it again.
    admin.resume(&env.events_topic(), p, From::Committed).await.unwrap();
    env.wait_metric(agg, HALTED, "reason=\"unknown_event_type\"", 2.0, Duration::from_secs(30)).await;
    assert_eq!(env.aggregator_metric(agg, "aggregator_resumed_partitions_total").await, 1.0);
    // Past it, everything else is counted.
    admin.resume(&env.events_topic(), p, From::Offset(offset + 1)).await.unwrap();
    let all = merge(&before, &after);
    env.assert_converges(&all, &failure_ranges(now_ms()), Duration::from_secs(60)).await;
    assert_eq!(env.aggregator_metric(agg, "aggregator_partitions_halted").await, 0.0);
    assert_eq!(admin.show(&env.events_topic(), p).await.unwrap().unwrap().halted(), None);
}

/// A dead-letter topic that refuses every message (here: records larger than it
/// accepts) halts only the poison's partition after `dead_letter.timeout_ms`; the
/// others keep counting, and SIGTERM still ends the process promptly. Once the
/// topic accepts it again, resuming sends the dead letter and counts the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unwritable_dead_letter_topic_halts_only_the_poisons_partition() {
    let mut env = TestEnv::start("dlqdown", 4).await;
    let dlq = format!("{}video-events.dlq", env.topic_prefix);
    let retention = ("retention.ms", "2592000000");
    broker::set_topic_config(&dlq, &[("max.message.bytes", "200"), retention]).await;
    let videos = uuids(12);
    let mut before = Ledger::default();
    let sent = raw_views(&env, &videos, 120, &mut before).await;
    let parts = partitions_of(&sent);
    let quick = [("AGGREGATOR__DEAD_LETTER__TIMEOUT_MS", "3000")];
    let agg = env.spawn_aggregator_with(&quick);
    env.assert_converges(&before, &[None], Duration::from_secs(60)).await;

    let poison = vec![0xffu8; 2_000];
    let (p, offset) = produce_raw(&env.events_topic(), videos[0], &poison).await;
    let mut after = Ledger::default();
    raw_views(&env, &videos, 120, &mut after).await;
    env.wait_metric(agg, HALTED, "reason=\"dead_letter\"", 1.0, Duration::from_secs(60)).await;
    assert!(env.aggregator_metric(agg, "aggregator_dead_letter_errors_total").await >= 1.0);
    let partial = merge(&before, &without_partition(&after, &parts, p));
    env.assert_converges(&partial, &[None], Duration::from_secs(60)).await;
    let admin = env.admin().await;
    let view = admin.show(&env.events_topic(), p).await.unwrap().unwrap();
    assert_eq!((view.halted(), view.halt.as_ref().unwrap().at_offset), (Some("dead_letter"), Some(offset)));

    // SIGTERM is not held up by the dead-letter topic.
    let (took, clean) = env.terminate_within(agg, Duration::from_secs(30)).expect("exits after SIGTERM");
    assert!(clean, "exit 0");
    eprintln!("[dlqdown] stopped {took:?} after SIGTERM");

    // The topic is fixed; the halt outlives the process until an operator resumes.
    broker::set_topic_config(&dlq, &[("max.message.bytes", "1048588"), retention]).await;
    let next = env.spawn_aggregator_with(&quick);
    env.wait_metric(next, HALTED, "reason=\"dead_letter\"", 1.0, Duration::from_secs(60)).await;
    assert_eq!(env.aggregator_metric(next, "aggregator_dead_letters_total").await, 0.0);
    admin.resume(&env.events_topic(), p, From::Committed).await.unwrap();
    env.wait_metric(next, "aggregator_dead_letters_total", "", 1.0, Duration::from_secs(60)).await;
    env.assert_converges(&merge(&before, &after), &failure_ranges(now_ms()), Duration::from_secs(60)).await;
}

/// Messages deleted before they were counted (lag beyond retention) halt their
/// partition instead of being skipped silently (`auto.offset.reset` is `error`);
/// without an offset the operator's resume halts again; `--from earliest`
/// counts what is left, and nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_deleted_before_they_were_counted_halt_the_partition() {
    let mut env = TestEnv::start("retention", 4).await;
    let videos = uuids(12);
    let mut first = Ledger::default();
    raw_views(&env, &videos, 80, &mut first).await;
    let a = env.spawn_aggregator();
    env.assert_converges(&first, &[None], Duration::from_secs(60)).await;
    env.terminate_aggregator(a);

    // While no aggregator runs, more arrives, and retention deletes part of it.
    let mut second = Ledger::default();
    let sent = raw_views(&env, &videos, 160, &mut second).await;
    let parts = partitions_of(&sent);
    let p = parts[&videos[0]];
    let in_p: Vec<&(Uuid, i64, i32, i64)> = sent.iter().filter(|s| s.2 == p).collect();
    let cut = in_p[in_p.len() / 2].3;
    broker::delete_records(&env.events_topic(), p, cut).await;
    let mut kept = Ledger::default();
    for (video, at, part, offset) in &sent {
        if *part != p || *offset >= cut {
            kept.record(*video, *at);
        }
    }

    let b = env.spawn_aggregator();
    env.wait_metric(b, HALTED, "reason=\"offset_out_of_range\"", 1.0, Duration::from_secs(60)).await;
    let partial = merge(&first, &without_partition(&second, &parts, p));
    env.assert_converges(&partial, &[None], Duration::from_secs(60)).await;
    let admin = env.admin().await;
    let view = admin.show(&env.events_topic(), p).await.unwrap().unwrap();
    assert!(view.halt.as_ref().unwrap().detail.contains("deleted before they were counted"), "{view:?}");

    admin.resume(&env.events_topic(), p, From::Committed).await.unwrap();
    env.wait_metric(b, HALTED, "reason=\"offset_out_of_range\"", 2.0, Duration::from_secs(30)).await;
    let refused = admin.resume(&env.events_topic(), p, From::Offset(0)).await;
    assert!(refused.is_err(), "never back before the committed offset");
    admin.resume(&env.events_topic(), p, From::Earliest).await.unwrap();
    env.assert_converges(&merge(&first, &kept), &failure_ranges(now_ms()), Duration::from_secs(60)).await;
    env.assert_minute_rows_exact(&merge(&first, &kept)).await;
}

/// A topic deleted and created again starts its offsets at 0, below what the
/// rows hold: every partition that was counted halts, and nothing new is counted
/// into the old rows (which would skip it as already counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recreated_topic_halts_every_partition_it_had_counted() {
    let mut env = TestEnv::start("recreated", 3).await;
    let videos = uuids(12);
    let mut first = Ledger::default();
    let sent = raw_views(&env, &videos, 150, &mut first).await;
    let counted: std::collections::HashSet<i32> = sent.iter().map(|s| s.2).collect();
    let a = env.spawn_aggregator();
    env.assert_converges(&first, &[None], Duration::from_secs(60)).await;
    env.terminate_aggregator(a);

    let mut kafka = platform::kafka::KafkaConfig {
        brokers: brokers(),
        topic_prefix: env.topic_prefix.clone(),
        partitions: 3,
        ..Default::default()
    };
    kafka.create_topics = true;
    broker::recreate_topic(&kafka, &env.events_topic()).await;
    let mut second = Ledger::default();
    raw_views(&env, &videos, 30, &mut second).await;

    let b = env.spawn_aggregator();
    let halted = counted.len() as f64;
    env.wait_metric(b, "aggregator_partitions_halted", "", halted, Duration::from_secs(60)).await;
    assert_eq!(env.aggregator_metric_where(b, HALTED, "reason=\"offset_beyond_log\"").await, halted);
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.assert_converges(&first, &failure_ranges(now_ms()), Duration::from_secs(10)).await;
}

/// A topic that grew moves videos to other partitions: an aggregator refuses to
/// start on it, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_grown_topic_is_refused_at_start_up() {
    let mut env = TestEnv::start("grown", 3).await;
    let videos = uuids(6);
    let mut first = Ledger::default();
    raw_views(&env, &videos, 30, &mut first).await;
    let a = env.spawn_aggregator();
    env.assert_converges(&first, &[None], Duration::from_secs(60)).await;
    env.terminate_aggregator(a);

    broker::grow_topic(&env.events_topic(), 5).await;
    let (ok, log) = env.try_aggregator(&[], Duration::from_secs(60)).expect("the aggregator refuses to run");
    assert!(!ok, "exits with an error");
    assert!(log.contains("has 5 partitions but was counted with 3"), "{log}");
}

/// A row another Kafka partition wrote (two writers for one video: only a grown
/// topic does that) is an overlap: the partition halts instead of adding to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_row_written_from_another_partition_halts() {
    let mut env = TestEnv::start("foreign", 3).await;
    let videos = uuids(6);
    let mut first = Ledger::default();
    raw_views(&env, &videos, 30, &mut first).await;
    let agg = env.spawn_aggregator();
    env.assert_converges(&first, &[None], Duration::from_secs(60)).await;

    // A writer from partition 77 left an all-time row for a video this partition
    // has not counted yet.
    let stranger = Uuid::new_v4();
    let admin = env.admin().await;
    let cql = format!(
        "INSERT INTO {}.counts (video_id, event_type, granularity, bucket, value, last_offset, kafka_partition) \
         VALUES (?, 'view', 'total', 0, 5, 1, 77)",
        env.keyspace
    );
    admin.session.query_unpaged(cql, (stranger,)).await.unwrap();
    let (q, _) = produce_raw(&env.events_topic(), stranger, &encoded_event(stranger, 1, now_ms())).await;
    env.wait_metric(agg, HALTED, "reason=\"overlap\"", 1.0, Duration::from_secs(60)).await;
    let view = admin.show(&env.events_topic(), q).await.unwrap().unwrap();
    assert!(view.halt.unwrap().detail.contains("kafka partition 77"));
    assert_eq!(env.views(stranger, None).await, Ok(5), "the stranger's row was not added to");
}

/// An epoch outside the fenced write timestamp's domain (issue 11 item 6) would
/// make `epoch << 40 | offset` wrap: the owner halts instead of writing. (Here the
/// partition's epoch is set to the last valid one, so the next claim crosses it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_epoch_beyond_the_timestamp_domain_halts_instead_of_writing() {
    let mut env = TestEnv::start("domain", 2).await;
    let videos = uuids(4);
    let mut first = Ledger::default();
    let sent = raw_views(&env, &videos, 20, &mut first).await;
    let a = env.spawn_aggregator();
    env.assert_converges(&first, &[None], Duration::from_secs(60)).await;
    env.terminate_aggregator(a);

    let p = sent[0].2;
    let admin = env.admin().await;
    let cql = format!("UPDATE {}.partition_state SET epoch = ? WHERE topic = ? AND kafka_partition = ?", env.keyspace);
    admin.session.query_unpaged(cql, (counting::timestamp::MAX_EPOCH, env.events_topic(), p)).await.unwrap();
    let mut second = Ledger::default();
    raw_views(&env, &videos, 20, &mut second).await;
    let b = env.spawn_aggregator();
    env.wait_metric(b, HALTED, "reason=\"timestamp_domain\"", 1.0, Duration::from_secs(60)).await;
    let parts = partitions_of(&sent);
    env.assert_converges(&merge(&first, &without_partition(&second, &parts, p)), &[None], Duration::from_secs(60))
        .await;
}

/// The events topic keeps its messages for the configured retention (7 days by
/// default), set explicitly when the topic is created (issue 11 item 9).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_events_topic_is_created_with_an_explicit_retention() {
    let env = TestEnv::start("retention-ms", 2).await;
    let kafka = platform::kafka::KafkaConfig::default();
    for topic in [env.events_topic(), format!("{}video-ratings", env.topic_prefix)] {
        let kafka = platform::kafka::KafkaConfig { brokers: brokers(), ..kafka.clone() };
        let retention = platform::kafka::topic_config(&kafka, &topic, "retention.ms").await.unwrap();
        assert_eq!(retention, Some("604800000".to_owned()), "{topic}");
    }
    let timestamps = platform::kafka::topic_config(
        &platform::kafka::KafkaConfig { brokers: brokers(), ..kafka },
        &env.events_topic(),
        "message.timestamp.type",
    )
    .await
    .unwrap();
    assert_eq!(timestamps.as_deref(), Some("LogAppendTime"));
}
