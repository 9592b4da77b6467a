//! Ratings end to end: POST through the gateway onto the ratings topic, the
//! aggregator as the single writer (latest per user, exact sum and count), GET from
//! the query service. Compared with a ledger of what was sent, across a SIGKILL and
//! an abort in the middle of a flush.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use e2e::*;
use rand::Rng;
use serde_json::{Value, json};
use uuid::Uuid;

/// Each user's latest rating per video, in the order the gateway acknowledged them.
#[derive(Default)]
struct RatingLedger {
    latest: HashMap<(Uuid, Uuid), i64>,
}

impl RatingLedger {
    fn expected(&self, video: Uuid) -> (i64, i64) {
        let mine: Vec<i64> = self.latest.iter().filter(|((v, _), _)| *v == video).map(|(_, r)| *r).collect();
        (mine.iter().sum(), mine.len() as i64)
    }
}

/// A video in the catalog (GET …/ratings answers 404 for unknown videos).
async fn submit_video(env: &TestEnv) -> Uuid {
    let email = format!("{}@example.org", Uuid::new_v4().simple());
    let reg = json!({"firstName": "Up", "lastName": "Loader", "email": email, "password": "password123"});
    let res = env.http.post(env.query_url("/api/v1/users/register")).json(&reg).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let login = json!({"email": email, "password": "password123"});
    let res = env.http.post(env.query_url("/api/v1/users/login")).json(&login).send().await.unwrap();
    let token = res.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let body = json!({"youtubeUrl": "https://youtu.be/dQw4w9WgXcQ", "title": "rated"});
    let res = env.http.post(env.query_url("/api/v1/videos")).bearer_auth(token).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 202);
    res.json::<Value>().await.unwrap()["videoId"].as_str().unwrap().parse().unwrap()
}

/// Sends `n` ratings by `users` over `videos`, one at a time (each acknowledged
/// before the next, so "latest" is well defined), alternating the two POST shapes.
async fn send_ratings(env: &TestEnv, ledger: &mut RatingLedger, videos: &[Uuid], users: &[Uuid], n: usize) {
    let tokens: Vec<String> = users.iter().map(|&u| token_for(u)).collect();
    for i in 0..n {
        let (v, u, rating) = {
            let mut rng = rand::rng();
            (rng.random_range(0..videos.len()), rng.random_range(0..users.len()), rng.random_range(1..=5i64))
        };
        let body = json!({ "rating": rating });
        let (path, want) = if i % 2 == 0 {
            (format!("/api/v1/videos/{}/ratings", videos[v]), 200)
        } else {
            (format!("/api/v1/videos/id/{}/rating", videos[v]), 204)
        };
        let res = env.http.post(env.gateway_url(&path)).bearer_auth(&tokens[u]).json(&body).send().await.unwrap();
        assert_eq!(res.status(), want, "{:?}", res.text().await);
        ledger.latest.insert((videos[v], users[u]), rating);
    }
}

/// Polls the query service until every video's totals equal the ledger's.
async fn assert_ratings_converge(env: &TestEnv, ledger: &RatingLedger, videos: &[Uuid], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let mut wrong = Vec::new();
        for &v in videos {
            let (sum, count) = ledger.expected(v);
            let url = env.query_url(&format!("/api/v1/videos/{v}/ratings"));
            let body: Value = env.http.get(url).send().await.unwrap().json().await.unwrap();
            let got_count = body["totalRatingsCount"].as_i64().unwrap();
            let got_avg = body["averageRating"].as_f64().unwrap();
            let want_avg = if count == 0 { 0.0 } else { sum as f64 / count as f64 };
            if got_count != count || (got_avg - want_avg).abs() > 1e-9 {
                wrong.push(format!(
                    "{v}: got {got_count} ratings averaging {got_avg}, sent {count} averaging {want_avg}"
                ));
            }
        }
        if wrong.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "ratings never converged:\n{}", wrong.join("\n"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn re_rating_replaces_and_every_shape_agrees() {
    let mut env = TestEnv::start("ratings", 3).await;
    env.spawn_aggregator();
    let videos = [submit_video(&env).await, submit_video(&env).await];
    let users: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
    let mut ledger = RatingLedger::default();
    send_ratings(&env, &mut ledger, &videos, &users, 60).await;
    assert_ratings_converge(&env, &ledger, &videos, Duration::from_secs(60)).await;

    // Each user's own rating, and the older GET shape.
    for &u in &users[..3] {
        let url = env.query_url(&format!("/api/v1/videos/{}/ratings", videos[0]));
        let body: Value = env.http.get(url).bearer_auth(token_for(u)).send().await.unwrap().json().await.unwrap();
        assert_eq!(body["currentUserRating"].as_i64(), ledger.latest.get(&(videos[0], u)).copied(), "{body}");
    }
    let (sum, count) = ledger.expected(videos[1]);
    let url = env.query_url(&format!("/api/v1/videos/id/{}/rating", videos[1]));
    let body: Value = env.http.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["ratingCount"].as_i64(), Some(count), "{body}");
    assert!((body["averageRating"].as_f64().unwrap() - sum as f64 / count.max(1) as f64).abs() < 1e-9);
    // VideoDetail carries the same numbers.
    let url = env.query_url(&format!("/api/v1/videos/id/{}", videos[1]));
    let detail: Value = env.http.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(detail["totalRatingsCount"].as_i64(), Some(count), "{detail}");

    // The gateway's answer to a rating, and its refusals.
    let url = env.gateway_url(&format!("/api/v1/videos/{}/ratings", videos[0]));
    let res = env.http.post(&url).bearer_auth(token_for(users[0])).json(&json!({"rating": 5})).send().await.unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!((body["rating"].as_i64(), body["userid"].as_str()), (Some(5), Some(users[0].to_string().as_str())));
    assert_eq!(body["videoid"].as_str(), Some(videos[0].to_string().as_str()));
    assert!(body["created_at"].is_string() && body["updated_at"].is_string(), "{body}");
    let res = env.http.post(&url).json(&json!({"rating": 5})).send().await.unwrap();
    assert_eq!(res.status(), 401, "no token");
    let res = env.http.post(&url).bearer_auth("not.a.token").json(&json!({"rating": 5})).send().await.unwrap();
    assert_eq!(res.status(), 401, "bad token");
    for (body, field) in
        [(json!({"rating": 6}), "rating"), (json!({"rating": "5"}), "rating"), (json!({"stars": 5}), "stars")]
    {
        let res = env.http.post(&url).bearer_auth(token_for(users[0])).json(&body).send().await.unwrap();
        assert_eq!(res.status(), 422, "{body}");
        let p: Value = res.json().await.unwrap();
        assert!(p["detail"].as_str().unwrap().contains(field), "{p}");
    }
    let res = env
        .http
        .post(env.gateway_url("/api/v1/videos/not-a-uuid/ratings"))
        .bearer_auth(token_for(users[0]))
        .json(&json!({"rating": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let unknown = env.query_url(&format!("/api/v1/videos/{}/ratings", Uuid::new_v4()));
    assert_eq!(env.http.get(unknown).send().await.unwrap().status(), 404);
}

/// Aborted after N user rows of a big first flush: some videos' rows landed without
/// their totals. The successor replays exactly that flush and ends exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dies_halfway_through_a_ratings_flush_and_ends_exact() {
    let mut env = TestEnv::start("ratings-halfway", 2).await;
    let mut videos = Vec::new();
    for _ in 0..6 {
        videos.push(submit_video(&env).await);
    }
    let users: Vec<Uuid> = (0..40).map(|_| Uuid::new_v4()).collect();
    let mut ledger = RatingLedger::default();
    // All in Kafka before the aggregator starts: one big flush per partition.
    send_ratings(&env, &mut ledger, &videos, &users, 400).await;
    let doomed = env.spawn_aggregator_with(&[("AGGREGATOR__FLUSH__FAIL_AFTER_WRITES", "60")]);
    assert!(!env.wait_exit(doomed, Duration::from_secs(60)), "the doomed aggregator aborts");
    let successor = env.spawn_aggregator();
    assert_ratings_converge(&env, &ledger, &videos, Duration::from_secs(90)).await;
    let fenced = env.aggregator_metric(successor, "aggregator_fenced_flushes_total").await;
    eprintln!("[ratings-halfway] successor: {fenced} fenced flushes");
    assert!(fenced >= 1.0, "the successor flushed at the in-doubt fence");

    // More ratings after the takeover, then SIGKILL while they flow.
    send_ratings(&env, &mut ledger, &videos, &users, 100).await;
    env.kill_aggregator(successor);
    send_ratings(&env, &mut ledger, &videos, &users, 100).await;
    env.spawn_aggregator();
    assert_ratings_converge(&env, &ledger, &videos, Duration::from_secs(90)).await;
}
