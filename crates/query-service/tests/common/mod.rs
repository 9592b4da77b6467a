//! A query service in-process on the real Cassandra, with a keyspace of its own.
#![allow(dead_code)]

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub struct Service {
    /// The keyspace this service was given (for fixture rows written directly).
    pub keyspace: String,
    base: String,
    http: reqwest::Client,
    stop: CancellationToken,
}

impl Service {
    pub async fn start(secret: &str) -> Self {
        Self::start_with(secret, |_| {}).await
    }

    /// Like [`start`](Self::start), with the config adjusted by `adjust` first.
    pub async fn start_with(secret: &str, adjust: impl FnOnce(&mut query_service::QueryConfig)) -> Self {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let mut cfg = query_service::QueryConfig::default();
        cfg.http.listen = "127.0.0.1:0".into();
        cfg.cassandra.keyspace = format!("t_users_{}", &tag[..8]);
        cfg.auth.jwt_secret = secret.into();
        adjust(&mut cfg);
        let keyspace = cfg.cassandra.keyspace.clone();
        let app = query_service::Application::build(cfg).await.expect("query service starts (is Cassandra up?)");
        let base = format!("http://{}", app.local_addr());
        let stop = CancellationToken::new();
        tokio::spawn(app.run(stop.clone()));
        Self { keyspace, base, http: reqwest::Client::new(), stop }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}/api/v1{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, None, Some(body)).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, token, None).await
    }

    /// A Cassandra session on the test cluster, for fixture rows that another
    /// component (the aggregator) writes in production.
    pub async fn cql(&self) -> scylla::client::session::Session {
        let nodes = query_service::QueryConfig::default().cassandra.nodes;
        scylla::client::session_builder::SessionBuilder::new()
            .known_nodes(nodes.split(','))
            .build()
            .await
            .expect("cassandra session")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub const SECRET: &str = "a test secret of at least thirty-two bytes";

/// Registers a user and logs in: (userId, token).
pub async fn signed_in(s: &Service, first: &str) -> (String, String) {
    let email = format!("{}@example.org", uuid::Uuid::new_v4().simple());
    let body = json!({"firstName": first, "lastName": "Test", "email": email, "password": "password123"});
    let (status, reg) = s.post("/users/register", body).await;
    assert_eq!(status, StatusCode::CREATED, "{reg}");
    let (status, login) = s.post("/users/login", json!({"email": email, "password": "password123"})).await;
    assert_eq!(status, StatusCode::OK, "{login}");
    (reg["userId"].as_str().unwrap().to_owned(), login["token"].as_str().unwrap().to_owned())
}

/// Registers a user with this email and logs in: (userId, token, the login's user).
pub async fn register_and_login(s: &Service, first: &str, email: &str) -> (String, String, Value) {
    let body = json!({"firstName": first, "lastName": "Test", "email": email, "password": "password123"});
    let (status, reg) = s.post("/users/register", body).await;
    assert_eq!(status, StatusCode::CREATED, "{reg}");
    let (token, user) = login(s, email).await;
    (reg["userId"].as_str().unwrap().to_owned(), token, user)
}

/// Logs in with the test password: (token, user).
pub async fn login(s: &Service, email: &str) -> (String, Value) {
    let (status, login) = s.post("/users/login", json!({"email": email, "password": "password123"})).await;
    assert_eq!(status, StatusCode::OK, "{login}");
    (login["token"].as_str().unwrap().to_owned(), login["user"].clone())
}

/// Submits a video as the holder of `token`: its id.
pub async fn video(s: &Service, token: &str, title: &str) -> String {
    let body = json!({"youtubeUrl": "https://youtu.be/dQw4w9WgXcQ", "title": title});
    let (status, v) = s.send(reqwest::Method::POST, "/videos", Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    v["videoId"].as_str().unwrap().to_owned()
}
