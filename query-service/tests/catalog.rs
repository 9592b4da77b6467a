//! The catalog's lists, search, tag suggestions, related videos and
//! recommendations, on the real Cassandra. Videos are submitted and edited through
//! the API; rows other components write (ratings, view counts) and videos of past
//! days (the clock cannot be moved) are fixture rows.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

async fn edit(s: &Service, token: &str, id: &str, body: Value) {
    let (status, v) = s.send(Method::PUT, &format!("/videos/id/{id}"), Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

/// Paging edges shared by every list: bad sizes and pages, unknown parameters.
async fn paging_is_checked(s: &Service, path: &str, token: Option<&str>) {
    let sep = if path.contains('?') { '&' } else { '?' };
    for (param, field) in
        [("pageSize=0", "pageSize"), ("pageSize=101", "pageSize"), ("page=0", "page"), ("pagesize=5", "pagesize")]
    {
        let r = s.send(Method::GET, &format!("{path}{sep}{param}"), token, None).await;
        assert_eq!(invalid_field(&r), Some(field), "{path} {param}");
    }
}

/// A video submitted on a past day: the row and its `latest_videos` entries, as the
/// service writes them, with an id of that day.
async fn past_video(s: &Service, cql: &scylla::client::session::Session, day: &str, secs: u64, title: &str) -> String {
    let ks = &s.keyspace;
    let id = Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, secs, 0));
    cql.query_unpaged(
        format!("INSERT INTO {ks}.videos (videoid, title, submitted_at, status) VALUES (?, ?, ?, 'READY')"),
        (id, title, scylla::value::CqlTimestamp(secs as i64 * 1000)),
    )
    .await
    .unwrap();
    cql.query_unpaged(format!("INSERT INTO {ks}.latest_videos (yyyymmdd, videoid) VALUES (?, ?)"), (day, id))
        .await
        .unwrap();
    id.to_string()
}

#[tokio::test]
async fn lists_are_newest_first_with_exact_totals() {
    let s = Service::start(SECRET).await;
    let (ann, ann_token) = signed_in(&s, "Ann").await;
    let (bob, bob_token) = signed_in(&s, "Bob").await;

    // Two videos of 2020-01-01 (fixtures), then four of today through the API.
    let cql = s.cql().await;
    let old1 = past_video(&s, &cql, "20200101", 1_577_840_000, "Old one").await;
    let old2 = past_video(&s, &cql, "20200101", 1_577_850_000, "Old two").await;
    let ks = &s.keyspace;
    cql.query_unpaged(
        format!(
            "INSERT INTO {ks}.latest_video_days (shard, yyyymmdd, videos) VALUES (0, '20200101', 2) USING TIMESTAMP 2"
        ),
        (),
    )
    .await
    .unwrap();
    let v1 = submit(&s, &ann_token, "Rust one", "", &["Rust", "web"]).await;
    let v2 = submit(&s, &ann_token, "Rust two", "", &["rust"]).await;
    let v3 = submit(&s, &ann_token, "Cats", "", &["cats"]).await;
    let v4 = submit(&s, &bob_token, "Bob's rust", "", &["rust"]).await;

    // Latest: today's newest first, then 2020's, a page spanning both days.
    let page = ok(&s, "/videos/latest?pageSize=3").await;
    assert_eq!(ids(&page), [v4.as_str(), v3.as_str(), v2.as_str()]);
    assert_eq!(pagination(&page), [1, 3, 6, 2]);
    let first = &page["data"][0];
    assert_summary(first);
    assert_eq!((first["title"].as_str(), first["userId"].as_str()), (Some("Bob's rust"), Some(bob.as_str())));
    assert_eq!((first["views"].as_i64(), first["averageRating"].as_f64()), (Some(0), Some(0.0)));
    assert_eq!(first["thumbnailUrl"], "https://i.ytimg.com/vi/dQw4w9WgXcQ/hqdefault.jpg");
    let page = ok(&s, "/videos/latest?page=2&pageSize=3").await;
    assert_eq!(ids(&page), [v1.as_str(), old2.as_str(), old1.as_str()]);
    assert_eq!(pagination(&page), [2, 3, 6, 2]);
    let page = ok(&s, "/videos/latest?page=2&pageSize=4").await;
    assert_eq!(ids(&page), [old2.as_str(), old1.as_str()]);
    let page = ok(&s, "/videos/latest?page=3&pageSize=3").await;
    assert_eq!(ids(&page), Vec::<String>::new());
    assert_eq!(pagination(&page), [3, 3, 6, 2]);
    let page = ok(&s, "/videos/latest").await;
    assert_eq!(ids(&page), [v4.as_str(), v3.as_str(), v2.as_str(), v1.as_str(), old2.as_str(), old1.as_str()]);
    assert_eq!(pagination(&page), [1, 10, 6, 1]);
    paging_is_checked(&s, "/videos/latest", None).await;

    // By tag: tags are compared lower-cased; an unused tag is an empty list.
    let page = ok(&s, "/videos/by-tag/rust").await;
    assert_eq!(ids(&page), [v4.as_str(), v2.as_str(), v1.as_str()]);
    assert_eq!(pagination(&page), [1, 10, 3, 1]);
    let page = ok(&s, "/videos/by-tag/RUST?page=2&pageSize=2").await;
    assert_eq!(ids(&page), [v1.as_str()]);
    assert_eq!(pagination(&page), [2, 2, 3, 2]);
    let page = ok(&s, "/videos/by-tag/rust?page=5&pageSize=2").await;
    assert_eq!((ids(&page).len(), pagination(&page)), (0, [5, 2, 3, 2]));
    let page = ok(&s, "/videos/by-tag/nothing").await;
    assert_eq!((ids(&page).len(), pagination(&page)), (0, [1, 10, 0, 0]));
    let long = "x".repeat(51);
    assert_eq!(invalid_field(&s.get(&format!("/videos/by-tag/{long}")).await), Some("tag"));
    paging_is_checked(&s, "/videos/by-tag/rust", None).await;

    // By uploader.
    let page = ok(&s, &format!("/videos/by-uploader/{ann}?pageSize=2")).await;
    assert_eq!(ids(&page), [v3.as_str(), v2.as_str()]);
    assert_eq!(pagination(&page), [1, 2, 3, 2]);
    let page = ok(&s, &format!("/videos/by-uploader/{ann}?page=2&pageSize=2")).await;
    assert_eq!(ids(&page), [v1.as_str()]);
    let page = ok(&s, &format!("/videos/by-uploader/{bob}?page=2")).await;
    assert_eq!((ids(&page).len(), pagination(&page)), (0, [2, 10, 1, 1]));
    let (_, carl_token) = signed_in(&s, "Carl").await;
    let (status, _) = s.get(&format!("/videos/by-uploader/{}", Uuid::new_v4())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(invalid_field(&s.get("/videos/by-uploader/ann").await), Some("userId"));
    paging_is_checked(&s, &format!("/videos/by-uploader/{ann}"), None).await;

    // Editing tags moves the video between tag lists; another user's edit is refused
    // and changes nothing.
    let (status, _) =
        s.send(Method::PUT, &format!("/videos/id/{v1}"), Some(&carl_token), Some(json!({"tags": ["cats"]}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(ids(&ok(&s, "/videos/by-tag/rust").await), [v4.as_str(), v2.as_str(), v1.as_str()]);
    edit(&s, &ann_token, &v1, json!({"tags": ["cats", "Go"]})).await;
    let page = ok(&s, "/videos/by-tag/rust").await;
    assert_eq!((ids(&page), pagination(&page)), (vec![v4.clone(), v2.clone()], [1, 10, 2, 1]));
    assert_eq!(ids(&ok(&s, "/videos/by-tag/cats").await), [v3.as_str(), v1.as_str()]);
    assert_eq!(ids(&ok(&s, "/videos/by-tag/go").await), [v1.as_str()]);
    assert_eq!(pagination(&ok(&s, "/videos/by-tag/web").await), [1, 10, 0, 0]);
    // Editing the title only leaves the tag lists alone; lists show the new title.
    edit(&s, &ann_token, &v1, json!({"title": "Now about cats"})).await;
    let page = ok(&s, "/videos/by-tag/cats").await;
    assert_eq!(ids(&page), [v3.as_str(), v1.as_str()]);
    assert_eq!(page["data"][1]["title"], "Now about cats");
    assert_eq!(pagination(&ok(&s, "/videos/latest").await)[2], 6);
}

#[tokio::test]
async fn search_ranks_by_matches_and_suggestions_follow_tags() {
    let s = Service::start(SECRET).await;
    let (_, token) = signed_in(&s, "Sam").await;
    let s1 = submit(&s, &token, "Rust from scratch", "Systems programming in rust.", &["rust", "programming"]).await;
    let s2 = submit(&s, &token, "Rust removal", "Cast-iron pans", &["cooking"]).await;
    let s3 = submit(&s, &token, "Web servers in Rust", "axum and tokio", &["rust", "web"]).await;
    let s4 = submit(&s, &token, "Python tips", "Programming, quickly", &["python", "programming"]).await;
    let s5 = submit(&s, &token, "RUST again", "", &["rock", "rocket", "rococo"]).await;

    // "rust": s1 in title, description and tags (3); s3 in title and tags (2); s5 in
    // its title only (1), as s2. Equal matches: newest first.
    let page = ok(&s, "/search/videos?query=rust").await;
    assert_eq!(ids(&page), [s1.as_str(), s3.as_str(), s5.as_str(), s2.as_str()]);
    assert_eq!(pagination(&page), [1, 10, 4, 1]);
    assert_summary(&page["data"][0]);
    assert_eq!(page["data"][0]["title"], "Rust from scratch");
    let page = ok(&s, "/search/videos?query=rust&page=2&pageSize=3").await;
    assert_eq!((ids(&page), pagination(&page)), (vec![s2.clone()], [2, 3, 4, 2]));
    let page = ok(&s, "/search/videos?query=rust&page=3&pageSize=3").await;
    assert_eq!((ids(&page).len(), pagination(&page)), (0, [3, 3, 4, 2]));

    // Every word must match, whatever the case and punctuation.
    assert_eq!(ids(&ok(&s, "/search/videos?query=RUST,%20programming!").await), [s1.as_str()]);
    assert_eq!(ids(&ok(&s, "/search/videos?query=programming").await), [s4.as_str(), s1.as_str()]);
    assert_eq!(ids(&ok(&s, "/search/videos?query=web%20rust").await), [s3.as_str()]);
    assert_eq!(ids(&ok(&s, "/search/videos?query=iron").await), [s2.as_str()]);
    let page = ok(&s, "/search/videos?query=rust%20python").await;
    assert_eq!((ids(&page).len(), pagination(&page)), (0, [1, 10, 0, 0]));

    for bad in ["/search/videos", "/search/videos?query=", "/search/videos?query=%20%3F!", "/search/videos?q=rust"] {
        let field = if bad.ends_with("q=rust") { "q" } else { "query" };
        assert_eq!(invalid_field(&s.get(bad).await), Some(field), "{bad}");
    }
    paging_is_checked(&s, "/search/videos?query=rust", None).await;

    // An edit re-indexes: "rust" leaves s2's title, "iron" its description.
    edit(&s, &token, &s2, json!({"title": "Seasoning", "description": "Pans"})).await;
    assert_eq!(ids(&ok(&s, "/search/videos?query=rust").await), [s1.as_str(), s3.as_str(), s5.as_str()]);
    assert_eq!(pagination(&ok(&s, "/search/videos?query=iron").await)[2], 0);
    assert_eq!(ids(&ok(&s, "/search/videos?query=seasoning").await), [s2.as_str()]);

    // Suggestions: tags in use by prefix, alphabetical, `[{tag}]`.
    let tags =
        |v: Value| v.as_array().unwrap().iter().map(|t| t["tag"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    let v = ok(&s, "/search/tags/suggest?query=ro").await;
    assert_eq!(v, json!([{"tag": "rock"}, {"tag": "rocket"}, {"tag": "rococo"}]));
    assert_eq!(tags(ok(&s, "/search/tags/suggest?query=R").await), ["rock", "rocket", "rococo", "rust"]);
    assert_eq!(tags(ok(&s, "/search/tags/suggest?query=rock").await), ["rock", "rocket"]);
    assert_eq!(tags(ok(&s, "/search/tags/suggest?query=rocke").await), ["rocket"]);
    assert_eq!(tags(ok(&s, "/search/tags/suggest?query=ro&limit=2").await), ["rock", "rocket"]);
    assert_eq!(tags(ok(&s, "/search/tags/suggest?query=p").await), ["programming", "python"]);
    assert!(tags(ok(&s, "/search/tags/suggest?query=rockets").await).is_empty());
    assert!(tags(ok(&s, "/search/tags/suggest?query=zz").await).is_empty());
    for (path, field) in [
        ("/search/tags/suggest", "query"),
        ("/search/tags/suggest?query=%20", "query"),
        ("/search/tags/suggest?query=r&limit=0", "limit"),
        ("/search/tags/suggest?query=r&limit=51", "limit"),
        ("/search/tags/suggest?query=r&pageSize=5", "pageSize"),
    ] {
        assert_eq!(invalid_field(&s.get(path).await), Some(field), "{path}");
    }
    assert_eq!(tags(ok(&s, "/search/tags/suggest?query=r&limit=50").await).len(), 4);

    // A tag no video carries any more is no longer suggested; one still carried is.
    edit(&s, &token, &s5, json!({"tags": ["rock", "rocket"]})).await;
    edit(&s, &token, &s1, json!({"tags": ["rust"]})).await;
    assert_eq!(tags(ok(&s, "/search/tags/suggest?query=ro").await), ["rock", "rocket"]);
    assert_eq!(tags(ok(&s, "/search/tags/suggest?query=pro").await), ["programming"]);
}

#[tokio::test]
async fn related_videos_and_recommendations_share_tags() {
    let s = Service::start(SECRET).await;
    let (_, token) = signed_in(&s, "Uma").await;
    let r0 = submit(&s, &token, "Zero", "", &["a", "b", "c"]).await;
    let r1 = submit(&s, &token, "One", "", &["a", "b", "c"]).await;
    let r2 = submit(&s, &token, "Two", "", &["a", "b"]).await;
    let r3 = submit(&s, &token, "Three", "", &["a"]).await;
    let r4 = submit(&s, &token, "Four", "", &["b"]).await;
    let r5 = submit(&s, &token, "Five", "", &["z"]).await;
    let r6 = submit(&s, &token, "Six", "", &["c"]).await;
    // r3 has views: it wins the tie at score 1.
    let cql = s.cql().await;
    all_time_views(&s, &cql, &r3, 5).await;

    let v = ok(&s, &format!("/videos/id/{r0}/related")).await;
    assert_eq!(ids(&v), [r1.as_str(), r2.as_str(), r3.as_str(), r6.as_str(), r4.as_str()]);
    let scores: Vec<i64> = v.as_array().unwrap().iter().map(|r| r["score"].as_i64().unwrap()).collect();
    assert_eq!(scores, [3, 2, 1, 1, 1]);
    assert_eq!(
        v[0],
        json!({"videoId": r1, "title": "One", "thumbnailUrl": "https://i.ytimg.com/vi/dQw4w9WgXcQ/hqdefault.jpg", "score": 3})
    );
    assert_eq!(
        ids(&ok(&s, &format!("/videos/id/{r0}/related?limit=3")).await),
        [r1.as_str(), r2.as_str(), r3.as_str()]
    );
    assert_eq!(
        ids(&ok(&s, &format!("/videos/id/{r4}/related?limit=20")).await),
        [r2.as_str(), r1.as_str(), r0.as_str()]
    );
    assert_eq!(ids(&ok(&s, &format!("/videos/id/{r5}/related")).await), Vec::<String>::new());
    for (q, field) in [("limit=0", "limit"), ("limit=21", "limit"), ("limit=x", "limit"), ("size=3", "size")] {
        assert_eq!(invalid_field(&s.get(&format!("/videos/id/{r0}/related?{q}")).await), Some(field), "{q}");
    }
    assert_eq!(invalid_field(&s.get("/videos/id/r0/related").await), Some("videoId"));
    let (status, _) = s.get(&format!("/videos/id/{}/related", Uuid::new_v4())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // For you: sign-in required.
    let (status, p) = s.get("/recommendations/foryou").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{p}");
    let (status, _) = s.send(Method::GET, "/recommendations/foryou", Some("not.a.token"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // No activity: the latest videos.
    let (viewer, viewer_token) = signed_in(&s, "Vic").await;
    let (status, page) = s.send(Method::GET, "/recommendations/foryou?pageSize=3", Some(&viewer_token), None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!((ids(&page), pagination(&page)), (vec![r6.clone(), r5.clone(), r4.clone()], [1, 3, 7, 3]));

    // Activity: rated r1 5 stars (a, b, c) and r5 1 star (z: not an interest), and
    // uploaded u1 (a). Weights a = 2, b = 1, c = 1; r1, r5 and u1 are left out.
    let u1 = submit(&s, &viewer_token, "Mine", "", &["a"]).await;
    for (video, rating) in [(&r1, 5), (&r5, 1)] {
        cql.query_unpaged(
            format!(
                "INSERT INTO {}.ratings_by_user (userid, videoid, rating, updated_at) VALUES (?, ?, ?, toTimestamp(now()))",
                s.keyspace
            ),
            (Uuid::parse_str(&viewer).unwrap(), Uuid::parse_str(video).unwrap(), rating),
        )
        .await
        .unwrap();
    }
    // r0: a+b+c = 4, r2: a+b = 3, r3: a = 2, then r6 (c) and r4 (b) at 1, newer first.
    let (status, page) = s.send(Method::GET, "/recommendations/foryou", Some(&viewer_token), None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(ids(&page), [r0.as_str(), r2.as_str(), r3.as_str(), r6.as_str(), r4.as_str()]);
    assert_eq!(pagination(&page), [1, 10, 5, 1]);
    assert_summary(&page["data"][0]);
    assert!(!ids(&page).contains(&u1));
    let (_, page) = s.send(Method::GET, "/recommendations/foryou?page=3&pageSize=2", Some(&viewer_token), None).await;
    assert_eq!((ids(&page), pagination(&page)), (vec![r4.clone()], [3, 2, 5, 3]));
    let (_, page) = s.send(Method::GET, "/recommendations/foryou?page=4&pageSize=2", Some(&viewer_token), None).await;
    assert_eq!((ids(&page).len(), pagination(&page)), (0, [4, 2, 5, 3]));
    paging_is_checked(&s, "/recommendations/foryou", Some(&viewer_token)).await;
}
