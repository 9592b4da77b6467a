//! Freshness from the owner (issue 15) through the real query service on the real
//! Cassandra: `counts` rows are written directly with chosen `last_offset`s and
//! write timestamps (`epoch << 40 | offset`, as the aggregator writes them), the
//! owner's address in `partition_owners`, and a small HTTP server in the test
//! stands in for the aggregator's `GET /owner/held` (our own contract), answering
//! scripted `counting::fresh::Held` values. Every answer is checked against what
//! the rows and the held events add up to, and the `query_owner_reads_total`
//! outcome says which path it took.
//!
//! The tests share the process' metrics, so they run one at a time ([`SERIAL`]).

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use common::*;
use counting::fresh::{Held, HeldMinute, HeldPart};
use reqwest::StatusCode;
use scylla::client::session::Session;
use scylla::value::CqlTimestamp;
use serde_json::Value;
use uuid::Uuid;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const PARTITIONS: i32 = 12;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the stand-in owner answers, in order; the last answer repeats.
#[derive(Clone)]
enum Reply {
    Held(Held),
    Status(u16),
    /// Answers after a pause (past the reader's timeout).
    Slow(Duration, Held),
    Body(String),
    /// Lands a round first (writes the all-time row `(value, last_offset)` as the
    /// owner's epoch 3 would), then answers: a round that completes the moment
    /// after the owner answered, before the reader reads the rows.
    LandThen(Arc<Session>, String, i64, i64, Held),
}

struct Owner {
    replies: Mutex<VecDeque<Reply>>,
    asked: AtomicUsize,
    /// The partition and video it owns: anything else is a 404, as from an
    /// aggregator that does not own the partition.
    partition: i32,
    video: Uuid,
}

async fn held(State(o): State<Arc<Owner>>, Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
    o.asked.fetch_add(1, Ordering::SeqCst);
    let ours = q.get("partition").map(String::as_str) == Some(&o.partition.to_string())
        && q.get("video").map(String::as_str) == Some(&o.video.to_string())
        && q.get("type").map(String::as_str) == Some("view");
    if !ours {
        return StatusCode::NOT_FOUND.into_response();
    }
    let reply = {
        let mut r = o.replies.lock().unwrap();
        if r.len() > 1 { r.pop_front() } else { r.front().cloned() }
    };
    match reply.expect("a scripted reply") {
        Reply::Held(h) => axum::Json(h).into_response(),
        Reply::Status(s) => StatusCode::from_u16(s).unwrap().into_response(),
        Reply::Slow(d, h) => {
            tokio::time::sleep(d).await;
            axum::Json(h).into_response()
        }
        Reply::Body(b) => ([("content-type", "application/json")], b).into_response(),
        Reply::LandThen(cql, ks, value, lo, h) => {
            write_row(&cql, &ks, o.video, "total", 0, value, lo, 3).await;
            axum::Json(h).into_response()
        }
    }
}

/// A stand-in owner of `video`'s partition on a port of its own: (its state, `host:port`).
async fn stand_in(video: Uuid, replies: Vec<Reply>) -> (Arc<Owner>, String) {
    let owner = Arc::new(Owner {
        replies: Mutex::new(replies.into()),
        asked: AtomicUsize::new(0),
        partition: platform::kafka::murmur2_partition(video.as_bytes(), PARTITIONS),
        video,
    });
    let app = axum::Router::new().route("/owner/held", axum::routing::get(held)).with_state(owner.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (owner, addr)
}

/// The write timestamp an owner of `epoch` gives the round at `offset`.
fn stamp(epoch: i64, offset: i64) -> i64 {
    (epoch << 40) | offset
}

fn events_topic() -> String {
    platform::kafka::KafkaConfig::default().events_topic()
}

#[allow(clippy::too_many_arguments)] // a row's key, value and stamp, spelled out
async fn write_row(cql: &Session, ks: &str, video: Uuid, g: &str, bucket: i64, value: i64, lo: i64, epoch: i64) {
    let insert = format!(
        "INSERT INTO {ks}.counts (video_id, event_type, granularity, bucket, value, last_offset, events, \
         min_value, max_value) VALUES (?, 'view', ?, ?, ?, ?, ?, 1, 1) USING TIMESTAMP ?"
    );
    // Views: as many events as the sum, each of value 1.
    let values = (video, g, CqlTimestamp(bucket), value, lo, value, stamp(epoch, lo));
    cql.query_unpaged(insert, values).await.unwrap();
}

struct Fixture {
    s: Service,
    cql: Arc<Session>,
    video: Uuid,
}

impl Fixture {
    async fn start(owner_reads: bool) -> Self {
        // Every read looks its owner up again: the tests move owners between reads.
        Self::start_caching(owner_reads, 0).await
    }

    async fn start_caching(owner_reads: bool, owner_cache_ms: u64) -> Self {
        let s = Service::start_with(SECRET, |c| {
            c.counts.owner_reads = owner_reads;
            c.counts.owner_cache_ms = owner_cache_ms;
            c.counts.owner_timeout_ms = 300;
            // Long enough that a second read right after a failure is never asked.
            c.counts.owner_backoff_ms = 60_000;
        })
        .await;
        let cql = Arc::new(s.cql().await);
        Self { s, cql, video: Uuid::new_v4() }
    }

    /// `topic_state` as the first aggregator records it.
    async fn topic_state(&self) {
        let ks = &self.s.keyspace;
        let cql = format!("INSERT INTO {ks}.topic_state (topic, partitions, recorded_at) VALUES (?, ?, ?)");
        self.cql.query_unpaged(cql, (events_topic(), PARTITIONS, CqlTimestamp(0))).await.unwrap();
    }

    /// The video's partition's owner row, as a claim of `epoch` writes it.
    async fn owner_at(&self, address: &str, epoch: i64) {
        let ks = &self.s.keyspace;
        let partition = platform::kafka::murmur2_partition(self.video.as_bytes(), PARTITIONS);
        let cql = format!(
            "INSERT INTO {ks}.partition_owners (topic, kafka_partition, epoch, address, claimed_at) \
             VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"
        );
        let values = (events_topic(), partition, epoch, address, CqlTimestamp(0), stamp(epoch, 0));
        self.cql.query_unpaged(cql, values).await.unwrap();
    }

    /// A `counts` row of the video's views as a round of `epoch` at offset `lo` writes it.
    async fn row(&self, granularity: &str, bucket: i64, value: i64, lo: i64, epoch: i64) {
        write_row(&self.cql, &self.s.keyspace, self.video, granularity, bucket, value, lo, epoch).await;
    }

    /// getViewsCount over all time (`None`) or `[from, to)`: its `views`.
    async fn views(&self, range: Option<(i64, i64)>) -> i64 {
        self.views_answer(range).await["views"].as_i64().unwrap()
    }

    async fn views_answer(&self, range: Option<(i64, i64)>) -> Value {
        let query = range.map_or(String::new(), |(f, t)| format!("?from={}&to={}", iso(f), iso(t)));
        ok(&self.s, &format!("/videos/{}/views{query}", self.video)).await
    }

    /// `query_rows_cache_total`: (hits, misses).
    async fn rows_cache(&self) -> (f64, f64) {
        let outcome = |o: &str| format!("outcome=\"{o}\"");
        let hits = self.s.metric_with("query_rows_cache_total", &outcome("hit")).await;
        (hits, self.s.metric_with("query_rows_cache_total", &outcome("miss")).await)
    }

    async fn outcome(&self, outcome: &str) -> f64 {
        self.s.metric_with("query_owner_reads_total", &format!("outcome=\"{outcome}\"")).await
    }
}

fn iso(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn part(offset: i64, minutes: &[(i64, i64)]) -> Option<HeldPart> {
    let minutes = minutes
        .iter()
        .map(|&(minute, value)| HeldMinute { minute, value, events: value, min: Some(1), max: Some(1) })
        .collect();
    Some(HeldPart { offset, minutes })
}

fn answer(epoch: i64, pending: Option<HeldPart>, in_flight: Option<HeldPart>) -> Held {
    Held { ready: true, epoch, consumed: 1_000, pending, in_flight }
}

/// A minute a few minutes ago, inside the minute rows' retention.
fn recent_minute() -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    now - now % MINUTE - 5 * MINUTE
}

#[tokio::test]
async fn pending_minutes_count_in_rows_below_their_first_offset() {
    let _serial = SERIAL.lock().await;
    let f = Fixture::start(true).await;
    let m = recent_minute();
    f.row("total", 0, 500, 100, 3).await;
    f.row("minute", m, 4, 100, 3).await;
    let (owner, addr) = stand_in(f.video, vec![Reply::Held(answer(3, part(101, &[(m, 3)]), None))]).await;
    f.topic_state().await;
    f.owner_at(&addr, 3).await;

    let fresh = f.outcome("fresh").await;
    assert_eq!(f.views(None).await, 503, "the all-time row and the pending minute");
    assert_eq!(f.views(Some((m, m + MINUTE))).await, 7, "the minute row and the pending minute");
    assert_eq!(f.views(Some((m + MINUTE, m + 2 * MINUTE))).await, 0, "a minute it holds nothing of");
    assert_eq!(owner.asked.load(Ordering::SeqCst), 3, "asked once per read");
    assert_eq!(f.outcome("fresh").await - fresh, 3.0);
}

#[tokio::test]
async fn the_round_in_flight_counts_only_where_it_has_not_landed() {
    let _serial = SERIAL.lock().await;
    let f = Fixture::start(true).await;
    let m = recent_minute();
    // The round at offset 120 (5 views in minute m) reached the minute row
    // (its last_offset is 150 ≥ 120, its 9 include the 5), not yet the all-time row.
    f.row("minute", m, 9, 150, 3).await;
    f.row("total", 0, 20, 90, 3).await;
    let held = answer(3, part(160, &[(m, 1)]), part(120, &[(m, 5)]));
    let (owner, addr) = stand_in(f.video, vec![Reply::Held(held)]).await;
    f.topic_state().await;
    f.owner_at(&addr, 3).await;

    assert_eq!(f.views(None).await, 26, "all time: 20 + the round's 5 + 1 pending");
    assert_eq!(f.views(Some((m, m + MINUTE))).await, 10, "the minute: 9 (round included) + 1 pending");
    assert_eq!(owner.asked.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_round_that_landed_meanwhile_asks_again_then_answers_from_the_rows() {
    let _serial = SERIAL.lock().await;
    let f = Fixture::start(true).await;
    let m = recent_minute();
    // The all-time row is at offset 120: a round took the events the owner
    // says are pending from 101 and wrote them after it answered.
    f.row("total", 0, 30, 120, 3).await;
    let stale = Reply::Held(answer(3, part(101, &[(m, 4)]), None));
    let after = Reply::Held(answer(3, part(130, &[(m, 2)]), None));
    let (owner, addr) = stand_in(f.video, vec![stale.clone(), after]).await;
    f.topic_state().await;
    f.owner_at(&addr, 3).await;

    let (fresh, landed) = (f.outcome("fresh").await, f.outcome("landed").await);
    assert_eq!(f.views(None).await, 32, "the second answer (2 new pending views) on the rows");
    assert_eq!(owner.asked.load(Ordering::SeqCst), 2, "asked again once");
    assert_eq!(f.outcome("fresh").await - fresh, 1.0);

    // Stale twice: the rows alone, and no third question.
    *owner.replies.lock().unwrap() = vec![stale].into();
    assert_eq!(f.views(None).await, 30);
    assert_eq!(owner.asked.load(Ordering::SeqCst), 4);
    assert_eq!(f.outcome("landed").await - landed, 1.0);
}

/// The owner is asked before the rows are read: a round that lands right after
/// the owner answered shows in the rows (and the owner's answer no longer holds
/// its events). Read the other way round, the rows would miss the round's 4
/// views: 31, not 35.
#[tokio::test]
async fn the_owner_is_asked_before_the_rows_are_read() {
    let _serial = SERIAL.lock().await;
    let f = Fixture::start(true).await;
    let m = recent_minute();
    f.row("total", 0, 30, 100, 3).await;
    // The round at 101..=120 (4 views) lands as the owner answers; one view
    // folded since (offset 121) is pending.
    let reply = Reply::LandThen(f.cql.clone(), f.s.keyspace.clone(), 34, 120, answer(3, part(121, &[(m, 1)]), None));
    let (owner, addr) = stand_in(f.video, vec![reply, Reply::Held(answer(3, part(121, &[(m, 1)]), None))]).await;
    f.topic_state().await;
    f.owner_at(&addr, 3).await;
    assert_eq!(f.views(None).await, 35);
    assert_eq!(owner.asked.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_row_a_newer_owner_wrote_voids_the_answer() {
    let _serial = SERIAL.lock().await;
    let f = Fixture::start(true).await;
    let m = recent_minute();
    // Epoch 4 wrote the all-time row; the stand-in still answers as epoch 3
    // (a replaced owner that has not learnt it yet).
    f.row("total", 0, 40, 100, 4).await;
    f.row("minute", m, 6, 100, 3).await;
    let (owner, addr) = stand_in(f.video, vec![Reply::Held(answer(3, part(101, &[(m, 4)]), None))]).await;
    f.topic_state().await;
    f.owner_at(&addr, 3).await;

    let replaced = f.outcome("replaced").await;
    assert_eq!(f.views(None).await, 40, "the rows alone");
    assert_eq!(f.outcome("replaced").await - replaced, 1.0);
    // Rows of its own epochs only: its answer still holds there.
    assert_eq!(f.views(Some((m, m + MINUTE))).await, 10);
    assert_eq!(owner.asked.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_owner_short_of_its_fenced_round_adds_nothing() {
    let _serial = SERIAL.lock().await;
    let f = Fixture::start(true).await;
    let m = recent_minute();
    f.row("total", 0, 50, 100, 3).await;
    let unready = Held { ready: false, ..answer(3, part(101, &[(m, 4)]), None) };
    let (owner, addr) = stand_in(f.video, vec![Reply::Held(unready)]).await;
    f.topic_state().await;
    f.owner_at(&addr, 3).await;

    let not_ready = f.outcome("not_ready").await;
    assert_eq!(f.views(None).await, 50);
    assert_eq!(owner.asked.load(Ordering::SeqCst), 1);
    assert_eq!(f.outcome("not_ready").await - not_ready, 1.0);
}

/// Every way of not getting an answer leaves the rows' count, and says which.
#[tokio::test]
async fn no_answer_from_the_owner_leaves_the_rows() {
    let _serial = SERIAL.lock().await;
    let f = Fixture::start(true).await;
    let m = recent_minute();
    f.row("total", 0, 60, 100, 3).await;
    let good = answer(3, part(101, &[(m, 4)]), None);
    // Each owner below is a new claim: a higher epoch, so its row replaces the last.
    let mut epoch = 3;
    let mut claim = || {
        epoch += 1;
        epoch
    };

    // No partition count recorded, then no owner recorded.
    let unowned = f.outcome("unowned").await;
    assert_eq!(f.views(None).await, 60);
    f.topic_state().await;
    assert_eq!(f.views(None).await, 60);
    assert_eq!(f.outcome("unowned").await - unowned, 2.0);

    // An address nothing listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = closed.local_addr().unwrap().to_string();
    drop(closed);
    f.owner_at(&dead, claim()).await;
    let error = f.outcome("error").await;
    assert_eq!(f.views(None).await, 60);
    assert_eq!(f.outcome("error").await - error, 1.0, "refused");

    let too_big = format!("{{\"pad\":\"{}\"}}", "x".repeat(300 * 1024));
    let cases = [
        (Reply::Slow(Duration::from_secs(2), good.clone()), "timeout"),
        (Reply::Status(404), "not_owner"),
        (Reply::Status(503), "busy"),
        (Reply::Status(500), "error"),
        (Reply::Body("{\"ready\":tru".into()), "error"),
        (Reply::Body(too_big), "error"),
    ];
    for (reply, outcome) in cases {
        let (owner, addr) = stand_in(f.video, vec![reply]).await;
        f.owner_at(&addr, claim()).await;
        let before = f.outcome(outcome).await;
        assert_eq!(f.views(None).await, 60, "{outcome}");
        assert_eq!(f.outcome(outcome).await - before, 1.0, "{outcome}");
        assert_eq!(owner.asked.load(Ordering::SeqCst), 1, "{outcome}: the stand-in was asked");
    }

    // An owner that failed is not asked again while its row is unchanged.
    let (owner, addr) = stand_in(f.video, vec![Reply::Status(500)]).await;
    f.owner_at(&addr, claim()).await;
    let (error, backoff) = (f.outcome("error").await, f.outcome("backoff").await);
    let timed = f.s.metric("query_owner_ask_duration_seconds_count").await;
    assert_eq!(f.views(None).await, 60);
    assert_eq!(f.views(None).await, 60);
    assert_eq!((f.outcome("error").await - error, f.outcome("backoff").await - backoff), (1.0, 1.0));
    assert_eq!(owner.asked.load(Ordering::SeqCst), 1, "asked once");
    // The question asked is timed (failed or not); the one not asked is not.
    assert_eq!(f.s.metric("query_owner_ask_duration_seconds_count").await - timed, 1.0);

    // A new claim's owner answering: its pending views count (the failures above did not
    // stick to the partition).
    let e = claim();
    let (_owner, addr) = stand_in(f.video, vec![Reply::Held(Held { epoch: e, ..good })]).await;
    f.owner_at(&addr, e).await;
    assert_eq!(f.views(None).await, 64);
}

/// The owner row is cached, and dropped as soon as the cached owner says it no
/// longer owns the partition or its answer is found replaced: the next read finds
/// the new claim, long before the cache would have expired.
#[tokio::test]
async fn a_cached_owner_is_dropped_when_it_denies_the_partition_or_is_replaced() {
    let _serial = SERIAL.lock().await;
    let f = Fixture::start_caching(true, 600_000).await;
    let m = recent_minute();
    f.row("total", 0, 80, 100, 3).await;
    f.topic_state().await;
    let (a, addr_a) = stand_in(f.video, vec![Reply::Held(answer(3, part(101, &[(m, 1)]), None))]).await;
    f.owner_at(&addr_a, 3).await;
    assert_eq!(f.views(None).await, 81);

    // B claims the partition (epoch 4); A, still cached, now denies owning it.
    let (b, addr_b) = stand_in(f.video, vec![Reply::Held(answer(4, part(101, &[(m, 2)]), None))]).await;
    f.owner_at(&addr_b, 4).await;
    *a.replies.lock().unwrap() = vec![Reply::Status(404)].into();
    assert_eq!(f.views(None).await, 80, "A asked from the cache: the rows alone");
    assert_eq!((a.asked.load(Ordering::SeqCst), b.asked.load(Ordering::SeqCst)), (2, 0));
    assert_eq!(f.views(None).await, 82, "B found at once");
    assert_eq!(b.asked.load(Ordering::SeqCst), 1);

    // C claims the partition (epoch 5) and writes the all-time row; B, cached and
    // not yet aware it was replaced, answers as epoch 4: C's row voids its answer.
    let (c, addr_c) = stand_in(f.video, vec![Reply::Held(answer(5, part(131, &[(m, 3)]), None))]).await;
    f.row("total", 0, 90, 130, 5).await;
    f.owner_at(&addr_c, 5).await;
    let replaced = f.outcome("replaced").await;
    assert_eq!(f.views(None).await, 90, "B's epoch-4 answer on C's epoch-5 row: the rows alone");
    assert_eq!(f.outcome("replaced").await - replaced, 1.0);
    assert_eq!(f.views(None).await, 93, "C found at once");
    assert_eq!((b.asked.load(Ordering::SeqCst), c.asked.load(Ordering::SeqCst)), (2, 1));
}

#[tokio::test]
async fn with_owner_reads_off_the_owner_is_never_asked() {
    let _serial = SERIAL.lock().await;
    let f = Fixture::start(false).await;
    let m = recent_minute();
    f.row("total", 0, 70, 100, 3).await;
    let (owner, addr) = stand_in(f.video, vec![Reply::Held(answer(3, part(101, &[(m, 4)]), None))]).await;
    f.topic_state().await;
    f.owner_at(&addr, 3).await;
    assert_eq!(f.views(None).await, 70);
    assert_eq!(owner.asked.load(Ordering::SeqCst), 0);
}

/// getCount's series and getStats add the held minutes bucket by bucket, tallies
/// included, by the same rule.
#[tokio::test]
async fn a_series_and_its_statistics_add_the_held_minutes_bucket_by_bucket() {
    let _serial = SERIAL.lock().await;
    let f = Fixture::start(true).await;
    let now = chrono::Utc::now().timestamp_millis();
    let h0 = now - now % HOUR - 3 * HOUR;
    f.row("hour", h0, 5, 100, 3).await;
    f.row("hour", h0 + 2 * HOUR, 7, 100, 3).await;
    f.row("minute", h0 + 2 * HOUR + MINUTE, 7, 100, 3).await;
    // Pending from 101: 2 in the first hour, 3 in the second, 4 past the range.
    // In flight at 90: 50 views the hour row (at 100) already holds.
    let pending = part(101, &[(h0 + 10 * MINUTE, 2), (h0 + HOUR + 5 * MINUTE, 3), (h0 + 3 * HOUR + MINUTE, 4)]);
    let in_flight = part(90, &[(h0 + 2 * HOUR + MINUTE, 50)]);
    let (owner, addr) = stand_in(f.video, vec![Reply::Held(answer(3, pending, in_flight))]).await;
    f.topic_state().await;
    f.owner_at(&addr, 3).await;

    let range = format!("from={}&to={}", iso(h0), iso(h0 + 3 * HOUR));
    let c = ok(&f.s, &format!("/videos/{}/counts/view?{range}&step=hour", f.video)).await;
    let counts: Vec<i64> = c["series"].as_array().unwrap().iter().map(|p| p["count"].as_i64().unwrap()).collect();
    assert_eq!((counts, c["count"].as_i64()), (vec![7, 3, 7], Some(17)), "{c}");
    let st = ok(&f.s, &format!("/videos/{}/stats/view?function=count&{range}&step=hour", f.video)).await;
    assert_eq!((st["value"].as_f64(), st["unrecordedBuckets"].as_i64()), (Some(17.0), Some(0)), "{st}");
    let st = ok(&f.s, &format!("/videos/{}/stats/view?function=max&{range}&step=hour&over=buckets", f.video)).await;
    assert_eq!(st["value"].as_f64(), Some(7.0), "{st}");
    // Minutes: the pending minute alone, and not the in-flight one its row holds.
    let minutes = format!("from={}&to={}&step=minute", iso(h0 + 2 * HOUR), iso(h0 + 2 * HOUR + 3 * MINUTE));
    let c = ok(&f.s, &format!("/videos/{}/counts/view?{minutes}", f.video)).await;
    let counts: Vec<i64> = c["series"].as_array().unwrap().iter().map(|p| p["count"].as_i64().unwrap()).collect();
    assert_eq!(counts, vec![0, 7, 0], "{c}");
    let c =
        ok(&f.s, &format!("/videos/{}/counts/view?from={}&to={}&step=minute", f.video, iso(h0), iso(h0 + 15 * MINUTE)))
            .await;
    assert_eq!(c["series"][10]["count"].as_i64(), Some(2), "{c}");
    assert_eq!(owner.asked.load(Ordering::SeqCst), 5);
}

/// A range read from minute, hour and day rows adds exactly the held minutes
/// inside it, each once, wherever its span's rows are.
#[tokio::test]
async fn a_range_adds_only_the_held_minutes_inside_it() {
    let _serial = SERIAL.lock().await;
    let f = Fixture::start(true).await;
    let now = chrono::Utc::now().timestamp_millis();
    let d0 = now - now % DAY - 3 * DAY;
    let (from, to) = (d0 - HOUR - 30 * MINUTE, d0 + DAY + HOUR + 10 * MINUTE);
    // Held minutes, each a distinct power of ten so the sum says which were added.
    let minutes = [
        (d0 - 2 * HOUR, 10),                        // before `from`
        (d0 - HOUR - 20 * MINUTE, 1),               // the leading minute span
        (d0 - 30 * MINUTE, 100),                    // the leading hour span
        (d0 + 5 * HOUR, 1_000),                     // the day span
        (d0 + DAY + 30 * MINUTE, 10_000),           // the trailing hour span
        (d0 + DAY + HOUR + 5 * MINUTE, 100_000),    // the trailing minute span
        (d0 + DAY + HOUR + 10 * MINUTE, 1_000_000), // at `to`: outside
    ];
    let rows = [
        ("minute", d0 - HOUR - 20 * MINUTE, 2),
        ("hour", d0 - HOUR, 5),
        ("day", d0, 7),
        ("hour", d0 + DAY, 11),
        ("minute", d0 + DAY + HOUR + 5 * MINUTE, 13),
        ("minute", d0 + DAY + HOUR + 10 * MINUTE, 17), // outside
        ("total", 0, 500),
    ];
    for (g, bucket, value) in rows {
        f.row(g, bucket, value, 100, 3).await;
    }
    let (owner, addr) = stand_in(f.video, vec![Reply::Held(answer(3, part(101, &minutes), None))]).await;
    f.topic_state().await;
    f.owner_at(&addr, 3).await;

    let v = f.views_answer(Some((from, to))).await;
    assert_eq!(v["granularity"], "day+hour+minute", "{v}");
    assert_eq!(v["coverage"], "exact", "{v}");
    assert_eq!(v["views"], 2 + 5 + 7 + 11 + 13 + 111_101, "{v}");
    assert_eq!(f.views(None).await, 500 + 1_111_111);
    assert_eq!(owner.asked.load(Ordering::SeqCst), 2);
}

/// The rows cache (`counts.rows_cache_rows`, `store::rows_cache`): a span read
/// once answers again while the series' all-time row is unchanged, even where a
/// row beside it changed (a round in flight writes its leading batches before
/// the last one, which holds the all-time row). The owner's answer is added by
/// the kept rows' own `last_offset`s, so the count is the same as from the rows
/// read now; only the rows-alone answer (owner reads off) shows it lagging, by
/// the round in flight, until the round completes and the all-time row moves.
#[tokio::test]
async fn kept_spans_answer_while_the_all_time_row_is_unchanged() {
    let _serial = SERIAL.lock().await;
    for owner_reads in [true, false] {
        let f = Fixture::start(owner_reads).await;
        let m = recent_minute();
        let minute = Some((m, m + MINUTE));
        f.row("total", 0, 30, 100, 3).await;
        f.row("minute", m, 4, 100, 3).await;
        let (owner, addr) = stand_in(f.video, vec![Reply::Held(answer(3, part(101, &[(m, 2)]), None))]).await;
        f.topic_state().await;
        f.owner_at(&addr, 3).await;
        let (hits, misses) = f.rows_cache().await;
        let since = async || {
            let (h, m) = f.rows_cache().await;
            (h - hits, m - misses)
        };
        let pending = if owner_reads { 2 } else { 0 };
        assert_eq!(f.views(minute).await, 4 + pending);
        assert_eq!(since().await, (0.0, 1.0), "read, kept");

        // The round at offset 110 takes the 2 pending views and lands the minute
        // row's batch (6 at 110); its last batch, the all-time row, is not written.
        f.row("minute", m, 6, 110, 3).await;
        *owner.replies.lock().unwrap() = vec![Reply::Held(answer(3, None, part(110, &[(m, 2)])))].into();
        let kept = if owner_reads { 6 } else { 4 };
        assert_eq!(f.views(minute).await, kept, "the kept row (4 at 100) and the round in flight");
        assert_eq!(since().await, (1.0, 1.0), "answered from the cache");

        // The round completes: the all-time row moves, and the span is read again.
        f.row("total", 0, 32, 110, 3).await;
        *owner.replies.lock().unwrap() = vec![Reply::Held(answer(3, None, None))].into();
        assert_eq!(f.views(minute).await, 6);
        assert_eq!(since().await, (1.0, 2.0), "read again");
        assert_eq!(f.views(None).await, 32, "the all-time count is its validator");
    }
}

/// With the rows cache off every read reads its spans.
#[tokio::test]
async fn with_the_rows_cache_off_every_span_is_read() {
    let _serial = SERIAL.lock().await;
    let s = Service::start_with(SECRET, |c| c.counts.rows_cache_rows = 0).await;
    let cql = s.cql().await;
    let video = Uuid::new_v4();
    let m = recent_minute();
    write_row(&cql, &s.keyspace, video, "total", 0, 30, 100, 3).await;
    write_row(&cql, &s.keyspace, video, "minute", m, 4, 100, 3).await;
    let path = format!("/videos/{video}/views?from={}&to={}", iso(m), iso(m + MINUTE));
    // The tests share the process' metrics: a difference.
    let hits = s.metric_with("query_rows_cache_total", "outcome=\"hit\"").await;
    assert_eq!(ok(&s, &path).await["views"], 4);
    write_row(&cql, &s.keyspace, video, "minute", m, 6, 110, 3).await;
    assert_eq!(ok(&s, &path).await["views"], 6, "read again, the all-time row unchanged");
    assert_eq!(s.metric_with("query_rows_cache_total", "outcome=\"hit\"").await - hits, 0.0);
}
