//! The KillrVideo video rows built so far, on the real Cassandra: submit (auth,
//! URL validation, PENDING → READY), read, owner-only edit, status, preview.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn submit_read_edit_and_preview() {
    let s = Service::start(SECRET).await;
    let (owner, token) = signed_in(&s, "Owner").await;
    let (_, other_token) = signed_in(&s, "Other").await;
    let url = "https://youtu.be/dQw4w9WgXcQ?t=3";

    // Submitting needs a token, and a YouTube URL.
    let (status, _) = s.send(Method::POST, "/videos", None, Some(json!({"youtubeUrl": url}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let bad = json!({"youtubeUrl": "https://vimeo.com/1"});
    let (status, p) = s.send(Method::POST, "/videos", Some(&token), Some(bad)).await;
    assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("youtubeUrl")), "{p}");
    let bad_tags = json!({"youtubeUrl": url, "tags": ["ok", ""]});
    let (status, p) = s.send(Method::POST, "/videos", Some(&token), Some(bad_tags)).await;
    assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("tags[1]")), "{p}");

    let body = json!({"youtubeUrl": url, "title": "Never gonna", "tags": ["Music", "80s"]});
    let (status, v) = s.send(Method::POST, "/videos", Some(&token), Some(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    assert_eq!((v["status"].as_str(), v["youtubeVideoId"].as_str()), (Some("PENDING"), Some("dQw4w9WgXcQ")));
    assert_eq!((v["userId"].as_str(), v["views"].as_i64()), (Some(owner.as_str()), Some(0)));
    assert_eq!(v["tags"], json!(["80s", "music"]));
    for key in ["location_type", "content_rating", "averageRating", "totalRatingsCount", "thumbnailUrl", "submittedAt"]
    {
        assert!(v.get(key).is_some(), "VideoDetail lacks {key}: {v}");
    }
    let id = v["videoId"].as_str().unwrap().to_owned();

    // Processing marks it READY.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, st) = s.send(Method::GET, &format!("/videos/id/{id}/status"), Some(&token), None).await;
        assert_eq!(status, StatusCode::OK, "{st}");
        if st["status"] == "READY" {
            break;
        }
        assert!(Instant::now() < deadline, "still {st} after 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = s.send(Method::GET, &format!("/videos/id/{id}/status"), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Anyone reads it; a bad id is 422, an unknown one 404.
    let (status, v) = s.send(Method::GET, &format!("/videos/id/{id}"), None, None).await;
    assert_eq!(
        (status, v["title"].as_str(), v["status"].as_str()),
        (StatusCode::OK, Some("Never gonna"), Some("READY"))
    );
    let (status, p) = s.send(Method::GET, "/videos/id/nope", None, None).await;
    assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("videoId")));
    let (status, _) = s.send(Method::GET, &format!("/videos/id/{}", uuid::Uuid::new_v4()), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Only the uploader edits.
    let edit = json!({"description": "a classic"});
    let path = format!("/videos/id/{id}");
    let (status, _) = s.send(Method::PUT, &path, None, Some(edit.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, p) = s.send(Method::PUT, &path, Some(&other_token), Some(edit.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{p}");
    let (status, v) = s.send(Method::PUT, &path, Some(&token), Some(edit)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!((v["title"].as_str(), v["description"].as_str()), (Some("Never gonna"), Some("a classic")));

    // Preview from the URL alone.
    let (status, p) =
        s.post("/videos/preview", json!({"youtubeUrl": "https://www.youtube.com/shorts/abcdefghijk"})).await;
    assert_eq!((status, p["youtubeVideoId"].as_str()), (StatusCode::OK, Some("abcdefghijk")), "{p}");
    let (status, p) = s.post("/videos/preview", json!({"youtubeUrl": "not a url"})).await;
    assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("youtubeUrl")));
}
