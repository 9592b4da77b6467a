//! A query service in-process on the real Cassandra, with a keyspace of its own.
#![allow(dead_code)]

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub struct Service {
    base: String,
    http: reqwest::Client,
    stop: CancellationToken,
}

impl Service {
    pub async fn start(secret: &str) -> Self {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let mut cfg = query_service::QueryConfig::default();
        cfg.http.listen = "127.0.0.1:0".into();
        cfg.cassandra.keyspace = format!("t_users_{}", &tag[..8]);
        cfg.auth.jwt_secret = secret.into();
        let app = query_service::Application::build(cfg).await.expect("query service starts (is Cassandra up?)");
        let base = format!("http://{}", app.local_addr());
        let stop = CancellationToken::new();
        tokio::spawn(app.run(stop.clone()));
        Self { base, http: reqwest::Client::new(), stop }
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
