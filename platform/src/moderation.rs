//! The moderator role and the moderation audit log (migration 011), shared by the
//! query service (moderators acting through the API) and `vcount-admin` (the
//! operator granting the role).
//!
//! The role is granted by user id, never by email: emails are not verified, so a
//! list of emails made whoever registered a listed address first a moderator. The
//! first moderator is made with `vcount-admin moderators grant --user-id ID`;
//! moderators may then grant others through the API. Either way the change is
//! audited. The query service checks the role in the `users` row on every
//! moderation request, so a revoked moderator is refused at once, not when their
//! token expires.
//!
//! Audit entries are appended (a new UUIDv7 each; nothing updates or deletes
//! them) before the action they record, so every action that happened has one.

use chrono::{DateTime, Utc};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use uuid::Uuid;

use crate::cassandra::{CassandraError, check_keyspace, prepare};

/// The role that opens the moderation routes.
pub const MODERATOR: &str = "moderator";

/// Who acted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in moderator, through the API.
    Moderator(Uuid),
    /// An operator, with `vcount-admin`.
    Admin,
}

impl Actor {
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Moderator(_) => "moderator",
            Actor::Admin => "vcount-admin",
        }
    }

    pub fn moderator_id(self) -> Option<Uuid> {
        match self {
            Actor::Moderator(id) => Some(id),
            Actor::Admin => None,
        }
    }
}

/// What was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A flag's status set (approving one also hides its content).
    FlagAction,
    AssignModerator,
    RevokeModerator,
    RestoreVideo,
    RestoreComment,
    /// Counts taken back or added by compensating events (`vcount-admin correct`).
    CorrectCounts,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Self::FlagAction,
        Self::AssignModerator,
        Self::RevokeModerator,
        Self::RestoreVideo,
        Self::RestoreComment,
        Self::CorrectCounts,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FlagAction => "flag_action",
            Self::AssignModerator => "assign_moderator",
            Self::RevokeModerator => "revoke_moderator",
            Self::RestoreVideo => "restore_video",
            Self::RestoreComment => "restore_comment",
            Self::CorrectCounts => "correct_counts",
        }
    }

    /// What the target id names: `flag`, `user`, `video` or `comment`.
    pub fn target_type(self) -> &'static str {
        match self {
            Self::FlagAction => "flag",
            Self::AssignModerator | Self::RevokeModerator => "user",
            Self::RestoreVideo | Self::CorrectCounts => "video",
            Self::RestoreComment => "comment",
        }
    }
}

/// One audit entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// UUIDv7: orders the log, newest first.
    pub audit_id: Uuid,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: Action,
    pub target_id: Uuid,
    /// A flag action's new status.
    pub status: Option<String>,
    pub notes: Option<String>,
}

impl AuditEntry {
    /// An entry made now.
    pub fn now(actor: Actor, action: Action, target_id: Uuid) -> Self {
        Self { audit_id: Uuid::now_v7(), at: Utc::now(), actor, action, target_id, status: None, notes: None }
    }
}

/// Appends to the audit log and changes roles, with statements prepared once.
pub struct Moderation {
    append: PreparedStatement,
    read_roles: PreparedStatement,
    grant: PreparedStatement,
    revoke: PreparedStatement,
    scan_roles: PreparedStatement,
}

#[derive(scylla::DeserializeRow)]
struct RolesRow {
    roles: Option<Vec<String>>,
}

#[derive(scylla::DeserializeRow)]
struct UserRolesRow {
    userid: Uuid,
    email: Option<String>,
    roles: Option<Vec<String>>,
}

/// What a grant or revoke found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleChange {
    /// The role was set as asked (it may already have been).
    Done {
        had_it: bool,
    },
    NoSuchUser,
}

impl Moderation {
    pub async fn new(session: &Session, ks: &str) -> Result<Self, CassandraError> {
        check_keyspace(ks)?;
        Ok(Self {
            append: prepare(
                session,
                format!(
                    "INSERT INTO {ks}.moderation_audit (shard, auditid, created_at, actor, moderator_id, action, \
                     target_type, target_id, status, notes) VALUES (0, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                // A fresh id each time: a retry rewrites the same row.
                true,
            )
            .await?,
            read_roles: prepare(session, format!("SELECT roles FROM {ks}.users WHERE userid = ?"), true).await?,
            grant: prepare(session, format!("UPDATE {ks}.users SET roles = roles + ? WHERE userid = ?"), true).await?,
            revoke: prepare(session, format!("UPDATE {ks}.users SET roles = roles - ? WHERE userid = ?"), true).await?,
            scan_roles: prepare(session, format!("SELECT userid, email, roles FROM {ks}.users"), true).await?,
        })
    }

    /// Appends `e` to the audit log.
    pub async fn append(&self, session: &Session, e: &AuditEntry) -> Result<(), CassandraError> {
        let row = (
            e.audit_id,
            CqlTimestamp(e.at.timestamp_millis()),
            e.actor.as_str(),
            e.actor.moderator_id(),
            e.action.as_str(),
            e.action.target_type(),
            e.target_id,
            e.status.as_deref(),
            e.notes.as_deref(),
        );
        session.execute_unpaged(&self.append, row).await?;
        Ok(())
    }

    /// The roles of `user`; `None` when there is no such user.
    pub async fn roles(&self, session: &Session, user: Uuid) -> Result<Option<Vec<String>>, CassandraError> {
        let rows = session.execute_unpaged(&self.read_roles, (user,)).await?.into_rows_result()?;
        Ok(rows.maybe_first_row::<RolesRow>()?.map(|r| r.roles.unwrap_or_default()))
    }

    /// Whether `user` holds the moderator role now.
    pub async fn is_moderator(&self, session: &Session, user: Uuid) -> Result<bool, CassandraError> {
        Ok(self.roles(session, user).await?.is_some_and(|r| r.iter().any(|r| r == MODERATOR)))
    }

    /// Grants (`on`) or revokes the moderator role of an existing user, auditing it
    /// first. An UPDATE of a missing key would create a row, so the user is read first.
    pub async fn set_moderator(
        &self,
        session: &Session,
        actor: Actor,
        user: Uuid,
        on: bool,
        notes: Option<String>,
    ) -> Result<RoleChange, CassandraError> {
        let Some(roles) = self.roles(session, user).await? else { return Ok(RoleChange::NoSuchUser) };
        let action = if on { Action::AssignModerator } else { Action::RevokeModerator };
        self.append(session, &AuditEntry { notes, ..AuditEntry::now(actor, action, user) }).await?;
        let stmt = if on { &self.grant } else { &self.revoke };
        let set: std::collections::HashSet<&str> = [MODERATOR].into();
        session.execute_unpaged(stmt, (set, user)).await?;
        Ok(RoleChange::Done { had_it: roles.iter().any(|r| r == MODERATOR) })
    }

    /// Every moderator (user id, email), scanning the users table: an operator's
    /// occasional question, not a request path.
    pub async fn moderators(&self, session: &Session) -> Result<Vec<(Uuid, String)>, CassandraError> {
        use futures::TryStreamExt;
        let mut rows = session.execute_iter(self.scan_roles.clone(), ()).await?.rows_stream::<UserRolesRow>()?;
        let mut out = Vec::new();
        while let Some(r) = rows.try_next().await? {
            if r.roles.unwrap_or_default().iter().any(|x| x == MODERATOR) {
                out.push((r.userid, r.email.unwrap_or_default()));
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_name_their_targets() {
        let names: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(
            names,
            [
                "flag_action",
                "assign_moderator",
                "revoke_moderator",
                "restore_video",
                "restore_comment",
                "correct_counts"
            ]
        );
        assert_eq!(Action::RevokeModerator.target_type(), "user");
        assert_eq!(Action::CorrectCounts.target_type(), "video");
        assert_eq!(Actor::Admin.moderator_id(), None);
        let id = Uuid::now_v7();
        assert_eq!((Actor::Moderator(id).as_str(), Actor::Moderator(id).moderator_id()), ("moderator", Some(id)));
    }
}
