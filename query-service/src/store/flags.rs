//! Flags and moderation state: `flags` (by id, with a `version`),
//! `flags_by_status` (a partition per status plus `all`) and `moderation_state`
//! (whether a video or comment is hidden).
//!
//! A flag's status moves with a lightweight transaction on its `version`
//! (`IF version = <read>`), so two moderators acting at once cannot both win. The
//! listing rows are then placed (inserted under the new status, deleted from every
//! other) with the write timestamp `created_at_micros + version`, so placements
//! that reach Cassandra out of order still leave the flag listed under its latest
//! status only: the newer version's timestamp wins.

use std::sync::Arc;

use chrono::Utc;
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use uuid::Uuid;

use super::listing::Listing;
use super::users::time;
use super::{Result, StoreError, prepare};
use crate::domain::moderation::{ALL_FLAGS, ContentType, Flag, FlagStatus};
use crate::domain::paging::PageRequest;

pub struct Flags {
    session: Arc<Session>,
    read_state: PreparedStatement,
    write_state: PreparedStatement,
    /// The flag row and its listing rows in 'all' and 'open'.
    create: Batch,
    read_flag: PreparedStatement,
    /// Lightweight transaction: `IF version = ?`.
    act: PreparedStatement,
    /// Lists a flag under its status only: deletes it from the other statuses.
    relist: Batch,
    listing: Listing,
}

#[derive(scylla::DeserializeRow)]
struct FlagRow {
    #[scylla(rename = "flagid")]
    flag_id: Uuid,
    content_type: Option<String>,
    content_id: Option<Uuid>,
    reason_code: Option<String>,
    reason_text: Option<String>,
    #[scylla(rename = "userid")]
    user_id: Option<Uuid>,
    created_at: Option<CqlTimestamp>,
    updated_at: Option<CqlTimestamp>,
    status: Option<String>,
    moderator_id: Option<Uuid>,
    moderator_notes: Option<String>,
    resolved_at: Option<CqlTimestamp>,
    version: Option<i32>,
}

impl From<FlagRow> for Flag {
    fn from(r: FlagRow) -> Self {
        Self {
            flag_id: r.flag_id,
            content_type: r.content_type.unwrap_or_default(),
            content_id: r.content_id,
            reason_code: r.reason_code.unwrap_or_default(),
            reason_text: r.reason_text,
            user_id: r.user_id,
            created_at: time(r.created_at),
            updated_at: time(r.updated_at),
            status: r.status.unwrap_or_default(),
            moderator_id: r.moderator_id,
            moderator_notes: r.moderator_notes,
            resolved_at: time(r.resolved_at),
            version: r.version.unwrap_or(0),
        }
    }
}

#[derive(scylla::DeserializeRow)]
struct HiddenRow {
    hidden: Option<bool>,
}

#[derive(scylla::DeserializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct FlagIdRow {
    id: Uuid,
}

const FLAG_COLUMNS: &str = "flagid, content_type, content_id, reason_code, reason_text, userid, created_at, \
                            updated_at, status, moderator_id, moderator_notes, resolved_at, version";

fn millis(t: Option<chrono::DateTime<Utc>>) -> Option<CqlTimestamp> {
    t.map(|t| CqlTimestamp(t.timestamp_millis()))
}

impl Flags {
    pub async fn new(session: Arc<Session>, ks: &str) -> anyhow::Result<Self> {
        let s = &session;
        let mut create = Batch::new(BatchType::Logged);
        create.append_statement(
            prepare(
                s,
                format!("INSERT INTO {ks}.flags ({FLAG_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                true,
            )
            .await?,
        );
        let index = prepare(
            s,
            format!("INSERT INTO {ks}.flags_by_status (status, flagid) VALUES (?, ?) USING TIMESTAMP ?"),
            true,
        )
        .await?;
        create.append_statement(index.clone());
        create.append_statement(index.clone());
        create.set_is_idempotent(true);
        let unindex = prepare(
            s,
            format!("DELETE FROM {ks}.flags_by_status USING TIMESTAMP ? WHERE status = ? AND flagid = ?"),
            true,
        )
        .await?;
        let mut relist = Batch::new(BatchType::Logged);
        for _ in 1..FlagStatus::ALL.len() {
            relist.append_statement(unindex.clone());
        }
        relist.append_statement(index);
        relist.set_is_idempotent(true);
        Ok(Self {
            read_state: prepare(
                s,
                format!("SELECT hidden FROM {ks}.moderation_state WHERE content_type = ? AND content_id = ?"),
                true,
            )
            .await?,
            write_state: prepare(
                s,
                format!(
                    "INSERT INTO {ks}.moderation_state (content_type, content_id, hidden, updated_at, moderator_id) \
                     VALUES (?, ?, ?, ?, ?)"
                ),
                true,
            )
            .await?,
            create,
            read_flag: prepare(s, format!("SELECT {FLAG_COLUMNS} FROM {ks}.flags WHERE flagid = ?"), true).await?,
            act: prepare(
                s,
                format!(
                    "UPDATE {ks}.flags SET status = ?, updated_at = ?, moderator_id = ?, moderator_notes = ?, \
                     resolved_at = ?, version = ? WHERE flagid = ? IF version = ?"
                ),
                false,
            )
            .await?,
            relist,
            listing: Listing::new(s, ks, "flags_by_status", "status", "flagid", "flagid").await?,
            session,
        })
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<Flag>> {
        let rows = self.session.execute_unpaged(&self.read_flag, (id,)).await?.into_rows_result()?;
        Ok(rows.maybe_first_row::<FlagRow>()?.map(Flag::from))
    }

    /// Writes a new flag and lists it under `all` and its status.
    pub async fn create(&self, flag: &Flag) -> Result<()> {
        let row = (
            flag.flag_id,
            &flag.content_type,
            flag.content_id,
            &flag.reason_code,
            &flag.reason_text,
            flag.user_id,
            millis(flag.created_at),
            millis(flag.updated_at),
            &flag.status,
            flag.moderator_id,
            &flag.moderator_notes,
            millis(flag.resolved_at),
            flag.version,
        );
        let (id, ts) = (flag.flag_id, flag.listing_ts(flag.version));
        self.session.batch(&self.create, (row, (ALL_FLAGS, id, ts), (&flag.status, id, ts))).await?;
        Ok(())
    }

    /// Stores `flag`'s new state if its version is still `old_version`; `false`
    /// when another action got there first.
    pub async fn update(&self, flag: &Flag, old_version: i32, at: CqlTimestamp) -> Result<bool> {
        let values = (
            &flag.status,
            at,
            flag.moderator_id,
            &flag.moderator_notes,
            millis(flag.resolved_at),
            flag.version,
            flag.flag_id,
            old_version,
        );
        let res = self.session.execute_unpaged(&self.act, values).await?;
        Ok(platform::cassandra::applied(res)?)
    }

    /// A page of the flag ids listed under `listing` (a status or `all`).
    pub async fn listed(&self, listing: &str, req: PageRequest) -> Result<(Vec<Uuid>, u64)> {
        let (rows, total) = self.listing.page::<_, FlagIdRow>(&self.session, listing, req).await?;
        Ok((rows.into_iter().map(|r| r.id).collect(), total))
    }

    /// Lists `flag` under its status and under no other, fenced by its version.
    /// Deleting from every other status (not just the one it left) makes a retry
    /// after a half-done action, and a repair, put things right whatever was missed.
    pub async fn place_listing(&self, flag: &Flag) -> Result<()> {
        let (id, ts) = (flag.flag_id, flag.listing_ts(flag.version));
        let mut others = FlagStatus::ALL.into_iter().map(FlagStatus::as_str).filter(|s| *s != flag.status);
        let (Some(a), Some(b), Some(c), None) = (others.next(), others.next(), others.next(), others.next()) else {
            return Err(StoreError::Inconsistent(format!("flag {id} has the unknown status {:?}", flag.status)));
        };
        let values = ((ts, a, id), (ts, b, id), (ts, c, id), (&flag.status, id, ts));
        self.session.batch(&self.relist, values).await?;
        Ok(())
    }

    /// Whether a moderator hid this content.
    pub async fn hidden(&self, content: ContentType, id: Uuid) -> Result<bool> {
        let rows = self.session.execute_unpaged(&self.read_state, (content.as_str(), id)).await?.into_rows_result()?;
        Ok(rows.maybe_first_row::<HiddenRow>()?.and_then(|r| r.hidden).unwrap_or(false))
    }

    pub async fn set_hidden(&self, content: ContentType, id: Uuid, hide: bool, by: Uuid) -> Result<()> {
        let now = CqlTimestamp(Utc::now().timestamp_millis());
        self.session.execute_unpaged(&self.write_state, (content.as_str(), id, hide, now, by)).await?;
        Ok(())
    }
}
