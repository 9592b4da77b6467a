//! `users` and `user_credentials`: profiles, and the email → password hash claim.
//! (Roles change through `platform::moderation`, which audits them.)

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use uuid::Uuid;

use super::{Result, prepare};

pub struct Users {
    session: Arc<Session>,
    insert_user: PreparedStatement,
    delete_user: PreparedStatement,
    claim_email: PreparedStatement,
    read_credentials: PreparedStatement,
    read_user: PreparedStatement,
    update_names: PreparedStatement,
    touch_login: PreparedStatement,
    scan: PreparedStatement,
}

/// A `users` row.
#[derive(Debug, scylla::DeserializeRow)]
pub struct UserRow {
    #[scylla(rename = "userid")]
    pub user_id: Uuid,
    #[scylla(rename = "firstname")]
    pub first_name: Option<String>,
    #[scylla(rename = "lastname")]
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub created_date: Option<CqlTimestamp>,
    pub account_status: Option<String>,
    pub last_login_date: Option<CqlTimestamp>,
    pub roles: Option<Vec<String>>,
}

/// A new user's row.
pub struct NewUser<'a> {
    pub id: Uuid,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub email: &'a str,
    pub roles: Vec<&'a str>,
}

#[derive(scylla::DeserializeRow)]
struct CredentialsRow {
    password: Option<String>,
    #[scylla(rename = "userid")]
    user_id: Option<Uuid>,
}

const COLUMNS: &str = "userid, firstname, lastname, email, created_date, account_status, last_login_date, roles";

/// A Cassandra timestamp as a time.
pub fn time(t: Option<CqlTimestamp>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp_millis(t.0))
}

impl Users {
    pub async fn new(session: Arc<Session>, ks: &str) -> anyhow::Result<Self> {
        // None is marked idempotent: the driver does not retry them on its own.
        let prep = |cql: String| {
            let session = session.clone();
            async move { prepare(&session, cql, false).await }
        };
        Ok(Self {
            insert_user: prep(format!("INSERT INTO {ks}.users ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")).await?,
            delete_user: prep(format!("DELETE FROM {ks}.users WHERE userid = ?")).await?,
            claim_email: prep(format!(
                "INSERT INTO {ks}.user_credentials (email, password, userid) VALUES (?, ?, ?) IF NOT EXISTS"
            ))
            .await?,
            read_credentials: prep(format!("SELECT password, userid FROM {ks}.user_credentials WHERE email = ?"))
                .await?,
            read_user: prep(format!("SELECT {COLUMNS} FROM {ks}.users WHERE userid = ?")).await?,
            update_names: prep(format!("UPDATE {ks}.users SET firstname = ?, lastname = ? WHERE userid = ?")).await?,
            touch_login: prep(format!("UPDATE {ks}.users SET last_login_date = ? WHERE userid = ?")).await?,
            scan: prep(format!("SELECT {COLUMNS} FROM {ks}.users")).await?,
            session,
        })
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<UserRow>> {
        let rows = self.session.execute_unpaged(&self.read_user, (id,)).await?.into_rows_result()?;
        Ok(rows.maybe_first_row::<UserRow>()?)
    }

    /// Writes the profile row of a new user, created now.
    pub async fn insert(&self, u: &NewUser<'_>) -> Result<()> {
        let now = CqlTimestamp(Utc::now().timestamp_millis());
        let row = (u.id, u.first_name, u.last_name, u.email, now, "active", None::<CqlTimestamp>, &u.roles);
        self.session.execute_unpaged(&self.insert_user, row).await?;
        Ok(())
    }

    /// Removes the profile row of a sign-up that lost its email claim (best effort).
    pub async fn delete(&self, id: Uuid) -> Result<()> {
        self.session.execute_unpaged(&self.delete_user, (id,)).await?;
        Ok(())
    }

    /// Claims `email` for `id` with a lightweight transaction: of two sign-ups with
    /// one email exactly one gets `true`.
    pub async fn claim_email(&self, email: &str, password_hash: &str, id: Uuid) -> Result<bool> {
        let res = self.session.execute_unpaged(&self.claim_email, (email, password_hash, id)).await?;
        Ok(platform::cassandra::applied(res)?)
    }

    /// The password hash and user id registered under `email`.
    pub async fn credentials(&self, email: &str) -> Result<Option<(String, Uuid)>> {
        let rows = self.session.execute_unpaged(&self.read_credentials, (email,)).await?.into_rows_result()?;
        Ok(rows.maybe_first_row::<CredentialsRow>()?.and_then(|r| Some((r.password?, r.user_id?))))
    }

    pub async fn set_names(&self, id: Uuid, first: &str, last: &str) -> Result<()> {
        self.session.execute_unpaged(&self.update_names, (first, last, id)).await?;
        Ok(())
    }

    pub async fn touch_login(&self, id: Uuid, at: DateTime<Utc>) -> Result<()> {
        self.session.execute_unpaged(&self.touch_login, (CqlTimestamp(at.timestamp_millis()), id)).await?;
        Ok(())
    }

    /// Rows for which `keep` holds, scanning at most `max_scanned` rows of the
    /// table: fine for a moderator's occasional search over a small user base; a
    /// large one would want a search index.
    pub async fn scan(&self, max_scanned: usize, mut keep: impl FnMut(&UserRow) -> bool) -> Result<Vec<UserRow>> {
        let mut rows = self.session.execute_iter(self.scan.clone(), ()).await?.rows_stream::<UserRow>()?;
        let (mut found, mut scanned) = (Vec::new(), 0);
        while let Some(row) = rows.try_next().await? {
            if keep(&row) {
                found.push(row);
            }
            scanned += 1;
            if scanned >= max_scanned {
                break;
            }
        }
        Ok(found)
    }
}
