//! Proposals shared between instances that each have their own copy of the
//! site (`SiteLayout::PerInstance`): what a copy proposes for a file waits on
//! that instance, and is also kept in `marain_proposals`, so every other
//! instance shows it, can approve it, and can see when two copies propose
//! different texts for one file (a conflict).

use serde::{Deserialize, Serialize};

use super::database::Arg;
use super::store::{announce, ChangeNotice, ClusterTables, StoreError};

/// What one instance's copy proposes for one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Proposal {
    pub file: String,
    pub instance: String,
    /// The applied text it was planned from ("" for none).
    pub base_hash: String,
    pub to_hash: String,
    /// `None` when the copy deletes the file.
    pub text: Option<String>,
    pub proposed_at: String,
}

impl ClusterTables<'_> {
    /// Replaces `instance`'s proposals for the files of `upserts` and withdraws
    /// those for `withdrawn`, in one transaction, and tells the other instances.
    pub async fn publish_proposals(
        &self,
        instance: &str,
        upserts: &[Proposal],
        withdrawn: &[String],
    ) -> Result<(), StoreError> {
        let mut tx = self.store.pool().begin().await?;
        let mut conn = tx.conn();
        for file in withdrawn {
            let sql = "DELETE FROM marain_proposals WHERE file = $1 AND instance = $2";
            conn.execute(sql, &[file.into(), instance.into()]).await?;
        }
        for p in upserts {
            conn.execute(
                "INSERT INTO marain_proposals (file, instance, base_hash, to_hash, text, proposed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (file, instance) DO UPDATE SET \
                 base_hash = excluded.base_hash, to_hash = excluded.to_hash, text = excluded.text, \
                 proposed_at = excluded.proposed_at",
                &[
                    (&p.file).into(),
                    instance.into(),
                    (&p.base_hash).into(),
                    (&p.to_hash).into(),
                    Arg::from(p.text.as_deref()),
                    (&p.proposed_at).into(),
                ],
            )
            .await?;
        }
        let notice =
            ChangeNotice { instance: self.store.instance().to_string(), id: 0, file: String::new(), version: 0 };
        announce(&mut conn, &notice).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Withdraws everything `instance` proposed (at its start, before it looks
    /// at its copy again).
    pub async fn withdraw_proposals(&self, instance: &str) -> Result<(), StoreError> {
        self.store.pool().execute("DELETE FROM marain_proposals WHERE instance = $1", &[instance.into()]).await?;
        Ok(())
    }

    /// What every other instance's copy proposes, by file.
    pub async fn proposals_except(&self, instance: &str) -> Result<Vec<Proposal>, StoreError> {
        let sql = "SELECT file, instance, base_hash, to_hash, text, proposed_at FROM marain_proposals \
                   WHERE instance <> $1 ORDER BY file, instance";
        Ok(self.store.pool().fetch_all(sql, &[instance.into()]).await?)
    }
}
