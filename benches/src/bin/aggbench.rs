//! `aggbench`: the aggregator alone, without HTTP in front of it.
//!
//! - `aggbench fold`: the CPU ceiling. Protobuf events are encoded up front, then
//!   one thread decodes each (`aggregator::decode::events`, the aggregator's own)
//!   and folds it into per-partition `counting::PartitionBuffer`s, turning them
//!   into flush plans every `--flush-every` events. No Kafka, no Cassandra.
//! - `aggbench pipeline`: the real thing. Fills a topic of its own with events
//!   through the gateway's own producer (same key and partitioner), then starts
//!   the release `aggregator` binary on it with a fresh consumer group and
//!   keyspace, and times it from its first consumed message until every event is
//!   flushed, reading its `/metrics` and the CPU of the aggregator, Kafka and
//!   Cassandra from `/proc`. Then checks every video's all-time row in Cassandra
//!   against the ledger, so the figure is for exact counting.
//!
//! Both write a step record (see `record.rs`) for `plot`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use benches::record::{Exact, Record, metric_sum, proc_ticks};
use clap::{Args as ClapArgs, Parser, Subcommand};
use counting::{EventKind, Granularity, PartitionBuffer};
use futures::StreamExt;
use prost::Message;
use rand::Rng;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use schemas::events::{Event, EventType};
use uuid::Uuid;

#[derive(Parser)]
#[command(about = "Aggregator throughput: in-process decode+fold, or the real binary from Kafka to Cassandra")]
struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(ClapArgs, Clone)]
struct Load {
    /// Events to generate.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    #[arg(long, default_value_t = 10_000)]
    videos: usize,
    /// Zipf exponent of popularity (0 = uniform).
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    /// occurredAt spread uniformly over this many seconds before now.
    #[arg(long, default_value_t = 3600)]
    spread_secs: i64,
    /// Where the step record goes.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Subcommand)]
enum What {
    /// Decode + fold in process, one thread: the CPU ceiling.
    Fold {
        #[command(flatten)]
        load: Load,
        #[arg(long, default_value_t = 12)]
        partitions: usize,
        /// Turn the buffers into flush plans every this many events.
        #[arg(long, default_value_t = 500_000)]
        flush_every: usize,
    },
    /// The dedup window alone (`counting::DedupWindow`, one partition's): random
    /// client ids at `--rate` per second of log time, every one new. Prints the
    /// time per event and the memory per id held (the process's resident set
    /// grown, over the ids the window holds at the end).
    Dedup {
        #[arg(long, default_value_t = 20_000_000)]
        ids: u64,
        /// Ids per second of log time.
        #[arg(long, default_value_t = 160_000)]
        rate: u64,
        #[arg(long, default_value_t = 600)]
        window_secs: i64,
        /// Also time every call and print the longest (a sweep's pause; the
        /// clock reads add to the time per event).
        #[arg(long)]
        longest: bool,
        #[arg(long)]
        out: PathBuf,
    },
    /// The release aggregator binary from a pre-filled topic to Cassandra.
    Pipeline {
        #[command(flatten)]
        load: Load,
        /// The aggregator binary.
        #[arg(long)]
        aggregator: PathBuf,
        /// Events produced together, as one batch request's (a pack per
        /// partition then holds about this over the partition count).
        #[arg(long, default_value_t = 5_000)]
        request_events: usize,
        /// Every event carries a client id (`client_event_id`), as the client
        /// library's retry key does, so the aggregator's dedup window sees each.
        #[arg(long)]
        client_ids: bool,
        /// Its /metrics address.
        #[arg(long, default_value = "127.0.0.1:28092")]
        listen: String,
        #[arg(long, default_value = "127.0.0.1:19092")]
        brokers: String,
        #[arg(long, default_value = "127.0.0.1:19042")]
        nodes: String,
        #[arg(long, default_value_t = 12)]
        partitions: i32,
        /// Names this run's topic, consumer group and keyspace.
        #[arg(long, default_value_t = format!("{:08x}", rand::random::<u32>()))]
        tag: String,
        /// Another process whose CPU counts (`kafka=PID`, `cassandra=PID`), repeatable.
        #[arg(long = "proc", value_parser = parse_proc)]
        procs: Vec<(String, u32)>,
        /// The aggregator's log.
        #[arg(long, default_value = "/tmp/aggbench-aggregator.log")]
        log: PathBuf,
        /// Give up waiting for the aggregator after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
        /// Keep the topic and keyspace afterwards (default: delete them).
        #[arg(long)]
        keep: bool,
    },
}

fn parse_proc(s: &str) -> Result<(String, u32), String> {
    let (name, pid) = s.split_once('=').ok_or("expected name=pid")?;
    Ok((name.to_owned(), pid.parse().map_err(|e| format!("pid {pid:?}: {e}"))?))
}

fn dedup(ids: u64, rate: u64, window_secs: i64, time_calls: bool) -> anyhow::Result<Record> {
    let rss = || benches::record::proc_rss(std::process::id()).unwrap_or(0);
    let mut rng = rand::rng();
    let mut window = counting::DedupWindow::new(window_secs * 1000);
    let before = rss();
    let (t0, cpu0) = (Instant::now(), self_cpu_secs());
    let (mut peak, mut longest) = (before, Duration::ZERO);
    for i in 0..ids {
        let ts = 1_700_000_000_000 + (i * 1000 / rate.max(1)) as i64;
        let id = rng.random();
        let call = time_calls.then(Instant::now);
        anyhow::ensure!(!window.observe(id, ts), "a random id repeated");
        if let Some(call) = call {
            longest = longest.max(call.elapsed());
        }
        if i % 1_000_000 == 0 {
            peak = peak.max(rss());
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = self_cpu_secs() - cpu0;
    let held = window.len();
    let grown = rss().max(peak).saturating_sub(before);
    let per_id = grown as f64 / held.max(1) as f64;
    let ns = secs * 1e9 / ids as f64;
    println!(
        "{ids} ids at {rate}/s of log time, window {window_secs} s: {ns:.0} ns per event, {held} ids held, \
         resident set grew {:.0} MiB at most: {per_id:.1} bytes per id held{}",
        grown as f64 / 1048576.0,
        if time_calls { format!("; longest call {:.1} ms", longest.as_secs_f64() * 1e3) } else { String::new() }
    );
    Ok(Record {
        system: "dedup window".into(),
        mode: format!("{rate}/s, window {window_secs} s"),
        achieved_per_sec: ids as f64 / secs,
        events: ids,
        cpu_secs: [("aggbench".to_owned(), cpu)].into(),
        window_secs: secs,
        notes: format!("{held} ids held at the end; resident set grew {grown} bytes: {per_id:.1} bytes per id held"),
        ..Record::default()
    })
}

/// Events with Zipf-distributed videos, and the ledger of views per video.
fn generate(load: &Load) -> anyhow::Result<(Vec<Event>, HashMap<Uuid, u64>)> {
    let videos: Vec<Uuid> = (0..load.videos.max(1)).map(|_| Uuid::new_v4()).collect();
    let popularity = WeightedIndex::new((1..=videos.len()).map(|rank| (rank as f64).powf(-load.zipf)))?;
    let mut rng = rand::rng();
    let now = chrono::Utc::now().timestamp_millis();
    let mut ledger = HashMap::new();
    let events = (0..load.events)
        .map(|_| {
            let video = videos[popularity.sample(&mut rng)];
            *ledger.entry(video).or_insert(0) += 1;
            Event {
                event_id: Uuid::now_v7().as_bytes().to_vec(),
                video_id: video.as_bytes().to_vec(),
                event_type: EventType::View as i32,
                occurred_at_ms: now - rng.random_range(0..load.spread_secs.max(1) * 1000),
                received_at_ms: now,
                value: 1,
                user_id: vec![],
                client_event_id: false,
                user_verified: false,
                correction: false,
                event_type_name: String::new(),
                correction_events: 0,
                packed: vec![],
            }
        })
        .collect();
    Ok((events, ledger))
}

fn self_cpu_secs() -> f64 {
    proc_ticks(std::process::id()).unwrap_or(0) as f64 / 100.0
}

fn fold(load: &Load, partitions: usize, flush_every: usize) -> anyhow::Result<Record> {
    let (events, _) = generate(load)?;
    let payloads: Vec<Vec<u8>> = events.iter().map(Message::encode_to_vec).collect();
    drop(events);
    let mut buffers: Vec<PartitionBuffer> = (0..partitions.max(1)).map(|_| PartitionBuffer::new(None)).collect();
    let mut offsets = vec![0i64; buffers.len()];
    let (mut rows, mut plans) = (0u64, 0u64);
    let mut take_all = |buffers: &mut [PartitionBuffer]| {
        for b in buffers.iter_mut() {
            if let Some(plan) = b.take() {
                rows += plan.deltas.len() as u64;
                plans += 1;
                std::hint::black_box(&plan);
            }
        }
    };
    let (cpu0, start) = (self_cpu_secs(), Instant::now());
    for (i, payload) in payloads.iter().enumerate() {
        let mut decoded = aggregator::decode::events(Some(payload), &counting::EventTypes::built_in())?;
        let decoded = decoded.pop().ok_or_else(|| anyhow::anyhow!("one event per message"))?;
        // Any stable video → partition map will do here; Kafka's is murmur2.
        let p = decoded.event.video_id.as_u128() as usize % buffers.len();
        let folded = buffers[p].fold(offsets[p], Some(&decoded.event));
        anyhow::ensure!(folded == counting::Folded::Folded, "an unfenced buffer folds");
        offsets[p] += 1;
        if (i + 1) % flush_every.max(1) == 0 {
            take_all(&mut buffers);
        }
    }
    take_all(&mut buffers);
    let secs = start.elapsed().as_secs_f64();
    let cpu = self_cpu_secs() - cpu0;
    let n = payloads.len() as u64;
    eprintln!(
        "decode+fold: {n} events in {secs:.3} s on one thread = {:.0} events/s; {rows} rollup rows in {plans} plans",
        n as f64 / secs
    );
    Ok(Record {
        system: "aggregator decode+fold (in-process)".into(),
        mode: "1 thread, no I/O".into(),
        achieved_per_sec: n as f64 / secs,
        events: n,
        cpu_secs: BTreeMap::from([("aggbench (1 thread)".to_owned(), cpu.max(secs))]),
        window_secs: secs,
        db_writes: Some(rows),
        notes: format!(
            "CPU ceiling: {:.0} events/s/core; {} videos zipf {}, flush plans every {flush_every} events; \
             'DB writes' are the rollup rows the plans touch before the owner's cache \
             (minute+hour+day+total per distinct video-minute)",
            n as f64 / secs,
            load.videos,
            load.zipf
        ),
        ..Record::default()
    })
}

struct Sample {
    at: Instant,
    messages: f64,
    flushed: f64,
    written: f64,
    reads: f64,
    lag: f64,
    ticks: Vec<Option<u64>>,
}

/// How `aggbench pipeline` fills its topic.
#[derive(Clone, Copy)]
struct Produce {
    request_events: usize,
    client_ids: bool,
}

#[allow(clippy::too_many_arguments)]
async fn pipeline(
    load: &Load,
    produce: Produce,
    aggregator: &PathBuf,
    listen: &str,
    brokers: &str,
    nodes: &str,
    partitions: i32,
    tag: &str,
    procs: &[(String, u32)],
    log: &PathBuf,
    timeout: Duration,
    keep: bool,
) -> anyhow::Result<Record> {
    let kafka = platform::kafka::KafkaConfig {
        brokers: brokers.to_owned(),
        topic_prefix: format!("bench-agg-{tag}."),
        partitions,
        ..Default::default()
    };
    let keyspace = format!("bench_agg_{tag}");
    let group = format!("bench-agg-{tag}");
    platform::kafka::ensure_topics(&kafka).await?;

    let (mut events, ledger) = generate(load)?;
    if produce.client_ids {
        for e in &mut events {
            e.client_event_id = true;
        }
    }
    let n = events.len() as u64;
    let producer = ingest_gateway::producer::EventProducer::new(&kafka, &Default::default())?;
    producer.ping(Duration::from_secs(10)).context("the events topic's partitions, for packs")?;
    let t = Instant::now();
    let requests = events.chunks(produce.request_events.max(1)).map(|c| producer.send_all(c));
    let mut sends = futures::stream::iter(requests).buffer_unordered(64);
    while let Some(result) = sends.next().await {
        result.context("prefill")?;
    }
    drop(sends);
    let prefill_secs = t.elapsed().as_secs_f64();
    eprintln!("prefilled {} with {n} events in {prefill_secs:.1} s", kafka.events_topic());

    let log_file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut child = tokio::process::Command::new(aggregator)
        .env("AGGREGATOR__HTTP__LISTEN", listen)
        .env("AGGREGATOR__KAFKA__BROKERS", brokers)
        .env("AGGREGATOR__KAFKA__TOPIC_PREFIX", &kafka.topic_prefix)
        .env("AGGREGATOR__KAFKA__PARTITIONS", partitions.to_string())
        .env("AGGREGATOR__CONSUMER__GROUP_ID", &group)
        .env("AGGREGATOR__CASSANDRA__NODES", nodes)
        .env("AGGREGATOR__CASSANDRA__KEYSPACE", &keyspace)
        .env("NO_COLOR", "1")
        .stdout(Stdio::from(log_file.try_clone()?))
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", aggregator.display()))?;
    let pid = child.id().context("aggregator pid")?;
    let mut all_procs = vec![("aggregator".to_owned(), pid)];
    all_procs.extend(procs.iter().cloned());

    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let url = format!("http://{listen}/metrics");
    let deadline = Instant::now() + timeout;
    let mut first: Option<Sample> = None;
    let last = loop {
        anyhow::ensure!(Instant::now() < deadline, "the aggregator did not flush {n} events in {timeout:?}");
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("the aggregator exited ({status}); log: {}", log.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(page) = async { http.get(&url).send().await?.error_for_status()?.text().await }.await else {
            continue;
        };
        let m = |name| metric_sum(&page, name).unwrap_or(0.0);
        let s = Sample {
            at: Instant::now(),
            messages: m("aggregator_messages_total"),
            flushed: m("aggregator_events_flushed_total"),
            written: m("aggregator_rows_written_total"),
            reads: m("aggregator_row_reads_total"),
            lag: m("aggregator_consumer_lag_messages"),
            ticks: all_procs.iter().map(|(_, p)| proc_ticks(*p)).collect(),
        };
        if first.is_none() && s.messages > 0.0 {
            first = Some(s);
            continue;
        }
        // Every event flushed means every message consumed; the lag gauge itself is only
        // refreshed with librdkafka's statistics (every 5 s), so it is reported, not waited for.
        if first.is_some() && s.flushed >= n as f64 {
            break s;
        }
    };
    let first = first.expect("set before the last sample");
    // Stop it as a deployment would (SIGTERM: last flush, commit, leave the group).
    let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;

    let secs = last.at.duration_since(first.at).as_secs_f64();
    let mut cpu_secs = BTreeMap::new();
    for (i, (name, _)) in all_procs.iter().enumerate() {
        if let (Some(a), Some(b)) = (first.ticks[i], last.ticks[i]) {
            cpu_secs.insert(name.clone(), (b - a) as f64 / 100.0);
        }
    }
    // Messages consumed before the first sample are in the window's work too: count from zero.
    let per_core = n as f64 / cpu_secs["aggregator"].max(0.01);

    let exactness = verify(nodes, &keyspace, &ledger).await?;
    if !keep {
        cleanup(&kafka, nodes, &keyspace).await;
    }
    eprintln!(
        "aggregator: {n} events in {secs:.1} s = {:.0} events/s; {per_core:.0} events per aggregator CPU-second; \
         {:.3} rows written and {:.3} rows read per event; lost {} double {}",
        n as f64 / secs,
        last.written / n as f64,
        last.reads / n as f64,
        exactness.lost,
        exactness.double_counted
    );
    Ok(Record {
        system: "aggregator alone".into(),
        mode: format!(
            "{n} events, {} videos zipf {}, {} events per request{}",
            load.videos,
            load.zipf,
            produce.request_events,
            if produce.client_ids { ", client ids" } else { "" }
        ),
        achieved_per_sec: n as f64 / secs,
        events: n,
        cpu_secs,
        window_secs: secs,
        db_writes: Some(last.written as u64),
        db_reads: Some(last.reads as u64),
        exactness: Some(exactness),
        notes: format!(
            "{per_core:.0} events per aggregator CPU-second; window from the first consumed message to the last \
             flush (~{:.0} messages were consumed before the first sample; consumer lag gauge then {:.0}); \
             prefill {:.0} events/s",
            first.messages,
            last.lag,
            n as f64 / prefill_secs
        ),
        ..Record::default()
    })
}

/// Every video's all-time row against the ledger.
async fn verify(nodes: &str, keyspace: &str, ledger: &HashMap<Uuid, u64>) -> anyhow::Result<Exact> {
    let cfg = platform::cassandra::CassandraConfig {
        nodes: nodes.to_owned(),
        keyspace: keyspace.to_owned(),
        ..Default::default()
    };
    let session = platform::cassandra::connect(&cfg, Duration::from_secs(30)).await?;
    let stmt = session
        .prepare(format!(
            "SELECT value FROM {keyspace}.counts WHERE video_id = ? AND event_type = ? AND granularity = ? AND bucket = ?"
        ))
        .await?;
    let (session, stmt) = (&session, &stmt);
    let counts: Vec<anyhow::Result<(i64, i64)>> = futures::stream::iter(ledger.iter())
        .map(|(video, want)| async move {
            let total = (EventKind::View.as_str(), Granularity::Total.as_str());
            let rows = session
                .execute_unpaged(stmt, (*video, total.0, total.1, scylla::value::CqlTimestamp(0)))
                .await?
                .into_rows_result()?;
            let got = rows.maybe_first_row::<(Option<i64>,)>()?.and_then(|(v,)| v).unwrap_or(0);
            Ok((*want as i64, got))
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut e = Exact::default();
    for c in counts {
        let (want, got) = c?;
        e.lost += (want - got).max(0);
        e.double_counted += (got - want).max(0);
    }
    Ok(e)
}

/// Deletes this run's keyspace and topics (best effort).
async fn cleanup(kafka: &platform::kafka::KafkaConfig, nodes: &str, keyspace: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    let cfg = platform::cassandra::CassandraConfig { nodes: nodes.to_owned(), ..Default::default() };
    if let Ok(s) = platform::cassandra::connect(&cfg, Duration::from_secs(10)).await {
        let _ = s.query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), &[]).await;
    }
    if let Ok(admin) = kafka.client_config().create::<AdminClient<rdkafka::client::DefaultClientContext>>() {
        let topics = [kafka.events_topic(), kafka.dead_letter_topic()];
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        let _ = admin.delete_topics(&names, &AdminOptions::new()).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    platform::telemetry::init_logging(&platform::telemetry::LogConfig { filter: "warn".into(), json: false });
    let (record, out) = match Args::parse().what {
        What::Fold { load, partitions, flush_every } => (fold(&load, partitions, flush_every)?, load.out),
        What::Dedup { ids, rate, window_secs, longest, out } => (dedup(ids, rate, window_secs, longest)?, out),
        What::Pipeline {
            load,
            aggregator,
            request_events,
            client_ids,
            listen,
            brokers,
            nodes,
            partitions,
            tag,
            procs,
            log,
            timeout_secs,
            keep,
        } => {
            let timeout = Duration::from_secs(timeout_secs);
            let produce = Produce { request_events, client_ids };
            let r = pipeline(
                &load,
                produce,
                &aggregator,
                &listen,
                &brokers,
                &nodes,
                partitions,
                &tag,
                &procs,
                &log,
                timeout,
                keep,
            )
            .await?;
            (r, load.out)
        }
    };
    std::fs::write(&out, serde_json::to_vec_pretty(&record)?)?;
    Ok(())
}
