//! Declines kept in the database (table `marain_rejections`, its name since
//! before the word was settled): a change turned down on one instance is
//! turned down on every instance that plans the same text, and stays turned
//! down across restarts, until the file changes again or a version applies.

use serde::{Deserialize, Serialize};

use super::database::Arg;
use super::store::{announce, ChangeNotice, ClusterTables, StoreError};

/// A person turned down the change of `file` to the text hashed `to_hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Decline {
    pub file: String,
    pub to_hash: String,
    pub actor: String,
    pub reason: Option<String>,
    pub rejected_at: String,
}

impl Decline {
    /// What the file shows while rejected.
    pub fn summary(&self, change_id: u64) -> String {
        let why = self.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        format!("change {change_id} was rejected by {}{why}; the applied version stays live", self.actor)
    }
}

impl ClusterTables<'_> {
    /// Records `decline` and tells the other instances.
    pub async fn record_decline(&self, decline: &Decline) -> Result<(), StoreError> {
        let mut tx = self.store.pool().begin().await?;
        let mut conn = tx.conn();
        conn.execute(
            "INSERT INTO marain_rejections (file, to_hash, actor, reason, rejected_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (file, to_hash) DO UPDATE SET actor = excluded.actor, reason = excluded.reason, \
             rejected_at = excluded.rejected_at",
            &[
                (&decline.file).into(),
                (&decline.to_hash).into(),
                (&decline.actor).into(),
                Arg::from(decline.reason.as_deref()),
                (&decline.rejected_at).into(),
            ],
        )
        .await?;
        let notice =
            ChangeNotice { instance: self.store.instance().to_string(), id: 0, file: decline.file.clone(), version: 0 };
        announce(&mut conn, &notice).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every standing decline.
    pub async fn declines(&self) -> Result<Vec<Decline>, StoreError> {
        let sql = "SELECT file, to_hash, actor, reason, rejected_at FROM marain_rejections ORDER BY file, to_hash";
        Ok(self.store.pool().fetch_all(sql, &[]).await?)
    }
}
