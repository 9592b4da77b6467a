//! Peer B: one Redis `INCR views:{videoId}` per view, over one multiplexed
//! connection that reconnects by itself (the redis crate's `ConnectionManager`).

use anyhow::Context;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use uuid::Uuid;

pub struct RedisCounters {
    conn: ConnectionManager,
}

fn key(video: Uuid) -> String {
    format!("views:{video}")
}

impl RedisCounters {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).with_context(|| format!("redis url {url:?}"))?;
        let conn = ConnectionManager::new(client).await.with_context(|| format!("connecting to redis at {url}"))?;
        Ok(Self { conn })
    }

    pub async fn incr(&self, video: Uuid) -> anyhow::Result<()> {
        let _: i64 = self.conn.clone().incr(key(video), 1).await?;
        Ok(())
    }

    pub async fn views(&self, video: Uuid) -> anyhow::Result<i64> {
        let n: Option<i64> = self.conn.clone().get(key(video)).await?;
        Ok(n.unwrap_or(0))
    }

    pub async fn ping(&self) -> anyhow::Result<()> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn.clone()).await?;
        Ok(())
    }
}
