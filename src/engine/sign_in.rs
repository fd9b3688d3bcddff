//! The sign-in limits, which cannot be turned against an account's owner
//! (docs/security.md):
//!
//! - per account and client address: at most [`MAX_FAILURES`] unsuccessful
//!   sign-ins within [`FAILURE_WINDOW_SECS`] of the first; then that address
//!   waits for the window to end, for that account;
//! - per client address, over every account: at most
//!   [`MAX_ADDRESS_FAILURES`] in the window;
//! - per account, over every address: no lock. Past [`MAX_FAILURES`], each
//!   further failure makes the account wait longer (1 s, 2 s, 4 s … up to
//!   [`MAX_ACCOUNT_DELAY_SECS`]) before an address that has already failed at
//!   it may try again. An address that has not failed at the account (its
//!   owner's, usually) is never held by the others' failures, so guessers on
//!   many addresses slow each other down and lock nobody out.
//!
//! Every attempt is counted *before* its password is checked
//! ([`Accounts::reserve_sign_in`]), so parallel guesses cannot all reach the
//! slow hash; a success takes its own attempt back from its address and
//! clears its account's counts, and nothing else (a viewer signing in between
//! guesses at the admin's password wins the guesser nothing). The counts live
//! in the database: a restart or another instance resets nothing.

use super::now_unix;
use super::store::{Accounts, StoreError};

/// Failures per account and address, and the account's count past which it
/// slows down.
pub const MAX_FAILURES: i64 = 5;
/// Failures per address, over every account.
pub const MAX_ADDRESS_FAILURES: i64 = 20;
pub const FAILURE_WINDOW_SECS: i64 = 60;
/// The longest an account makes a failed address wait.
pub const MAX_ACCOUNT_DELAY_SECS: i64 = 30;

fn address_key(address: &str) -> String {
    format!("address:{address}")
}

fn account_key(account: &str) -> String {
    format!("account:{}", account.to_lowercase())
}

fn pair_key(account: &str, address: &str) -> String {
    format!("pair:{}|{address}", account.to_lowercase())
}

/// How long an account with `failures` in the window makes a failed address
/// wait before its next try.
pub fn account_delay_secs(failures: i64) -> i64 {
    match failures - MAX_FAILURES {
        past if past <= 0 => 0,
        past => 1i64.checked_shl((past - 1).min(20) as u32).unwrap_or(i64::MAX).min(MAX_ACCOUNT_DELAY_SECS),
    }
}

/// Whether an attempt may go on to the password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Counted; check the password.
    Allowed,
    /// Too many from this address (for this account, or for all): refused
    /// unchecked until the window ends.
    LockedOut,
    /// This address failed at the account already, and the account is
    /// slowed down: refused unchecked; try again in this many seconds.
    SlowedDown { wait_secs: i64 },
}

impl Accounts<'_> {
    /// Counts one more attempt at `key` (a window that has ended starts
    /// over); returns the count and when the key's next try may come.
    async fn count(&self, key: &str, now: i64) -> Result<(i64, i64), StoreError> {
        let counted = self
            .store
            .pool()
            .fetch_one(
                "INSERT INTO marain_sign_in_attempts AS a (key, failures, first_at) VALUES ($1, 1, $2) \
                 ON CONFLICT (key) DO UPDATE SET \
                 failures = CASE WHEN a.first_at <= $2 - $3 THEN 1 ELSE a.failures + 1 END, \
                 next_at = CASE WHEN a.first_at <= $2 - $3 THEN 0 ELSE a.next_at END, \
                 first_at = CASE WHEN a.first_at <= $2 - $3 THEN $2 ELSE a.first_at END \
                 RETURNING failures, next_at",
                &[key.into(), now.into(), FAILURE_WINDOW_SECS.into()],
            )
            .await?;
        Ok(counted)
    }

    /// Counts a sign-in attempt from `address` for `account` before its password
    /// is checked; says whether it may go on.
    pub async fn reserve_sign_in(&self, address: &str, account: &str) -> Result<Attempt, StoreError> {
        let now = now_unix();
        let (pair, _) = self.count(&pair_key(account, address), now).await?;
        let (from_address, _) = self.count(&address_key(address), now).await?;
        if pair > MAX_FAILURES || from_address > MAX_ADDRESS_FAILURES {
            return Ok(Attempt::LockedOut);
        }
        // An address that already failed at this account waits for it.
        let key = account_key(account);
        if pair > 1 {
            let held: Vec<(i64,)> = self
                .store
                .pool()
                .fetch_all(
                    "SELECT next_at FROM marain_sign_in_attempts WHERE key = $1 AND first_at > $2 - $3",
                    &[key.clone().into(), now.into(), FAILURE_WINDOW_SECS.into()],
                )
                .await?;
            if let Some((next_at,)) = held.first().filter(|(next_at,)| *next_at > now) {
                return Ok(Attempt::SlowedDown { wait_secs: next_at - now });
            }
        }
        let (failures, _) = self.count(&key, now).await?;
        let delay = account_delay_secs(failures);
        if delay > 0 {
            self.store
                .pool()
                .execute(
                    "UPDATE marain_sign_in_attempts SET next_at = $2 WHERE key = $1",
                    &[key.into(), (now + delay).into()],
                )
                .await?;
        }
        Ok(Attempt::Allowed)
    }

    /// A successful sign-in: its own attempt no longer counts against its
    /// address, its address's count for the account goes, and the account's
    /// slowing down ends; other addresses' counts for it stay.
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
            .execute(
                // The account, and this address's count for it: other
                // addresses' counts stay (the owner signing in frees no guesser).
                "DELETE FROM marain_sign_in_attempts WHERE key = $1 OR key = $2",
                &[account_key(account).into(), pair_key(account, address).into()],
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_grows_past_the_failures_allowed_and_stops_at_its_cap() {
        let delays: Vec<i64> = (0..=14).map(account_delay_secs).collect();
        assert_eq!(delays, [0, 0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 30, 30, 30, 30]);
        assert_eq!(account_delay_secs(i64::MAX), MAX_ACCOUNT_DELAY_SECS);
    }
}
