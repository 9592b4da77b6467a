//! KillrVideo's React front end (`killrvideo-react-frontend`, `src/lib/api.ts`)
//! against this origin: every call it makes, with the paths and query strings as
//! it builds them (its defaults: page 1, pageSize 10, related limit 5), and its
//! headers (`Content-Type: application/json` on every request, GETs included). No
//! call may be refused for a parameter or member the front end legitimately sends.
//!
//! Not served: `POST /videos/id/{id}/watch-time` (watch time needs the value
//! metrics of issue 13); the gateway's routes (view, rating) are checked where the
//! gateway runs (e2e/tests/web.rs, journey.rs).

mod common;

use common::{SECRET, Service, register_and_login, signed_in, submit};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A call as api.ts makes it: always `Content-Type: application/json`.
async fn call(
    s: &Service,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    s.send(method, path, token, body).await
}

fn refused_for_input(status: StatusCode) -> bool {
    status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST
}

#[tokio::test]
async fn every_call_of_the_react_front_end_is_accepted() {
    let email = format!("{}@example.org", uuid::Uuid::new_v4().simple());
    let s = Service::start(SECRET).await;
    let (user, token, _) = register_and_login(&s, "Kay", &email).await;
    s.grant_moderator(&user).await;
    let (other_user, _) = signed_in(&s, "Lou").await;
    let t = Some(token.as_str());
    let video = submit(&s, &token, "Front end video", "watched from the React app", &["react", "music"]).await;
    let (page, size) = (1, 10);

    let (status, comment) =
        call(&s, Method::POST, &format!("/videos/{video}/comments"), t, Some(json!({"text": "nice"}))).await;
    assert_eq!(status, StatusCode::CREATED, "addComment: {comment}");
    let comment_id = comment["commentid"].as_str().unwrap().to_owned();
    let (status, flag) = call(
        &s,
        Method::POST,
        "/flags",
        t,
        Some(json!({"contentType": "video", "contentId": video, "reasonCode": "spam", "reasonText": "test"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "flagContent: {flag}");
    let flag_id = flag["flagId"].as_str().unwrap().to_owned();

    let gets = [
        ("getProfile", "/users/me".to_owned()),
        ("getVideo", format!("/videos/id/{video}")),
        ("getVideoStatus", format!("/videos/id/{video}/status")),
        ("getLatestVideos", format!("/videos/latest?page={page}&page_size={size}")),
        ("getTrendingVideos", format!("/videos/trending?intervalDays=1&limit={size}")),
        ("getVideosByTag", format!("/videos/by-tag/react?page={page}&pageSize={size}")),
        ("getVideosByUser", format!("/videos/by-uploader/{user}?page={page}&pageSize={size}")),
        ("getComments", format!("/videos/{video}/comments?page={page}&pageSize={size}")),
        ("getCommentsByUser", format!("/users/{user}/comments?page={page}&pageSize={size}")),
        ("getRatings", format!("/videos/{video}/ratings")),
        ("getVideoRating", format!("/videos/id/{video}/rating")),
        ("searchVideos", "/search/videos?query=react&mode=semantic".to_owned()),
        ("searchVideos (paged)", format!("/search/videos?query=react&page={page}&pageSize={size}&mode=semantic")),
        ("getTagSuggestions", format!("/search/tags/suggest?query=re&limit={size}")),
        ("getRelatedVideos", format!("/videos/id/{video}/related?limit=5")),
        ("getPersonalizedRecommendations", format!("/recommendations/foryou?page={page}&pageSize={size}")),
        ("getModerationFlags", format!("/moderation/flags?page={page}&pageSize={size}")),
        ("getModerationFlags (status)", format!("/moderation/flags?page={page}&pageSize={size}&status=open")),
        ("getFlagDetails", format!("/moderation/flags/{flag_id}")),
        ("searchUsers", "/moderation/users".to_owned()),
        ("searchUsers (query)", "/moderation/users?q=kay".to_owned()),
        ("getUser", format!("/users/{user}")),
        ("getUser (another user)", format!("/users/{other_user}")),
    ];
    for (name, path) in &gets {
        let (status, body) = call(&s, Method::GET, path, t, None).await;
        assert!(!refused_for_input(status), "{name} GET {path}: {status} {body}");
        assert_eq!(status, StatusCode::OK, "{name} GET {path}: {body}");
    }
    // The search answers with keyword results when asked for semantic ones.
    let (_, found) = call(&s, Method::GET, "/search/videos?query=react&mode=semantic", t, None).await;
    assert_eq!(common::ids(&found), vec![video.clone()], "{found}");
    // What `useUserNames` shows beside videos and comments: the names, from the
    // public profile (which has no email, roles or login times).
    let (_, public) = call(&s, Method::GET, &format!("/users/{user}"), None, None).await;
    assert_eq!((public["firstName"].as_str(), public["lastName"].as_str()), (Some("Kay"), Some("Test")), "{public}");
    // `page_size` is the page size.
    let (_, latest) = call(&s, Method::GET, "/videos/latest?page=1&page_size=1", t, None).await;
    assert_eq!(latest["pagination"]["pageSize"], 1, "{latest}");

    let writes = [
        ("updateProfile", Method::PUT, "/users/me".to_owned(), json!({"firstName": "Kay", "lastName": "Front"})),
        (
            "updateVideo",
            Method::PUT,
            format!("/videos/id/{video}"),
            json!({"title": "Renamed", "description": "still", "tags": ["react"]}),
        ),
        (
            "actionFlag",
            Method::POST,
            format!("/moderation/flags/{flag_id}/action"),
            json!({"status": "rejected", "moderatorNotes": "fine"}),
        ),
    ];
    for (name, method, path, body) in writes {
        let (status, answer) = call(&s, method.clone(), &path, t, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{name} {method} {path}: {answer}");
    }
    // Body-less POSTs, sent with `Content-Type: application/json` as api.ts does.
    for (name, path) in [
        ("assignModerator", format!("/moderation/users/{other_user}/assign-moderator")),
        ("revokeModerator", format!("/moderation/users/{other_user}/revoke-moderator")),
        ("restoreVideo", format!("/moderation/videos/{video}/restore")),
        ("restoreComment", format!("/moderation/comments/{comment_id}/restore")),
    ] {
        let (status, answer) = call(&s, Method::POST, &path, t, None).await;
        assert_eq!(status, StatusCode::OK, "{name} POST {path}: {answer}");
    }
    // login and register, as the front end sends them.
    let other = format!("{}@example.org", uuid::Uuid::new_v4().simple());
    let body = json!({"firstName": "Lee", "lastName": "Other", "email": other, "password": "password123"});
    assert_eq!(call(&s, Method::POST, "/users/register", None, Some(body)).await.0, StatusCode::CREATED);
    let body = json!({"email": other, "password": "password123"});
    assert_eq!(call(&s, Method::POST, "/users/login", None, Some(body)).await.0, StatusCode::OK);
}
