//! The KillrVideo user rows of the contract, on the real Cassandra: register,
//! log in, the signed-in profile, public profiles; each with its success path,
//! its auth failure and its validation failures.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn ann() -> Value {
    json!({"firstName": "Ann", "lastName": "Lee", "email": "Ann@Example.org", "password": "correct horse"})
}

#[tokio::test]
async fn register_login_and_profiles() {
    let s = Service::start(SECRET).await;

    // Register: 201 with the id; the email is stored lower-cased.
    let (status, reg) = s.post("/users/register", ann()).await;
    assert_eq!(status, StatusCode::CREATED, "{reg}");
    assert_eq!((reg["firstName"].as_str(), reg["email"].as_str()), (Some("Ann"), Some("ann@example.org")));
    let id = reg["userId"].as_str().expect("userId").to_owned();
    assert!(reg.get("password").is_none());

    // The same email, whatever its case: 409.
    let mut again = ann();
    again["email"] = json!("ANN@example.org");
    let (status, p) = s.post("/users/register", again).await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");

    // Validation: each bad field is named.
    for (field, value) in [
        ("password", json!("short")),
        ("email", json!("not-an-email")),
        ("firstName", json!("  ")),
        ("lastName", json!(7)),
    ] {
        let mut body = ann();
        body["email"] = json!(format!("{}@example.org", uuid::Uuid::new_v4().simple()));
        body[field] = value;
        let (status, p) = s.post("/users/register", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {p}");
        assert_eq!(p["field"], field, "{p}");
    }
    let mut extra = ann();
    extra["isAdmin"] = json!(true);
    let (status, p) = s.post("/users/register", extra).await;
    assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("isAdmin")), "{p}");

    // Login: wrong password and unknown email are the same 401.
    let (status, _) = s.post("/users/login", json!({"email": "ann@example.org", "password": "wrong horse"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = s.post("/users/login", json!({"email": "bob@example.org", "password": "correct horse"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, login) =
        s.post("/users/login", json!({"email": "ANN@example.org", "password": "correct horse"})).await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let token = login["token"].as_str().expect("token").to_owned();
    assert_eq!(login["user"]["userId"], id.as_str());
    assert_eq!(login["user"]["roles"], json!(["USER"]));
    assert!(login["user"]["lastLoginDate"].is_string(), "{login}");

    // /users/me needs a valid token.
    let get = reqwest::Method::GET;
    let (status, p) = s.send(get.clone(), "/users/me", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{p}");
    assert_eq!(p["status"], 401);
    let (status, _) = s.send(get.clone(), "/users/me", Some("not.a.token"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, me) = s.send(get.clone(), "/users/me", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    for key in ["userId", "firstName", "lastName", "email", "createdDate", "accountStatus", "lastLoginDate", "roles"] {
        assert!(me.get(key).is_some(), "User lacks {key}: {me}");
    }
    assert_eq!((me["email"].as_str(), me["accountStatus"].as_str()), (Some("ann@example.org"), Some("active")));

    // A token signed with another secret is refused.
    let other = Service::start("another secret of at least thirty-two bytes!").await;
    let (status, _) = other.send(get.clone(), "/users/me", Some(&token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // PUT /users/me changes the names only.
    let put = reqwest::Method::PUT;
    let (status, _) = s.send(put.clone(), "/users/me", None, Some(json!({"firstName": "Anne"}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, p) = s.send(put.clone(), "/users/me", Some(&token), Some(json!({"email": "x@y.org"}))).await;
    assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("email")), "{p}");
    let (status, me) = s.send(put, "/users/me", Some(&token), Some(json!({"firstName": "Anne"}))).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!((me["firstName"].as_str(), me["lastName"].as_str()), (Some("Anne"), Some("Lee")));

    // Public profile: by id, the names only. User ids are public (on videos and
    // comments), so the email, roles and login times stay in /users/me: anonymous
    // and signed-in askers, the user included, get the same three members.
    for token in [None, Some(token.as_str())] {
        let (status, profile) = s.send(get.clone(), &format!("/users/{id}"), token, None).await;
        assert_eq!(status, StatusCode::OK, "{profile}");
        assert_eq!(
            profile,
            json!({"userId": id, "firstName": "Anne", "lastName": "Lee"}),
            "no email, roles or login times"
        );
    }
    let (status, p) = s.send(get.clone(), "/users/not-a-uuid", None, None).await;
    assert_eq!((status, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("userId")), "{p}");
    let (status, _) = s.send(get, &format!("/users/{}", uuid::Uuid::new_v4()), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_have_one_winner() {
    let s = Service::start(SECRET).await;
    let email = format!("{}@example.org", uuid::Uuid::new_v4().simple());
    let attempts = (0..6).map(|i| {
        let body = json!({"firstName": format!("P{i}"), "lastName": "X", "email": email, "password": "password123"});
        s.post("/users/register", body)
    });
    let results = futures::future::join_all(attempts).await;
    let created = results.iter().filter(|(st, _)| *st == StatusCode::CREATED).count();
    let conflicts = results.iter().filter(|(st, _)| *st == StatusCode::CONFLICT).count();
    assert_eq!((created, conflicts), (1, 5), "{results:?}");
    // The winner can log in.
    let (status, _) = s.post("/users/login", json!({"email": email, "password": "password123"})).await;
    assert_eq!(status, StatusCode::OK);
}
