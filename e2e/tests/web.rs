//! One origin and CORS, on the real Kafka and Cassandra: the query service forwards
//! the gateway's routes when `web.gateway_url` is set, so a browser needs one host.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "one secret for both services, 32+ bytes";

struct Origin {
    base: String,
    stop: CancellationToken,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A gateway and a query service forwarding to it (when `forward`).
async fn start(forward: bool) -> Origin {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let stop = CancellationToken::new();
    let mut gw = ingest_gateway::GatewayConfig::default();
    e2e::test_gateway(&mut gw);
    gw.kafka.brokers = e2e::brokers();
    gw.kafka.topic_prefix = format!("t-web-{}.", &tag[..8]);
    gw.kafka.partitions = 1;
    gw.auth.jwt_secret = SECRET.into();
    let gateway = ingest_gateway::Application::build(gw).await.expect("gateway starts (is Kafka up?)");
    let gateway_url = format!("http://{}", gateway.local_addr());
    tokio::spawn(gateway.run(stop.clone()));
    let mut q = query_service::QueryConfig::default();
    q.http.listen = "127.0.0.1:0".into();
    q.admin.listen = "127.0.0.1:0".into();
    q.cassandra.nodes = e2e::cassandra_nodes();
    q.kafka.brokers = e2e::brokers();
    q.kafka.topic_prefix = format!("t-web-{}.", &tag[..8]);
    q.cassandra.keyspace = format!("t_web_{}", &tag[..8]);
    q.auth.jwt_secret = SECRET.into();
    q.web.cors_origins = "https://app.example.org, http://localhost:3000".into();
    if forward {
        q.web.gateway_url = gateway_url;
    }
    let app = query_service::Application::build(q).await.expect("query service starts (is Cassandra up?)");
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run(stop.clone()));
    Origin { base, stop }
}

#[tokio::test]
async fn the_gateway_routes_answer_on_the_query_services_origin() {
    let o = start(true).await;
    let http = reqwest::Client::new();
    let video = uuid::Uuid::new_v4();
    // A view, through the query service's port: the gateway's 204.
    let res = http.post(format!("{}/api/v1/videos/id/{video}/view", o.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // The gateway's validation answer comes back whole: status, type and field.
    let res = http.post(format!("{}/api/v1/videos/id/not-a-uuid/view", o.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let p: Value = res.json().await.unwrap();
    assert_eq!(p["field"], "videoId", "{p}");
    // A rating (POST, forwarded) and the ratings summary (GET, local) share a path.
    let user = uuid::Uuid::new_v4();
    let tokens =
        platform::auth::Tokens::new(&platform::auth::AuthConfig { jwt_secret: SECRET.into(), token_ttl_secs: 60 })
            .unwrap();
    let token = tokens.issue(user, vec![]).unwrap();
    let url = format!("{}/api/v1/videos/{video}/ratings", o.base);
    let res = http.post(&url).bearer_auth(&token).json(&json!({"rating": 4})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!((body["rating"].as_i64(), body["userid"].as_str()), (Some(4), Some(user.to_string().as_str())));
    let res = http.post(&url).json(&json!({"rating": 4})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the token travels through");
    let res = http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "GET is the query service's own: no such video");
}

#[tokio::test]
async fn without_a_gateway_url_nothing_is_forwarded_and_cors_follows_the_list() {
    let o = start(false).await;
    let http = reqwest::Client::new();
    let video = uuid::Uuid::new_v4();
    let res = http.post(format!("{}/api/v1/videos/id/{video}/view", o.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, format!("{}/api/v1/users/me", o.base))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let res = preflight("http://localhost:3000").await.unwrap();
    assert!(res.status().is_success());
    assert_eq!(res.headers()["access-control-allow-origin"], "http://localhost:3000");
    let methods = res.headers()["access-control-allow-methods"].to_str().unwrap().to_owned();
    assert!(methods.contains("PUT"), "{methods}");
    let res = preflight("https://evil.example").await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let res = http.get(format!("{}/api/v1/videos/id/{video}", o.base)).header("origin", "https://app.example.org");
    let res = res.send().await.unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example.org");
}
