//! Distinct viewers and who viewed (issue 13), on the real Kafka, Cassandra and
//! aggregator: signed-in views go through the gateway with users' tokens, some
//! users several times, beside anonymous views; every answer is compared with a
//! ledger of what was sent and checked against the OpenAPI document.
//!
//! - `distinct_viewers_and_who_viewed_equal_the_ledger`: the estimate equals the
//!   ledger's distinct signed-in users (exact mode) over an hour-only range, a
//!   day-tiled range, an unaligned range (widened to the hour, and said so) and
//!   a range without views; the who-viewed list, walked page by page, equals the
//!   ledger's users and their last view times; the hostile cases (anonymous 401,
//!   another user 403, a moderator 200, page size, paging state, range cap and a
//!   missing `from` 422 naming the field).
//! - `a_replayed_flush_unions_the_same_viewers_again`: the aggregator is killed
//!   after a flush's sketches and who-viewed rows landed and before its commit
//!   (`flush.fault_pause_at = after_viewers`); its successor replays that flush
//!   (it skips the rollup rows the flush wrote, which the test checks) and the
//!   viewers are not inflated.
//! - `a_stale_owners_late_sketch_write_loses`: an owner stopped between reading a
//!   sketch and writing its union, woken after its successor wrote newer unions,
//!   writes late and loses (the fenced timestamp).
//! - `who_viewed_forgets_a_viewer_after_the_list_ttl`: the list's retention.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use e2e::contract::Contract;
use e2e::*;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

/// What was sent: per video, each signed-in user's view requests as (sent after,
/// answered before) in ms, and the anonymous views.
#[derive(Default)]
struct ViewerLedger {
    signed_in: BTreeMap<Uuid, BTreeMap<Uuid, Vec<(i64, i64)>>>,
    views: Ledger,
}

impl ViewerLedger {
    fn users(&self, video: Uuid) -> BTreeSet<Uuid> {
        self.signed_in.get(&video).map(|m| m.keys().copied().collect()).unwrap_or_default()
    }
}

/// The test's view of the two services (owned copies, so the test may start and
/// kill aggregators while it holds one).
struct Client {
    query: String,
    gateway: String,
    /// Carries the gateway's producer key.
    http: reqwest::Client,
    anonymous: reqwest::Client,
    contract: Contract,
}

impl Client {
    async fn new(env: &TestEnv) -> Client {
        let doc: Value =
            env.http.get(env.query_url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
        Client {
            query: env.query_url(""),
            gateway: env.gateway_url(""),
            http: env.http.clone(),
            anonymous: env.anonymous.clone(),
            contract: Contract::new(doc),
        }
    }

    /// A query-service call, its answer checked against the document.
    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        self.contract.call(&self.anonymous, &self.query, method, path, token, body).await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.call(Method::GET, path, token, None).await
    }

    /// One view through the gateway, signed in when `user` is given; recorded.
    async fn view(&self, ledger: &mut ViewerLedger, video: Uuid, user: Option<Uuid>) {
        let mut req = self.http.post(format!("{}/api/v1/videos/id/{video}/view", self.gateway));
        if let Some(u) = user {
            req = req.bearer_auth(token_for(u));
        }
        let before = now_ms();
        let res = req.send().await.unwrap();
        let after = now_ms();
        assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
        ledger.views.record(video, before);
        if let Some(u) = user {
            ledger.signed_in.entry(video).or_default().entry(u).or_default().push((before, after));
        }
    }

    /// `/viewers` over `[from, to)`.
    async fn viewers(&self, video: Uuid, from: i64, to: i64) -> Value {
        let path = format!("/api/v1/videos/{video}/viewers?from={}&to={}", rfc3339(from), rfc3339(to));
        let (status, body) = self.get(&path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    /// Polls until every video's views equal the ledger and its distinct viewers
    /// over `[from, to)` equal the ledger's signed-in users.
    async fn converge(&self, ledger: &ViewerLedger, from: i64, to: i64) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let mut behind = Vec::new();
            for (video, _) in ledger.views.videos() {
                let path = format!("/api/v1/videos/{video}/views?from={}&to={}", rfc3339(from), rfc3339(to));
                let views = self.get(&path, None).await.1["views"].as_i64();
                let want_views = ledger.views.count(video, Some((from, to)));
                let viewers = self.viewers(video, from, to).await["estimate"].as_u64().unwrap();
                let want = ledger.users(video).len() as u64;
                if views != Some(want_views) || viewers != want {
                    behind.push(format!("{video}: views {views:?} of {want_views}, viewers {viewers} of {want}"));
                }
            }
            if behind.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "never converged: {behind:?}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Walks the who-viewed list with `token`, `page_size` at a time.
    async fn who_viewed(&self, video: Uuid, token: &str, page_size: usize) -> (Vec<Value>, Vec<usize>) {
        let (mut all, mut sizes, mut state): (Vec<Value>, Vec<usize>, Option<String>) = Default::default();
        loop {
            // The first request sends an empty pagingState, as a client holding
            // one variable for it does: that is the first page.
            let s = state.as_deref().unwrap_or("");
            let path = format!("/api/v1/videos/{video}/viewers/list?pageSize={page_size}&pagingState={s}");
            let (status, body) = self.get(&path, Some(token)).await;
            assert_eq!(status, 200, "{path}: {body}");
            let data = body["data"].as_array().unwrap();
            sizes.push(data.len());
            all.extend(data.iter().cloned());
            match body["pagingState"].as_str() {
                Some(s) => state = Some(s.to_owned()),
                None => return (all, sizes),
            }
            assert!(sizes.len() < 100, "the list does not end");
        }
    }
}

/// Waits until at least `margin` is left before the current hour ends, so that
/// the views a test sends fall into one hour.
async fn clear_of_the_hour_end(margin: i64) {
    let left = HOUR - now_ms().rem_euclid(HOUR);
    if left < margin {
        tokio::time::sleep(Duration::from_millis(left as u64 + 1_000)).await;
    }
}

/// Asserts the list equals the ledger: the same users, each with a last view
/// time inside the request of their last view.
fn assert_list_is_the_ledger(list: &[Value], ledger: &ViewerLedger, video: Uuid) {
    let users: BTreeSet<Uuid> = list.iter().map(|v| v["userId"].as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(users.len(), list.len(), "a user listed twice: {list:?}");
    assert_eq!(users, ledger.users(video));
    for v in list {
        let user: Uuid = v["userId"].as_str().unwrap().parse().unwrap();
        let at = chrono::DateTime::parse_from_rfc3339(v["lastViewedAt"].as_str().unwrap()).unwrap().timestamp_millis();
        let &(before, after) = ledger.signed_in[&video][&user].last().unwrap();
        assert!((before..=after).contains(&at), "{user}: last view at {at}, sent in [{before}, {after}]");
    }
}

/// Registers a user through the API and signs them in: (token, user).
async fn register(c: &Client) -> (String, Uuid) {
    let email = format!("{}@example.org", Uuid::new_v4().simple());
    let reg = json!({"firstName": "Vi", "lastName": "Ewer", "email": email, "password": "correct horse"});
    let (status, user) = c.call(Method::POST, "/api/v1/users/register", None, Some(reg)).await;
    assert_eq!(status, 201, "{user}");
    let login = json!({"email": email, "password": "correct horse"});
    let (status, login) = c.call(Method::POST, "/api/v1/users/login", None, Some(login)).await;
    assert_eq!(status, 200, "{login}");
    (login["token"].as_str().unwrap().to_owned(), user["userId"].as_str().unwrap().parse().unwrap())
}

/// A registered user and a video they submitted: (token, user, video).
async fn owner_with_video(c: &Client) -> (String, Uuid, Uuid) {
    let (token, user) = register(c).await;
    let submit = json!({"youtubeUrl": "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "title": "Who watched this"});
    let (status, video) = c.call(Method::POST, "/api/v1/videos", Some(&token), Some(submit)).await;
    assert_eq!(status, 202, "{video}");
    (token, user, video["videoId"].as_str().unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn distinct_viewers_and_who_viewed_equal_the_ledger() {
    let mut env = TestEnv::start("viewers", 2).await;
    env.spawn_aggregator();
    let c = Client::new(&env).await;
    let (owner_token, _owner, video) = owner_with_video(&c).await;
    let other_video = Uuid::new_v4();
    clear_of_the_hour_end(4 * MINUTE).await;
    let mut ledger = ViewerLedger::default();
    // 12 users: user i views i % 3 + 1 times; 5 anonymous views; 3 of the users
    // also view another video.
    let users = uuids(12);
    for (i, &u) in users.iter().enumerate() {
        for _ in 0..i % 3 + 1 {
            c.view(&mut ledger, video, Some(u)).await;
        }
    }
    for _ in 0..5 {
        c.view(&mut ledger, video, None).await;
    }
    for &u in &users[..3] {
        c.view(&mut ledger, other_video, Some(u)).await;
    }
    let t = now_ms();
    let hour = t.div_euclid(HOUR) * HOUR;
    let day = t.div_euclid(DAY) * DAY;
    assert_eq!(ledger.views.count(video, None), 4 * (1 + 2 + 3) + 5);
    c.converge(&ledger, hour, hour + HOUR).await;

    // Hour-only: one hour sketch; exact mode, and the bounds hold the truth.
    let a = c.viewers(video, hour, hour + HOUR).await;
    assert_eq!((a["estimate"].as_u64(), a["exact"].as_bool()), (Some(12), Some(true)), "{a}");
    assert!(a["lower"].as_u64().unwrap() <= 12 && 12 <= a["upper"].as_u64().unwrap(), "{a}");
    assert_eq!((a["coverage"].as_str(), a["sketches"].as_u64()), (Some("exact"), Some(1)));
    assert_eq!(c.viewers(other_video, hour, hour + HOUR).await["estimate"], 3);
    // Day-tiled: hours of yesterday evening, today's day sketch, hours of tomorrow.
    let a = c.viewers(video, day - 5 * HOUR, day + DAY + 2 * HOUR).await;
    let spans: Vec<&str> = a["spans"].as_array().unwrap().iter().map(|s| s["granularity"].as_str().unwrap()).collect();
    assert_eq!(spans, ["hour", "day", "hour"], "{a}");
    assert_eq!((a["estimate"].as_u64(), a["sketches"].as_u64()), (Some(12), Some(5 + 1 + 2)));
    // Unaligned bounds move out to the hour, and the answer says so.
    let a = c.viewers(video, hour + 7 * MINUTE, hour + 9 * MINUTE).await;
    assert_eq!((a["estimate"].as_u64(), a["coverage"].as_str()), (Some(12), Some("widened")), "{a}");
    assert_eq!(a["from"], rfc3339_secs(hour));
    assert_eq!(a["adjustments"][0]["reason"], "hour_alignment");
    // The hour before: nobody.
    assert_eq!(c.viewers(video, hour - HOUR, hour).await["estimate"], 0);

    // Who viewed, as the owner: every user once, with their last view time, in
    // pages of 5, 5 and 2.
    let (list, sizes) = c.who_viewed(video, &owner_token, 5).await;
    assert_eq!(sizes, [5, 5, 2]);
    assert_list_is_the_ledger(&list, &ledger, video);
    let (list, sizes) = c.who_viewed(video, &owner_token, 100).await;
    assert_eq!(sizes, [12]);
    assert_list_is_the_ledger(&list, &ledger, video);

    // Hostile callers and bad parameters.
    let list_path = format!("/api/v1/videos/{video}/viewers/list");
    assert_eq!(c.get(&list_path, None).await.0, 401, "anonymous");
    let stranger = token_for(Uuid::new_v4());
    assert_eq!(c.get(&list_path, Some(&stranger)).await.0, 403, "another user");
    assert_eq!(c.get(&list_path, Some(&token_for(users[0]))).await.0, 403, "a viewer is not the owner");
    let (moderator_token, moderator) = register(&c).await;
    assert_eq!(c.get(&list_path, Some(&moderator_token)).await.0, 403, "not a moderator yet");
    grant_moderator(&env, moderator).await;
    let (status, body) = c.get(&list_path, Some(&moderator_token)).await;
    assert_eq!((status, body["data"].as_array().map(Vec::len)), (200, Some(10)), "a moderator: {body}");
    let refused = [
        (format!("{list_path}?pageSize=0"), "pageSize"),
        (format!("{list_path}?pageSize=101"), "pageSize"),
        (format!("{list_path}?pagingState=not-a-user"), "pagingState"),
        (format!("{list_path}?page=2"), "page"),
    ];
    for (path, field) in refused {
        let (status, body) = c.get(&path, Some(&owner_token)).await;
        assert_eq!((status, body["field"].as_str()), (422, Some(field)), "{path}: {body}");
    }
    let viewers_path = format!("/api/v1/videos/{video}/viewers");
    let refused = [
        (viewers_path.clone(), "from"),
        (format!("{viewers_path}?from={}&to={}", rfc3339(day - 500 * DAY), rfc3339(day)), "from"),
        (format!("{viewers_path}?from={}&to={}", rfc3339(day), rfc3339(day - DAY)), "from"),
        (format!("{viewers_path}?from=yesterday"), "from"),
        (format!("{viewers_path}?form={}", rfc3339(day)), "form"),
    ];
    for (path, field) in refused {
        let (status, body) = c.get(&path, None).await;
        assert_eq!((status, body["field"].as_str()), (422, Some(field)), "{path}: {body}");
    }
    let (status, _) = c.get(&format!("/api/v1/videos/{}/viewers/list", Uuid::new_v4()), Some(&owner_token)).await;
    assert_eq!(status, 404, "an unknown video");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replayed_flush_unions_the_same_viewers_again() {
    let mut env = TestEnv::start("viewreplay", 1).await;
    let c = Client::new(&env).await;
    let (owner_token, _, video) = owner_with_video(&c).await;
    clear_of_the_hour_end(5 * MINUTE).await;
    // The first owner pauses after its first flush with viewers landed, before
    // committing it; it is killed there.
    let pause =
        [("AGGREGATOR__FLUSH__FAULT_PAUSE_AT", "after_viewers"), ("AGGREGATOR__FLUSH__FAULT_PAUSE_MS", "600000")];
    let first = env.spawn_aggregator_with(&pause);
    let mut ledger = ViewerLedger::default();
    let users = uuids(8);
    for (i, &u) in users.iter().enumerate() {
        for _ in 0..i % 2 + 1 {
            c.view(&mut ledger, video, Some(u)).await;
        }
    }
    c.view(&mut ledger, video, None).await;
    env.wait_log(first, "fault injection: pausing after the viewer writes", 1, Duration::from_secs(60)).await;
    let hour = now_ms().div_euclid(HOUR) * HOUR;
    // The sketch holds the paused flush's viewers: written, not committed.
    let before = c.viewers(video, hour, hour + HOUR).await["estimate"].as_u64().unwrap();
    assert!(before > 0, "the paused flush wrote its sketch");
    env.kill_aggregator(first);

    let second = env.spawn_aggregator();
    // The successor replays the in-doubt round and redoes it, fenced, at exactly its
    // offset: the sketches are unioned again. (A round carries every signed-in view
    // folded since the last one, whether or not the video's series was due, so the
    // paused round may have written no count rows for the successor to skip.)
    env.wait_log(second, "replayed up to the in-doubt flush", 1, Duration::from_secs(60)).await;
    env.wait_metric(second, "aggregator_fenced_flushes_total", "", 1.0, Duration::from_secs(60)).await;
    c.converge(&ledger, hour, hour + HOUR).await;
    let a = c.viewers(video, hour, hour + HOUR).await;
    assert_eq!((a["estimate"].as_u64(), a["exact"].as_bool()), (Some(8), Some(true)), "{a}");
    let (list, _) = c.who_viewed(video, &owner_token, 3).await;
    assert_list_is_the_ledger(&list, &ledger, video);

    // The same users again and two new ones: only the new ones count.
    let more = uuids(2);
    for &u in users.iter().chain(&more) {
        c.view(&mut ledger, video, Some(u)).await;
    }
    c.converge(&ledger, hour, hour + HOUR).await;
    assert_eq!(c.viewers(video, hour, hour + HOUR).await["estimate"], 10);
    let (list, _) = c.who_viewed(video, &owner_token, 4).await;
    assert_list_is_the_ledger(&list, &ledger, video);
}

/// A stale owner's late sketch write: the old owner has read the hour sketch and
/// unioned its flush's 8 viewers when it is stopped (SIGSTOP past its session
/// timeout, `flush.fault_pause_at = mid_viewers`); its successor replays the flush
/// and writes the sketches, then 2 new viewers; the old owner, woken, writes its
/// older union of 8, late. It carries the old epoch in its timestamp and loses:
/// the estimate stays 10, and the stored sketch's `WRITETIME` carries the
/// successor's epoch. Writing the sketch at Cassandra's clock instead of the
/// fenced timestamp makes the late write win and this test fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_owners_late_sketch_write_loses() {
    let mut env = TestEnv::start("viewzombie", 1).await;
    let c = Client::new(&env).await;
    let (owner_token, _, video) = owner_with_video(&c).await;
    clear_of_the_hour_end(5 * MINUTE).await;
    let pause = [
        ("AGGREGATOR__FLUSH__FAULT_PAUSE_AT", "mid_viewers"),
        ("AGGREGATOR__FLUSH__FAULT_PAUSE_MS", "8000"),
        // One request at a time: the paused sketch is the only one read.
        ("AGGREGATOR__FLUSH__CONCURRENCY", "1"),
    ];
    let old = env.spawn_aggregator_with(&pause);
    let mut ledger = ViewerLedger::default();
    for &u in &uuids(8) {
        c.view(&mut ledger, video, Some(u)).await;
    }
    let hour = now_ms().div_euclid(HOUR) * HOUR;
    env.wait_log(old, "fault injection: pausing between a sketch's read and its write", 1, Duration::from_secs(60))
        .await;
    let sketch_writes = "aggregator_cassandra_request_duration_seconds_count";
    let op = "op=\"write_sketch\"";
    let written_before = env.aggregator_metric_where(old, sketch_writes, op).await;
    env.signal_aggregator(old, "STOP");

    let new = env.spawn_aggregator();
    env.wait_log(new, "replayed up to the in-doubt flush", 1, Duration::from_secs(60)).await;
    for &u in &uuids(2) {
        c.view(&mut ledger, video, Some(u)).await;
    }
    c.converge(&ledger, hour, hour + HOUR).await;
    let epoch = claimed_epoch(&env.aggregator_log(new), &env.events_topic());

    env.signal_aggregator(old, "CONT");
    env.wait_log(old, "fault injection: pause over", 1, Duration::from_secs(30)).await;
    // The late write of the union of 8 lands (the request is counted when it returns).
    env.wait_metric(old, sketch_writes, op, written_before + 1.0, Duration::from_secs(30)).await;
    let a = c.viewers(video, hour, hour + HOUR).await;
    assert_eq!(a["estimate"], 10, "the stale owner's union of 8 won: {a}");
    let admin = env.admin().await;
    let cql = format!("SELECT granularity, WRITETIME(sketch) FROM {}.viewer_sketches WHERE video_id = ?", env.keyspace);
    let result = admin.session.query_unpaged(cql, (video,)).await.unwrap().into_rows_result().unwrap();
    let rows: Vec<(String, i64)> = result.rows::<(String, i64)>().unwrap().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2, "an hour and a day sketch: {rows:?}");
    for (granularity, ts) in rows {
        assert_eq!(ts >> 40, epoch, "{granularity} sketch written by epoch {}, not the successor's", ts >> 40);
    }
    let (list, _) = c.who_viewed(video, &owner_token, 100).await;
    assert_list_is_the_ledger(&list, &ledger, video);
}

/// Who viewed has bounded retention: with `viewers.list_ttl_secs` = 15, a viewer
/// is listed after their view and gone 15 s after it (the TTL runs from the
/// view), while the sketch, which follows the rollups' retention, still counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn who_viewed_forgets_a_viewer_after_the_list_ttl() {
    const TTL_MS: i64 = 15_000;
    let mut env = TestEnv::start("viewttl", 1).await;
    let c = Client::new(&env).await;
    let (owner_token, _, video) = owner_with_video(&c).await;
    clear_of_the_hour_end(3 * MINUTE).await;
    env.spawn_aggregator_with(&[("AGGREGATOR__VIEWERS__LIST_TTL_SECS", "15")]);
    let mut ledger = ViewerLedger::default();
    let user = Uuid::new_v4();
    c.view(&mut ledger, video, Some(user)).await;
    let hour = now_ms().div_euclid(HOUR) * HOUR;
    c.converge(&ledger, hour, hour + HOUR).await;
    let (list, _) = c.who_viewed(video, &owner_token, 10).await;
    let viewed_before = ledger.signed_in[&video][&user][0].0;
    assert!(now_ms() < viewed_before + TTL_MS, "the list was read after the TTL; the test proves nothing");
    assert_list_is_the_ledger(&list, &ledger, video);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (list, _) = c.who_viewed(video, &owner_token, 10).await;
        if list.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still listed a minute after the view: {list:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Cassandra expires in whole seconds from the write's second: up to 2 s early.
    assert!(now_ms() >= viewed_before + TTL_MS - 2_000, "gone before its TTL ended");
    assert_eq!(c.viewers(video, hour, hour + HOUR).await["estimate"], 1, "the sketch keeps counting the viewer");
}

/// The epoch the aggregator whose `log` this is claimed for `topic`'s partition 0.
fn claimed_epoch(log: &str, topic: &str) -> i64 {
    let line = log
        .lines()
        .rfind(|l| l.contains("claimed partition") && l.contains(&format!("\"{topic}\"")))
        .unwrap_or_else(|| panic!("no claim of {topic} in the log"));
    let at = line.find("epoch=").expect("the claim names its epoch") + "epoch=".len();
    line[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

fn rfc3339_secs(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Makes `user` a moderator as an operator does (`vcount-admin moderators grant`).
async fn grant_moderator(env: &TestEnv, user: Uuid) {
    use platform::moderation::{Actor, Moderation, RoleChange};
    let cfg = platform::cassandra::CassandraConfig { nodes: cassandra_nodes(), ..Default::default() };
    let cql = platform::cassandra::connect(&cfg, Duration::from_secs(10)).await.unwrap();
    let m = Moderation::new(&cql, &env.keyspace).await.unwrap();
    let done = m.set_moderator(&cql, Actor::Admin, user, true, Some("tests".into())).await.unwrap();
    assert!(matches!(done, RoleChange::Done { .. }), "{done:?}");
}
