//! CI runs the load harness only at a tiny rate, as a smoke test: the three
//! services in-process on the real servers, every mode and arrival once, and
//! every run must end exact, with freshness and read figures produced. No
//! timing is asserted: figures are for benchmarks to print.

use std::time::Duration;

use benches::{LoadConfig, Mode, Report, Target, parse_types};
use rand::Rng;
use tokio_util::sync::CancellationToken;

struct Stack {
    gateway: String,
    query: String,
    api_key: String,
    stop: CancellationToken,
    aggregator: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Stack {
    /// Stops the aggregator and waits for it, while the test's runtime still runs:
    /// its last flush at shutdown writes what it holds (up to a minute of tail
    /// series), and a runtime torn down under it would panic its blocking threads.
    async fn shut_down(mut self) {
        self.stop.cancel();
        let aggregator = self.aggregator.take().expect("running");
        let ended = tokio::time::timeout(Duration::from_secs(60), aggregator).await;
        let ended = ended.expect("the aggregator stops within 60 s").expect("the aggregator's task did not panic");
        ended.expect("the aggregator stopped cleanly");
    }
}

impl Drop for Stack {
    /// A failed assertion: stop the services anyway.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start() -> Stack {
    let brokers = std::env::var("VCOUNT_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into());
    let nodes = std::env::var("VCOUNT_CASSANDRA_NODES").unwrap_or_else(|_| "127.0.0.1:19042".into());
    let tag: u32 = rand::rng().random();
    let stop = CancellationToken::new();

    let mut a = aggregator::AggregatorConfig::default();
    a.http.listen = "127.0.0.1:0".into();
    a.kafka.brokers = brokers.clone();
    a.kafka.topic_prefix = format!("t-smoke-{tag:08x}.");
    a.kafka.partitions = 4;
    a.consumer.group_id = format!("t-smoke-{tag:08x}");
    a.cassandra.nodes = nodes.clone();
    a.cassandra.keyspace = format!("t_smoke_{tag:08x}");
    a.flush.interval_ms = 300;
    let agg = aggregator::Application::build(a.clone()).await.expect("aggregator starts");
    let aggregator = tokio::spawn(agg.run(stop.clone()));

    let mut g = ingest_gateway::GatewayConfig::default();
    g.http.listen = "127.0.0.1:0".into();
    g.admin.listen = "127.0.0.1:0".into();
    // A producer key without a limit: batches need one, and the harness's rates
    // must be the gateway's, not a per-IP limit's.
    let (api_key, sha256) = platform::apikeys::generate();
    g.producers.keys = vec![platform::apikeys::ApiKeyConfig { name: "smoke".into(), sha256, per_second: 0, burst: 0 }];
    g.kafka = a.kafka.clone();
    let gw = ingest_gateway::Application::build(g).await.expect("gateway starts");
    let gateway = format!("http://{}", gw.local_addr());
    tokio::spawn(gw.run(stop.clone()));

    let mut q = query_service::QueryConfig::default();
    q.http.listen = "127.0.0.1:0".into();
    q.cassandra = a.cassandra.clone();
    // The aggregators' topics: readers find each partition's owner through them
    // (freshness from the owner), or counts wait for the rounds.
    q.kafka = a.kafka.clone();
    let qs = query_service::Application::build(q).await.expect("query service starts");
    let query = format!("http://{}", qs.local_addr());
    tokio::spawn(qs.run(stop.clone()));
    Stack { gateway, query, api_key, stop, aggregator: Some(aggregator) }
}

/// What every run must show, whatever its mode.
fn assert_sound(what: &str, r: &Report) {
    eprintln!("{what}\n{}", r.table());
    assert_eq!(r.requests_failed, 0, "{what}: {:?}", r.errors);
    assert!(r.errors.is_empty(), "{what}: {:?}", r.errors);
    assert!(r.requests_ok > 0 && r.events_acked >= r.requests_ok, "{what}");
    let e = r.exactness.as_ref().expect("checked");
    assert_eq!((e.lost, e.double_counted), (0, 0), "{what}");
    let probes = r.freshness.as_ref().map_or(0, |f| f.acked);
    assert_eq!(e.ledger_events, r.events_acked + probes, "{what}: the ledger holds every acknowledged event");
    assert_eq!(e.counted_events, e.ledger_events as i64, "{what}");
    assert!(r.latency.p50_ms > 0.0 && r.latency.p50_ms <= r.latency.p99_ms, "{what}");
    let back: serde_json::Value = serde_json::to_value(r).unwrap();
    for key in ["mode", "offered_rate", "requests_ok", "events_acked", "latency", "exactness", "errors", "freshness"] {
        assert!(back.get(key).is_some(), "{what}: JSON lacks {key}");
    }
}

fn assert_fresh(what: &str, r: &Report) {
    let f = r.freshness.as_ref().expect("freshness measured");
    assert!(f.acked > 0, "{what}: probes were sent");
    assert_eq!((f.samples, f.unresolved, f.failed_probes), (f.acked, 0, 0), "{what}: every probe was seen");
    assert!(f.p50_ms > 0.0 && f.p50_ms <= f.p99_ms && f.p99_ms <= f.max_ms, "{what}: {f:?}");
}

fn assert_ranges_exact(what: &str, r: &Report) {
    let e = r.exactness.as_ref().unwrap();
    assert_eq!(e.ranges.len(), 3, "{what}: {:?}", e.ranges_skipped);
    for c in &e.ranges {
        assert!(c.videos > 0 && c.expected > 0, "{what}: range {} checked nothing", c.name);
        assert_eq!((c.lost, c.double_counted), (0, 0), "{what}: range {}", c.name);
        assert_eq!(c.expected, c.counted);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn harness_at_a_tiny_rate_ends_exact() {
    let s = start().await;
    let base = LoadConfig {
        gateway: s.gateway.clone(),
        api_key: Some(s.api_key.clone()),
        query: Some(s.query.clone()),
        duration: Duration::from_secs(2),
        warmup: Duration::ZERO,
        connections: 8,
        videos: 50,
        spread_secs: 3 * 3600,
        drain_timeout: Duration::from_secs(60),
        request_timeout: Duration::from_secs(10),
        freshness_interval: None,
        ..LoadConfig::default()
    };

    // KillrVideo's view endpoint, open loop, with freshness probes and reads.
    let r = benches::run(LoadConfig {
        rate: 100.0,
        freshness_interval: Some(Duration::from_millis(100)),
        read_qps: 20.0,
        ..base.clone()
    })
    .await
    .expect("load runs");
    assert_sound("single view", &r);
    assert_eq!(r.requests_ok, 200);
    assert_eq!(r.target, "view");
    assert_fresh("single view", &r);
    let reads = r.reads.as_ref().expect("reads measured");
    for (name, rr) in [("1 h", &reads.one_hour), ("30 d", &reads.thirty_days)] {
        assert_eq!((rr.requests, rr.errors), (20, 0), "{name} reads: {:?}", reads.errors);
        assert!(rr.latency.p50_ms > 0.0 && rr.latency.p50_ms <= rr.latency.p999_ms, "{name}");
    }
    assert!(r.exactness.as_ref().unwrap().ranges_skipped.is_some(), "the server chose the view times");

    // Typed events through the client library: users, a type mix, occurredAt
    // over 3 h and a fifth of them 1 to 24 h late, ranges checked; freshness
    // through the same client.
    let r = benches::run(LoadConfig {
        target: Target::Events,
        rate: 60.0,
        late_share: 0.2,
        users: 10,
        types: parse_types("view=80,like=10,share=10").unwrap(),
        freshness_interval: Some(Duration::from_millis(100)),
        read_qps: 10.0,
        range_videos: 10,
        ..base.clone()
    })
    .await
    .expect("load runs");
    assert_sound("single events", &r);
    assert_eq!((r.requests_ok, r.target.as_str()), (120, "events"));
    assert_fresh("single events", &r);
    assert_ranges_exact("single events", &r);
    let by_type = &r.exactness.as_ref().unwrap().by_type;
    assert!(by_type.contains_key("view") && by_type.len() >= 2, "{by_type:?}");
    assert!(by_type.values().all(|(want, got)| *want as i64 == *got), "{by_type:?}");
    assert!(r.client.as_ref().is_some_and(|c| c.attempts >= 120));

    // Batches through the client library.
    let r = benches::run(LoadConfig { mode: Mode::Batch, rate: 10.0, batch_size: 20, ..base.clone() })
        .await
        .expect("load runs");
    assert_sound("batch", &r);
    assert_eq!((r.requests_ok, r.events_acked), (20, 400));
    assert_ranges_exact("batch", &r);

    // The client's batcher under a ramp from 50 to 150 events/s.
    let r = benches::run(LoadConfig {
        mode: Mode::Batcher,
        rate: 50.0,
        ramp_to: Some(150.0),
        batch_size: 10,
        linger: Duration::from_millis(20),
        ..base.clone()
    })
    .await
    .expect("load runs");
    assert_sound("batcher, ramp", &r);
    assert_eq!((r.requests_ok, r.arrival.as_str()), (200, "ramp"));

    // Closed loop: two workers back to back for a second.
    let r = benches::run(LoadConfig {
        target: Target::Events,
        closed_loop: true,
        connections: 2,
        duration: Duration::from_secs(1),
        ..base.clone()
    })
    .await
    .expect("load runs");
    assert_sound("closed loop", &r);
    assert_eq!(r.arrival, "closed");
    s.shut_down().await;
}
