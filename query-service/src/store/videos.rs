//! `videos`: one row per video, the catalog's source of truth for titles, tags
//! and status (the indexes hold ids only).

use std::collections::BTreeSet;
use std::sync::Arc;

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use uuid::Uuid;

use super::{Result, prepare};

pub struct Videos {
    session: Arc<Session>,
    insert: PreparedStatement,
    read: PreparedStatement,
    set_status: PreparedStatement,
    update: PreparedStatement,
}

/// A `videos` row.
#[derive(Clone, Debug, scylla::DeserializeRow)]
pub struct VideoRow {
    #[scylla(rename = "videoid")]
    pub video_id: Uuid,
    #[scylla(rename = "userid")]
    pub user_id: Option<Uuid>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub tags: Option<BTreeSet<String>>,
    pub submitted_at: Option<CqlTimestamp>,
    pub updated_at: Option<CqlTimestamp>,
    pub youtube_video_id: Option<String>,
    pub thumbnail_url: Option<String>,
    pub status: Option<String>,
}

const COLUMNS: &str =
    "videoid, userid, title, description, tags, submitted_at, updated_at, youtube_video_id, thumbnail_url, status";

impl Videos {
    pub async fn new(session: Arc<Session>, ks: &str) -> anyhow::Result<Self> {
        // None is marked idempotent: the driver does not retry them on its own.
        let prep = |cql: String| {
            let session = session.clone();
            async move { prepare(&session, cql, false).await }
        };
        Ok(Self {
            insert: prep(format!("INSERT INTO {ks}.videos ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")).await?,
            read: prep(format!("SELECT {COLUMNS} FROM {ks}.videos WHERE videoid = ?")).await?,
            set_status: prep(format!("UPDATE {ks}.videos SET status = ? WHERE videoid = ?")).await?,
            update: prep(format!(
                "UPDATE {ks}.videos SET title = ?, description = ?, tags = ?, updated_at = ? WHERE videoid = ?"
            ))
            .await?,
            session,
        })
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<VideoRow>> {
        let rows = self.session.execute_unpaged(&self.read, (id,)).await?.into_rows_result()?;
        Ok(rows.maybe_first_row::<VideoRow>()?)
    }

    /// Writes a new video's row (every column).
    pub async fn insert(&self, v: &VideoRow) -> Result<()> {
        let row = (
            v.video_id,
            v.user_id,
            &v.title,
            &v.description,
            &v.tags,
            v.submitted_at,
            v.updated_at,
            &v.youtube_video_id,
            &v.thumbnail_url,
            &v.status,
        );
        self.session.execute_unpaged(&self.insert, row).await?;
        Ok(())
    }

    pub async fn set_status(&self, id: Uuid, status: &str) -> Result<()> {
        self.session.execute_unpaged(&self.set_status, (status, id)).await?;
        Ok(())
    }

    pub async fn update(
        &self,
        id: Uuid,
        title: &str,
        description: &str,
        tags: &BTreeSet<String>,
        at: CqlTimestamp,
    ) -> Result<()> {
        self.session.execute_unpaged(&self.update, (title, description, tags, at, id)).await?;
        Ok(())
    }
}
