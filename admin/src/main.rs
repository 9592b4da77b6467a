//! Small operator tasks against the store and the log.
//!
//!   vcount-admin keyspaces [--prefix P]        list keyspaces
//!   vcount-admin drop-keyspaces --prefix P     drop every keyspace whose name starts with P
//!   vcount-admin api-key --name N              make a producer API key for the gateway
//!   vcount-admin moderators grant --user-id ID [--note TEXT]   make a user a moderator (audited)
//!   vcount-admin moderators revoke --user-id ID [--note TEXT]  take the role away (audited)
//!   vcount-admin moderators list               every moderator, by email
//!   vcount-admin partitions list   [--keyspace K] [--topic T] [--halted]
//!   vcount-admin partitions show   --topic T --partition N
//!   vcount-admin partitions resume --topic T --partition N [--from earliest|latest|OFFSET]
//!   vcount-admin dlq replay [--topic-prefix P] [--dry-run] [--max N]   send countable dead letters back
//!   vcount-admin correct --video ID [--type view] --from T --to T --zero --reason R   zero a range's minutes
//!   vcount-admin correct --video ID [--type view] --at T --add N [--events M] --reason R   change one minute by N (M events)
//!   vcount-admin rebuild --into KEYSPACE [--group G] [--config FILE]   recount the log, compare with the live counts
//!   vcount-admin copy-rollups-to-counts [--keyspace K] [--group G]
//!       carry the per-flush aggregator's counts into the rounds' table, once, with
//!       every aggregator stopped (`platform::admin::copy_rollups_to_counts`)
//!
//! `scripts/test` drops the `t_` keyspaces earlier test runs left behind: every test
//! makes a keyspace of its own, and a Cassandra that keeps hundreds of them (about
//! twenty tables each) runs out of heap.
//!
//! `moderators` is how the first moderator comes to be (`platform::moderation`): by
//! user id, never by email (emails are not verified). The query service checks the
//! role in the store on every moderation request, so a grant or revoke is in effect
//! at once.
//! `partitions` is the operator's side of a halted partition (`platform::admin`,
//! which says what each command does and why). `dlq replay` sends the dead letters
//! today's aggregator can count back to their partitions, exactly once
//! (`aggregator::replay` says how); it needs Kafka only.
//!
//! This is a crate of its own because `dlq replay` decides with the aggregator's
//! own decoder what is countable now, and the aggregator depends on `platform`.

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use futures::TryStreamExt;
use platform::admin::{From, PartitionAdmin};
use scylla::client::session::Session;
use vcount_admin::correct;

#[derive(Parser)]
#[command(about = "Operator tasks against the vcount store and log")]
struct Cli {
    /// Cassandra contact points, host:port, comma-separated.
    #[arg(long, env = "VCOUNT_CASSANDRA_NODES", default_value = "127.0.0.1:19042")]
    nodes: String,
    /// Kafka bootstrap servers (for `partitions` and `dlq`).
    #[arg(long, env = "VCOUNT_KAFKA_BROKERS", default_value = "127.0.0.1:19092")]
    brokers: String,
    /// The aggregators' `event_types` (comma-separated, besides the five built-ins):
    /// `dlq replay` sends back only events of these types.
    #[arg(long, env = "VCOUNT_EVENT_TYPES", default_value = "watch_seconds", value_delimiter = ',')]
    event_types: Vec<String>,
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
    /// Inspect and resume the aggregator's partitions.
    Partitions {
        /// The aggregator's keyspace (`cassandra.keyspace`).
        #[arg(long, global = true, env = "VCOUNT_KEYSPACE", default_value = "vcount")]
        keyspace: String,
        /// The aggregator's consumer group (`consumer.group_id`); a ratings topic's
        /// group is this plus `-ratings`, as the aggregator names it.
        #[arg(long, global = true, env = "VCOUNT_GROUP", default_value = "vcount-aggregator")]
        group: String,
        #[command(subcommand)]
        command: PartitionsCommand,
    },
    /// Take counts back (`--zero` a range) or add them (`--add N` at a minute) through
    /// the log, as compensating events the aggregator counts exactly once; recorded in
    /// the moderation audit log. `--dry-run` shows what would be sent.
    Correct {
        /// The keyspace the aggregator writes (`cassandra.keyspace`).
        #[arg(long, env = "VCOUNT_KEYSPACE", default_value = "vcount")]
        keyspace: String,
        /// The deployment's topic prefix (`kafka.topic_prefix`).
        #[arg(long, env = "VCOUNT_TOPIC_PREFIX", default_value = "")]
        topic_prefix: String,
        /// The video whose counts change.
        #[arg(long)]
        video: uuid::Uuid,
        /// The event type: view, play, like, share, complete or a configured one.
        #[arg(long = "type", default_value = "view", value_parser = counting::EventKind::intern)]
        kind: counting::EventKind,
        /// `--zero`: the range's first minute (RFC 3339, whole minutes).
        #[arg(long, requires_all = ["to", "zero"], conflicts_with_all = ["at", "add"])]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// `--zero`: the minute after the range's last.
        #[arg(long, requires = "from")]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// Every minute of [from, to) to 0, as read now.
        #[arg(long, requires = "from")]
        zero: bool,
        /// `--add`: the minute to change.
        #[arg(long, requires = "add")]
        at: Option<chrono::DateTime<chrono::Utc>>,
        /// `--add`: by how much (negative takes away: `--add=-40`).
        #[arg(long, requires = "at", allow_negative_numbers = true)]
        add: Option<i64>,
        /// `--add`: by how many events (default: the amount, as N events of
        /// value 1; `--add 300 --events 1` is one event of value 300).
        #[arg(long, requires = "add", allow_negative_numbers = true)]
        events: Option<i64>,
        /// Why: written to the audit log and onto each event.
        #[arg(long)]
        reason: String,
        /// The correction's id (default: a new one). The same id sends the same
        /// event ids, so a rerun after a failure is dropped as a repeat.
        #[arg(long)]
        id: Option<uuid::Uuid>,
        /// How long minute rows are kept (`retention.minute_secs`).
        #[arg(long, default_value_t = counting::Retention::default().minute_secs)]
        minute_retention_secs: u64,
        /// Read and show what would be sent; record and send nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Recount everything the log holds into a fresh keyspace with the aggregator's
    /// own code (the live aggregator's settings: `--config` and `AGGREGATOR__*`),
    /// then compare every all-time count with the live keyspace. Interrupted, it
    /// resumes when run again with the same `--into` and `--group`.
    Rebuild {
        /// The fresh keyspace (made with the whole schema).
        #[arg(long)]
        into: String,
        /// The rebuild's consumer group (default: the live group plus `-rebuild-` and the keyspace).
        #[arg(long)]
        group: Option<String>,
        /// The live aggregator's config file (as its `--config`).
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// Give up (resumable) after this long.
        #[arg(long, default_value_t = 3600)]
        timeout_secs: u64,
    },
    /// The dead-letter topic.
    Dlq {
        /// The deployment's topic prefix (`kafka.topic_prefix`).
        #[arg(long, global = true, env = "VCOUNT_TOPIC_PREFIX", default_value = "")]
        topic_prefix: String,
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Copy every `rollups` row into `counts` (moving from the per-flush aggregator to
    /// the rounds): refuses while any partition's last flush may be in doubt (stop
    /// every aggregator with SIGTERM first) or when `counts` already holds rows.
    CopyRollupsToCounts {
        #[arg(long, env = "VCOUNT_KEYSPACE", default_value = "vcount")]
        keyspace: String,
        #[arg(long, env = "VCOUNT_GROUP", default_value = "vcount-aggregator")]
        group: String,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Send every dead letter the current aggregator can count back to the events
    /// partition it came from, marked so that the aggregator drops a second copy
    /// (a replay interrupted between a batch and its commit: run it again within
    /// the aggregator's `dedup.window_secs`). Lists what it leaves, and why.
    Replay {
        /// Classify and list only: nothing is sent, nothing committed.
        #[arg(long)]
        dry_run: bool,
        /// Read at most this many dead letters.
        #[arg(long, default_value_t = 1_000_000)]
        max: u64,
        /// The replay's consumer group (its offsets say what was handled).
        #[arg(long, default_value = "vcount-dlq-replay")]
        group: String,
    },
}

/// Runs a rebuild and prints the comparison.
async fn rebuild(
    into: String,
    group: Option<String>,
    config: Option<&std::path::Path>,
    timeout_secs: u64,
) -> anyhow::Result<()> {
    let live: aggregator::AggregatorConfig = platform::config::load("AGGREGATOR", config)?;
    let group = group.unwrap_or_else(|| format!("{}-rebuild-{into}", live.consumer.group_id));
    let keyspace = live.cassandra.keyspace.clone();
    let r = vcount_admin::rebuild::Rebuild { live, into, group, timeout: Duration::from_secs(timeout_secs) };
    let report = vcount_admin::rebuild::rebuild(&r).await?;
    let through: Vec<String> = report.rebuilt_through.iter().map(|((t, p), o)| format!("{t}/{p}@{o}")).collect();
    println!("recounted the log into {} through {}", r.into, through.join(" "));
    println!("{} series; {} differ from {keyspace}", report.series, report.differences.len());
    for d in &report.differences {
        println!("  {} {}: live {}, rebuilt {}", d.video, d.kind, d.live, d.rebuilt);
    }
    if report.exact {
        println!("the comparison is exact: both counted the whole log, to the same offsets");
    } else {
        println!("the comparison is not exact:");
        for c in &report.caveats {
            println!("  {c}");
        }
    }
    let feed = if r.live.feed.keyspace.is_empty() { &keyspace } else { &r.live.feed.keyspace };
    println!("to move readers onto {} (README, \"Rebuilding the counts\"):", r.into);
    println!(
        "  1. start aggregators with AGGREGATOR__CASSANDRA__KEYSPACE={} AGGREGATOR__CONSUMER__GROUP_ID={} \
         AGGREGATOR__FEED__KEYSPACE={feed} beside the live ones; wait until their lag is near 0",
        r.into, r.group
    );
    println!("  2. restart the query services with QUERY__COUNTS__KEYSPACE={}", r.into);
    println!("  3. stop the old aggregators (group {})", r.live.consumer.group_id);
    Ok(())
}

/// Runs a replay and prints what it did.
async fn dlq_replay(
    brokers: &str,
    event_types: &[String],
    topic_prefix: &str,
    dry_run: bool,
    max: u64,
    group: String,
) -> anyhow::Result<()> {
    let kafka = platform::kafka::KafkaConfig {
        brokers: brokers.to_owned(),
        topic_prefix: topic_prefix.to_owned(),
        ..Default::default()
    };
    let mut opts = aggregator::replay::ReplayOptions::new(kafka);
    (opts.dry_run, opts.max_messages, opts.group) = (dry_run, max, group);
    let names: Vec<&str> = event_types.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect();
    opts.types = counting::EventTypes::new(&names).context("--event-types")?;
    let r = aggregator::replay::replay(&opts).await?;
    let verb = if dry_run { "would replay" } else { "replayed" };
    println!("read {} dead letters; {verb} {}, left {}", r.read, r.replayed, r.skipped.len());
    for (p, n) in &r.by_partition {
        println!("  {verb} {n} to partition {p} of {}", opts.kafka.events_topic());
    }
    for s in &r.skipped {
        println!("  left {}/{} at offset {}: {}", opts.kafka.dead_letter_topic(), s.dlq_partition, s.dlq_offset, s.why);
    }
    if r.stopped_at_max {
        println!("stopped after {max} (--max); run again for the rest");
    }
    Ok(())
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
    session: &Session,
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

#[derive(Subcommand)]
enum PartitionsCommand {
    /// Every partition the aggregator has owned: epoch, attempted, halt.
    List {
        #[arg(long)]
        topic: Option<String>,
        /// Only the halted ones.
        #[arg(long)]
        halted: bool,
    },
    /// One partition: its state, its halt, and the group's and log's offsets.
    Show {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
    },
    /// Clear a partition's halt; its owner takes it up again within a flush interval.
    Resume {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
        /// Resume from `committed` (the default), `earliest` (the log's first
        /// stored offset), `latest` (its end) or an offset. Never before the
        /// committed offset; what lies between is not counted.
        #[arg(long, default_value = "committed")]
        from: From,
    },
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
    if let Command::Dlq { topic_prefix, command: DlqCommand::Replay { dry_run, max, group } } = cli.command {
        return dlq_replay(&cli.brokers, &cli.event_types, &topic_prefix, dry_run, max, group).await;
    }
    if let Command::Rebuild { into, group, config, timeout_secs } = cli.command {
        return rebuild(into, group, config.as_deref(), timeout_secs).await;
    }
    let cfg = platform::cassandra::CassandraConfig { nodes: cli.nodes.clone(), ..Default::default() };
    let session = platform::cassandra::connect(&cfg, Duration::from_secs(30)).await?;
    match cli.command {
        Command::ApiKey { .. } | Command::Dlq { .. } | Command::Rebuild { .. } => unreachable!("handled above"),
        Command::CopyRollupsToCounts { keyspace, group } => {
            let admin = PartitionAdmin::new(session, &keyspace, &group, &cli.brokers)?;
            let mut states = Vec::new();
            for p in admin.list().await? {
                let committed = admin.log_view(&p.topic, p.partition).await?.committed;
                states.push((p, committed));
            }
            let doubts = platform::admin::in_doubt(&states);
            if !doubts.is_empty() {
                for d in &doubts {
                    eprintln!("{d}");
                }
                anyhow::bail!("{} partitions may have a flush in doubt: nothing copied", doubts.len());
            }
            let copied = platform::admin::copy_rollups_to_counts(&admin.session, &keyspace).await?;
            println!("copied {copied} rows from {keyspace}.rollups into {keyspace}.counts");
        }
        Command::Correct {
            keyspace,
            topic_prefix,
            video,
            kind,
            from,
            to,
            zero: _,
            at,
            add,
            events,
            reason,
            id,
            minute_retention_secs,
            dry_run,
        } => {
            let change = match (from, to, at, add) {
                (Some(f), Some(t), None, None) => {
                    correct::Change::Zero { from_ms: f.timestamp_millis(), to_ms: t.timestamp_millis() }
                }
                (None, None, Some(at), Some(amount)) => {
                    correct::Change::Add { at_ms: at.timestamp_millis(), amount, events: events.unwrap_or(amount) }
                }
                _ => anyhow::bail!("give either --from T --to T --zero, or --at T --add N"),
            };
            anyhow::ensure!(!reason.trim().is_empty(), "--reason must say why");
            let c = correct::Correction { id: id.unwrap_or_else(uuid::Uuid::new_v4), video, kind, change, reason };
            let kafka =
                platform::kafka::KafkaConfig { brokers: cli.brokers.clone(), topic_prefix, ..Default::default() };
            let target = correct::Target {
                session: std::sync::Arc::new(session),
                keyspace,
                kafka,
                minute_retention_ms: i64::try_from(minute_retention_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            };
            let out = correct::run(&target, &c, dry_run).await?;
            let total: i64 = out.sent.iter().map(|k| k.value).sum();
            let verb = if out.dry_run { "would send" } else { "sent" };
            println!("correction {}: {verb} {} compensating events, {total:+} {}s in all", c.id, out.sent.len(), kind);
            for k in &out.sent {
                println!(
                    "  {} {:+}",
                    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(k.minute_ms).unwrap_or_default(),
                    k.value
                );
            }
        }
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
            for n in keyspaces(&session).await?.iter().filter(|n| n.starts_with(&prefix)) {
                println!("{n}");
            }
        }
        Command::DropKeyspaces { prefix, older_than_mins } => {
            anyhow::ensure!(!prefix.is_empty() && !"system".starts_with(&prefix), "refusing prefix {prefix:?}");
            let names = keyspaces(&session).await?;
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
        Command::Partitions { keyspace, group, command } => {
            let admin = PartitionAdmin::new(session, &keyspace, &group, &cli.brokers)?;
            match command {
                PartitionsCommand::List { topic, halted } => list(&admin, topic.as_deref(), halted).await?,
                PartitionsCommand::Show { topic, partition } => show(&admin, &topic, partition).await?,
                PartitionsCommand::Resume { topic, partition, from } => {
                    let at = admin.resume(&topic, partition, from).await?;
                    let at = at.map(|o| format!(", resuming from offset {o}")).unwrap_or_default();
                    println!(
                        "partition {partition} of {topic}: halt cleared{at}; its owner takes it up within a flush interval"
                    );
                }
            }
        }
    }
    Ok(())
}

async fn keyspaces(session: &Session) -> anyhow::Result<Vec<String>> {
    let pager = session.query_iter("SELECT keyspace_name FROM system_schema.keyspaces", &[]).await?;
    Ok(pager.rows_stream::<(String,)>()?.map_ok(|(n,)| n).try_collect().await?)
}

fn time(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "-".into())
}

fn opt(v: Option<i64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

async fn list(admin: &PartitionAdmin, topic: Option<&str>, only_halted: bool) -> anyhow::Result<()> {
    println!("{:<40} {:>9} {:>6} {:>12}  halted", "topic", "partition", "epoch", "attempted");
    for p in admin.list().await? {
        if topic.is_some_and(|t| t != p.topic) || (only_halted && p.halted().is_none()) {
            continue;
        }
        let said = match (p.halted(), &p.halt) {
            (Some(r), Some(h)) => format!("{r} since {} at offset {}", time(h.halted_at_ms), opt(h.at_offset)),
            _ => "no".into(),
        };
        let (epoch, attempted) = (opt(p.epoch), opt(p.attempted));
        println!("{:<40} {:>9} {epoch:>6} {attempted:>12}  {said}", p.topic, p.partition);
    }
    Ok(())
}

async fn show(admin: &PartitionAdmin, topic: &str, partition: i32) -> anyhow::Result<()> {
    let view = admin.show(topic, partition).await?;
    println!("topic {topic} partition {partition} (keyspace {}, group {})", admin.keyspace, admin.group_of(topic));
    match &view {
        Some(v) => println!("  owner epoch {}, attempted {}", opt(v.epoch), opt(v.attempted)),
        None => println!("  never owned"),
    }
    match admin.log_view(topic, partition).await {
        Ok(l) => {
            let behind = l.committed.map_or_else(|| "-".into(), |c| (l.high - c).to_string());
            println!("  committed {}, log {}..{} ({behind} behind)", opt(l.committed), l.low, l.high);
        }
        Err(e) => println!("  kafka: {e:#}"),
    }
    match view.and_then(|v| v.halt) {
        Some(h) if h.reason.is_some() => {
            let reason = h.reason.unwrap_or_default();
            println!(
                "  HALTED: {reason} at offset {} since {} (by epoch {})",
                opt(h.at_offset),
                time(h.halted_at_ms),
                opt(h.by_epoch)
            );
            println!("  why: {}", h.detail);
            println!(
                "  resume: vcount-admin partitions resume --keyspace {} --topic {topic} --partition {partition} [--from earliest|latest|OFFSET]",
                admin.keyspace
            );
        }
        Some(h) => {
            let from = h.resume_from.map(|o| format!(", to resume from {o}")).unwrap_or_default();
            println!("  not halted (last halt: {}; resumed {}{from})", h.detail, time(h.resumed_at_ms));
        }
        None => println!("  not halted"),
    }
    Ok(())
}

/// When each keyspace got its first table: the earliest time in the time-based
/// (v1) ids Cassandra gives tables. A keyspace without tables has no age and is
/// kept (it may be one a test is creating now).
async fn keyspace_birth_secs(session: &Session) -> anyhow::Result<std::collections::HashMap<String, i64>> {
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
