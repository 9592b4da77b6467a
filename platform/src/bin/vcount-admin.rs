//! Small operator tasks against the store.
//!
//!   vcount-admin keyspaces [--prefix P]        list keyspaces
//!   vcount-admin drop-keyspaces --prefix P     drop every keyspace whose name starts with P
//!   vcount-admin api-key --name N              make a producer API key for the gateway
//!   vcount-admin moderators grant --user-id ID [--note TEXT]   make a user a moderator (audited)
//!   vcount-admin moderators revoke --user-id ID [--note TEXT]  take the role away (audited)
//!   vcount-admin moderators list               every moderator, by email
//!
//! `scripts/test` drops the `t_` keyspaces earlier test runs left behind: every test
//! makes a keyspace of its own, and a Cassandra that keeps hundreds of them (about
//! twenty tables each) runs out of heap.
//!
//! `moderators` is how the first moderator comes to be (`platform::moderation`): by
//! user id, never by email (emails are not verified). The query service checks the
//! role in the store on every moderation request, so a grant or revoke is in effect
//! at once.

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
        /// Only keyspaces made more than this many minutes ago (by their
        /// `schema_migrations` table's time-based id), so that developers sharing
        /// one Cassandra can clear leftovers without dropping a running test's.
        #[arg(long)]
        older_than_mins: Option<u64>,
    },
    /// Make a producer API key: prints the key (give it to the producer, once) and the
    /// gateway config entry holding only its SHA-256. Touches no server.
    ApiKey {
        /// Who will hold it (shown in logs instead of the key).
        #[arg(long)]
        name: String,
        /// The key's own rate limit, events per second (0: none).
        #[arg(long, default_value_t = 1000)]
        per_second: u32,
        #[arg(long, default_value_t = 2000)]
        burst: u32,
    },
    /// Grant, revoke and list the moderator role.
    Moderators {
        /// The query service's keyspace (`cassandra.keyspace`).
        #[arg(long, global = true, env = "VCOUNT_KEYSPACE", default_value = "vcount")]
        keyspace: String,
        #[command(subcommand)]
        command: ModeratorsCommand,
    },
}

#[derive(Subcommand)]
enum ModeratorsCommand {
    /// Make a registered user a moderator (the audit log says vcount-admin did).
    Grant {
        #[arg(long)]
        user_id: uuid::Uuid,
        /// Why, for the audit log (default: the operator's login name).
        #[arg(long)]
        note: Option<String>,
    },
    /// Take the role away; the user's next moderation request is refused.
    Revoke {
        #[arg(long)]
        user_id: uuid::Uuid,
        #[arg(long)]
        note: Option<String>,
    },
    /// Every user holding the role (scans the users table).
    List,
}

/// Grants or revokes, and says what happened.
async fn moderator(
    session: &scylla::client::session::Session,
    keyspace: &str,
    user: uuid::Uuid,
    on: bool,
    note: Option<String>,
) -> anyhow::Result<()> {
    use platform::moderation::{Actor, Moderation, RoleChange};
    let m = Moderation::new(session, keyspace).await?;
    let operator = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let note = Some(note.unwrap_or_else(|| format!("operator {operator}")));
    match m.set_moderator(session, Actor::Admin, user, on, note).await? {
        RoleChange::NoSuchUser => anyhow::bail!("no user {user} in keyspace {keyspace} (register the account first)"),
        RoleChange::Done { had_it } => {
            let (verb, already) = if on { ("granted", had_it) } else { ("revoked", !had_it) };
            let note = if already { " (no change: it already was so)" } else { "" };
            println!("moderator role {verb} for {user}{note}; recorded in {keyspace}.moderation_audit");
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::ApiKey { name, per_second, burst } = &cli.command {
        let (key, hash) = platform::apikeys::generate();
        println!("key (give it to {name}; it is not stored anywhere): {key}");
        println!("gateway config (TOML, [producers] section):");
        println!("  keys = [{{ name = {name:?}, sha256 = \"{hash}\", per_second = {per_second}, burst = {burst} }}]");
        println!("or as an environment variable:");
        println!(
            "  GATEWAY__PRODUCERS__KEYS='[{{name={name:?},sha256=\"{hash}\",per_second={per_second},burst={burst}}}]'"
        );
        return Ok(());
    }
    let cfg = platform::cassandra::CassandraConfig { nodes: cli.nodes.clone(), ..Default::default() };
    let session = platform::cassandra::connect(&cfg, Duration::from_secs(30)).await?;
    let pager = session.query_iter("SELECT keyspace_name FROM system_schema.keyspaces", &[]).await?;
    let names: Vec<String> = pager.rows_stream::<(String,)>()?.map_ok(|(n,)| n).try_collect().await?;
    match cli.command {
        Command::ApiKey { .. } => unreachable!("handled above"),
        Command::Moderators { keyspace, command } => match command {
            ModeratorsCommand::Grant { user_id, note } => moderator(&session, &keyspace, user_id, true, note).await?,
            ModeratorsCommand::Revoke { user_id, note } => moderator(&session, &keyspace, user_id, false, note).await?,
            ModeratorsCommand::List => {
                let m = platform::moderation::Moderation::new(&session, &keyspace).await?;
                for (id, email) in m.moderators(&session).await? {
                    println!("{id}  {email}");
                }
            }
        },
        Command::Keyspaces { prefix } => {
            for n in names.iter().filter(|n| n.starts_with(&prefix)) {
                println!("{n}");
            }
        }
        Command::DropKeyspaces { prefix, older_than_mins } => {
            anyhow::ensure!(!prefix.is_empty() && !"system".starts_with(&prefix), "refusing prefix {prefix:?}");
            let mut doomed: Vec<&String> = names.iter().filter(|n| n.starts_with(&prefix)).collect();
            if let Some(mins) = older_than_mins {
                let made = keyspace_birth_secs(&session).await?;
                let cutoff = chrono::Utc::now().timestamp() - 60 * mins as i64;
                doomed.retain(|n| made.get(n.as_str()).is_some_and(|&t| t < cutoff));
            }
            for n in &doomed {
                platform::cassandra::drop_keyspace(&session, n).await?;
            }
            println!("dropped {} keyspaces starting with {prefix:?}", doomed.len());
        }
    }
    Ok(())
}

/// When each keyspace got its first table: the earliest time in the time-based
/// (v1) ids Cassandra gives tables. A keyspace without tables has no age and is
/// kept (it may be one a test is creating now).
async fn keyspace_birth_secs(
    session: &scylla::client::session::Session,
) -> anyhow::Result<std::collections::HashMap<String, i64>> {
    let pager = session.query_iter("SELECT keyspace_name, table_name, id FROM system_schema.tables", &[]).await?;
    let rows: Vec<(String, String, uuid::Uuid)> = pager.rows_stream()?.try_collect().await?;
    let mut born = std::collections::HashMap::new();
    for (ks, _, id) in rows {
        if let Some(t) = id.get_timestamp() {
            let secs = t.to_unix().0 as i64;
            born.entry(ks).and_modify(|b: &mut i64| *b = (*b).min(secs)).or_insert(secs);
        }
    }
    Ok(born)
}
