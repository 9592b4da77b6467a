//! A KillrVideo user's journey through one origin (the query service forwarding
//! the gateway's routes), on the real Kafka, Cassandra and aggregator: register →
//! log in → submit a video → view it N times → rate it → comment → search finds it
//! → trending shows it → the activity feed tells the story. Every answer is
//! checked against the OpenAPI document (shape) and against what was sent
//! (numbers).

use std::time::{Duration, Instant};

use e2e::contract::Contract;
use e2e::*;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

/// A browser on the one origin: every call is checked against the document.
struct Browser<'a> {
    http: &'a reqwest::Client,
    origin: String,
    contract: Contract,
    token: Option<String>,
}

impl Browser<'_> {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.contract.call(self.http, &self.origin, method, path, self.token.as_deref(), body).await
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Polls `path` until `done` holds (the pipeline is asynchronous), or fails.
    async fn eventually(&self, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let body = self.get(path).await;
            if done(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "{what}: never true; last answer of {path}: {body}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_submit_view_rate_comment_search_trending() {
    let mut env = TestEnv::start_one_origin("journey", 2).await;
    env.spawn_aggregator();
    let doc: Value = env.http.get(env.query_url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    let mut me = Browser { http: &env.http, origin: env.query_url(""), contract: Contract::new(doc), token: None };

    // Register and log in.
    let email = format!("{}@example.org", Uuid::new_v4().simple());
    let reg = json!({"firstName": "Ada", "lastName": "Lovelace", "email": email, "password": "correct horse"});
    let (status, user) = me.call(Method::POST, "/api/v1/users/register", Some(reg)).await;
    assert_eq!(status, 201);
    let user_id = user["userId"].as_str().unwrap().to_owned();
    let (status, login) =
        me.call(Method::POST, "/api/v1/users/login", Some(json!({"email": email, "password": "correct horse"}))).await;
    assert_eq!(status, 200);
    assert_eq!(login["user"]["userId"], user_id.as_str());
    me.token = Some(login["token"].as_str().unwrap().to_owned());
    assert_eq!(me.get("/api/v1/users/me").await["email"], email.as_str());

    // Submit a video: PENDING, then READY.
    let word = format!("analytical{}", &Uuid::new_v4().simple().to_string()[..6]);
    let submit = json!({
        "youtubeUrl": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "title": format!("The {word} engine"),
        "description": "Notes on a machine that weaves algebraic patterns",
        "tags": ["engines", "history"],
    });
    let (status, video) = me.call(Method::POST, "/api/v1/videos", Some(submit)).await;
    assert_eq!((status, video["status"].as_str()), (202, Some("PENDING")));
    let video_id = video["videoId"].as_str().unwrap().to_owned();
    let status_path = format!("/api/v1/videos/id/{video_id}/status");
    me.eventually(&status_path, "the video becomes READY", |b| b["status"] == "READY").await;

    // View it N times: some signed in, some anonymous.
    const SIGNED_IN: usize = 4;
    const ANONYMOUS: usize = 3;
    let view = format!("/api/v1/videos/id/{video_id}/view");
    for _ in 0..SIGNED_IN {
        assert_eq!(me.call(Method::POST, &view, None).await.0, 204);
    }
    let token = me.token.take();
    for _ in 0..ANONYMOUS {
        assert_eq!(me.call(Method::POST, &view, None).await.0, 204);
    }
    me.token = token;
    let n = (SIGNED_IN + ANONYMOUS) as i64;
    let detail = format!("/api/v1/videos/id/{video_id}");
    me.eventually(&detail, "VideoDetail counts every view", |b| b["views"] == n).await;
    assert_eq!(me.get(&format!("/api/v1/videos/{video_id}/views")).await["views"], n);

    // Rate it, then change the rating: re-rating replaces.
    let ratings = format!("/api/v1/videos/{video_id}/ratings");
    let (status, rated) = me.call(Method::POST, &ratings, Some(json!({"rating": 5}))).await;
    assert_eq!((status, rated["rating"].as_i64()), (200, Some(5)));
    me.eventually(&ratings, "the first rating lands", |b| b["currentUserRating"] == 5).await;
    let (status, _) =
        me.call(Method::POST, &format!("/api/v1/videos/id/{video_id}/rating"), Some(json!({"rating": 4}))).await;
    assert_eq!(status, 204);
    let summary = me
        .eventually(&ratings, "re-rating replaces", |b| b["currentUserRating"] == 4 && b["averageRating"] == 4.0)
        .await;
    assert_eq!((summary["averageRating"].as_f64(), summary["totalRatingsCount"].as_i64()), (Some(4.0), Some(1)));
    let d = me.get(&detail).await;
    assert_eq!(
        (d["averageRating"].as_f64(), d["totalRatingsCount"].as_i64(), d["views"].as_i64()),
        (Some(4.0), Some(1), Some(n))
    );

    // Comment.
    let comments = format!("/api/v1/videos/{video_id}/comments");
    let (status, comment) = me.call(Method::POST, &comments, Some(json!({"text": "Lovely weaving"}))).await;
    assert_eq!(status, 201);
    assert_eq!((comment["firstName"].as_str(), comment["comment"].as_str()), (Some("Ada"), Some("Lovely weaving")));
    let listed = me.get(&comments).await;
    assert_eq!(listed["pagination"]["totalItems"], 1);
    assert_eq!(listed["data"][0]["commentid"], comment["commentid"]);

    // Search finds it, with the pipeline's numbers.
    let found = me.get(&format!("/api/v1/search/videos?query={word}")).await;
    assert_eq!(found["pagination"]["totalItems"], 1, "{found}");
    assert_eq!(found["data"][0]["videoId"], video_id.as_str());
    assert_eq!((found["data"][0]["views"].as_i64(), found["data"][0]["averageRating"].as_f64()), (Some(n), Some(4.0)));

    // Trending shows it: this test's keyspace holds one viewed video. Trending
    // reads the by-bucket rows the rounds write (not the owner's memory, unlike
    // the counts above), so it may lag them by a round.
    let deadline = Instant::now() + Duration::from_secs(30);
    let trending = loop {
        let t = me.get("/api/v1/videos/trending?intervalDays=1&limit=10").await;
        if t[0]["views"] == n || Instant::now() > deadline {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(trending.as_array().map(Vec::len), Some(1), "{trending}");
    assert_eq!(trending[0]["videoId"], video_id.as_str());
    assert_eq!(trending[0]["views"], n);
    let top = me.get("/api/v1/trending?window=1h&eventType=view&limit=5").await;
    assert_eq!(top["items"][0]["videoId"], video_id.as_str(), "{top}");
    assert_eq!(top["items"][0]["count"], n);

    // The activity feed tells the story, newest first: the comment, the (latest)
    // rating, the signed-in views (one entry per minute of viewing).
    let activity = format!("/api/v1/users/{user_id}/activity?pageSize=100");
    let feed = me
        .eventually(&activity, "the feed has a view, a rating and a comment", |b| {
            let kinds: Vec<&str> =
                b["data"].as_array().unwrap().iter().filter_map(|a| a["activityType"].as_str()).collect();
            kinds.contains(&"view") && kinds.contains(&"rate") && kinds.contains(&"comment")
        })
        .await;
    let items = feed["data"].as_array().unwrap();
    assert!(items.iter().all(|a| a["userId"] == user_id.as_str()));
    let views = items.iter().filter(|a| a["activityType"] == "view").count();
    assert!((1..=2).contains(&views), "{SIGNED_IN} views within a minute or two are 1 or 2 entries: {feed}");
    // Compared as instants, not strings: RFC 3339 drops a zero fraction
    // ("…:49Z" is before "…:49.344Z" but sorts after it as text).
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> = items
        .iter()
        .map(|a| chrono::DateTime::parse_from_rfc3339(a["activityTimestamp"].as_str().unwrap()).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    assert_eq!(items.iter().find(|a| a["activityType"] == "comment").unwrap()["activityId"], comment["commentid"]);

    // And the lists a front page shows.
    let latest = me.get("/api/v1/videos/latest").await;
    assert_eq!(latest["data"][0]["videoId"], video_id.as_str());
    let mine = me.get(&format!("/api/v1/videos/by-uploader/{user_id}")).await;
    assert_eq!(mine["pagination"]["totalItems"], 1);
    let tagged = me.get("/api/v1/videos/by-tag/engines").await;
    assert_eq!(tagged["data"][0]["views"], n);
    let stats = me.get(&format!("/api/v1/videos/{video_id}/playback-stats")).await;
    assert_eq!(stats["views"], n);
    drop(me);
    env.terminate_aggregator(0);
}

/// The contract check can fail: answers the document does not describe are refused.
#[test]
fn the_contract_refuses_what_the_document_does_not_say() {
    let contract = Contract::new(query_service::openapi::document().clone());
    let video = format!("/api/v1/videos/id/{}", Uuid::new_v4());
    let refused = |method: &str, path: &str, status: u16, body: Value| {
        let (method, path) = (method.to_owned(), path.to_owned());
        std::panic::catch_unwind(move || contract_for_test().check(&method, &path, status, &body)).is_err()
    };
    assert!(refused("GET", &video, 200, json!({"videoId": "not a uuid"})), "missing members, wrong format");
    assert!(refused("GET", &video, 418, Value::Null), "an undocumented status");
    assert!(refused("GET", "/api/v1/nowhere", 200, Value::Null), "an undocumented path");
    assert!(
        refused("POST", &format!("{video}/view"), 204, json!({"unexpected": true})),
        "a body where none is documented"
    );
    let problem = json!({"type": "https://vcount.dev/problems/not-found", "title": "Not found", "status": 404, "detail": "no such video"});
    contract.check("GET", &video, 404, &problem);
    assert_eq!(contract.template("/api/v1/videos/latest").as_deref(), Some("/api/v1/videos/latest"));
}

fn contract_for_test() -> Contract {
    Contract::new(query_service::openapi::document().clone())
}
