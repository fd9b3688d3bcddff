//! Webhook deliveries as an outbox in the database. With several instances,
//! every one of them sees an applied change (it applied it, or it synced it);
//! each adds the delivery under the event's key, so there is one row however
//! many add it. Whichever instance is alive leases due rows, sends them, and
//! records the outcome; a lease that runs out (its instance died or hangs)
//! lets another instance take the row. Times are the database's clock, in
//! milliseconds since the Unix epoch.

use super::store::{ClusterTables, StoreError};

/// How long an identical event is the same delivery, in milliseconds: long
/// enough to cover every instance seeing the same event, short enough that the
/// same event genuinely happening again is delivered.
pub const DEDUPE_WINDOW_MS: i64 = 60_000;

/// Deliveries done (delivered or given up) longer ago than this are deleted,
/// in milliseconds.
const DONE_KEPT_MS: i64 = 86_400_000;

/// A delivery leased to this instance: send it, then say how it went.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    pub key: String,
    pub url: String,
    /// The event's kind (`x-marain-event`).
    pub kind: String,
    /// The event as JSON, exactly as it is sent and signed.
    pub body: String,
    /// Attempts made before this one.
    pub attempts: i32,
}

impl ClusterTables<'_> {
    fn now(&self) -> &'static str {
        self.store.pool().backend().now_sql().1
    }

    /// Adds the delivery of an event to `url` under `key`; true when this call
    /// added it (false: another instance did, within the dedupe window).
    pub async fn enqueue_delivery(&self, key: &str, url: &str, kind: &str, body: &str) -> Result<bool, StoreError> {
        let now = self.now();
        let sql = format!(
            "INSERT INTO marain_webhook_outbox AS o (key, url, kind, body, created_at, next_at) \
             VALUES ($1, $2, $3, $4, {now}, {now}) \
             ON CONFLICT (key) DO UPDATE SET url = excluded.url, kind = excluded.kind, body = excluded.body, \
             created_at = excluded.created_at, attempts = 0, next_at = excluded.next_at, leased_by = NULL, \
             leased_until = NULL, done_at = NULL, outcome = NULL \
             WHERE o.done_at IS NOT NULL AND o.created_at <= excluded.created_at - $5"
        );
        let args = [key.into(), url.into(), kind.into(), body.into(), DEDUPE_WINDOW_MS.into()];
        Ok(self.store.pool().execute(&sql, &args).await? == 1)
    }

    /// Leases up to `limit` due deliveries to `holder` for `lease_ms`.
    pub async fn lease_deliveries(&self, holder: &str, limit: i64, lease_ms: i64) -> Result<Vec<Delivery>, StoreError> {
        let (now, skip) = (self.now(), self.store.pool().backend().skip_locked());
        let sql = format!(
            "UPDATE marain_webhook_outbox SET leased_by = $1, leased_until = {now} + $2 WHERE key IN (\
             SELECT key FROM marain_webhook_outbox WHERE done_at IS NULL AND next_at <= {now} \
             AND (leased_until IS NULL OR leased_until < {now}) ORDER BY next_at, key LIMIT $3{skip}) \
             RETURNING key, url, kind, body, attempts"
        );
        let args = [holder.into(), lease_ms.into(), limit.into()];
        Ok(self.store.pool().fetch_all(&sql, &args).await?)
    }

    /// `key`, leased to `holder`, reached its hook.
    pub async fn delivered(&self, key: &str, holder: &str) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE marain_webhook_outbox SET attempts = attempts + 1, done_at = {}, outcome = 'delivered', \
             leased_by = NULL, leased_until = NULL WHERE key = $1 AND leased_by = $2",
            self.now()
        );
        self.store.pool().execute(&sql, &[key.into(), holder.into()]).await?;
        Ok(())
    }

    /// `key`, leased to `holder`, did not reach its hook: tried again in
    /// `retry_ms`, or, when `None`, given up.
    pub async fn delivery_failed(&self, key: &str, holder: &str, retry_ms: Option<i64>) -> Result<(), StoreError> {
        let now = self.now();
        let mut args = vec![key.into(), holder.into()];
        let outcome = match retry_ms {
            Some(ms) => {
                args.push(ms.into());
                format!("next_at = {now} + $3")
            }
            None => format!("done_at = {now}, outcome = 'given_up'"),
        };
        let sql = format!(
            "UPDATE marain_webhook_outbox SET attempts = attempts + 1, {outcome}, leased_by = NULL, \
             leased_until = NULL WHERE key = $1 AND leased_by = $2"
        );
        self.store.pool().execute(&sql, &args).await?;
        Ok(())
    }

    /// How many deliveries are not done yet (waiting, leased or to be tried
    /// again): zero when the hooks have heard everything there is.
    pub async fn undelivered(&self) -> Result<i64, StoreError> {
        let sql = "SELECT COUNT(*) FROM marain_webhook_outbox WHERE done_at IS NULL";
        Ok(self.store.pool().fetch_one::<(i64,)>(sql, &[]).await?.0)
    }

    /// Deletes deliveries done more than a day ago, by the database's clock
    /// (and the claims of earlier releases); returns how many.
    pub async fn prune_deliveries(&self) -> Result<u64, StoreError> {
        let now = self.now();
        // The claims of earlier releases are in seconds.
        let done = format!("DELETE FROM marain_webhook_outbox WHERE done_at < {now} - $1");
        let claims = format!("DELETE FROM marain_webhook_claims WHERE claimed_at < ({now} - $1) / 1000");
        let mut n = 0;
        for sql in [done, claims] {
            n += self.store.pool().execute(&sql, &[DONE_KEPT_MS.into()]).await?;
        }
        Ok(n)
    }
}
