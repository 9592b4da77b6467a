//! KillrVideo's watch-time route and the configured event types, on the real
//! Kafka: what is accepted is on the topic with its type and value, and nothing
//! refused is.

mod common;

use ingest_gateway::{Application, GatewayConfig};
use platform::ratelimit::Rate;
use rand::Rng;
use reqwest::Client;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const SECRET: &str = "watch-time-test-secret-of-32-bytes!!";

struct Gw {
    base: String,
    topic: String,
    http: Client,
    tokens: platform::auth::Tokens,
    _stop: tokio_util::sync::DropGuard,
}

async fn start(event_types: &[&str]) -> Gw {
    let tag: u32 = rand::rng().random();
    let mut cfg = GatewayConfig::default();
    cfg.http.listen = "127.0.0.1:0".into();
    cfg.admin.listen = "127.0.0.1:0".into();
    cfg.event_types = event_types.iter().map(|s| s.to_string()).collect();
    cfg.auth.jwt_secret = SECRET.into();
    // A small budget, to see it run out: 100 seconds at once, 1 a minute after.
    cfg.events.max_watch_seconds = 100;
    cfg.limits.watch_seconds = Rate::per_minute(1, 100);
    cfg.kafka.brokers = common::brokers();
    cfg.kafka.topic_prefix = format!("t-watch-{tag:08x}.");
    cfg.kafka.partitions = 1;
    let topic = cfg.kafka.events_topic();
    let tokens = platform::auth::Tokens::new(&cfg.auth).unwrap();
    let app = Application::build(cfg).await.expect("gateway starts (is Kafka up?)");
    let base = format!("http://{}", app.local_addr());
    let stop = CancellationToken::new();
    tokio::spawn(app.run(stop.clone()));
    Gw { base, topic, http: Client::new(), tokens, _stop: stop.drop_guard() }
}

impl Gw {
    async fn post(&self, path: &str, body: &str, bearer: Option<&str>) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.base)).header("content-type", "application/json");
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        let res = req.body(body.to_owned()).send().await.unwrap();
        let status = res.status().as_u16();
        if status >= 400 {
            let ctype = res.headers()["content-type"].to_str().unwrap().to_owned();
            assert_eq!(ctype, "application/problem+json", "{path} {body}");
        }
        (status, serde_json::from_str(&res.text().await.unwrap()).unwrap_or(Value::Null))
    }

    async fn watch(&self, video: &str, body: &str, bearer: Option<&str>) -> (u16, Value) {
        self.post(&format!("/api/v1/videos/id/{video}/watch-time"), body, bearer).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_time_and_listed_types_are_produced_and_everything_else_refused_by_field() {
    let gw = start(&["watch_seconds", "gw_test_clicks"]).await;
    let video = Uuid::new_v4();
    let v = video.to_string();
    let user = Uuid::new_v4();
    let token = gw.tokens.issue(user, vec![]).unwrap();

    // Accepted: anonymous 60 s, then signed in 30 s (the user's own budget), and
    // a listed custom type and watch_seconds through /events.
    assert_eq!(gw.watch(&v, r#"{"watch_duration_seconds":60}"#, None).await.0, 204);
    assert_eq!(gw.watch(&v, r#"{"watch_duration_seconds":30.0}"#, Some(&token)).await.0, 204);
    let (s, body) =
        gw.post("/api/v1/events", &json!({"videoId": v, "eventType": "gw_test_clicks"}).to_string(), None).await;
    assert_eq!(s, 202, "{body}");

    // Refused, each naming its field, none produced.
    for bad in [
        r#"{}"#,
        r#"{"watch_duration_seconds":0}"#,
        r#"{"watch_duration_seconds":-5}"#,
        r#"{"watch_duration_seconds":101}"#,
        r#"{"watch_duration_seconds":1.5}"#,
        r#"{"watch_duration_seconds":"60"}"#,
        r#"{"watch_duration_seconds":null}"#,
        r#"{"watch_duration_seconds":99999999999999999999}"#,
    ] {
        let (s, p) = gw.watch(&v, bad, None).await;
        assert_eq!((s, p["field"].as_str()), (422, Some("watch_duration_seconds")), "{bad}: {p}");
    }
    let (s, p) = gw.watch(&v, r#"{"watch_duration_seconds":5,"extra":1}"#, None).await;
    assert_eq!((s, p["field"].as_str()), (422, Some("extra")), "unknown members are refused: {p}");
    let (s, p) = gw.watch(&v, "not json", None).await;
    assert_eq!((s, p["field"].as_str()), (422, Some("body")), "{p}");
    let (s, p) = gw.watch("not-a-uuid", r#"{"watch_duration_seconds":5}"#, None).await;
    assert_eq!((s, p["field"].as_str()), (422, Some("videoId")), "{p}");
    assert_eq!(gw.watch(&v, r#"{"watch_duration_seconds":5}"#, Some("forged")).await.0, 401);
    for refused in ["gw_test_never_listed", "Watch_Seconds"] {
        let body = json!({"videoId": v, "eventType": refused}).to_string();
        let (s, p) = gw.post("/api/v1/events", &body, None).await;
        assert_eq!((s, p["field"].as_str()), (422, Some("eventType")), "{refused}: {p}");
    }

    // The policy: the anonymous address has 40 of its 100 seconds left (the
    // refusals above spent none; a minute refills 1), so 60 waits (429 with
    // Retry-After) and 40 passes.
    let res = gw
        .http
        .post(format!("{}/api/v1/videos/id/{v}/watch-time", gw.base))
        .header("content-type", "application/json")
        .body(r#"{"watch_duration_seconds":60}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let (s, p) = gw.watch(&v, r#"{"watch_duration_seconds":40}"#, None).await;
    assert_eq!(s, 204, "{p}");

    let events = common::events_on(&common::brokers(), &gw.topic);
    let got: Vec<(String, i32, i64, bool)> =
        events.iter().map(|e| (e.event_type_name.clone(), e.event_type, e.value, e.user_verified)).collect();
    let want = [
        ("watch_seconds".to_owned(), 0, 60, false),
        ("watch_seconds".to_owned(), 0, 30, true),
        ("gw_test_clicks".to_owned(), 0, 1, false),
        ("watch_seconds".to_owned(), 0, 40, false),
    ];
    assert_eq!(got, want, "exactly the accepted reports, in order");
    assert!(events.iter().all(|e| e.video_id == video.as_bytes()));
    assert_eq!(events[1].user_id, user.as_bytes(), "the signed-in viewer rides along, verified");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_watch_seconds_listed_the_route_is_a_404() {
    let gw = start(&[]).await;
    let (s, p) = gw.watch(&Uuid::new_v4().to_string(), r#"{"watch_duration_seconds":60}"#, None).await;
    assert_eq!(s, 404, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("event_types"), "{p}");
    let body = json!({"videoId": Uuid::new_v4(), "eventType": "watch_seconds"}).to_string();
    let (s, p) = gw.post("/api/v1/events", &body, None).await;
    assert_eq!((s, p["field"].as_str()), (422, Some("eventType")), "{p}");
}
