//! The client's protocol behaviour against a scripted stand-in for the gateway's
//! HTTP surface (a fake of our HTTP peer, in-process): which answers are retried,
//! with which ids, how the breaker moves, how the batcher groups events.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use uuid::Uuid;
use vcount_client::{
    Batcher, BatcherConfig, BreakerConfig, BreakerState, Client, ClientConfig, Error, Event, EventKind, Failure,
    RetryPolicy,
};

/// What the fake answers to the next request.
#[derive(Clone)]
enum Reply {
    /// 202 with the body the gateway would give.
    Ok,
    /// This status with a problem+json body.
    Status(u16),
    /// 429 or 503 with `Retry-After` seconds.
    RetryAfter(u16, u64),
    /// Sleeps, then answers like `Ok`.
    Slow(Duration),
    /// 202 for a batch, with these indexes rejected on `field`.
    Reject(Vec<(usize, &'static str)>),
}

#[derive(Clone, Debug)]
struct Seen {
    path: String,
    body: Value,
    at: Instant,
}

#[derive(Clone, Default)]
struct Fake {
    script: Arc<Mutex<VecDeque<Reply>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    async fn start(script: impl IntoIterator<Item = Reply>) -> (Self, String) {
        let fake = Fake::default();
        fake.script.lock().unwrap().extend(script);
        let app = Router::new()
            .route("/api/v1/events", post(answer))
            .route("/api/v1/events:batch", post(answer))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (fake, base)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The `eventId` of every request, in order (the first event's, for batches).
    fn ids(&self) -> Vec<Value> {
        self.seen()
            .iter()
            .map(|s| if s.body.is_array() { s.body[0]["eventId"].clone() } else { s.body["eventId"].clone() })
            .collect()
    }
}

async fn answer(State(fake): State<Fake>, uri: Uri, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap();
    fake.seen.lock().unwrap().push(Seen { path: uri.path().to_owned(), body: body.clone(), at: Instant::now() });
    let reply = fake.script.lock().unwrap().pop_front().unwrap_or(Reply::Ok);
    let ok = |rejected: Vec<Value>| match body.as_array() {
        Some(items) => {
            (StatusCode::ACCEPTED, axum::Json(json!({"accepted": items.len() - rejected.len(), "rejected": rejected})))
                .into_response()
        }
        None => (StatusCode::ACCEPTED, axum::Json(json!({"eventId": body["eventId"]}))).into_response(),
    };
    let problem = |status: u16| {
        let p = json!({"type": "about:blank", "title": "Invalid", "status": status,
                       "detail": "occurredAt is not an RFC 3339 timestamp", "field": "occurredAt"});
        (StatusCode::from_u16(status).unwrap(), [("content-type", "application/problem+json")], p.to_string())
    };
    match reply {
        Reply::Ok => ok(vec![]),
        Reply::Status(s) => problem(s).into_response(),
        Reply::RetryAfter(s, secs) => {
            let mut r = problem(s).into_response();
            r.headers_mut().insert("retry-after", secs.into());
            r
        }
        Reply::Slow(d) => {
            tokio::time::sleep(d).await;
            ok(vec![])
        }
        Reply::Reject(items) => ok(items
            .into_iter()
            .map(|(i, f)| json!({"index": i, "field": format!("[{i}].{f}"), "detail": format!("[{i}].{f} is bad")}))
            .collect()),
    }
}

fn config(base: &str) -> ClientConfig {
    let mut c = ClientConfig::new(base);
    c.request_timeout = Duration::from_millis(300);
    c.retry = RetryPolicy {
        max_attempts: 4,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(5),
        max_elapsed: Duration::from_secs(10),
    };
    c.breaker = BreakerConfig { failure_threshold: 100, cooldown: Duration::from_millis(200) };
    c
}

/// A client with this many attempts per call and this breaker.
fn breaker_client(base: &str, attempts: u32, threshold: u32, cooldown: Duration) -> Client {
    let mut cfg = config(base);
    cfg.retry.max_attempts = attempts;
    cfg.breaker = BreakerConfig { failure_threshold: threshold, cooldown };
    Client::new(cfg).unwrap()
}

fn video() -> Uuid {
    Uuid::new_v4()
}

#[tokio::test]
async fn server_errors_are_retried_with_the_same_event_id() {
    let (fake, base) = Fake::start([Reply::Status(503), Reply::Status(500), Reply::Ok]).await;
    let client = Client::new(config(&base)).unwrap();
    let id = client.send(Event::view(video())).await.unwrap();
    let ids = fake.ids();
    assert_eq!(ids.len(), 3, "two failures, then success");
    assert!(ids.iter().all(|i| *i == json!(id)), "one id on every attempt: {ids:?} vs {id}");
    assert_eq!(Uuid::parse_str(ids[0].as_str().unwrap()).unwrap().get_version_num(), 7);
    assert_eq!((client.stats().attempts, client.stats().retries), (3, 2));
}

#[tokio::test]
async fn a_callers_event_id_is_kept() {
    let (fake, base) = Fake::start([Reply::Status(502)]).await;
    let client = Client::new(config(&base)).unwrap();
    let mine = Uuid::new_v4();
    assert_eq!(client.send(Event::view(video()).with_event_id(mine)).await.unwrap(), mine);
    assert_eq!(fake.ids(), vec![json!(mine), json!(mine)]);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let (fake, base) = Fake::start([Reply::RetryAfter(429, 1)]).await;
    let client = Client::new(config(&base)).unwrap();
    client.send(Event::view(video())).await.unwrap();
    let seen = fake.seen();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= Duration::from_secs(1), "waited only {gap:?} despite Retry-After: 1");
    assert_eq!(seen[0].body["eventId"], seen[1].body["eventId"]);
}

#[tokio::test]
async fn a_retry_after_beyond_the_policy_ends_the_retries() {
    let (fake, base) = Fake::start([Reply::RetryAfter(503, 60)]).await;
    let client = Client::new(config(&base)).unwrap();
    let err = client.send(Event::view(video())).await.unwrap_err();
    assert!(
        matches!(err, Error::GaveUp { attempts: 1, last: Failure::Status { status: 503, retry_after: Some(d) } } if d == Duration::from_secs(60)),
        "{err:?}"
    );
    assert_eq!(fake.seen().len(), 1);
}

#[tokio::test]
async fn client_errors_are_not_retried_and_name_the_field() {
    for status in [400, 404, 413, 422] {
        let (fake, base) = Fake::start([Reply::Status(status)]).await;
        let client = Client::new(config(&base)).unwrap();
        let err = client.send(Event::view(video())).await.unwrap_err();
        assert_eq!(fake.seen().len(), 1, "{status} must not be retried");
        match err {
            Error::Rejected { status: s, field, detail } => {
                assert_eq!(s, status);
                assert_eq!(field.as_deref(), Some("occurredAt"));
                assert!(detail.contains("RFC 3339"), "{detail}");
            }
            other => panic!("{status}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn timeouts_are_retried_then_given_up() {
    let (fake, base) = Fake::start([Reply::Slow(Duration::from_secs(2)), Reply::Ok]).await;
    let client = Client::new(config(&base)).unwrap();
    let id = client.send(Event::view(video())).await.unwrap();
    assert_eq!(fake.ids(), vec![json!(id), json!(id)], "the slow attempt and its retry carry one id");

    let (fake, base) = Fake::start(vec![Reply::Slow(Duration::from_secs(2)); 4]).await;
    let client = Client::new(config(&base)).unwrap();
    let err = client.send(Event::view(video())).await.unwrap_err();
    assert_eq!(err, Error::GaveUp { attempts: 4, last: Failure::Timeout });
    assert_eq!(fake.seen().len(), 4);
}

#[tokio::test]
async fn refused_connections_are_retried_up_to_the_attempt_limit() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let client = Client::new(config(&format!("http://{addr}"))).unwrap();
    let err = client.send(Event::view(video())).await.unwrap_err();
    assert!(matches!(err, Error::GaveUp { attempts: 4, last: Failure::Connect(_) }), "{err:?}");
    assert_eq!(err.kind(), "gave_up_connect");
    assert_eq!(client.stats().attempts, 4);
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_probes_and_closes() {
    let (fake, base) = Fake::start(vec![Reply::Status(503); 3]).await;
    let client = breaker_client(&base, 1, 3, Duration::from_millis(300));
    for _ in 0..2 {
        assert!(matches!(client.send(Event::view(video())).await, Err(Error::GaveUp { .. })));
        assert_eq!(client.breaker_state(), BreakerState::Closed);
    }
    assert!(matches!(client.send(Event::view(video())).await, Err(Error::GaveUp { .. })));
    assert_eq!(client.breaker_state(), BreakerState::Open);

    // Open: refused without a request.
    let err = client.send(Event::view(video())).await.unwrap_err();
    assert!(matches!(err, Error::CircuitOpen { attempts: 0, .. }), "{err:?}");
    assert_eq!(fake.seen().len(), 3);

    // After the cooldown one probe goes through; while it is out, others are refused.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(client.breaker_state(), BreakerState::HalfOpen);
    fake.script.lock().unwrap().push_back(Reply::Slow(Duration::from_millis(150)));
    let probe = tokio::spawn({
        let client = client.clone();
        async move { client.send(Event::view(video())).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(matches!(client.send(Event::view(video())).await, Err(Error::CircuitOpen { .. })));
    probe.await.unwrap().expect("the probe succeeds");
    assert_eq!(client.breaker_state(), BreakerState::Closed);
    client.send(Event::view(video())).await.unwrap();
    assert_eq!(fake.seen().len(), 5);
    let s = client.stats();
    assert_eq!((s.breaker_trips, s.breaker_refusals), (1, 2));
}

#[tokio::test]
async fn a_failed_probe_opens_the_circuit_again() {
    let (fake, base) = Fake::start(vec![Reply::Status(500); 2]).await;
    let client = breaker_client(&base, 1, 1, Duration::from_millis(100));
    assert!(client.send(Event::view(video())).await.is_err());
    assert_eq!(client.breaker_state(), BreakerState::Open);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(matches!(client.send(Event::view(video())).await, Err(Error::GaveUp { .. })), "the probe fails");
    assert_eq!(client.breaker_state(), BreakerState::Open);
    assert_eq!(fake.seen().len(), 2);
}

#[tokio::test]
async fn the_breaker_stops_a_retry_loop() {
    let (fake, base) = Fake::start(vec![Reply::Status(503); 10]).await;
    let client = breaker_client(&base, 10, 2, Duration::from_secs(60));
    let err = client.send(Event::view(video())).await.unwrap_err();
    assert!(matches!(err, Error::CircuitOpen { attempts: 2, .. }), "{err:?}");
    assert_eq!(fake.seen().len(), 2);
}

#[tokio::test]
async fn batch_rejections_map_to_their_events_and_are_not_retried() {
    let (fake, base) = Fake::start([Reply::Status(503), Reply::Reject(vec![(1, "videoId"), (3, "occurredAt")])]).await;
    let client = Client::new(config(&base)).unwrap();
    let v = video();
    let events: Vec<Event> = (0..5).map(|i| Event::new(v, EventKind::Like).with_value(i + 1)).collect();
    let outcome = client.send_batch(events).await.unwrap();
    assert_eq!(outcome.accepted(), 3);
    let seen = fake.seen();
    assert_eq!(seen.len(), 2, "one 503, one answer with rejections, no retry of those");
    assert!(seen.iter().all(|s| s.path == "/api/v1/events:batch"));
    assert_eq!(seen[0].body, seen[1].body, "the retry resends the same events and ids");
    for (i, r) in outcome.results.iter().enumerate() {
        let sent = &seen[0].body[i];
        assert_eq!(sent["value"], i + 1);
        match (i, r) {
            (1 | 3, Err(rej)) => assert_eq!(rej.index, i),
            (1 | 3, Ok(_)) => panic!("event {i} was rejected"),
            (_, Ok(id)) => assert_eq!(sent["eventId"], json!(id)),
            (_, Err(e)) => panic!("event {i} was accepted: {e:?}"),
        }
    }
    let err = Error::from(outcome.results[3].clone().unwrap_err());
    assert!(matches!(err, Error::Rejected { status: 422, ref field, .. } if field.as_deref() == Some("occurredAt")));
}

#[tokio::test]
async fn the_batcher_fills_batches_by_size() {
    let (fake, base) = Fake::start([]).await;
    let client = Client::new(config(&base)).unwrap();
    let batcher = batcher(&client, 4, Duration::from_secs(30));
    let started = Instant::now();
    let mut tickets = Vec::new();
    for _ in 0..8 {
        tickets.push(batcher.enqueue(Event::view(video())).await.unwrap());
    }
    for t in tickets {
        let id = t.event_id();
        assert_eq!(t.await.unwrap(), id);
    }
    assert!(started.elapsed() < Duration::from_secs(10), "full batches do not wait for the linger");
    let sizes: Vec<usize> = fake.seen().iter().map(|s| s.body.as_array().unwrap().len()).collect();
    assert_eq!(sizes, [4, 4]);
}

#[tokio::test]
async fn the_batcher_sends_a_partial_batch_after_the_linger() {
    let (fake, base) = Fake::start([]).await;
    let client = Client::new(config(&base)).unwrap();
    let batcher = batcher(&client, 100, Duration::from_millis(300));
    let started = Instant::now();
    let results = futures_join(&batcher, 3).await;
    let waited = started.elapsed();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body.as_array().unwrap().len(), 3);
    assert!(waited >= Duration::from_millis(300), "sent after {waited:?}, before the linger");
}

fn batcher(client: &Client, max_batch: usize, linger: Duration) -> Batcher {
    client.batcher(BatcherConfig { max_batch, linger, max_in_flight: 2, queue_capacity: 100 })
}

async fn futures_join(batcher: &Batcher, n: usize) -> Vec<Result<Uuid, Error>> {
    let mut handles = Vec::new();
    for _ in 0..n {
        let b = batcher.clone();
        handles.push(tokio::spawn(async move { b.submit(Event::view(Uuid::new_v4())).await }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn the_batcher_reports_each_events_own_outcome() {
    let (fake, base) = Fake::start([Reply::Status(503), Reply::Reject(vec![(2, "userId")])]).await;
    let client = Client::new(config(&base)).unwrap();
    let batcher = batcher(&client, 4, Duration::from_secs(30));
    let mut tickets = Vec::new();
    for _ in 0..4 {
        tickets.push(batcher.enqueue(Event::view(video())).await.unwrap());
    }
    let mut outcomes = Vec::new();
    for t in tickets {
        let id = t.event_id();
        outcomes.push((id, t.await));
    }
    for (i, (id, r)) in outcomes.iter().enumerate() {
        if i == 2 {
            assert!(matches!(r, Err(Error::Rejected { field: Some(f), .. }) if f == "userId"), "{r:?}");
        } else {
            assert_eq!(r.as_ref().unwrap(), id);
        }
    }
    let seen = fake.seen();
    assert_eq!(seen.len(), 2, "the 503 was retried once, the rejection not at all");
    assert_eq!(seen[0].body, seen[1].body);

    // Dropping every handle flushes what is queued, without waiting for the linger.
    let t = batcher.enqueue(Event::view(video())).await.unwrap();
    drop(batcher);
    t.await.unwrap();
}

#[tokio::test]
async fn a_failed_batch_fails_each_of_its_events() {
    let (_fake, base) = Fake::start(vec![Reply::Status(500); 4]).await;
    let client = Client::new(config(&base)).unwrap();
    let batcher = client.batcher(BatcherConfig { max_batch: 2, ..BatcherConfig::default() });
    let results = futures_join(&batcher, 2).await;
    for r in results {
        assert!(matches!(r, Err(Error::GaveUp { attempts: 4, last: Failure::Status { status: 500, .. } })), "{r:?}");
    }
}
