//! Peer A: KillrVideo's view counter, one Cassandra counter `UPDATE` per view
//! (its `video_playback_stats` table and statement, prepared once).

use std::time::Duration;

use anyhow::Context;
use platform::cassandra::CassandraConfig;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::Counter;
use uuid::Uuid;

pub struct CounterTable {
    session: Session,
    incr: PreparedStatement,
    read: PreparedStatement,
}

impl CounterTable {
    /// Connects, creates the keyspace and table if missing, prepares both statements.
    pub async fn connect(nodes: &str, keyspace: &str, consistency: &str) -> anyhow::Result<Self> {
        let cfg = CassandraConfig {
            nodes: nodes.to_owned(),
            keyspace: keyspace.to_owned(),
            consistency: consistency.to_owned(),
            ..CassandraConfig::default()
        };
        platform::cassandra::check_keyspace(keyspace)?;
        let session = platform::cassandra::connect(&cfg, Duration::from_secs(60)).await?;
        session
            .query_unpaged(schemas::cql::create_keyspace(keyspace, &cfg.replication), &[])
            .await
            .context("creating keyspace")?;
        session
            .query_unpaged(
                format!(
                    "CREATE TABLE IF NOT EXISTS {keyspace}.video_playback_stats (videoid uuid PRIMARY KEY, views counter)"
                ),
                &[],
            )
            .await
            .context("creating video_playback_stats")?;
        session.await_schema_agreement().await.context("waiting for schema agreement")?;
        // A counter increment is not idempotent: the driver must never retry it on its own.
        let mut incr = session
            .prepare(format!("UPDATE {keyspace}.video_playback_stats SET views = views + 1 WHERE videoid = ?"))
            .await
            .context("preparing the counter update")?;
        incr.set_is_idempotent(false);
        let mut read = session
            .prepare(format!("SELECT views FROM {keyspace}.video_playback_stats WHERE videoid = ?"))
            .await
            .context("preparing the counter read")?;
        read.set_is_idempotent(true);
        Ok(Self { session, incr, read })
    }

    pub async fn incr(&self, video: Uuid) -> anyhow::Result<()> {
        self.session.execute_unpaged(&self.incr, (video,)).await?;
        Ok(())
    }

    pub async fn views(&self, video: Uuid) -> anyhow::Result<i64> {
        let rows = self.session.execute_unpaged(&self.read, (video,)).await?.into_rows_result()?;
        Ok(rows.maybe_first_row::<(Option<Counter>,)>()?.and_then(|(c,)| c).map_or(0, |c| c.0))
    }

    pub async fn ping(&self) -> anyhow::Result<()> {
        Ok(platform::cassandra::ping(&self.session).await?)
    }
}
