//! `moderation_audit` (migration 011) and the moderator role, through
//! `platform::moderation` (shared with `vcount-admin`, which grants the first
//! moderator), plus the paged read moderators see.

use std::sync::Arc;

use platform::moderation::{Actor, AuditEntry, Moderation, RoleChange};
use scylla::client::session::Session;
use scylla::value::CqlTimestamp;
use uuid::Uuid;

use super::Result;
use super::listing::Listing;
use crate::domain::paging::PageRequest;

pub struct Audit {
    session: Arc<Session>,
    moderation: Moderation,
    listing: Listing,
}

/// A row of the audit log.
#[derive(scylla::DeserializeRow)]
pub struct AuditRow {
    #[scylla(rename = "auditid")]
    pub audit_id: Uuid,
    pub created_at: Option<CqlTimestamp>,
    pub actor: Option<String>,
    pub moderator_id: Option<Uuid>,
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<Uuid>,
    pub status: Option<String>,
    pub notes: Option<String>,
}

const COLUMNS: &str = "auditid, created_at, actor, moderator_id, action, target_type, target_id, status, notes";

impl Audit {
    pub async fn new(session: Arc<Session>, ks: &str) -> anyhow::Result<Self> {
        Ok(Self {
            moderation: Moderation::new(&session, ks).await?,
            listing: Listing::new(&session, ks, "moderation_audit", "shard", "auditid", COLUMNS).await?,
            session,
        })
    }

    /// Appends an entry (before the action it records).
    pub async fn append(&self, entry: &AuditEntry) -> Result<()> {
        Ok(self.moderation.append(&self.session, entry).await?)
    }

    /// Whether `user` holds the moderator role in the store now.
    pub async fn is_moderator(&self, user: Uuid) -> Result<bool> {
        Ok(self.moderation.is_moderator(&self.session, user).await?)
    }

    /// Grants or revokes the role, audited.
    pub async fn set_moderator(&self, actor: Actor, user: Uuid, on: bool) -> Result<RoleChange> {
        Ok(self.moderation.set_moderator(&self.session, actor, user, on, None).await?)
    }

    /// A page of the log, newest first, and its length.
    pub async fn page(&self, req: PageRequest) -> Result<(Vec<AuditRow>, u64)> {
        self.listing.page::<_, AuditRow>(&self.session, 0i32, req).await
    }
}
