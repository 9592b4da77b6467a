//! A query service in-process on the real Cassandra, with a keyspace of its own.
#![allow(dead_code)]

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub struct Service {
    /// The keyspace this service was given (for fixture rows written directly).
    pub keyspace: String,
    base: String,
    /// The admin listener: `/metrics`, `/readyz`.
    pub admin: String,
    http: reqwest::Client,
    stop: CancellationToken,
}

impl Service {
    pub async fn start(secret: &str) -> Self {
        Self::start_with(secret, |_| {}).await
    }

    /// Like [`start`](Self::start), with the config adjusted by `adjust` first.
    /// Tests sign many users in from one address, faster than a person would: the
    /// sign-in rate limits are off unless `adjust` sets them (`tests/signin_limits.rs`).
    pub async fn start_with(secret: &str, adjust: impl FnOnce(&mut query_service::QueryConfig)) -> Self {
        platform::telemetry::init_logging(&platform::telemetry::LogConfig { filter: "warn".into(), json: false });
        let cfg = Self::config(secret, adjust);
        let keyspace = cfg.cassandra.keyspace.clone();
        let app = query_service::Application::build(cfg).await.expect("query service starts (is Cassandra up?)");
        let base = format!("http://{}", app.local_addr());
        let admin = format!("http://{}", app.admin_addr());
        let stop = CancellationToken::new();
        tokio::spawn(app.run(stop.clone()));
        Self { base, admin, keyspace, http: reqwest::Client::new(), stop }
    }

    /// The config [`start_with`](Self::start_with) uses.
    pub fn config(secret: &str, adjust: impl FnOnce(&mut query_service::QueryConfig)) -> query_service::QueryConfig {
        use platform::ratelimit::Rate;
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let mut cfg = query_service::QueryConfig::default();
        cfg.http.listen = "127.0.0.1:0".into();
        cfg.admin.listen = "127.0.0.1:0".into();
        cfg.cassandra.keyspace = format!("t_users_{}", &tag[..8]);
        // The stack `scripts/stack env` names, as the e2e tests read it (a private
        // stack on other ports); the shared one by default.
        if let Ok(nodes) = std::env::var("VCOUNT_CASSANDRA_NODES") {
            cfg.cassandra.nodes = nodes;
        }
        if let Ok(brokers) = std::env::var("VCOUNT_KAFKA_BROKERS") {
            cfg.kafka.brokers = brokers;
        }
        cfg.auth.jwt_secret = secret.into();
        let l = &mut cfg.limits;
        (l.login_per_ip, l.login_per_account, l.register_per_ip, l.register_per_account) =
            (Rate::UNLIMITED, Rate::UNLIMITED, Rate::UNLIMITED, Rate::UNLIMITED);
        adjust(&mut cfg);
        cfg
    }

    /// The base URL of the public port (`http://127.0.0.1:port`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A metric of this process (the sum over its label sets) from the admin
    /// listener's `/metrics`; 0 when absent.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.http.get(format!("{}/metrics", self.admin)).send().await.unwrap().text().await.unwrap();
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// One label set of a metric of this process (`labels` as in the exposition,
    /// e.g. `outcome="fresh"`); 0 when absent.
    pub async fn metric_with(&self, name: &str, labels: &str) -> f64 {
        let text = self.http.get(format!("{}/metrics", self.admin)).send().await.unwrap().text().await.unwrap();
        let want = format!("{name}{{{labels}}} ");
        text.lines().filter_map(|l| l.strip_prefix(&want)?.parse::<f64>().ok()).sum()
    }

    /// Makes `user` a moderator as an operator does (`vcount-admin moderators grant`).
    pub async fn grant_moderator(&self, user: &str) {
        use platform::moderation::{Actor, Moderation, RoleChange};
        let cql = self.cql().await;
        let m = Moderation::new(&cql, &self.keyspace).await.unwrap();
        let user = uuid::Uuid::parse_str(user).unwrap();
        let done = m.set_moderator(&cql, Actor::Admin, user, true, Some("tests".into())).await.unwrap();
        assert!(matches!(done, RoleChange::Done { .. }), "{done:?}");
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

    /// The full URL of an API path (`/videos/latest` → `http://…/api/v1/videos/latest`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, None, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, None, None).await
    }

    /// GET with a token (or none).
    pub async fn get_as(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, token, None).await
    }

    /// A CQL session, for fixture rows that other components write (the
    /// aggregator's rollups and ratings). Table names need `self.keyspace`.
    pub async fn cql(&self) -> scylla::client::session::Session {
        let mut cfg = platform::cassandra::CassandraConfig::default();
        if let Ok(nodes) = std::env::var("VCOUNT_CASSANDRA_NODES") {
            cfg.nodes = nodes;
        }
        platform::cassandra::connect(&cfg, std::time::Duration::from_secs(10)).await.expect("cassandra")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.cancel();
        // A passing test leaves nothing behind; a failing one keeps its keyspace.
        if !std::thread::panicking() {
            let nodes = query_service::QueryConfig::default().cassandra.nodes;
            if let Err(e) = platform::cassandra::drop_keyspace_blocking(&nodes, &self.keyspace) {
                eprintln!("could not drop keyspace {}: {e}", self.keyspace);
            }
        }
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

/// Registers a user and makes them a moderator as an operator does (`vcount-admin
/// moderators grant`): (userId, token). The token from before the grant works: the
/// role is read from the store.
pub async fn moderator(s: &Service, first: &str) -> (String, String) {
    let (id, token) = signed_in(s, first).await;
    s.grant_moderator(&id).await;
    (id, token)
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

/// A KillrVideo VideoSummary: exactly these members.
pub fn assert_summary(v: &Value) {
    let fields = [
        "averageRating",
        "category",
        "content_rating",
        "submittedAt",
        "thumbnailUrl",
        "title",
        "userId",
        "videoId",
        "views",
    ];
    let mut keys: Vec<&str> =
        v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, fields, "{v}");
}

/// A GET that must answer 200: its body.
pub async fn ok(s: &Service, path: &str) -> Value {
    let (status, v) = s.get(path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {v}");
    v
}

/// Fixture: the aggregator's all-time row of `video`'s views, `n`.
pub async fn all_time_views(s: &Service, cql: &scylla::client::session::Session, video: &str, n: i64) {
    let ks = &s.keyspace;
    cql.query_unpaged(
        format!(
            "INSERT INTO {ks}.counts (video_id, event_type, granularity, bucket, value, last_offset, kafka_partition) \
             VALUES (?, 'view', 'total', 0, ?, 0, 0)"
        ),
        (uuid::Uuid::parse_str(video).unwrap(), n),
    )
    .await
    .unwrap();
}

/// Submits a video as the holder of `token` (an empty description is left out): its id.
pub async fn submit(s: &Service, token: &str, title: &str, description: &str, tags: &[&str]) -> String {
    let mut body = json!({"youtubeUrl": "https://youtu.be/dQw4w9WgXcQ", "title": title, "tags": tags});
    if !description.is_empty() {
        body["description"] = json!(description);
    }
    let (status, v) = s.send(reqwest::Method::POST, "/videos", Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    v["videoId"].as_str().unwrap().to_owned()
}

/// The `videoId`s of a list answer's `data` (or of a plain array).
pub fn ids(v: &Value) -> Vec<String> {
    let items = v.get("data").unwrap_or(v).as_array().unwrap_or_else(|| panic!("not a list: {v}"));
    items.iter().map(|i| i["videoId"].as_str().unwrap().to_owned()).collect()
}

/// `[currentPage, pageSize, totalItems, totalPages]` of a paged answer.
pub fn pagination(v: &Value) -> [i64; 4] {
    let p = &v["pagination"];
    ["currentPage", "pageSize", "totalItems", "totalPages"].map(|k| p[k].as_i64().unwrap_or_else(|| panic!("{k}: {v}")))
}

/// The field a 422 names.
pub fn invalid_field((status, p): &(StatusCode, Value)) -> Option<&str> {
    assert_eq!(*status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    p["field"].as_str()
}
