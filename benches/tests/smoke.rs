//! CI runs the load harness only at a tiny rate, as a smoke test: the three
//! services in-process on the real servers, and the run must end exact.

use std::time::Duration;

use benches::{LoadConfig, Mode};
use rand::Rng;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn harness_at_a_tiny_rate_ends_exact() {
    let brokers = std::env::var("VCOUNT_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into());
    let nodes = std::env::var("VCOUNT_CASSANDRA_NODES").unwrap_or_else(|_| "127.0.0.1:19042".into());
    let tag: u32 = rand::rng().random();
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();

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
    tokio::spawn(agg.run(stop.clone()));

    let mut g = ingest_gateway::GatewayConfig::default();
    g.http.listen = "127.0.0.1:0".into();
    g.kafka = a.kafka.clone();
    let gw = ingest_gateway::Application::build(g).await.expect("gateway starts");
    let gateway = format!("http://{}", gw.local_addr());
    tokio::spawn(gw.run(stop.clone()));

    let mut q = query_service::QueryConfig::default();
    q.http.listen = "127.0.0.1:0".into();
    q.cassandra = a.cassandra.clone();
    let qs = query_service::Application::build(q).await.expect("query service starts");
    let query = format!("http://{}", qs.local_addr());
    tokio::spawn(qs.run(stop.clone()));

    for (mode, rate) in [(Mode::Single, 100.0), (Mode::Batch, 10.0)] {
        let report = benches::run(LoadConfig {
            gateway: gateway.clone(),
            query: Some(query.clone()),
            mode,
            rate,
            duration: Duration::from_secs(2),
            warmup: Duration::ZERO,
            connections: 8,
            videos: 50,
            zipf: 1.0,
            batch_size: 20,
            spread_secs: 3 * 3600,
            drain_timeout: Duration::from_secs(60),
        })
        .await
        .expect("load runs");
        eprintln!("{}", report.table());
        assert_eq!(report.requests_failed, 0, "{mode:?}");
        assert_eq!(report.requests_ok, (rate * 2.0) as u64, "{mode:?}");
        let e = report.exactness.expect("checked");
        assert_eq!((e.lost, e.double_counted), (0, 0), "{mode:?}");
        assert_eq!(e.ledger_events, report.events_acked);
        assert!(report.latency.p50_ms > 0.0 && report.latency.p50_ms <= report.latency.p99_ms);
    }
}
