//! Catalog changes are published to Kafka (seed 002), on the real Kafka and
//! Cassandra: registering a user and submitting a video each put one event on the
//! catalog topic, keyed by the entity's id, with the stored fields.

use std::time::{Duration, Instant};

use prost::Message as _;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use reqwest::StatusCode;
use schemas::catalog::CatalogEvent;
use schemas::catalog::catalog_event::Change;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[tokio::test]
async fn a_user_and_a_video_each_publish_one_event() {
    let tag = Uuid::new_v4().simple().to_string();
    let mut cfg = query_service::QueryConfig::default();
    cfg.http.listen = "127.0.0.1:0".into();
    cfg.admin.listen = "127.0.0.1:0".into();
    cfg.cassandra.keyspace = format!("t_catalog_{}", &tag[..8]);
    cfg.kafka.topic_prefix = format!("t-catalog-{}.", &tag[..8]);
    cfg.kafka.partitions = 2;
    cfg.auth.jwt_secret = "catalog events test secret, 32+ bytes".into();
    // The stack's addresses, like every other test (the defaults are the dev stack's).
    if let Ok(nodes) = std::env::var("VCOUNT_CASSANDRA_NODES") {
        cfg.cassandra.nodes = nodes;
    }
    if let Ok(brokers) = std::env::var("VCOUNT_KAFKA_BROKERS") {
        cfg.kafka.brokers = brokers;
    }
    let topic = cfg.kafka.catalog_topic();
    let brokers = cfg.kafka.brokers.clone();
    let app = query_service::Application::build(cfg).await.expect("query service starts (are Kafka and Cassandra up?)");
    let base = format!("http://{}/api/v1", app.local_addr());
    let stop = CancellationToken::new();
    tokio::spawn(app.run(stop.clone()));
    let http = reqwest::Client::new();

    let email = format!("{tag}@example.org");
    let reg = json!({"firstName": "Cata", "lastName": "Log", "email": email, "password": "password123"});
    let res = http.post(format!("{base}/users/register")).json(&reg).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let user: Uuid = res.json::<Value>().await.unwrap()["userId"].as_str().unwrap().parse().unwrap();
    let login = json!({"email": email, "password": "password123"});
    let res = http.post(format!("{base}/users/login")).json(&login).send().await.unwrap();
    let token = res.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let body = json!({"youtubeUrl": "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "title": "Events", "tags": ["Kafka", "cql"]});
    let res = http.post(format!("{base}/videos")).bearer_auth(&token).json(&body).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let video: Uuid = res.json::<Value>().await.unwrap()["videoId"].as_str().unwrap().parse().unwrap();
    // A refused registration (duplicate email) publishes nothing.
    let res = http.post(format!("{base}/users/register")).json(&reg).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);

    let events = tokio::task::spawn_blocking(move || read_all(&brokers, &topic, 2)).await.unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    let (key, first) = &events.iter().find(|(_, e)| matches!(e.change, Some(Change::UserCreated(_)))).unwrap();
    assert_eq!(key, user.as_bytes());
    let Some(Change::UserCreated(u)) = &first.change else { unreachable!() };
    assert_eq!(
        (u.user_id.as_slice(), u.first_name.as_str(), u.last_name.as_str()),
        (user.as_bytes().as_slice(), "Cata", "Log")
    );
    let (key, second) = &events.iter().find(|(_, e)| matches!(e.change, Some(Change::VideoAdded(_)))).unwrap();
    assert_eq!(key, video.as_bytes());
    let Some(Change::VideoAdded(v)) = &second.change else { unreachable!() };
    assert_eq!(v.user_id, user.as_bytes().to_vec());
    assert_eq!((v.title.as_str(), v.youtube_video_id.as_str()), ("Events", "dQw4w9WgXcQ"));
    assert_eq!(v.tags, vec!["cql".to_owned(), "kafka".to_owned()]);
    assert!(first.at_ms > 0 && first.event_id.len() == 16 && first.event_id != second.event_id);
    stop.cancel();
}

/// Every message of `topic` until `want` have arrived and one more second passed
/// quietly (to catch extras), or 30 s.
fn read_all(brokers: &str, topic: &str, want: usize) -> Vec<(Vec<u8>, CatalogEvent)> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("t-reader-{}", Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    let mut quiet_since = None;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let e = CatalogEvent::decode(m.payload().unwrap_or_default()).expect("a CatalogEvent");
                out.push((m.key().unwrap_or_default().to_vec(), e));
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None if out.len() >= want => {
                let since = *quiet_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(1) {
                    break;
                }
            }
            None => {}
        }
    }
    out
}
