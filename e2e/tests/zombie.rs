//! R7: a live owner paused (SIGSTOP) past its session timeout while its successor
//! takes the partitions over, then woken (SIGCONT) in the middle of a flush (issue
//! 11 item 5). The fault injection (`flush.fault_pause_at`) makes the pause land
//! at a known point of the flush, and each test proves it hit the case it names
//! before it checks the counts against the ledger.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use e2e::*;

/// A field of a log line (`name=value`).
fn field(line: &str, name: &str) -> Option<String> {
    let rest = &line[line.find(&format!(" {name}="))? + name.len() + 2..];
    Some(rest.split(' ').next()?.to_owned())
}

/// What the successor's log says of each partition of `topic` it took:
/// partition -> (epoch, the fence if its first flush is in doubt).
fn takeovers(log: &str, topic: &str) -> HashMap<i32, (i64, Option<i64>)> {
    let of_topic = |l: &&str| l.contains(&format!("\"{topic}\""));
    let mut starts = HashMap::new();
    for line in log.lines().filter(|l| l.contains("starting partition")).filter(of_topic) {
        let (Some(p), Some(start)) = (field(line, "partition"), field(line, "start")) else { continue };
        starts.insert(p.parse::<i32>().unwrap(), start.parse::<i64>().unwrap());
    }
    let mut out = HashMap::new();
    for line in log.lines().filter(|l| l.contains("claimed partition")).filter(of_topic) {
        let (Some(p), Some(e), Some(a)) = (field(line, "partition"), field(line, "epoch"), field(line, "attempted"))
        else {
            continue;
        };
        let p: i32 = p.parse().unwrap();
        let attempted: Option<i64> = a.strip_prefix("Some(").and_then(|a| a.trim_end_matches(')').parse().ok());
        let in_doubt = attempted.filter(|&a| starts.get(&p).is_some_and(|&s| a >= s));
        out.insert(p, (e.parse().unwrap(), in_doubt));
    }
    out
}

/// A row of `counts`: (video, event type, granularity, bucket).
type RowId = (uuid::Uuid, String, String, i64);

/// The rows at a successor's fence offset (`taken`: partition -> (epoch, fence)),
/// split by who wrote them: the successor (its epoch) or the owner before it
/// (the epoch before). Any other epoch there fails the test.
async fn rows_at_fences(env: &TestEnv, taken: &HashMap<i32, (i64, Option<i64>)>) -> (usize, HashSet<RowId>) {
    let admin = env.admin().await;
    let cql = format!(
        "SELECT video_id, event_type, granularity, bucket, kafka_partition, last_offset, WRITETIME(value) FROM {}.counts",
        env.keyspace
    );
    type Row = (uuid::Uuid, String, String, scylla::value::CqlTimestamp, Option<i32>, Option<i64>, Option<i64>);
    let result = admin.session.query_unpaged(cql, &[]).await.unwrap().into_rows_result().unwrap();
    let rows: Vec<Row> = result.rows::<Row>().unwrap().map(Result::unwrap).collect();
    let (mut new_epoch, mut old_epoch) = (0, HashSet::new());
    for (video, kind, granularity, bucket, p, last, ts) in rows {
        let (Some(p), Some(last), Some(ts)) = (p, last, ts) else { continue };
        let Some(&(epoch, Some(fence))) = taken.get(&p) else { continue };
        if last != fence {
            continue;
        }
        let by = ts >> 40;
        assert_eq!(ts & ((1 << 40) - 1), last, "the timestamp carries the row's offset");
        assert!(
            by == epoch || by == epoch - 1,
            "row of partition {p} at {last} written by epoch {by}, not {epoch} or {}",
            epoch - 1
        );
        if by == epoch {
            new_epoch += 1;
        } else {
            old_epoch.insert((video, kind, granularity, bucket.0));
        }
    }
    (new_epoch, old_epoch)
}

/// Woken before its next P5: the old owner had taken its flush's plans when it
/// was stopped; by the time it runs `mark_attempted`, its successor has bumped the
/// epoch, so P5 refuses it and it writes nothing of that flush.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_owner_woken_after_its_successor_took_over_is_refused_at_p5() {
    let mut env = TestEnv::start("zombie-mark", 4).await;
    let pause = [("AGGREGATOR__FLUSH__FAULT_PAUSE_AT", "before_mark"), ("AGGREGATOR__FLUSH__FAULT_PAUSE_MS", "3000")];
    let old = env.spawn_aggregator_with(&pause);
    let load = start_load(&env, uuids(30), 60, 100, Duration::from_millis(150));
    env.wait_active(old).await;
    load.wait_for(6).await;
    // Stop it inside the pause, before its P5.
    let n = env.aggregator_log(old).matches("fault injection: pausing before mark_attempted").count();
    env.wait_log(old, "fault injection: pausing before mark_attempted", n + 1, Duration::from_secs(30)).await;
    env.signal_aggregator(old, "STOP");

    let new = env.spawn_aggregator();
    env.wait_active(new).await;
    let events = format!("topic=\"{}\"", env.events_topic());
    env.wait_metric(new, "aggregator_assigned_partitions", &events, 4.0, Duration::from_secs(60)).await;
    env.wait_metric(new, "aggregator_rows_written_total", "", 1.0, Duration::from_secs(60)).await;
    env.signal_aggregator(old, "CONT");

    let refused = env.wait_metric(old, "aggregator_fenced_out_total", "", 1.0, Duration::from_secs(60)).await;
    eprintln!("[zombie-mark] the woken owner's P5 was refused for {refused} partitions");
    let mut ledger = load.handle.await.unwrap();

    // The successor leaves: the woken member gets back the very partitions it was
    // fenced out of (and paused then). It must read them again: events sent now
    // are counted only if it does (a pause surviving the reassignment wedged them).
    env.terminate_aggregator(new);
    env.wait_metric(old, "aggregator_assigned_partitions", &events, 4.0, Duration::from_secs(60)).await;
    send_views(&env, &mut ledger, &uuids(10), 400, 60_000).await;
    env.assert_converges(&ledger, &failure_ranges(now_ms()), Duration::from_secs(120)).await;
    env.assert_minute_rows_exact(&ledger).await;
}

/// Woken in the middle of writing a flush: the old owner had passed P5 and
/// written one batch when it was stopped. Its successor finds the flush in doubt
/// (fenced flush; what the batch wrote is skipped: a series written whole through
/// its floor, rows of an unfinished one by the row rule) and goes on; then the old
/// owner writes the rest of its flush, late. Those writes carry its older epoch in
/// their timestamps (P8), so every row its successor wrote at the same offsets
/// keeps the successor's write; the counts equal the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_owner_woken_mid_flush_writes_late_and_loses() {
    let mut env = TestEnv::start("zombie-write", 4).await;
    let pause = [
        ("AGGREGATOR__FLUSH__FAULT_PAUSE_AT", "mid_write"),
        ("AGGREGATOR__FLUSH__FAULT_PAUSE_MS", "3000"),
        // One request at a time: when the first lands and pauses, none other has.
        ("AGGREGATOR__FLUSH__CONCURRENCY", "1"),
    ];
    let old = env.spawn_aggregator_with(&pause);
    let load = start_load(&env, uuids(30), 60, 100, Duration::from_millis(150));
    env.wait_active(old).await;
    load.wait_for(6).await;
    let needle = "fault injection: pausing mid-flush";
    let n = env.aggregator_log(old).matches(needle).count();
    env.wait_log(old, needle, n + 1, Duration::from_secs(30)).await;
    let rows_before = env.aggregator_metric(old, "aggregator_rows_written_total").await;
    let pauses_over = env.aggregator_log(old).matches("fault injection: pause over").count();
    env.signal_aggregator(old, "STOP");

    let new = env.spawn_aggregator();
    let events = format!("topic=\"{}\"", env.events_topic());
    env.wait_metric(new, "aggregator_assigned_partitions", &events, 4.0, Duration::from_secs(60)).await;
    let taken = takeovers(&env.aggregator_log(new), &env.events_topic());
    let in_doubt = taken.values().filter(|(_, fence)| fence.is_some()).count();
    assert!(in_doubt >= 1, "the successor found a flush in doubt: {taken:?}");
    // Every flush in doubt completed by the successor before the old owner wakes.
    let fenced =
        env.wait_metric(new, "aggregator_fenced_flushes_total", "", in_doubt as f64, Duration::from_secs(60)).await;
    let landed = env.wait_in_doubt_landed(new, Duration::from_secs(30)).await;
    eprintln!(
        "[zombie-write] the successor flushed {fenced} flushes in doubt at their fence, skipping {landed} series or \
         rows the old owner had written"
    );
    // What the old owner wrote before its pause, at the fences: the successor kept it.
    let (_, before) = rows_at_fences(&env, &taken).await;
    assert!(!before.is_empty(), "the old owner's first batch is at its fence");
    env.signal_aggregator(old, "CONT");
    env.wait_log(old, "fault injection: pause over", pauses_over + 1, Duration::from_secs(30)).await;
    // Its flush completes: every row of it written, late (its commit then fails).
    let late =
        env.wait_metric(old, "aggregator_rows_written_total", "", rows_before + 1.0, Duration::from_secs(30)).await;
    eprintln!("[zombie-write] the woken owner finished its flush late: {} rows", late - rows_before);

    // Rows at a successor's fence offset were written by the flush in doubt: the
    // old owner's first batch (which the successor skipped) or the successor. A
    // row of the old epoch there that was not one before it woke is a late write
    // that won.
    let (new_epoch, after) = rows_at_fences(&env, &taken).await;
    eprintln!(
        "[zombie-write] rows at the fences: {new_epoch} by the successor, {} by the old owner before its pause",
        after.len()
    );
    assert!(new_epoch >= 1, "the successor completed the flush in doubt");
    let won: Vec<_> = after.difference(&before).collect();
    assert!(won.is_empty(), "late writes of the old owner won: {won:?}");

    let ledger = load.handle.await.unwrap();
    env.assert_converges(&ledger, &failure_ranges(now_ms()), Duration::from_secs(120)).await;
    env.assert_minute_rows_exact(&ledger).await;
}
