//! Comments and the activity feed: `comments_by_id`, `comments_by_video`,
//! `comments_by_user` and `user_activity`.
//!
//! A comment is written once, in one logged batch, to the three comment tables
//! and the author's `user_activity`: a logged batch because those are four
//! partitions, and a comment that shows in one list but not the other would be a
//! lasting lie. Ids are UUIDv7, so the DESC clustering order of the lists is
//! newest first and the id carries `createdAt`. Names are not copied into the
//! comment rows: they are read from `users` for the authors on a page, so a
//! renamed user's comments show the new name.

use std::sync::Arc;

use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use super::listing::Listing;
use super::{Result, prepare};
use crate::domain::paging::PageRequest;

/// A comment as stored.
#[derive(Clone, Debug)]
pub struct Comment {
    pub id: Uuid,
    pub video: Uuid,
    pub user: Uuid,
    pub text: String,
}

/// One entry of a user's activity feed.
#[derive(Debug, scylla::DeserializeRow)]
pub struct ActivityRow {
    /// A UUIDv7 taken at the activity's time: it orders the feed.
    pub activity_ts: Uuid,
    /// `view`, `comment` or `rate`.
    pub activity_type: Option<String>,
    /// The video for `view` and `rate`, the comment for `comment`.
    pub activity_id: Option<Uuid>,
}

#[derive(scylla::DeserializeRow)]
struct ByIdRow {
    #[scylla(rename = "videoid")]
    video_id: Option<Uuid>,
    #[scylla(rename = "userid")]
    user_id: Option<Uuid>,
    comment: Option<String>,
}

#[derive(scylla::DeserializeRow)]
struct ByVideoRow {
    #[scylla(rename = "commentid")]
    comment_id: Uuid,
    #[scylla(rename = "userid")]
    user_id: Option<Uuid>,
    comment: Option<String>,
}

#[derive(scylla::DeserializeRow)]
struct ByUserRow {
    #[scylla(rename = "commentid")]
    comment_id: Uuid,
    #[scylla(rename = "videoid")]
    video_id: Option<Uuid>,
    comment: Option<String>,
}

const ACTIVITY_COMMENT: &str = "comment";

pub struct Comments {
    session: Arc<Session>,
    /// Every row of a comment: by id, by video, by user, and its activity row.
    insert: Batch,
    /// The list and activity rows of a comment (hiding keeps the row by id).
    unlist: Batch,
    read: PreparedStatement,
    by_video: Listing,
    by_user: Listing,
    activity: Listing,
}

impl Comments {
    pub async fn new(session: Arc<Session>, ks: &str) -> anyhow::Result<Self> {
        let s = &session;
        let mut insert = Batch::new(BatchType::Logged);
        for cql in [
            format!("INSERT INTO {ks}.comments_by_id (commentid, videoid, userid, comment) VALUES (?, ?, ?, ?)"),
            format!("INSERT INTO {ks}.comments_by_video (videoid, commentid, userid, comment) VALUES (?, ?, ?, ?)"),
            format!("INSERT INTO {ks}.comments_by_user (userid, commentid, videoid, comment) VALUES (?, ?, ?, ?)"),
            format!(
                "INSERT INTO {ks}.user_activity (userid, activity_ts, activity_type, activity_id) VALUES (?, ?, ?, ?)"
            ),
        ] {
            insert.append_statement(prepare(s, cql, true).await?);
        }
        // Every value is fixed by the comment: writing it twice writes the same rows.
        insert.set_is_idempotent(true);
        let mut unlist = Batch::new(BatchType::Logged);
        for cql in [
            format!("DELETE FROM {ks}.comments_by_video WHERE videoid = ? AND commentid = ?"),
            format!("DELETE FROM {ks}.comments_by_user WHERE userid = ? AND commentid = ?"),
            format!("DELETE FROM {ks}.user_activity WHERE userid = ? AND activity_ts = ?"),
        ] {
            unlist.append_statement(prepare(s, cql, true).await?);
        }
        unlist.set_is_idempotent(true);
        Ok(Self {
            insert,
            unlist,
            read: prepare(
                s,
                format!("SELECT videoid, userid, comment FROM {ks}.comments_by_id WHERE commentid = ?"),
                true,
            )
            .await?,
            by_video: Listing::new(s, ks, "comments_by_video", "videoid", "commentid", "commentid, userid, comment")
                .await?,
            by_user: Listing::new(s, ks, "comments_by_user", "userid", "commentid", "commentid, videoid, comment")
                .await?,
            activity: Listing::new(
                s,
                ks,
                "user_activity",
                "userid",
                "activity_ts",
                "activity_ts, activity_type, activity_id",
            )
            .await?,
            session,
        })
    }

    /// Writes the comment into every table (also what restoring it does).
    pub async fn list(&self, c: &Comment) -> Result<()> {
        let values = (
            (c.id, c.video, c.user, &c.text),
            (c.video, c.id, c.user, &c.text),
            (c.user, c.id, c.video, &c.text),
            (c.user, c.id, ACTIVITY_COMMENT, c.id),
        );
        self.session.batch(&self.insert, values).await?;
        Ok(())
    }

    /// Takes the comment out of both lists and its author's activity; the row by
    /// id stays, for moderators and a later restore.
    pub async fn unlist(&self, c: &Comment) -> Result<()> {
        let values = ((c.video, c.id), (c.user, c.id), (c.user, c.id));
        self.session.batch(&self.unlist, values).await?;
        Ok(())
    }

    /// A comment by id, hidden or not.
    pub async fn get(&self, id: Uuid) -> Result<Option<Comment>> {
        let rows = self.session.execute_unpaged(&self.read, (id,)).await?.into_rows_result()?;
        Ok(rows.maybe_first_row::<ByIdRow>()?.map(|r| Comment {
            id,
            video: r.video_id.unwrap_or_default(),
            user: r.user_id.unwrap_or_default(),
            text: r.comment.unwrap_or_default(),
        }))
    }

    /// A page of a video's comments, newest first, and their number.
    pub async fn of_video(&self, video: Uuid, req: PageRequest) -> Result<(Vec<Comment>, u64)> {
        let (rows, total) = self.by_video.page::<_, ByVideoRow>(&self.session, video, req).await?;
        let comments = rows
            .into_iter()
            .map(|r| Comment {
                id: r.comment_id,
                video,
                user: r.user_id.unwrap_or_default(),
                text: r.comment.unwrap_or_default(),
            })
            .collect();
        Ok((comments, total))
    }

    /// A page of a user's comments, newest first, and their number.
    pub async fn of_user(&self, user: Uuid, req: PageRequest) -> Result<(Vec<Comment>, u64)> {
        let (rows, total) = self.by_user.page::<_, ByUserRow>(&self.session, user, req).await?;
        let comments = rows
            .into_iter()
            .map(|r| Comment {
                id: r.comment_id,
                video: r.video_id.unwrap_or_default(),
                user,
                text: r.comment.unwrap_or_default(),
            })
            .collect();
        Ok((comments, total))
    }

    /// A page of a user's activity feed, newest first, and its length.
    pub async fn activity(&self, user: Uuid, req: PageRequest) -> Result<(Vec<ActivityRow>, u64)> {
        self.activity.page::<_, ActivityRow>(&self.session, user, req).await
    }
}
