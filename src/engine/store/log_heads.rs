//! The newest line of each `secure.log`, anchored in the database
//! (`marain_secure_log_heads`): a log whose tail was cut no longer holds it,
//! and `marain history verify --secure-log` says so (docs/security.md).

use super::{Store, StoreError};
use crate::engine::now_unix;

impl Store {
    /// Records that the log named `log` (see `secure_log::anchor_name`) has
    /// written the line whose hash is `head`.
    /// On the writers' pool: on SQLite the write may wait for the one write
    /// lock, and must not hold a reader's connection meanwhile.
    pub async fn anchor_secure_log(&self, log: &str, head: &str) -> Result<(), StoreError> {
        self.writers
            .execute(
                "INSERT INTO marain_secure_log_heads (log, head, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (log) DO UPDATE SET head = excluded.head, updated_at = excluded.updated_at",
                &[log.into(), head.into(), now_unix().into()],
            )
            .await?;
        Ok(())
    }

    /// The hash of the newest line the log named `log` anchored, if any.
    pub async fn secure_log_head(&self, log: &str) -> Result<Option<String>, StoreError> {
        let rows: Vec<(String,)> =
            self.pool.fetch_all("SELECT head FROM marain_secure_log_heads WHERE log = $1", &[log.into()]).await?;
        Ok(rows.into_iter().next().map(|(head,)| head))
    }
}
