//! `cqlcost`: what one series write costs Cassandra, by row layout.
//!
//! A flush writes, per touched (video, event type), a minute, an hour, a day and
//! an all-time row. How many requests, partitions and rows that takes decides how
//! much Cassandra CPU an event costs. This writes the same `--series` series in
//! each layout into a scratch keyspace (the real migrations) and reads the
//! Cassandra process's CPU ticks from `/proc` before and after:
//!
//! - `rollups-4req`: today's table, one request per row (four partitions);
//! - `counts-4rows`: migration 009, the four rows as one single-partition batch;
//! - `counts-2rows`: a minute and the all-time row (hours and days written lazily);
//! - `counts-1row`: one row per request, the floor;
//! - `counts-4rows-x8`: eight series' batches as one unlogged batch (eight
//!   partitions, one request): what a request costs apart from its mutations;
//! - `read-total`: the read a round makes of a series it has never seen (its
//!   all-time row, of a partition that does not exist), one per request;
//! - `read-total-in8`: the same read of eight series in one request (`IN`).
//!
//! Each layout is run `--repeat` times, interleaved, so a noisy neighbour hurts
//! them alike; the figure is CPU microseconds per series write and per row.
//!
//!   cqlcost --nodes 127.0.0.1:19042 --cassandra-pid "$(cat .local/cassandra/pid)" --series 20000

use std::time::{Duration, Instant};

use anyhow::Context;
use benches::record::proc_ticks;
use clap::Parser;
use futures::StreamExt;
use platform::cassandra::CassandraConfig;
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use uuid::Uuid;

#[derive(Parser)]
#[command(about = "Cassandra CPU per series write, by row layout")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:19042")]
    nodes: String,
    /// Scratch keyspace (created, and dropped at the end).
    #[arg(long, default_value = "cqlcost")]
    keyspace: String,
    #[arg(long)]
    cassandra_pid: u32,
    /// Series writes per layout and repeat (each a distinct video: the long tail).
    #[arg(long, default_value_t = 20_000)]
    series: usize,
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
}

#[derive(Clone, Copy, Debug)]
enum Layout {
    Rollups4Req,
    Counts4Rows,
    Counts2Rows,
    Counts1Row,
    Counts4RowsX8,
    ReadTotal,
    ReadTotalIn8,
}

impl Layout {
    const ALL: [Layout; 7] = [
        Layout::Rollups4Req,
        Layout::Counts4Rows,
        Layout::Counts2Rows,
        Layout::Counts1Row,
        Layout::Counts4RowsX8,
        Layout::ReadTotal,
        Layout::ReadTotalIn8,
    ];

    fn name(self) -> &'static str {
        match self {
            Layout::Rollups4Req => "rollups-4req",
            Layout::Counts4Rows => "counts-4rows",
            Layout::Counts2Rows => "counts-2rows",
            Layout::Counts1Row => "counts-1row",
            Layout::Counts4RowsX8 => "counts-4rows-x8",
            Layout::ReadTotal => "read-total",
            Layout::ReadTotalIn8 => "read-total-in8",
        }
    }

    /// Rows per series: written, or for the reads, asked for.
    fn rows(self) -> usize {
        match self {
            Layout::Rollups4Req | Layout::Counts4Rows | Layout::Counts4RowsX8 => 4,
            Layout::Counts2Rows => 2,
            Layout::Counts1Row | Layout::ReadTotal | Layout::ReadTotalIn8 => 1,
        }
    }

    /// Series per request.
    fn series_per_request(self) -> usize {
        match self {
            Layout::Counts4RowsX8 | Layout::ReadTotalIn8 => 8,
            _ => 1,
        }
    }
}

const GRANULARITIES: [(&str, i64, i32); 4] =
    [("minute", 60_000, 691_200), ("hour", 3_600_000, 34_560_000), ("day", 86_400_000, 0), ("total", 0, 0)];

struct Statements {
    rollups: PreparedStatement,
    counts: PreparedStatement,
    read_total: PreparedStatement,
    read_total_in: PreparedStatement,
}

/// One request's worth of series (`layout.series_per_request()` videos).
async fn write_series(
    s: &Session,
    st: &Statements,
    layout: Layout,
    videos: &[Uuid],
    now: i64,
    ts: i64,
) -> anyhow::Result<()> {
    let rows: &[(&str, i64, i32)] = match layout {
        Layout::Rollups4Req | Layout::Counts4Rows | Layout::Counts4RowsX8 => &GRANULARITIES,
        Layout::Counts2Rows => &[GRANULARITIES[0], GRANULARITIES[3]],
        Layout::Counts1Row | Layout::ReadTotal | Layout::ReadTotalIn8 => &GRANULARITIES[..1],
    };
    let bucket = |w: i64| if w == 0 { 0 } else { now - now.rem_euclid(w) };
    match layout {
        Layout::Rollups4Req => {
            let writes = rows.iter().map(|(g, w, ttl)| {
                let values = (videos[0], "view", *g, CqlTimestamp(bucket(*w)), 3i64, 41i64, 7i32, *ttl, ts);
                s.execute_unpaged(&st.rollups, values)
            });
            futures::future::try_join_all(writes).await?;
        }
        Layout::ReadTotal => {
            // The aggregator's read: paged, though a series has one all-time row.
            let pager = s.execute_iter(st.read_total.clone(), (videos[0], "view", "total", CqlTimestamp(0))).await?;
            let found = pager.rows_stream::<(CqlTimestamp,)>()?.count().await;
            anyhow::ensure!(found == 0, "a new series has no rows");
        }
        Layout::ReadTotalIn8 => {
            let values = (videos.to_vec(), "view", "total", CqlTimestamp(0));
            let pager = s.execute_iter(st.read_total_in.clone(), values).await?;
            let found = pager.rows_stream::<(Uuid, CqlTimestamp)>()?.count().await;
            anyhow::ensure!(found == 0, "new series have no rows");
        }
        _ => {
            let mut batch = Batch::new(BatchType::Unlogged);
            let mut values = Vec::new();
            for video in videos {
                for (g, w, ttl) in rows {
                    batch.append_statement(st.counts.clone());
                    values.push((*video, "view", *g, CqlTimestamp(bucket(*w)), 3i64, 41i64, *ttl, ts));
                }
            }
            s.batch(&batch, values).await?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let cfg = CassandraConfig { nodes: a.nodes.clone(), keyspace: a.keyspace.clone(), ..CassandraConfig::default() };
    let session = platform::cassandra::connect(&cfg, Duration::from_secs(30)).await?;
    platform::cassandra::migrate(&session, &cfg).await.context("migrations")?;
    let ks = &a.keyspace;
    let st = Statements {
        rollups: session
            .prepare(format!(
                "INSERT INTO {ks}.rollups (video_id, event_type, granularity, bucket, value, last_offset, \
                 kafka_partition) VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ))
            .await?,
        counts: session
            .prepare(format!(
                "INSERT INTO {ks}.counts (video_id, event_type, granularity, bucket, value, last_offset) \
                 VALUES (?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ))
            .await?,
        read_total: session
            .prepare(format!(
                "SELECT bucket FROM {ks}.counts WHERE video_id = ? AND event_type = ? AND granularity = ? \
                 AND bucket >= ?"
            ))
            .await?,
        read_total_in: session
            .prepare(format!(
                "SELECT video_id, bucket FROM {ks}.counts WHERE video_id IN ? AND event_type = ? \
                 AND granularity = ? AND bucket >= ?"
            ))
            .await?,
    };
    let tck = a.clk_tck as f64;
    println!("| layout | repeat | series | rows | wall s | Cassandra CPU s | CPU µs per series | CPU µs per row |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut sums = vec![(0.0f64, 0usize); Layout::ALL.len()];
    for r in 0..a.repeat {
        for (i, layout) in Layout::ALL.into_iter().enumerate() {
            let videos: Vec<Uuid> = (0..a.series).map(|_| Uuid::new_v4()).collect();
            let now = chrono::Utc::now().timestamp_millis();
            let ts = now * 1000;
            let t0 = proc_ticks(a.cassandra_pid).context("reading the Cassandra process's CPU")?;
            let started = Instant::now();
            let (s, st) = (&session, &st);
            let results: Vec<anyhow::Result<()>> = futures::stream::iter(videos.chunks(layout.series_per_request()))
                .map(|v| write_series(s, st, layout, v, now, ts))
                .buffer_unordered(a.concurrency)
                .collect()
                .await;
            results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
            let wall = started.elapsed().as_secs_f64();
            // Cassandra keeps working a moment after the last answer (memtable, commitlog).
            tokio::time::sleep(Duration::from_millis(500)).await;
            let cpu = (proc_ticks(a.cassandra_pid).context("cassandra gone")? - t0) as f64 / tck;
            sums[i].0 += cpu;
            sums[i].1 += a.series;
            let per = cpu * 1e6 / a.series as f64;
            println!(
                "| {} | {r} | {} | {} | {wall:.1} | {cpu:.2} | {per:.0} | {:.0} |",
                layout.name(),
                a.series,
                layout.rows(),
                per / layout.rows() as f64
            );
        }
    }
    println!();
    println!("| layout | rows per series | series per request | CPU µs per series (all repeats) | CPU µs per row |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (i, layout) in Layout::ALL.into_iter().enumerate() {
        let per = sums[i].0 * 1e6 / sums[i].1 as f64;
        let (name, rows, group) = (layout.name(), layout.rows(), layout.series_per_request());
        println!("| {name} | {rows} | {group} | {per:.0} | {:.0} |", per / rows as f64);
    }
    session.query_unpaged(format!("DROP KEYSPACE IF EXISTS {ks}"), &[]).await?;
    Ok(())
}
