//! Small operator tasks against the store.
//!
//!   vcount-admin keyspaces [--prefix P]        list keyspaces
//!   vcount-admin drop-keyspaces --prefix P     drop every keyspace whose name starts with P
//!
//! `scripts/test` drops the `t_` keyspaces earlier test runs left behind: every test
//! makes a keyspace of its own, and a Cassandra that keeps hundreds of them (about
//! twenty tables each) runs out of heap.

use std::time::Duration;

use clap::{Parser, Subcommand};
use futures::TryStreamExt;

#[derive(Parser)]
#[command(about = "Operator tasks against the vcount store")]
struct Cli {
    /// Cassandra contact points, host:port, comma-separated.
    #[arg(long, env = "VCOUNT_CASSANDRA_NODES", default_value = "127.0.0.1:19042")]
    nodes: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List keyspaces (all, or those starting with a prefix).
    Keyspaces {
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Drop every keyspace whose name starts with the prefix (never empty, never `system`).
    DropKeyspaces {
        #[arg(long)]
        prefix: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cfg = platform::cassandra::CassandraConfig { nodes: cli.nodes.clone(), ..Default::default() };
    let session = platform::cassandra::connect(&cfg, Duration::from_secs(30)).await?;
    let pager = session.query_iter("SELECT keyspace_name FROM system_schema.keyspaces", &[]).await?;
    let names: Vec<String> = pager.rows_stream::<(String,)>()?.map_ok(|(n,)| n).try_collect().await?;
    match cli.command {
        Command::Keyspaces { prefix } => {
            for n in names.iter().filter(|n| n.starts_with(&prefix)) {
                println!("{n}");
            }
        }
        Command::DropKeyspaces { prefix } => {
            anyhow::ensure!(!prefix.is_empty() && !"system".starts_with(&prefix), "refusing prefix {prefix:?}");
            let doomed: Vec<&String> = names.iter().filter(|n| n.starts_with(&prefix)).collect();
            for n in &doomed {
                platform::cassandra::drop_keyspace(&session, n).await?;
            }
            println!("dropped {} keyspaces starting with {prefix:?}", doomed.len());
        }
    }
    Ok(())
}
