//! Webhook deliveries claimed in the database: with several instances, every
//! one of them sees an applied change (it applied it, or it synced it), and
//! only the instance whose claim lands delivers it.

use super::store::{ClusterTables, StoreError};

/// How long a claim keeps an identical event from being delivered again, in
/// seconds: long enough to cover every instance seeing the same event, short
/// enough that the same event genuinely happening again is delivered.
pub const CLAIM_WINDOW_SECS: i64 = 60;

/// Claims older than this are deleted, in seconds.
const CLAIM_KEPT_SECS: i64 = 86_400;

impl ClusterTables<'_> {
    /// Claims the delivery named `key`; true when this caller should send it.
    /// The claim's time is the database's, so instances whose clocks differ
    /// by minutes still see one window.
    pub async fn claim_delivery(&self, key: &str) -> Result<bool, StoreError> {
        let now = self.store.pool().backend().now_sql().1;
        let sql = format!(
            "INSERT INTO marain_webhook_claims AS c (key, claimed_at) VALUES ($1, {now}) \
             ON CONFLICT (key) DO UPDATE SET claimed_at = excluded.claimed_at \
             WHERE c.claimed_at <= excluded.claimed_at - $2"
        );
        let claimed = self.store.pool().execute(&sql, &[key.into(), CLAIM_WINDOW_SECS.into()]).await?;
        Ok(claimed == 1)
    }

    /// Deletes claims older than a day, by the database's clock; returns how many.
    pub async fn prune_delivery_claims(&self) -> Result<u64, StoreError> {
        let now = self.store.pool().backend().now_sql().1;
        let sql = format!("DELETE FROM marain_webhook_claims WHERE claimed_at < {now} - $1");
        Ok(self.store.pool().execute(&sql, &[CLAIM_KEPT_SECS.into()]).await?)
    }
}
