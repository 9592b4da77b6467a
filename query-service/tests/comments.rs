//! Comments and the activity feed, on the real Cassandra: posting (auth, text
//! validation, unknown videos), both comment lists newest first with exact totals
//! and paging edges, names from the users table, and the activity feed.

mod common;

use std::collections::BTreeSet;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().expect("an object").keys().map(String::as_str).collect()
}

fn texts(page: &Value) -> Vec<&str> {
    page["data"].as_array().expect("data").iter().map(|c| c["comment"].as_str().unwrap()).collect()
}

fn pagination(page: &Value) -> (u64, u64, u64, u64) {
    let p = &page["pagination"];
    let n = |k: &str| p[k].as_u64().unwrap_or_else(|| panic!("pagination lacks {k}: {page}"));
    (n("currentPage"), n("pageSize"), n("totalItems"), n("totalPages"))
}

fn time(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}"))).expect("RFC 3339")
}

async fn comment(s: &Service, token: &str, video: &str, text: &str) -> Value {
    let path = format!("/videos/{video}/comments");
    let (status, c) = s.send(Method::POST, &path, Some(token), Some(json!({ "text": text }))).await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    c
}

#[tokio::test]
async fn post_and_list_comments_newest_first() {
    let s = Service::start(SECRET).await;
    let (ann, ann_token) = signed_in(&s, "Ann").await;
    let (bob, bob_token) = signed_in(&s, "Bob").await;
    let v = video(&s, &ann_token, "Commented").await;
    let path = format!("/videos/{v}/comments");

    // Posting needs a token, a well-formed and known video, and 1..=1000 characters.
    let (status, _) = s.send(Method::POST, &path, None, Some(json!({"text": "hi"}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = s.send(Method::POST, &path, Some("not.a.token"), Some(json!({"text": "hi"}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, p) =
        s.send(Method::POST, "/videos/nope/comments", Some(&ann_token), Some(json!({"text": "hi"}))).await;
    assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("videoId")), "{p}");
    let unknown = format!("/videos/{}/comments", uuid::Uuid::now_v7());
    let (status, p) = s.send(Method::POST, &unknown, Some(&ann_token), Some(json!({"text": "hi"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{p}");
    for (body, field) in [
        (json!({"text": ""}), "text"),
        (json!({"text": "   "}), "text"),
        (json!({"text": "x".repeat(1001)}), "text"),
        (json!({"text": 5}), "text"),
        (json!({}), "text"),
        (json!({"text": "hi", "rating": 5}), "rating"),
    ] {
        let (status, p) = s.send(Method::POST, &path, Some(&ann_token), Some(body.clone())).await;
        assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)), "{body}: {p}");
    }

    // The longest comment allowed, on another video (so the counts below stay 5).
    let other = video(&s, &bob_token, "Other").await;
    let long = comment(&s, &bob_token, &other, &"é".repeat(1000)).await;
    assert_eq!(long["comment"].as_str().unwrap().chars().count(), 1000);

    // Five comments, alternating authors; the answer is the comment with names.
    let mut posted = Vec::new();
    for i in 0..5 {
        let (user, token, first) = if i % 2 == 0 { (&ann, &ann_token, "Ann") } else { (&bob, &bob_token, "Bob") };
        let c = comment(&s, token, &v, &format!("  comment {i}  ")).await;
        let expected: BTreeSet<&str> =
            ["commentid", "videoid", "userid", "comment", "firstName", "lastName", "createdAt"].into();
        assert_eq!(keys(&c), expected, "{c}");
        assert_eq!(c["comment"], format!("comment {i}"), "trimmed: {c}");
        assert_eq!((c["videoid"].as_str(), c["userid"].as_str()), (Some(v.as_str()), Some(user.as_str())));
        assert_eq!((c["firstName"].as_str(), c["lastName"].as_str()), (Some(first), Some("Test")));
        let id = uuid::Uuid::parse_str(c["commentid"].as_str().unwrap()).unwrap();
        assert_eq!(id.get_version_num(), 7);
        posted.push(c);
    }

    // The video's list: newest first, all of it on the default page.
    let (status, page) = s.get_as(&path, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(texts(&page), ["comment 4", "comment 3", "comment 2", "comment 1", "comment 0"]);
    assert_eq!(pagination(&page), (1, 10, 5, 1));
    let listed: Vec<&Value> = page["data"].as_array().unwrap().iter().collect();
    assert_eq!(*listed[4], posted[0], "a listed comment is what POST answered");
    let times: Vec<_> = listed.iter().map(|c| time(&c["createdAt"])).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    // Pages of 2: 2, 2, 1, then an empty page past the end with the same totals.
    for (n, expected) in
        [(1, vec!["comment 4", "comment 3"]), (2, vec!["comment 2", "comment 1"]), (3, vec!["comment 0"])]
    {
        let (status, page) = s.get_as(&format!("{path}?page={n}&pageSize=2"), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(texts(&page), expected, "page {n}");
        assert_eq!(pagination(&page), (n, 2, 5, 3));
    }
    let (status, past) = s.get_as(&format!("{path}?page=4&pageSize=2"), None).await;
    assert_eq!((status, texts(&past).len(), pagination(&past)), (StatusCode::OK, 0, (4, 2, 5, 3)), "{past}");
    for (k, bad) in [("pageSize", "0"), ("pageSize", "101"), ("page", "0"), ("page", "x")] {
        let (status, p) = s.get_as(&format!("{path}?{k}={bad}"), None).await;
        assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(k)), "{k}={bad}: {p}");
    }
    let (status, p) = s.get_as("/videos/nope/comments", None).await;
    assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("videoId")), "{p}");
    let (status, _) = s.get_as(&format!("/videos/{}/comments", uuid::Uuid::now_v7()), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Names come from the users table, so a rename shows on old comments.
    let (status, _) = s.send(Method::PUT, "/users/me", Some(&bob_token), Some(json!({"firstName": "Robert"}))).await;
    assert_eq!(status, StatusCode::OK);
    let (_, page) = s.get_as(&path, None).await;
    let firsts: Vec<&str> = page["data"].as_array().unwrap().iter().map(|c| c["firstName"].as_str().unwrap()).collect();
    assert_eq!(firsts, ["Ann", "Robert", "Ann", "Robert", "Ann"]);

    // A user's list: their comments on every video, newest first.
    let (status, page) = s.get_as(&format!("/users/{bob}/comments"), None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(texts(&page), vec!["comment 3", "comment 1", "é".repeat(1000).as_str()]);
    assert_eq!(pagination(&page), (1, 10, 3, 1));
    assert_eq!(page["data"][2]["videoid"], other.as_str());
    assert!(page["data"].as_array().unwrap().iter().all(|c| c["firstName"] == "Robert" && c["userid"] == bob.as_str()));
    let (status, page) = s.get_as(&format!("/users/{ann}/comments?pageSize=2&page=2"), None).await;
    assert_eq!((status, texts(&page), pagination(&page)), (StatusCode::OK, vec!["comment 0"], (2, 2, 3, 2)));
    let (_, past) = s.get_as(&format!("/users/{ann}/comments?pageSize=2&page=3"), None).await;
    assert_eq!((texts(&past).len(), pagination(&past)), (0, (3, 2, 3, 2)));
    let (status, p) = s.get_as(&format!("/users/{ann}/comments?pageSize=101"), None).await;
    assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("pageSize")), "{p}");
    let (status, p) = s.get_as("/users/nope/comments", None).await;
    assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("userId")), "{p}");
    let (status, _) = s.get_as(&format!("/users/{}/comments", uuid::Uuid::now_v7()), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A user who never commented: an empty list, not a 404.
    let (carol, _) = signed_in(&s, "Carol").await;
    let (status, page) = s.get_as(&format!("/users/{carol}/comments"), None).await;
    assert_eq!((status, texts(&page).len(), pagination(&page)), (StatusCode::OK, 0, (1, 10, 0, 0)), "{page}");
}

#[tokio::test]
async fn activity_feed_lists_comments_and_rates_newest_first() {
    let s = Service::start(SECRET).await;
    let (ann, token) = signed_in(&s, "Ann").await;
    let v1 = video(&s, &token, "One").await;
    let v2 = video(&s, &token, "Two").await;
    let c1 = comment(&s, &token, &v1, "first").await;
    let c2 = comment(&s, &token, &v2, "second").await;
    let c3 = comment(&s, &token, &v1, "third").await;

    // A 'rate' row as the aggregator writes it: activity_ts a UUIDv7 of the rating,
    // activity_id the video.
    let session = s.cql().await;
    let rated_at = uuid::Uuid::now_v7();
    let ann_id = uuid::Uuid::parse_str(&ann).unwrap();
    let v2_id = uuid::Uuid::parse_str(&v2).unwrap();
    session
        .query_unpaged(
            format!(
                "INSERT INTO {}.user_activity (userid, activity_ts, activity_type, activity_id) VALUES (?, ?, ?, ?)",
                s.keyspace
            ),
            (ann_id, rated_at, "rate", v2_id),
        )
        .await
        .expect("fixture row");

    let path = format!("/users/{ann}/activity");
    let me = Some(token.as_str());
    let (status, page) = s.get_as(&path, me).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(pagination(&page), (1, 10, 4, 1));
    let data = page["data"].as_array().unwrap();
    let expected: BTreeSet<&str> = ["userId", "activityType", "activityId", "activityTimestamp"].into();
    assert!(data.iter().all(|a| keys(a) == expected && a["userId"] == ann.as_str()), "{page}");
    let got: Vec<(&str, &str)> =
        data.iter().map(|a| (a["activityType"].as_str().unwrap(), a["activityId"].as_str().unwrap())).collect();
    let id = |c: &Value| c["commentid"].as_str().unwrap().to_owned();
    let (i1, i2, i3) = (id(&c1), id(&c2), id(&c3));
    assert_eq!(
        got,
        [("rate", v2.as_str()), ("comment", i3.as_str()), ("comment", i2.as_str()), ("comment", i1.as_str())]
    );
    // A comment's activity time is the comment's creation time.
    assert_eq!(data[1]["activityTimestamp"], c3["createdAt"]);
    let times: Vec<_> = data.iter().map(|a| time(&a["activityTimestamp"])).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    // Paging: 3 + 1, then past the end; bad sizes; bad and unknown users.
    let (_, p2) = s.get_as(&format!("{path}?pageSize=3&page=2"), me).await;
    assert_eq!((p2["data"][0]["activityId"].as_str(), pagination(&p2)), (Some(i1.as_str()), (2, 3, 4, 2)), "{p2}");
    let (_, past) = s.get_as(&format!("{path}?pageSize=3&page=3"), me).await;
    assert_eq!((past["data"].as_array().unwrap().len(), pagination(&past)), (0, (3, 3, 4, 2)), "{past}");
    for bad in ["0", "101"] {
        let (status, p) = s.get_as(&format!("{path}?pageSize={bad}"), me).await;
        assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("pageSize")), "{p}");
    }
    let (status, p) = s.get_as("/users/nope/activity", me).await;
    assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("userId")), "{p}");
    // A valid token of an account that is gone.
    let gone = uuid::Uuid::now_v7();
    let tokens =
        platform::auth::Tokens::new(&platform::auth::AuthConfig { jwt_secret: SECRET.into(), token_ttl_secs: 60 });
    let gone_token = tokens.unwrap().issue(gone, vec![]).unwrap();
    let (status, _) = s.get_as(&format!("/users/{gone}/activity"), Some(&gone_token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (bob, bob_token) = signed_in(&s, "Bob").await;
    let (status, empty) = s.get_as(&format!("/users/{bob}/activity"), Some(&bob_token)).await;
    assert_eq!((status, pagination(&empty)), (StatusCode::OK, (1, 10, 0, 0)), "{empty}");

    // The feed is its owner's only: what Ann viewed and rated is not for anyone
    // else, signed in or not (her comments are public at /users/{id}/comments).
    let (status, p) = s.get_as(&path, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{p}");
    let (status, p) = s.get_as(&path, Some(&bob_token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{p}");
    assert!(p.get("data").is_none(), "{p}");
    let (status, public) = s.get_as(&format!("/users/{ann}/comments"), Some(&bob_token)).await;
    assert_eq!((status, pagination(&public)), (StatusCode::OK, (1, 10, 3, 1)), "{public}");
}
