//! The sign-in limit: after [`MAX_FAILURES`] failed sign-ins from one address
//! within [`FAILURE_WINDOW_SECS`] of the first, that address waits for the window
//! to end. The count lives in the database, so a restart does not reset it and
//! spreading guesses over time or processes gains nothing.

use super::store::{Store, StoreError};

pub const MAX_FAILURES: i64 = 5;
pub const FAILURE_WINDOW_SECS: i64 = 60;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Store {
    /// Whether `address` has used up its sign-in attempts for now.
    pub async fn sign_in_locked_out(&self, address: &str) -> Result<bool, StoreError> {
        let failures: Option<(i64,)> = self
            .pool()
            .fetch_optional(
                "SELECT failures FROM marain_sign_in_failures WHERE address = $1 AND first_at > $2 - $3",
                &[address.into(), now().into(), FAILURE_WINDOW_SECS.into()],
            )
            .await?;
        Ok(failures.is_some_and(|(n,)| n >= MAX_FAILURES))
    }

    /// Counts a failed sign-in from `address`; a window that has ended starts over.
    pub async fn sign_in_failed(&self, address: &str) -> Result<(), StoreError> {
        // The table is named in the update: PostgreSQL would otherwise find
        // `failures` ambiguous between the row and `excluded`.
        self.pool()
            .execute(
                "INSERT INTO marain_sign_in_failures AS f (address, failures, first_at) VALUES ($1, 1, $2) \
                 ON CONFLICT (address) DO UPDATE SET \
                 failures = CASE WHEN f.first_at <= $2 - $3 THEN 1 ELSE f.failures + 1 END, \
                 first_at = CASE WHEN f.first_at <= $2 - $3 THEN $2 ELSE f.first_at END",
                &[address.into(), now().into(), FAILURE_WINDOW_SECS.into()],
            )
            .await?;
        Ok(())
    }

    /// A successful sign-in clears the count of `address`.
    pub async fn sign_in_succeeded(&self, address: &str) -> Result<(), StoreError> {
        self.pool().execute("DELETE FROM marain_sign_in_failures WHERE address = $1", &[address.into()]).await?;
        Ok(())
    }
}
