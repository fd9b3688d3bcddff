//! Accounts and API tokens: who may read, and who may approve.
//!
//! Passwords are stored as argon2id hashes (verified off the async runtime, they
//! are slow on purpose); API tokens are 32 random bytes shown once and stored as
//! their SHA-256, which is enough for a secret that cannot be guessed.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};

use super::store::{Accounts, StoreError};
use crate::hash::sha256_hex;

/// `viewer` reads; `approver` also approves, rejects, rolls back and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Approver,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "approver" => Some(Role::Approver),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Approver => "approver",
        }
    }

    pub fn may_change(self) -> bool {
        self == Role::Approver
    }
}

/// Who is asking, and how they proved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub name: String,
    pub role: Role,
    /// True for an API token; false for a dashboard session.
    pub token: bool,
    /// The account's epoch when the session signed in: a later change of its
    /// password or role raises it and ends the session.
    #[serde(default)]
    pub epoch: i64,
    /// The handle of the dashboard session this request came with
    /// ([`super::signed_in::session_handle`]); never stored in the session.
    #[serde(skip)]
    pub session: Option<String>,
}

/// An API token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct TokenInfo {
    pub name: String,
    pub role: String,
    pub created_at: String,
    /// RFC 3339; `None` for a token that does not expire.
    pub expires_at: Option<String>,
}

/// Whether RFC 3339 time `at` has passed.
fn passed(at: &str) -> bool {
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .map(|t| t <= time::OffsetDateTime::now_utc())
        .unwrap_or(true)
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("user name `{0}` is not valid: use 1 to 64 letters, digits, `.`, `_` or `-`")]
    BadName(String),
    #[error("the password is too short: use at least 12 characters")]
    WeakPassword,
    #[error("`{0}` already exists")]
    Exists(String),
    #[error("hashing the password failed: {0}")]
    Hash(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for AccountError {
    fn from(e: sqlx::Error) -> Self {
        AccountError::Store(StoreError::Sql(e))
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A random secret of `bytes` bytes, hex-encoded.
pub fn random_secret(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

fn now() -> String {
    super::now_rfc3339()
}

impl Accounts<'_> {
    pub async fn account_count(&self) -> Result<i64, StoreError> {
        Ok(self.store.pool().fetch_one::<(i64,)>("SELECT COUNT(*) FROM marain_accounts", &[]).await?.0)
    }

    /// Creates an account, or replaces the password and role of an existing one
    /// when `replace` is set.
    pub async fn add_account(
        &self,
        username: &str,
        password: &str,
        role: Role,
        replace: bool,
    ) -> Result<(), AccountError> {
        if !valid_name(username) {
            return Err(AccountError::BadName(username.to_string()));
        }
        if password.chars().count() < 12 {
            return Err(AccountError::WeakPassword);
        }
        let password = password.to_string();
        let hash = tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
        })
        .await
        .map_err(|e| AccountError::Hash(e.to_string()))?
        .map_err(|e| AccountError::Hash(e.to_string()))?;
        let on_conflict = match replace {
            // A new password or role ends the account's sessions (its epoch moves on).
            true => {
                " ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role, \
                 epoch = marain_accounts.epoch + 1"
            }
            false => "",
        };
        let sql = format!(
            "INSERT INTO marain_accounts (username, password_hash, role, created_at) VALUES ($1, $2, $3, $4){on_conflict}"
        );
        let args = [username.into(), hash.into(), role.as_str().into(), now().into()];
        match self.store.pool().execute(&sql, &args).await {
            Err(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()) => {
                Err(AccountError::Exists(username.to_string()))
            }
            other => other.map(|_| ()).map_err(AccountError::from),
        }
    }

    /// The account's identity if `password` is right; `None` otherwise (an
    /// unknown user costs the same hash as a known one, so timing tells nothing).
    pub async fn verify_password(&self, username: &str, password: &str) -> Result<Option<Identity>, StoreError> {
        let row: Option<(String, String, i64)> = self
            .store
            .pool()
            .fetch_optional(
                "SELECT password_hash, role, epoch FROM marain_accounts WHERE username = $1",
                &[username.into()],
            )
            .await?;
        // A fixed hash of a random password stands in for a missing account.
        const DECOY: &str =
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$3pDRnVxm2QqUp4QxWX5D+cD5ENSeFxcOsWsoFW7nxKQ";
        let (hash, role, epoch) = row.clone().unwrap_or_else(|| (DECOY.to_string(), String::new(), 0));
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        })
        .await
        .unwrap_or(false);
        Ok(match (ok && row.is_some(), Role::parse(&role)) {
            (true, Some(role)) => {
                Some(Identity { name: username.to_string(), role, token: false, epoch, session: None })
            }
            _ => None,
        })
    }

    /// Removes an account (its sessions end on their next request); false when
    /// there was none.
    pub async fn remove_account(&self, username: &str) -> Result<bool, StoreError> {
        Ok(self.store.pool().execute("DELETE FROM marain_accounts WHERE username = $1", &[username.into()]).await? > 0)
    }

    /// Every API token, by name, without secrets.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let sql = "SELECT name, role, created_at, expires_at FROM marain_tokens ORDER BY name";
        Ok(self.store.pool().fetch_all(sql, &[]).await?)
    }

    /// Revokes the token named `name`; false when there was none.
    pub async fn revoke_token(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.store.pool().execute("DELETE FROM marain_tokens WHERE name = $1", &[name.into()]).await? > 0)
    }

    /// Creates an API token that never expires; see [`Self::create_token_until`].
    pub async fn create_token(&self, name: &str, role: Role) -> Result<String, AccountError> {
        self.create_token_until(name, role, None).await
    }

    /// Creates an API token, valid until `expires_at` (RFC 3339) if given;
    /// returns its secret, which is not stored and cannot be shown again.
    pub async fn create_token_until(
        &self,
        name: &str,
        role: Role,
        expires_at: Option<String>,
    ) -> Result<String, AccountError> {
        if !valid_name(name) {
            return Err(AccountError::BadName(name.to_string()));
        }
        let secret = format!("mrn_{}", random_secret(32));
        let result = self
            .store
            .pool()
            .execute(
                "INSERT INTO marain_tokens (name, token_hash, role, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                &[
                    name.into(),
                    sha256_hex(secret.as_bytes()).into(),
                    role.as_str().into(),
                    now().into(),
                    expires_at.into(),
                ],
            )
            .await;
        match result {
            Err(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()) => {
                Err(AccountError::Exists(name.to_string()))
            }
            other => other.map(|_| secret).map_err(AccountError::from),
        }
    }

    /// The identity behind an API token's secret, if it is one and has not
    /// expired.
    pub async fn token_identity(&self, secret: &str) -> Result<Option<Identity>, StoreError> {
        let row: Option<(String, String, Option<String>)> = self
            .store
            .pool()
            .fetch_optional(
                "SELECT name, role, expires_at FROM marain_tokens WHERE token_hash = $1",
                &[sha256_hex(secret.as_bytes()).into()],
            )
            .await?;
        Ok(row.filter(|(_, _, expires)| !expires.as_deref().is_some_and(passed)).and_then(|(name, role, _)| {
            Some(Identity { name, role: Role::parse(&role)?, token: true, epoch: 0, session: None })
        }))
    }

    /// On first start (no accounts at all), creates `admin` as an approver with
    /// `password`, or a random one; returns the password to show once.
    pub async fn ensure_admin(&self, password: Option<&str>) -> Result<Option<String>, AccountError> {
        if self.account_count().await? > 0 {
            return Ok(None);
        }
        let password = password.map(str::to_string).unwrap_or_else(|| random_secret(12));
        match self.add_account("admin", &password, Role::Approver, false).await {
            Ok(()) => Ok(Some(password)),
            // Another instance starting at the same moment made it first.
            Err(AccountError::Exists(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
