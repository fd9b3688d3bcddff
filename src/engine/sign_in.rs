//! The sign-in limit: at most [`MAX_FAILURES`] unsuccessful sign-ins per client
//! address and per account within [`FAILURE_WINDOW_SECS`] of the first; then
//! that address, or that account, waits for the window to end.
//!
//! Every attempt is counted *before* its password is checked
//! ([`Store::reserve_sign_in`]), so parallel guesses cannot all reach the slow
//! hash; a success takes its own attempt back from its address and clears its
//! account's count, and nothing else (a viewer signing in between guesses at
//! the admin's password wins the guesser nothing). The counts live in the
//! database: a restart or another instance resets nothing.

use super::now_unix;
use super::store::{Accounts, StoreError};

pub const MAX_FAILURES: i64 = 5;
pub const FAILURE_WINDOW_SECS: i64 = 60;

fn address_key(address: &str) -> String {
    format!("address:{address}")
}

fn account_key(account: &str) -> String {
    format!("account:{}", account.to_lowercase())
}

/// Whether an attempt may go on to the password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Counted; check the password.
    Allowed,
    /// Too many for this address or this account: refused unchecked.
    LockedOut,
}

impl Accounts<'_> {
    /// Counts a sign-in attempt from `address` for `account` before its password
    /// is checked; says whether it may go on. A window that has ended starts over.
    pub async fn reserve_sign_in(&self, address: &str, account: &str) -> Result<Attempt, StoreError> {
        let mut locked = false;
        for key in [address_key(address), account_key(account)] {
            let (failures,): (i64,) = self
                .store
                .pool()
                .fetch_one(
                    "INSERT INTO marain_sign_in_attempts AS a (key, failures, first_at) VALUES ($1, 1, $2) \
                     ON CONFLICT (key) DO UPDATE SET \
                     failures = CASE WHEN a.first_at <= $2 - $3 THEN 1 ELSE a.failures + 1 END, \
                     first_at = CASE WHEN a.first_at <= $2 - $3 THEN $2 ELSE a.first_at END \
                     RETURNING failures",
                    &[key.into(), now_unix().into(), FAILURE_WINDOW_SECS.into()],
                )
                .await?;
            locked |= failures > MAX_FAILURES;
        }
        Ok(if locked { Attempt::LockedOut } else { Attempt::Allowed })
    }

    /// A successful sign-in: its own attempt no longer counts against its
    /// address, and its account starts afresh.
    pub async fn sign_in_succeeded(&self, address: &str, account: &str) -> Result<(), StoreError> {
        self.store
            .pool()
            .execute(
                "UPDATE marain_sign_in_attempts SET failures = failures - 1 WHERE key = $1 AND failures > 0",
                &[address_key(address).into()],
            )
            .await?;
        self.store
            .pool()
            .execute("DELETE FROM marain_sign_in_attempts WHERE key = $1", &[account_key(account).into()])
            .await?;
        Ok(())
    }
}
