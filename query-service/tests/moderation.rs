//! Flags and moderation, on the real Cassandra: flagging (auth, validation,
//! unknown content), the moderator role (granted by the operator by user id,
//! never by email at sign-up; assign and revoke by moderators, in effect at once;
//! 401/403), the audit log, listing and acting on flags, soft delete by approval
//! and the restore routes, user search.

mod common;

use std::collections::BTreeSet;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const FLAG_KEYS: [&str; 12] = [
    "flagId",
    "contentType",
    "contentId",
    "reasonCode",
    "reasonText",
    "userId",
    "createdAt",
    "updatedAt",
    "status",
    "moderatorId",
    "moderatorNotes",
    "resolvedAt",
];

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().map(String::as_str).collect()
}

fn ids<'a>(page: &'a Value, key: &str) -> Vec<&'a str> {
    page["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {page}"))
        .iter()
        .map(|f| f[key].as_str().unwrap())
        .collect()
}

fn totals(page: &Value) -> (u64, u64) {
    let p = &page["pagination"];
    (p["totalItems"].as_u64().unwrap(), p["totalPages"].as_u64().unwrap())
}

fn email() -> String {
    format!("{}@example.org", uuid::Uuid::new_v4().simple())
}

async fn send(s: &Service, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    s.send(Method::POST, path, token, Some(body)).await
}

async fn flag(s: &Service, token: &str, body: Value) -> Value {
    let (status, f) = send(s, "/flags", Some(token), body).await;
    assert_eq!(status, StatusCode::CREATED, "{f}");
    f
}

/// The old way, granting by email in the config, is refused at start-up, saying
/// what to do instead: whoever registered a listed address first became a
/// moderator (emails are not verified).
#[tokio::test]
async fn moderators_are_never_granted_by_email() {
    let cfg = Service::config(SECRET, |c| c.moderation.moderators = vec!["ann@example.org".into()]);
    let err = query_service::Application::build(cfg).await.err().expect("moderation.moderators is refused");
    let err = format!("{err:#}");
    assert!(err.contains("vcount-admin moderators grant --user-id"), "{err}");
}

/// A moderator made by the operator (by user id), who grants and revokes others;
/// every change is in effect at once, whatever the tokens say.
#[tokio::test]
async fn moderators_come_from_the_operator_and_from_other_moderators() {
    let s = Service::start(SECRET).await;
    let first = email();

    // Sign-up gives the role to no one; the operator grants it by user id.
    let (mod_id, mod_token, mod_user) = register_and_login(&s, "Mia", &first).await;
    assert_eq!(mod_user["roles"], json!(["USER"]), "{mod_user}");
    let (status, _) = s.get_as("/moderation/flags", Some(&mod_token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    s.grant_moderator(&mod_id).await;
    // The token from before the grant works at once: the role is read from the store.
    let (status, _) = s.get_as("/moderation/flags", Some(&mod_token)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, again) = login(&s, &first).await;
    assert_eq!(again["roles"], json!(["USER", "moderator"]), "{again}");

    // Others are not.
    let zelda_email = email();
    let (zelda, zelda_token, zelda_user) = register_and_login(&s, "Zelda", &zelda_email).await;
    assert_eq!(zelda_user["roles"], json!(["USER"]));
    let (status, _) = s.get_as("/moderation/flags", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, p) = s.get_as("/moderation/flags", Some(&zelda_token)).await;
    assert_eq!((status, p["status"].as_u64()), (StatusCode::FORBIDDEN, Some(403)), "{p}");

    // User search: moderators only, email or name, any case; without `q` (as
    // KillrVideo's user management page asks) every user, by email, at most 50.
    let (status, _) = s.get_as("/moderation/users?q=zelda", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = s.get_as("/moderation/users?q=zelda", Some(&zelda_token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, p) = s.get_as(&format!("/moderation/users?q={}", "a".repeat(101)), Some(&mod_token)).await;
    assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("q")), "{p}");
    for q in ["", "q=", "q=%20%20"] {
        let (status, all) = s.get_as(&format!("/moderation/users?{q}"), Some(&mod_token)).await;
        assert_eq!(status, StatusCode::OK, "{q}: {all}");
        let emails: Vec<&str> = all.as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap()).collect();
        assert!(emails.len() >= 2 && emails.len() <= 50, "{q}: {all}");
        assert!(emails.windows(2).all(|w| w[0] <= w[1]), "by email: {emails:?}");
    }
    let (status, found) = s.get_as("/moderation/users?q=ZELDA%20test", Some(&mod_token)).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    let expected: BTreeSet<&str> =
        ["userId", "firstName", "lastName", "email", "createdDate", "accountStatus", "lastLoginDate", "roles"].into();
    assert_eq!(keys(&found[0]), expected);
    assert_eq!(
        (found[0]["userId"].as_str(), found[0]["email"].as_str()),
        (Some(zelda.as_str()), Some(zelda_email.as_str()))
    );
    let local = &zelda_email[..12];
    let (_, found) = s.get_as(&format!("/moderation/users?q={local}"), Some(&mod_token)).await;
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    let (_, found) = s.get_as("/moderation/users?q=example.org", Some(&mod_token)).await;
    let emails: Vec<&str> = found.as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap()).collect();
    let mut sorted = vec![first.as_str(), zelda_email.as_str()];
    sorted.sort();
    assert_eq!(emails, sorted, "every user, by email");
    let (_, none) = s.get_as("/moderation/users?q=nobody-like-this", Some(&mod_token)).await;
    assert_eq!(none, json!([]));

    // Assigning: moderators only; bad and unknown ids.
    let assign = format!("/moderation/users/{zelda}/assign-moderator");
    let (status, _) = send(&s, &assign, None, json!(null)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(&s, &assign, Some(&zelda_token), json!(null)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, p) = send(&s, "/moderation/users/nope/assign-moderator", Some(&mod_token), json!(null)).await;
    assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("userId")), "{p}");
    let unknown = format!("/moderation/users/{}/assign-moderator", uuid::Uuid::now_v7());
    let (status, _) = send(&s, &unknown, Some(&mod_token), json!(null)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, u) = send(&s, &assign, Some(&mod_token), json!(null)).await;
    assert_eq!((status, &u["roles"]), (StatusCode::OK, &json!(["USER", "moderator"])), "{u}");
    assert_eq!(u["userId"], zelda.as_str());

    // In effect at once, with the token Zelda already had.
    let (status, _) = s.get_as("/moderation/flags", Some(&zelda_token)).await;
    assert_eq!(status, StatusCode::OK);

    // Revoking takes it away again, at once: the still valid token is refused on
    // its very next request (roles are checked in the store, not in the token).
    let revoke = format!("/moderation/users/{zelda}/revoke-moderator");
    let (status, _) = send(&s, &revoke, None, json!(null)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, p) = send(&s, "/moderation/users/nope/revoke-moderator", Some(&mod_token), json!(null)).await;
    assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("userId")), "{p}");
    let own = format!("/moderation/users/{zelda}/revoke-moderator");
    let (status, p) = send(&s, &own, Some(&zelda_token), json!(null)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "not one's own: {p}");
    let (status, u) = send(&s, &revoke, Some(&mod_token), json!(null)).await;
    assert_eq!((status, &u["roles"]), (StatusCode::OK, &json!(["USER"])), "{u}");
    let (status, p) = s.get_as("/moderation/flags", Some(&zelda_token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "revoked, the old token is refused at once: {p}");
    let (status, _) = send(&s, &assign, Some(&zelda_token), json!(null)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "nor can it grant itself the role back");

    // The audit log: who, what, when, on whom, newest first, moderators only.
    let (status, _) = s.get_as("/moderation/audit", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = s.get_as("/moderation/audit", Some(&zelda_token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, log) = s.get_as("/moderation/audit?pageSize=10", Some(&mod_token)).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let entries = log["data"].as_array().unwrap();
    let got: Vec<(&str, &str, Option<&str>, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["moderatorId"].as_str(),
                e["targetId"].as_str().unwrap(),
            )
        })
        .collect();
    let (m, z) = (mod_id.as_str(), zelda.as_str());
    assert_eq!(
        got,
        [
            ("moderator", "revoke_moderator", Some(m), z),
            ("moderator", "assign_moderator", Some(m), z),
            ("vcount-admin", "assign_moderator", None, m),
        ],
        "{log}"
    );
    assert_eq!(pagination(&log), [1, 10, 3, 1]);
    assert!(entries.iter().all(|e| e["targetType"] == "user" && e["createdAt"].is_string()), "{log}");
    assert_eq!(entries[2]["notes"], "tests");
    let (_, page2) = s.get_as("/moderation/audit?pageSize=2&page=2", Some(&mod_token)).await;
    assert_eq!(page2["data"][0]["actor"], "vcount-admin", "{page2}");
    let (status, p) = s.get_as("/moderation/audit?pageSize=101", Some(&mod_token)).await;
    assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("pageSize")), "{p}");
}

#[tokio::test]
async fn flags_moderation_soft_delete_and_restore() {
    let s = Service::start(SECRET).await;
    let (moderator, mod_token) = moderator(&s, "Mia").await;
    let (ann, ann_token) = signed_in(&s, "Ann").await;
    let (bob, bob_token) = signed_in(&s, "Bob").await;
    let v1 = video(&s, &ann_token, "Flagged").await;
    let v2 = video(&s, &ann_token, "Commented").await;
    let (_, kept) = {
        let body = json!({"text": "a fine comment"});
        s.send(Method::POST, &format!("/videos/{v2}/comments"), Some(&ann_token), Some(body)).await
    };
    let (status, bad) =
        s.send(Method::POST, &format!("/videos/{v2}/comments"), Some(&bob_token), Some(json!({"text": "rude"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{bad}");
    let bad_comment = bad["commentid"].as_str().unwrap().to_owned();

    // Flagging: signed in, valid fields, existing content.
    let video_flag = json!({"contentType": "video", "contentId": v1, "reasonCode": "spam", "reasonText": " buy now "});
    let (status, _) = send(&s, "/flags", None, video_flag.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for (field, value) in [
        ("contentType", json!("photo")),
        ("contentId", json!("nope")),
        ("reasonCode", json!("meh")),
        ("reasonText", json!("x".repeat(501))),
        ("extra", json!(1)),
    ] {
        let mut body = video_flag.clone();
        body[field] = value;
        let (status, p) = send(&s, "/flags", Some(&bob_token), body).await;
        assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)), "{p}");
    }
    for field in ["contentType", "contentId", "reasonCode"] {
        let mut body = video_flag.clone();
        body.as_object_mut().unwrap().remove(field);
        let (status, p) = send(&s, "/flags", Some(&bob_token), body).await;
        assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)), "missing: {p}");
    }
    for content_type in ["video", "comment"] {
        let body = json!({"contentType": content_type, "contentId": uuid::Uuid::now_v7(), "reasonCode": "other"});
        let (status, p) = send(&s, "/flags", Some(&bob_token), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{content_type}: {p}");
    }
    let f1 = flag(&s, &bob_token, video_flag.clone()).await;
    assert_eq!(keys(&f1), FLAG_KEYS.into(), "{f1}");
    assert_eq!(
        (&f1["contentType"], &f1["contentId"], &f1["reasonCode"], &f1["reasonText"]),
        (&json!("video"), &json!(v1), &json!("spam"), &json!("buy now"))
    );
    assert_eq!((&f1["userId"], &f1["status"]), (&json!(bob), &json!("open")));
    assert_eq!(
        (&f1["moderatorId"], &f1["moderatorNotes"], &f1["resolvedAt"]),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    assert_eq!(f1["createdAt"], f1["updatedAt"]);
    let comment_flag = json!({"contentType": "comment", "contentId": bad_comment, "reasonCode": "harassment"});
    let f2 = flag(&s, &ann_token, comment_flag).await;
    assert_eq!((&f2["contentType"], &f2["reasonText"], &f2["userId"]), (&json!("comment"), &Value::Null, &json!(ann)));
    let f3 = flag(&s, &ann_token, json!({"contentType": "video", "contentId": v1, "reasonCode": "copyright"})).await;
    let (id1, id2, id3) =
        (f1["flagId"].as_str().unwrap(), f2["flagId"].as_str().unwrap(), f3["flagId"].as_str().unwrap());

    // Listing: moderators only; newest first; by status; paging edges.
    let (status, _) = s.get_as("/moderation/flags", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = s.get_as("/moderation/flags", Some(&ann_token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, all) = s.get_as("/moderation/flags", Some(&mod_token)).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!((ids(&all, "flagId"), totals(&all)), (vec![id3, id2, id1], (3, 1)));
    assert_eq!(all["data"][2], f1, "listed as created");
    let (_, open) = s.get_as("/moderation/flags?status=open&pageSize=2&page=2", Some(&mod_token)).await;
    assert_eq!((ids(&open, "flagId"), totals(&open)), (vec![id1], (3, 2)), "{open}");
    let (_, past) = s.get_as("/moderation/flags?status=open&pageSize=2&page=3", Some(&mod_token)).await;
    assert_eq!((ids(&past, "flagId").len(), totals(&past)), (0, (3, 2)), "{past}");
    let (_, approved) = s.get_as("/moderation/flags?status=approved", Some(&mod_token)).await;
    assert_eq!((ids(&approved, "flagId").len(), totals(&approved)), (0, (0, 0)), "{approved}");
    for (q, field) in [("status=closed", "status"), ("pageSize=0", "pageSize"), ("pageSize=101", "pageSize")] {
        let (status, p) = s.get_as(&format!("/moderation/flags?{q}"), Some(&mod_token)).await;
        assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)), "{q}: {p}");
    }

    // One flag.
    let one = format!("/moderation/flags/{id1}");
    let (status, _) = s.get_as(&one, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = s.get_as(&one, Some(&bob_token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, got) = s.get_as(&one, Some(&mod_token)).await;
    assert_eq!((status, &got), (StatusCode::OK, &f1));
    let (status, p) = s.get_as("/moderation/flags/nope", Some(&mod_token)).await;
    assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("flagId")), "{p}");
    let (status, _) = s.get_as(&format!("/moderation/flags/{}", uuid::Uuid::now_v7()), Some(&mod_token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Acting: moderators only, a known status, bounded notes, a known flag.
    let act = |id: &str| format!("/moderation/flags/{id}/action");
    let (status, _) = send(&s, &act(id3), None, json!({"status": "rejected"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(&s, &act(id3), Some(&ann_token), json!({"status": "rejected"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (body, field) in [
        (json!({"status": "closed"}), "status"),
        (json!({}), "status"),
        (json!({"status": "rejected", "moderatorNotes": "n".repeat(1001)}), "moderatorNotes"),
    ] {
        let (status, p) = send(&s, &act(id3), Some(&mod_token), body).await;
        assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)), "{p}");
    }
    let (status, p) = send(&s, &act("nope"), Some(&mod_token), json!({"status": "rejected"})).await;
    assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("flagId")), "{p}");
    let (status, _) =
        send(&s, &act(&uuid::Uuid::now_v7().to_string()), Some(&mod_token), json!({"status": "rejected"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Under review, then rejected: notes kept, resolvedAt only once resolved, and
    // the video stays visible.
    let (status, r) =
        send(&s, &act(id3), Some(&mod_token), json!({"status": "under_review", "moderatorNotes": "checking"})).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(keys(&r), FLAG_KEYS.into());
    assert_eq!(
        (&r["status"], &r["moderatorId"], &r["moderatorNotes"]),
        (&json!("under_review"), &json!(moderator), &json!("checking"))
    );
    assert_eq!((&r["resolvedAt"], &r["createdAt"]), (&Value::Null, &f3["createdAt"]));
    let (_, review) = s.get_as("/moderation/flags?status=under_review", Some(&mod_token)).await;
    assert_eq!((ids(&review, "flagId"), totals(&review)), (vec![id3], (1, 1)));
    let (_, open) = s.get_as("/moderation/flags?status=open", Some(&mod_token)).await;
    assert_eq!((ids(&open, "flagId"), totals(&open)), (vec![id2, id1], (2, 1)));
    let (status, r) = send(&s, &act(id3), Some(&mod_token), json!({"status": "rejected"})).await;
    assert_eq!(
        (status, &r["status"], &r["moderatorNotes"]),
        (StatusCode::OK, &json!("rejected"), &json!("checking")),
        "{r}"
    );
    assert!(r["resolvedAt"].is_string(), "{r}");
    let (status, got) = s.get_as(&format!("/moderation/flags/{id3}"), Some(&mod_token)).await;
    assert_eq!((status, &got), (StatusCode::OK, &r), "stored as answered");
    let (status, _) = s.get_as(&format!("/videos/id/{v1}"), None).await;
    assert_eq!(status, StatusCode::OK);

    // Approving a video flag hides the video: reads, comments and new flags 404.
    let (status, r) =
        send(&s, &act(id1), Some(&mod_token), json!({"status": "approved", "moderatorNotes": "spam"})).await;
    assert_eq!((status, &r["status"]), (StatusCode::OK, &json!("approved")), "{r}");
    assert!(r["resolvedAt"].is_string());
    let (status, _) = s.get_as(&format!("/videos/id/{v1}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let listed = |v: &Value| v["data"].as_array().unwrap().iter().any(|i| i["videoId"] == json!(v1));
    let (_, latest) = s.get_as("/videos/latest?pageSize=100", None).await;
    assert!(!listed(&latest), "a hidden video leaves the lists: {latest}");
    let (status, _) = s.get_as(&format!("/videos/{v1}/comments"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) =
        s.send(Method::POST, &format!("/videos/{v1}/comments"), Some(&bob_token), Some(json!({"text": "hi"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(&s, "/flags", Some(&bob_token), video_flag.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Approving a comment flag takes the comment out of every list and the feed.
    let comments = format!("/videos/{v2}/comments");
    let (_, before) = s.get_as(&comments, None).await;
    assert_eq!(
        (ids(&before, "commentid"), totals(&before)),
        (vec![bad_comment.as_str(), kept["commentid"].as_str().unwrap()], (2, 1))
    );
    let (status, _) = send(&s, &act(id2), Some(&mod_token), json!({"status": "approved"})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, after) = s.get_as(&comments, None).await;
    assert_eq!((ids(&after, "commentid"), totals(&after)), (vec![kept["commentid"].as_str().unwrap()], (1, 1)));
    let (_, by_bob) = s.get_as(&format!("/users/{bob}/comments"), None).await;
    assert_eq!(totals(&by_bob), (0, 0), "{by_bob}");
    let (_, feed) = s.get_as(&format!("/users/{bob}/activity"), Some(&bob_token)).await;
    assert_eq!(totals(&feed), (0, 0), "{feed}");
    let body = json!({"contentType": "comment", "contentId": bad_comment, "reasonCode": "spam"});
    let (status, _) = send(&s, "/flags", Some(&ann_token), body).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a hidden comment cannot be flagged");
    let (_, approved) = s.get_as("/moderation/flags?status=approved", Some(&mod_token)).await;
    assert_eq!((ids(&approved, "flagId"), totals(&approved)), (vec![id2, id1], (2, 1)));
    let (_, open) = s.get_as("/moderation/flags?status=open", Some(&mod_token)).await;
    assert_eq!(totals(&open), (0, 0));
    let (_, all) = s.get_as("/moderation/flags", Some(&mod_token)).await;
    assert_eq!(totals(&all), (3, 1));

    // Restoring: moderators only; bad and unknown ids; then the content is back.
    let restore_comment = format!("/moderation/comments/{bad_comment}/restore");
    let restore_video = format!("/moderation/videos/{v1}/restore");
    for path in [&restore_comment, &restore_video] {
        let (status, _) = send(&s, path, None, json!(null)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = send(&s, path, Some(&bob_token), json!(null)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    for (kind, field) in [("comments", "commentId"), ("videos", "videoId")] {
        let (status, p) = send(&s, &format!("/moderation/{kind}/nope/restore"), Some(&mod_token), json!(null)).await;
        assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)), "{p}");
        let unknown = format!("/moderation/{kind}/{}/restore", uuid::Uuid::now_v7());
        let (status, _) = send(&s, &unknown, Some(&mod_token), json!(null)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, r) = send(&s, &restore_comment, Some(&mod_token), json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r, json!({"content_id": bad_comment, "content_type": "comment", "status_message": "comment restored"}));
    let (_, back) = s.get_as(&comments, None).await;
    assert_eq!(back, before, "the comment is back in its place");
    let (_, feed) = s.get_as(&format!("/users/{bob}/activity"), Some(&bob_token)).await;
    assert_eq!((ids(&feed, "activityId"), totals(&feed)), (vec![bad_comment.as_str()], (1, 1)));
    let (_, r) = send(&s, &restore_comment, Some(&mod_token), json!(null)).await;
    assert_eq!(r["status_message"], "comment was not hidden");

    let (status, r) = send(&s, &restore_video, Some(&mod_token), json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r, json!({"content_id": v1, "content_type": "video", "status_message": "video restored"}));
    let (status, v) = s.get_as(&format!("/videos/id/{v1}"), None).await;
    assert_eq!((status, v["title"].as_str()), (StatusCode::OK, Some("Flagged")));
    let (_, latest) = s.get_as("/videos/latest?pageSize=100", None).await;
    assert!(listed(&latest), "a restored video is listed again: {latest}");
    // Restoring leaves the flag as it was.
    let (_, got) = s.get_as(&format!("/moderation/flags/{id1}"), Some(&mod_token)).await;
    assert_eq!(got["status"], "approved");

    // Every action is in the audit log, newest first, with its status and notes;
    // refused requests (401, 403, 422, 404 before reading the flag) left none.
    let (_, log) = s.get_as("/moderation/audit?pageSize=100", Some(&mod_token)).await;
    let got: Vec<(&str, &str, &str, &Value, &Value)> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "moderator")
        .map(|e| {
            assert_eq!(e["moderatorId"], json!(moderator), "{e}");
            (
                e["action"].as_str().unwrap(),
                e["targetType"].as_str().unwrap(),
                e["targetId"].as_str().unwrap(),
                &e["status"],
                &e["notes"],
            )
        })
        .collect();
    let (c, n) = (bad_comment.as_str(), Value::Null);
    let v1 = v1.as_str();
    assert_eq!(
        got,
        [
            ("restore_video", "video", v1, &n, &n),
            ("restore_comment", "comment", c, &n, &n),
            ("restore_comment", "comment", c, &n, &n),
            ("flag_action", "flag", id2, &json!("approved"), &n),
            ("flag_action", "flag", id1, &json!("approved"), &json!("spam")),
            ("flag_action", "flag", id3, &json!("rejected"), &n),
            ("flag_action", "flag", id3, &json!("under_review"), &json!("checking")),
        ],
        "{log}"
    );
}

/// Concurrent actions on one flag: whatever the interleaving, each answers 200
/// or 409 and the flag ends up listed under exactly its final status.
#[tokio::test]
async fn concurrent_actions_leave_one_listing() {
    let s = Service::start(SECRET).await;
    let (_, mod_token) = moderator(&s, "Mia").await;
    let (_, token) = signed_in(&s, "Ann").await;
    let v = video(&s, &token, "Contested").await;
    let f = flag(&s, &token, json!({"contentType": "video", "contentId": v, "reasonCode": "other"})).await;
    let id = f["flagId"].as_str().unwrap();
    let path = format!("/moderation/flags/{id}/action");
    let statuses = ["under_review", "rejected", "open", "under_review", "rejected", "open"];
    let answers =
        futures::future::join_all(statuses.iter().map(|st| send(&s, &path, Some(&mod_token), json!({ "status": st }))))
            .await;
    assert!(answers.iter().any(|(st, _)| *st == StatusCode::OK), "{answers:?}");
    assert!(answers.iter().all(|(st, _)| [StatusCode::OK, StatusCode::CONFLICT].contains(st)), "{answers:?}");
    let (_, now) = s.get_as(&format!("/moderation/flags/{id}"), Some(&mod_token)).await;
    let final_status = now["status"].as_str().unwrap();
    for status in ["open", "under_review", "approved", "rejected"] {
        let (_, page) = s.get_as(&format!("/moderation/flags?status={status}"), Some(&mod_token)).await;
        let expected = if status == final_status { vec![id] } else { vec![] };
        assert_eq!(ids(&page, "flagId"), expected, "{status}: {page}");
        assert_eq!(totals(&page).0, expected.len() as u64, "{status}: {page}");
    }
}

/// A listing row left behind by a status change whose listing move did not land
/// is repaired by the next read of that listing.
#[tokio::test]
async fn a_stale_flag_listing_is_repaired_on_read() {
    let s = Service::start(SECRET).await;
    let (_, mod_token) = moderator(&s, "Mia").await;
    let (_, token) = signed_in(&s, "Ann").await;
    let v = video(&s, &token, "Stale").await;
    let f = flag(&s, &token, json!({"contentType": "video", "contentId": v, "reasonCode": "other"})).await;
    let id = f["flagId"].as_str().unwrap();

    // Simulate an action whose transaction applied (rejected, version 1) but whose
    // listing move never ran: the listing row is still in 'open'.
    let session = s.cql().await;
    let flag_id = uuid::Uuid::parse_str(id).unwrap();
    session
        .query_unpaged(
            format!("UPDATE {}.flags SET status = 'rejected', version = 1 WHERE flagid = ?", s.keyspace),
            (flag_id,),
        )
        .await
        .unwrap();

    // The open listing leaves it out (its count still has it) and moves it back.
    let (_, open) = s.get_as("/moderation/flags?status=open", Some(&mod_token)).await;
    assert_eq!((ids(&open, "flagId").len(), totals(&open)), (0, (1, 1)), "{open}");
    let (_, open) = s.get_as("/moderation/flags?status=open", Some(&mod_token)).await;
    assert_eq!(totals(&open), (0, 0), "{open}");
    let (_, rejected) = s.get_as("/moderation/flags?status=rejected", Some(&mod_token)).await;
    assert_eq!((ids(&rejected, "flagId"), totals(&rejected)), (vec![id], (1, 1)), "{rejected}");
}
