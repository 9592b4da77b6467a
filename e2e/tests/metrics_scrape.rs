//! Golden metrics after real traffic: views through the real gateway, Kafka, the
//! aggregator (a child process), Cassandra and the query service, including bad
//! requests and a poison message; then every service's /metrics is scraped, parsed
//! and checked against what the test sent. Every family a scrape contains must be
//! declared by its service (or `platform`), with that type, help and label keys;
//! the dashboard's queries must read only families these scrapes contain.
//!
//! The gateway and the query service run in this process and share its metrics
//! recorder (so each one's /metrics also shows the other's series; their route
//! templates differ, so per-route counts are still exact). The aggregator is its own
//! process with its own recorder.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use e2e::observability::{
    Exposition, check_scrape_against_declarations, dashboard_exprs, load_dashboard, promql_metric_names,
    queried_family, workspace_root,
};
use e2e::*;
use rdkafka::producer::{FutureProducer, FutureRecord};
use uuid::Uuid;

const VIEW: &str = "/api/v1/videos/id/{video_id}/view";
const EVENT: &str = "/api/v1/events";
const BATCH: &str = "/api/v1/events:batch";
const VIEWS: &str = "/api/v1/videos/{video_id}/views";
const COUNTS: &str = "/api/v1/videos/{video_id}/counts/{event_type}";

async fn scrape(env: &TestEnv, url: &str) -> Exposition {
    let res = env.http.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(res.status(), 200, "GET {url}");
    let ctype = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(ctype.starts_with("text/plain"), "{url}: content-type {ctype}");
    let text = res.text().await.unwrap();
    Exposition::parse(&text).unwrap_or_else(|e| panic!("{url} is not valid Prometheus text: {e}\n{text}"))
}

fn requests(m: &Exposition, route: &str, method: &str, status: &str) -> f64 {
    m.value("http_requests_total", &[("route", route), ("method", method), ("status", status)]).unwrap_or(0.0)
}

/// Every (route, method): the latency histogram counted exactly the requests the
/// counter did, over all statuses.
fn assert_histogram_counts_match_requests(m: &Exposition, service: &str) {
    let counters = m.family("http_requests_total").expect("http_requests_total");
    let pairs: BTreeSet<(String, String)> =
        counters.samples.iter().map(|s| (s.labels["route"].clone(), s.labels["method"].clone())).collect();
    assert!(!pairs.is_empty(), "{service}: no requests counted");
    for (route, method) in pairs {
        let with = [("route", route.as_str()), ("method", method.as_str())];
        let total = m.value("http_requests_total", &with).unwrap();
        let count = m.value("http_request_duration_seconds_count", &with);
        assert_eq!(count, Some(total), "{service} {method} {route}: histogram count vs requests");
    }
}

/// A family exists with this type and a HELP text.
fn assert_family(m: &Exposition, name: &str, kind: &str) {
    let f = m.family(name).unwrap_or_else(|| panic!("{name} is not exported"));
    assert_eq!(f.kind, kind, "{name}");
    assert!(f.help.as_deref().is_some_and(|h| !h.is_empty()), "{name} has no HELP text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn golden_metrics_after_real_traffic() {
    let partitions = 4;
    let mut env = TestEnv::start("metrics", partitions).await;
    env.spawn_aggregator();
    let videos: Vec<Uuid> = uuids(60);
    let mut ledger = Ledger::default();

    // --- traffic through the gateway, counted per route and status ---
    // 600 views in 3 batches of 200 (202 each).
    send_views(&env, &mut ledger, &videos, 600, 2 * HOUR).await;
    let mut batch_202 = 3.0;
    // 10 body-less KillrVideo views (204).
    for video in videos.iter().take(10) {
        let res = env.http.post(env.gateway_url(&format!("/api/v1/videos/id/{video}/view"))).send().await.unwrap();
        assert_eq!(res.status(), 204);
        ledger.record(*video, now_ms());
    }
    // 5 typed single events (202).
    for video in videos.iter().take(5) {
        let at = now_ms() - 30 * MINUTE;
        let res = env.http.post(env.gateway_url(EVENT)).json(&view(*video, at)).send().await.unwrap();
        assert_eq!(res.status(), 202);
        ledger.record(*video, at);
    }
    // A bad request: 422.
    let res = env.http.post(env.gateway_url("/api/v1/videos/id/not-a-uuid/view")).send().await.unwrap();
    assert_eq!(res.status(), 422);
    // A batch with one valid and one invalid item: 202, one event rejected.
    let at = now_ms() - MINUTE;
    let mixed = serde_json::json!([view(videos[7], at), {"videoId": "nope"}]);
    let res = env.http.post(env.gateway_url(BATCH)).json(&mixed).send().await.unwrap();
    assert_eq!(res.status(), 202);
    ledger.record(videos[7], at);
    batch_202 += 1.0;
    // A path no route matches: 404, counted as `unmatched`.
    let res = env.http.get(env.gateway_url("/no/such/path")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let events = ledger.total() as f64;

    // One undecodable message straight onto the topic: dead-lettered.
    let producer: FutureProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", brokers()).create().unwrap();
    let topic = format!("{}video-events", env.topic_prefix);
    let rec = FutureRecord::to(&topic).key(&videos[0].as_bytes()[..]).payload(&b"\xff\x00not protobuf"[..]);
    producer.send(rec, Duration::from_secs(5)).await.unwrap();

    env.assert_converges(&ledger, &[None], Duration::from_secs(90)).await;

    // --- aggregator: wait until it has dead-lettered the poison and its lag,
    // from librdkafka's statistics every 5 s, shows every partition drained ---
    let agg_url = env.aggregator_metrics_url(0).to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let agg = loop {
        let m = scrape(&env, &agg_url).await;
        let lag: Vec<(String, f64)> = m
            .samples("aggregator_consumer_lag_messages", &[("topic", &topic)])
            .map(|s| (s.labels["partition"].clone(), s.value))
            .collect();
        // What a crash would replay: the commit trails the rounds, then catches up
        // once every series is written (an idle partition's commit moves too).
        let uncommitted: Vec<(String, f64)> = m
            .samples("aggregator_uncommitted_messages", &[("topic", &topic)])
            .map(|s| (s.labels["partition"].clone(), s.value))
            .collect();
        let drained = |g: &[(String, f64)]| g.len() == partitions as usize && g.iter().all(|(_, v)| *v == 0.0);
        if drained(&lag) && drained(&uncommitted) && m.value("aggregator_dead_letters_total", &[]) == Some(1.0) {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "aggregator lag never drained on all {partitions} partitions: {lag:?}, uncommitted {uncommitted:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let partitions_seen: BTreeSet<String> = agg
        .samples("aggregator_consumer_lag_messages", &[("topic", &topic)])
        .map(|s| s.labels["partition"].clone())
        .collect();
    let expected: BTreeSet<String> = (0..partitions).map(|p| p.to_string()).collect();
    assert_eq!(partitions_seen, expected, "one lag gauge per assigned partition");
    assert_eq!(agg.value("aggregator_assigned_partitions", &[("topic", &topic)]), Some(partitions as f64));
    let ratings_topic = format!("{}video-ratings", env.topic_prefix);
    assert_eq!(
        agg.value("aggregator_assigned_partitions", &[("topic", &ratings_topic)]),
        Some(partitions as f64),
        "the ratings consumer owns the ratings topic's partitions"
    );
    let messages = agg.value("aggregator_messages_total", &[]).unwrap();
    let taken = agg.value("aggregator_events_total", &[]).unwrap();
    assert!(taken >= events, "events taken {taken} < {events} events");
    // The batches travelled as packs (a message per partition per request), the
    // single views as messages of their own, and the poison as one more.
    assert!(messages > 1.0 && messages < events, "{messages} messages for {events} events");
    let flushed = agg.value("aggregator_events_flushed_total", &[]).unwrap();
    assert!(flushed >= events, "events flushed {flushed} < {events}");
    assert_eq!(agg.value("aggregator_dead_letters_total", &[]), Some(1.0));
    let buffered = agg.value("aggregator_buffered_keys", &[]).expect("buffered keys gauge");
    assert!(buffered >= 0.0);
    // Every video has at least a minute, an hour, a day and an all-time row.
    let rows = agg.value("aggregator_rows_written_total", &[]).unwrap();
    let min_rows = 4.0 * ledger.videos().count() as f64;
    assert!(rows >= min_rows, "rows written {rows} < {min_rows}");
    assert!(agg.value("aggregator_row_reads_total", &[]).is_some());
    assert!(agg.value("aggregator_rows_skipped_total", &[]).is_some());
    let flushes = agg.value("aggregator_flush_duration_seconds_count", &[]).unwrap();
    assert!(flushes > 0.0, "no flush recorded");
    for op in aggregator::metrics::CASSANDRA_OPS {
        let errors = agg.value("aggregator_cassandra_errors_total", &[("op", op)]);
        assert!(errors.is_some_and(|e| e >= 0.0), "cassandra errors for op {op}: {errors:?}");
    }
    assert!(agg.value("aggregator_commit_errors_total", &[]).is_some());
    for (name, kind) in [
        ("aggregator_messages_total", "counter"),
        ("aggregator_events_total", "counter"),
        ("aggregator_events_flushed_total", "counter"),
        ("aggregator_rows_written_total", "counter"),
        ("aggregator_dead_letters_total", "counter"),
        ("aggregator_cassandra_errors_total", "counter"),
        ("aggregator_buffered_keys", "gauge"),
        ("aggregator_assigned_partitions", "gauge"),
        ("aggregator_consumer_lag_messages", "gauge"),
        ("aggregator_uncommitted_messages", "gauge"),
        ("aggregator_flush_duration_seconds", "histogram"),
    ] {
        assert_family(&agg, name, kind);
    }
    let hist = agg.check_histograms().unwrap_or_else(|e| panic!("aggregator: {e}"));
    assert!(hist >= 2, "aggregator: {hist} histogram series");
    // The aggregator serves only operational routes (its admin listener), and
    // scrapes are not API requests: it has no HTTP request series at all.
    assert_eq!(agg.value("http_requests_total", &[]), None, "the aggregator counted its own scrapes");

    // --- gateway: exactly what was sent ---
    let gw = scrape(&env, &env.gateway_admin_url("/metrics")).await;
    assert_eq!(requests(&gw, BATCH, "POST", "202"), batch_202);
    assert_eq!(requests(&gw, VIEW, "POST", "204"), 10.0);
    assert_eq!(requests(&gw, VIEW, "POST", "422"), 1.0);
    assert_eq!(requests(&gw, EVENT, "POST", "202"), 5.0);
    assert_eq!(requests(&gw, "unmatched", "GET", "404"), 1.0);
    for (route, total) in [(BATCH, batch_202), (VIEW, 11.0), (EVENT, 5.0)] {
        assert_eq!(gw.value("http_requests_total", &[("route", route)]), Some(total), "{route}: no other statuses");
    }
    assert_histogram_counts_match_requests(&gw, "gateway");
    assert_eq!(gw.value("gateway_events_produced_total", &[]), Some(events));
    assert_eq!(gw.value("gateway_events_rejected_total", &[]), Some(1.0));
    for kind in ingest_gateway::metrics::PRODUCE_ERROR_KINDS {
        assert_eq!(gw.value("gateway_produce_errors_total", &[("kind", kind)]), Some(0.0), "produce errors {kind}");
    }
    // Everything is acknowledged, and the gauge is sampled every second.
    assert_eq!(gw.value("kafka_producer_in_flight_messages", &[]), Some(0.0));
    let capacity = ingest_gateway::GatewayConfig::default().producer.queue_max_messages as f64;
    assert_eq!(gw.value("kafka_producer_queue_capacity_messages", &[]), Some(capacity));
    for (name, kind) in [
        ("http_requests_total", "counter"),
        ("http_request_duration_seconds", "histogram"),
        ("gateway_events_produced_total", "counter"),
        ("gateway_events_rejected_total", "counter"),
        ("gateway_produce_errors_total", "counter"),
        ("kafka_producer_in_flight_messages", "gauge"),
        ("kafka_producer_queue_capacity_messages", "gauge"),
    ] {
        assert_family(&gw, name, kind);
    }
    gw.check_histograms().unwrap_or_else(|e| panic!("gateway: {e}"));
    // Bucket edges at issue 5's latency targets, and room for slow flushes.
    let edges: BTreeSet<String> = gw
        .samples("http_request_duration_seconds_bucket", &[("route", EVENT)])
        .map(|s| s.labels["le"].clone())
        .collect();
    for le in ["0.01", "0.02", "60", "+Inf"] {
        assert!(edges.contains(le), "no le={le} bucket: {edges:?}");
    }

    // --- query service: counted against a snapshot, since the convergence loop
    // above made an unknown number of requests ---
    let q0 = scrape(&env, &env.query_admin_url("/metrics")).await;
    for video in videos.iter().take(5) {
        assert_eq!(env.views(*video, None).await, Ok(ledger.count(*video, None)));
    }
    let minute = now_ms().div_euclid(MINUTE) * MINUTE;
    let (from, to) = (minute - 2 * HOUR - 7 * MINUTE, minute + MINUTE);
    let url =
        env.query_url(&format!("/api/v1/videos/{}/counts/view?from={}&to={}", videos[0], rfc3339(from), rfc3339(to)));
    let res = env.http.get(url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res =
        env.http.get(env.query_url(&format!("/api/v1/videos/{}/views?from=noon", videos[0]))).send().await.unwrap();
    assert_eq!(res.status(), 422);
    let q1 = scrape(&env, &env.query_admin_url("/metrics")).await;
    let delta =
        |name: &str, with: &[(&str, &str)]| q1.value(name, with).unwrap_or(0.0) - q0.value(name, with).unwrap_or(0.0);
    let req = |route, status| [("route", route), ("method", "GET"), ("status", status)];
    assert_eq!(delta("http_requests_total", &req(VIEWS, "200")), 5.0);
    assert_eq!(delta("http_requests_total", &req(VIEWS, "422")), 1.0);
    assert_eq!(delta("http_requests_total", &req(COUNTS, "200")), 1.0);
    for route in [VIEWS, COUNTS] {
        let with = [("route", route), ("method", "GET")];
        assert_eq!(
            delta("http_request_duration_seconds_count", &with),
            delta("http_requests_total", &with),
            "query {route}: histogram count vs requests"
        );
    }
    // Cassandra reads: one all-time read per views request, the planned spans for the
    // range, and the ranged count's all-time row again as the rows cache's validator
    // (`counts.rows_cache_rows`, on by default; a cold cache reads every span).
    let mut reads = std::collections::BTreeMap::from([("total", 6.0)]);
    for span in counting::plan_range(from, to) {
        *reads.entry(span.granularity.as_str()).or_default() += 1.0;
    }
    for g in counting::Granularity::ALL {
        let got = delta("query_cassandra_read_duration_seconds_count", &[("granularity", g.as_str())]);
        assert_eq!(got, reads.get(g.as_str()).copied().unwrap_or(0.0), "cassandra reads at granularity {g:?}");
    }
    assert_eq!(q1.value("query_cassandra_errors_total", &[("op", "read")]), Some(0.0));

    // --- made-up methods and paths fold into one label value on every service (the
    // issue saw 3 such requests add 78 series to the query service's /metrics) ---
    let agg_base = agg_url.trim_end_matches("/metrics").to_owned();
    for (name, base, metrics) in [
        ("query", env.query_url(""), env.query_admin_url("/metrics")),
        ("aggregator", agg_base.clone(), agg_url.clone()),
    ] {
        let junk = |round: usize| {
            let (http, base) = (env.http.clone(), base.clone());
            async move {
                for i in 0..10 {
                    let method = reqwest::Method::from_bytes(format!("FOO{round}X{i}").as_bytes()).unwrap();
                    let known = format!("{base}/api/v1/videos/{}/views", Uuid::nil());
                    http.request(method.clone(), known).send().await.unwrap();
                    http.request(method, format!("{base}/no/such/{round}/{i}")).send().await.unwrap();
                }
            }
        };
        junk(0).await;
        let before = scrape(&env, &metrics).await.samples("http_requests_total", &[]).count();
        junk(1).await;
        let after = scrape(&env, &metrics).await;
        assert_eq!(
            after.samples("http_requests_total", &[]).count(),
            before,
            "{name}: 20 made-up methods added series"
        );
        if name == "aggregator" {
            // Its only listener is an admin one, whose requests are never counted.
            assert_eq!(before, 0, "the aggregator counts no requests");
        } else {
            let folded = after.value("http_requests_total", &[("method", "other"), ("route", "unmatched")]);
            assert!(folded.is_some(), "{name}");
        }
    }
    assert_family(&q1, "query_cassandra_read_duration_seconds", "histogram");
    assert_family(&q1, "query_cassandra_errors_total", "counter");
    q1.check_histograms().unwrap_or_else(|e| panic!("query: {e}"));

    // --- every family exported is declared, by the service that exports it ---
    // (the gateway and the query service share this process's recorder)
    let checked =
        check_scrape_against_declarations(&agg, &["aggregator"]).unwrap_or_else(|e| panic!("aggregator:\n{e}"));
    assert!(checked >= 15, "aggregator: only {checked} families");
    for (name, m) in [("gateway", &gw), ("query", &q1)] {
        check_scrape_against_declarations(m, &["gateway", "query"]).unwrap_or_else(|e| panic!("{name}:\n{e}"));
    }

    // --- the dashboard reads only families these scrapes contain, with the right type ---
    let kind_of = |name: &str| [&gw, &q1, &agg].iter().find_map(|m| m.kind(name).map(str::to_owned));
    let dashboard = load_dashboard(&workspace_root());
    let mut missing = Vec::new();
    let mut used = BTreeSet::new();
    for (title, expr) in dashboard_exprs(&dashboard) {
        for name in promql_metric_names(&expr).unwrap() {
            match queried_family(&name, kind_of) {
                Ok((family, _)) => {
                    used.insert(family);
                }
                Err(e) => missing.push(format!("panel {title:?}: {e}")),
            }
        }
    }
    assert!(missing.is_empty(), "the dashboard queries what no service exports:\n{}", missing.join("\n"));
    eprintln!("[metrics] dashboard reads {} families, all exported: {used:?}", used.len());
}
