//! The client against the real gateway and Kafka, through a proxy that loses the
//! answers of some requests after the gateway has made their events durable. The
//! client must retry those, with the same event ids, so the topic holds every
//! event at least once and every repeat under its first copy's id.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ingest_gateway::{Application, GatewayConfig};
use prost::Message;
use rand::Rng;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use vcount_client::{BatcherConfig, Client, ClientConfig, Event, EventKind, RetryPolicy};

fn brokers() -> String {
    std::env::var("VCOUNT_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into())
}

/// A TCP proxy that, on every `drop_every`-th connection, forwards the request,
/// waits for the start of the gateway's answer (sent only once Kafka has
/// acknowledged) and then closes the client's side without forwarding it.
struct LossyProxy {
    addr: SocketAddr,
    /// Everything sent on connections whose answer was dropped.
    dropped: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl LossyProxy {
    async fn start(upstream: SocketAddr, drop_every: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dropped = Arc::new(Mutex::new(Vec::new()));
        let seq = Arc::new(AtomicUsize::new(0));
        let sink = dropped.clone();
        tokio::spawn(async move {
            loop {
                let (client, _) = listener.accept().await.unwrap();
                let lose = seq.fetch_add(1, Ordering::Relaxed) % drop_every == drop_every - 1;
                let sink = sink.clone();
                tokio::spawn(async move {
                    let server = TcpStream::connect(upstream).await.unwrap();
                    if lose {
                        lose_answer(client, server, sink).await;
                    } else {
                        let (mut c, mut s) = (client, server);
                        let _ = tokio::io::copy_bidirectional(&mut c, &mut s).await;
                    }
                });
            }
        });
        Self { addr, dropped }
    }

    /// Event ids in the requests whose answers were lost.
    fn lost_ids(&self) -> Vec<Uuid> {
        let needle = b"\"eventId\":\"";
        let mut ids = Vec::new();
        for req in self.dropped.lock().unwrap().iter() {
            let mut i = 0;
            while let Some(pos) = req[i..].windows(needle.len()).position(|w| w == needle) {
                let start = i + pos + needle.len();
                ids.push(Uuid::parse_str(std::str::from_utf8(&req[start..start + 36]).unwrap()).unwrap());
                i = start + 36;
            }
        }
        ids
    }
}

async fn lose_answer(client: TcpStream, server: TcpStream, sink: Arc<Mutex<Vec<Vec<u8>>>>) {
    let (mut cr, _cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let forward = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n @ 1..) = cr.read(&mut buf).await {
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
                if sw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        })
    };
    let mut first = [0u8; 1];
    if matches!(sr.read(&mut first).await, Ok(1..)) {
        // The gateway answered, so the events are in Kafka: lose the answer.
        sink.lock().unwrap().push(seen.lock().unwrap().clone());
    }
    forward.abort();
    // Dropping both halves closes the client's connection with no answer.
}

/// Decoded events of the topic: (event id, client-chosen?), until `want` distinct
/// ids have arrived, then a few seconds more to catch any extra copies.
fn consume(topic: &str, want: &HashSet<Uuid>) -> Vec<(Uuid, bool)> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("{topic}-check"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let mut distinct = HashSet::new();
    let mut deadline = Instant::now() + Duration::from_secs(60);
    let mut complete = false;
    while Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            for e in schemas::events::Event::decode(m.payload().unwrap()).unwrap().into_events() {
                let id = Uuid::from_slice(&e.event_id).unwrap();
                distinct.insert(id);
                out.push((id, e.client_event_id));
            }
            if !complete && want.is_subset(&distinct) {
                complete = true;
                deadline = Instant::now() + Duration::from_secs(3);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_are_retried_under_the_same_event_ids() {
    let tag: u32 = rand::rng().random();
    let mut cfg = GatewayConfig::default();
    let api_key = e2e::test_gateway(&mut cfg);
    cfg.kafka.brokers = brokers();
    cfg.kafka.topic_prefix = format!("t-client-{tag:08x}.");
    cfg.kafka.partitions = 2;
    let topic = cfg.kafka.events_topic();
    let app = Application::build(cfg).await.expect("gateway starts (is Kafka up?)");
    let upstream = app.local_addr();
    let stop = CancellationToken::new();
    tokio::spawn(app.run(stop.clone()));
    let _guard = stop.drop_guard();

    let proxy = LossyProxy::start(upstream, 3).await;
    let mut cc = ClientConfig::new(format!("http://{}", proxy.addr));
    // One connection per request, so "every third connection" is every third request.
    cc.pool_max_idle_per_host = 0;
    cc.api_key = Some(api_key);
    cc.retry = RetryPolicy { max_attempts: 8, base: Duration::from_millis(10), ..RetryPolicy::default() };
    let client = Client::new(cc).unwrap();

    let videos: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    let mut sent = Vec::new();
    // Single events, one after another.
    for i in 0..30 {
        let e = Event::new(videos[i % 5], if i % 4 == 0 { EventKind::Like } else { EventKind::View });
        sent.push(client.send(e).await.expect("acknowledged in the end"));
    }
    // Batches.
    for b in 0..6 {
        let events = (0..7).map(|i| Event::view(videos[(b + i) % 5]).with_user(Uuid::new_v4())).collect();
        let outcome = client.send_batch(events).await.expect("acknowledged in the end");
        assert_eq!(outcome.accepted(), 7);
        sent.extend(outcome.results.into_iter().map(Result::unwrap));
    }
    // The batcher, with concurrent submitters.
    let batcher =
        client.batcher(BatcherConfig { max_batch: 8, linger: Duration::from_millis(20), ..Default::default() });
    let tickets: Vec<_> = futures_tickets(&batcher, &videos, 40).await;
    for t in tickets {
        let id = t.event_id();
        assert_eq!(t.await.expect("acknowledged in the end"), id);
        sent.push(id);
    }
    let n = sent.len();
    let sent_set: HashSet<Uuid> = sent.iter().copied().collect();
    assert_eq!(sent_set.len(), n, "the client gives every event its own id");

    let lost = proxy.lost_ids();
    assert!(!lost.is_empty(), "the proxy lost some answers");
    let stats = client.stats();
    assert_eq!(stats.retries as usize, proxy.dropped.lock().unwrap().len(), "one retry per lost answer");

    let topic2 = topic.clone();
    let want = sent_set.clone();
    let got = tokio::task::spawn_blocking(move || consume(&topic2, &want)).await.unwrap();
    let mut copies: HashMap<Uuid, usize> = HashMap::new();
    for (id, client_chosen) in &got {
        assert!(client_chosen, "{id} arrived without the client_event_id mark");
        *copies.entry(*id).or_default() += 1;
    }
    assert_eq!(copies.len(), n, "exactly the {n} events the client sent, by id");
    assert!(sent_set.iter().all(|id| copies.contains_key(id)), "every event arrived");
    // Each lost answer's events were produced once more, under the same ids.
    let mut expect: HashMap<Uuid, usize> = sent_set.iter().map(|id| (*id, 1)).collect();
    for id in &lost {
        *expect.get_mut(id).expect("a lost id is one the client sent") += 1;
    }
    assert_eq!(copies, expect);
    assert_eq!(got.len(), n + lost.len());
    eprintln!("{n} events, {} answers lost, {} repeats in Kafka, all under their first id", stats.retries, lost.len());
}

async fn futures_tickets(batcher: &vcount_client::Batcher, videos: &[Uuid], n: usize) -> Vec<vcount_client::Ticket> {
    let mut tickets = Vec::new();
    for i in 0..n {
        tickets.push(batcher.enqueue(Event::view(videos[i % videos.len()])).await.unwrap());
    }
    tickets
}
