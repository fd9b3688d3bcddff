//! Who is signed in to the dashboard: one row per session in
//! `marain_signed_in`, keyed by the SHA-256 of the session id (the id itself, a
//! bearer secret, is never stored here nor shown).
//!
//! The server's session store writes the row when a session is created (the
//! sign-in), renews its expiry at most once a minute while it is used, and
//! deletes it with the session. Identifying a session needs its row, so ending
//! it from the dashboard ([`Store::end_session`]) signs it out on its next
//! request; a renewal only ever updates a row, so a request in flight cannot
//! bring an ended session back.

use serde::{Deserialize, Serialize};

use super::accounts::Role;
use super::now_unix;
use super::store::{Accounts, StoreError};
use crate::hash::sha256_hex;

/// How often (seconds) a session's `last_seen` and expiry are written again.
pub const RENEW_EVERY_SECS: i64 = 60;

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// The handle of a session: the SHA-256 of its id. It names the session
/// without being able to act as it.
pub fn session_handle(session_id: &str) -> String {
    sha256_hex(session_id.as_bytes())
}

/// Where a session signed in from, as the sign-in request showed it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClient {
    pub address: String,
    pub user_agent: String,
}

/// A new session of `username`, signed in under the account's `epoch`.
#[derive(Debug, Clone)]
pub struct SessionStart<'a> {
    pub session_id: &'a str,
    pub username: &'a str,
    pub epoch: i64,
    pub client: SessionClient,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A live session, as the dashboard lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    /// [`session_handle`]: what the dashboard ends a session by.
    pub handle: String,
    pub username: String,
    pub role: String,
    pub address: String,
    pub user_agent: String,
    /// RFC 3339.
    pub signed_in_at: String,
    /// RFC 3339, to the minute.
    pub last_seen: String,
    /// RFC 3339: when it ends if unused.
    pub expires_at: String,
}

impl Accounts<'_> {
    /// Records a session as it is created (at sign-in).
    pub async fn session_started(&self, start: SessionStart<'_>) -> Result<(), StoreError> {
        let now = now_unix();
        self.store
            .pool()
            .execute(
                "INSERT INTO marain_signed_in \
                 (session_hash, username, epoch, address, user_agent, signed_in_at, last_seen, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6, $7) \
                 ON CONFLICT (session_hash) DO UPDATE SET username = $2, epoch = $3, expires_at = $7",
                &[
                    session_handle(start.session_id).into(),
                    start.username.into(),
                    start.epoch.into(),
                    start.client.address.into(),
                    start.client.user_agent.chars().take(256).collect::<String>().into(),
                    now.into(),
                    start.expires_at.into(),
                ],
            )
            .await?;
        Ok(())
    }

    /// A session was used: its new expiry, written at most once a minute.
    /// Never inserts: an ended session stays ended.
    pub async fn session_seen(&self, session_id: &str, expires_at: i64) -> Result<(), StoreError> {
        let now = now_unix();
        self.store
            .pool()
            .execute(
                "UPDATE marain_signed_in SET last_seen = $2, expires_at = $3 \
                 WHERE session_hash = $1 AND last_seen <= $4",
                &[session_handle(session_id).into(), now.into(), expires_at.into(), (now - RENEW_EVERY_SECS).into()],
            )
            .await?;
        Ok(())
    }

    /// The session is gone (signed out, expired, or cycled at a sign-in).
    pub async fn session_deleted(&self, session_id: &str) -> Result<(), StoreError> {
        self.store
            .pool()
            .execute("DELETE FROM marain_signed_in WHERE session_hash = $1", &[session_handle(session_id).into()])
            .await?;
        Ok(())
    }

    /// The role of the account a session belongs to, while the session is live
    /// and the account unchanged since it signed in; `None` otherwise.
    pub async fn session_role(&self, session_id: &str, username: &str) -> Result<Option<Role>, StoreError> {
        let row: Option<(String,)> = self
            .store
            .pool()
            .fetch_optional(
                "SELECT a.role FROM marain_signed_in s JOIN marain_accounts a ON a.username = s.username \
                 WHERE s.session_hash = $1 AND s.username = $2 AND s.epoch = a.epoch AND s.expires_at > $3",
                &[session_handle(session_id).into(), username.into(), now_unix().into()],
            )
            .await?;
        Ok(row.and_then(|(role,)| Role::parse(&role)))
    }

    /// Every live session, most recently used first.
    pub async fn signed_in(&self) -> Result<Vec<SignedIn>, StoreError> {
        type Row = (String, String, String, String, String, i64, i64, i64);
        let rows: Vec<Row> = self
            .store
            .pool()
            .fetch_all(
                "SELECT s.session_hash, s.username, a.role, s.address, s.user_agent, s.signed_in_at, s.last_seen, \
                 s.expires_at FROM marain_signed_in s JOIN marain_accounts a ON a.username = s.username \
                 WHERE s.epoch = a.epoch AND s.expires_at > $1 ORDER BY s.last_seen DESC, s.username",
                &[now_unix().into()],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(handle, username, role, address, user_agent, signed_in_at, last_seen, expires_at)| SignedIn {
                handle,
                username,
                role,
                address,
                user_agent,
                signed_in_at: rfc3339(signed_in_at),
                last_seen: rfc3339(last_seen),
                expires_at: rfc3339(expires_at),
            })
            .collect())
    }

    /// Ends the session with `handle`: it is signed out on its next request.
    /// False when there was none.
    pub async fn end_session(&self, handle: &str) -> Result<bool, StoreError> {
        let sql = "DELETE FROM marain_signed_in WHERE session_hash = $1";
        Ok(self.store.pool().execute(sql, &[handle.into()]).await? > 0)
    }

    /// Forgets sessions that expired, or whose account changed or went;
    /// returns how many.
    pub async fn prune_signed_in(&self) -> Result<u64, StoreError> {
        Ok(self
            .store
            .pool()
            .execute(
                "DELETE FROM marain_signed_in WHERE expires_at <= $1 OR NOT EXISTS \
                 (SELECT 1 FROM marain_accounts a WHERE a.username = marain_signed_in.username \
                 AND a.epoch = marain_signed_in.epoch)",
                &[now_unix().into()],
            )
            .await?)
    }
}
