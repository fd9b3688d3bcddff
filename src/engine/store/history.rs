//! The history as read and written: the hash-chained `marain_history` rows,
//! each file's applied head and versions, the chain's verification, and the
//! backup tables the rows name (listed, read, pruned).

use std::collections::{BTreeMap, BTreeSet};

use super::{to_json, AppliedVersion, BackupInfo, ChainBreak, History, StoreError, VersionRow, VersionStatus};
use crate::engine::database::Conn;
use crate::hash::sha256_parts;
use crate::hazard::Severity;

impl History<'_> {
    /// The newest history row's id (0 for none): the one value that moves
    /// whenever any instance applies anything, for the sync poll.
    pub async fn history_head(&self) -> Result<i64, StoreError> {
        let (id,): (Option<i64>,) = self.store.pool.fetch_one("SELECT MAX(id) FROM marain_history", &[]).await?;
        Ok(id.unwrap_or(0))
    }

    /// Every applied version's file, version and hash, oldest first: which
    /// texts a file has had.
    pub async fn version_hashes(&self) -> Result<Vec<(String, i64, String)>, StoreError> {
        let sql = "SELECT file, version, hash FROM marain_history WHERE status = 'applied' ORDER BY id";
        Ok(self.store.pool.fetch_all(sql, &[]).await?)
    }

    /// Every history row after row `id`, oldest first: what other instances
    /// applied since this one last looked. The history is append-only and
    /// applies are serialised, so nothing committed can hide below `id`.
    pub async fn history_after(&self, id: i64) -> Result<Vec<VersionRow>, StoreError> {
        let rows: Vec<HistoryRecord> =
            self.store.pool.fetch_all("SELECT * FROM marain_history WHERE id > $1 ORDER BY id", &[id.into()]).await?;
        rows.into_iter().map(HistoryRecord::into_row).collect()
    }

    /// The newest applied row of every file ever recorded (including deletions).
    pub async fn latest_versions(&self) -> Result<Vec<VersionRow>, StoreError> {
        let rows: Vec<HistoryRecord> = self
            .store
            .pool
            .fetch_all(
                "SELECT * FROM marain_history h WHERE status = 'applied' AND version = \
                 (SELECT MAX(version) FROM marain_history WHERE file = h.file AND status = 'applied') ORDER BY file",
                &[],
            )
            .await?;
        rows.into_iter().map(HistoryRecord::into_row).collect()
    }

    /// The site as the history's newest applied versions say (files whose
    /// newest version no longer parses are left out).
    pub async fn applied_site(&self) -> Result<crate::site::Site, StoreError> {
        let mut site = crate::site::Site::default();
        for row in self.latest_versions().await? {
            if let Some(Ok(file)) = row.yaml.as_deref().map(|text| crate::site::SiteFile::parse(&row.file, text)) {
                site.insert_file(file);
            }
        }
        Ok(site)
    }

    /// The applied version `version` of `file`.
    pub async fn version(&self, file: &str, version: i64) -> Result<Option<VersionRow>, StoreError> {
        let row: Option<HistoryRecord> = self
            .store
            .pool
            .fetch_optional(
                "SELECT * FROM marain_history WHERE file = $1 AND version = $2 AND status = 'applied'",
                &[file.into(), version.into()],
            )
            .await?;
        row.map(HistoryRecord::into_row).transpose()
    }

    /// Backup tables that exist now.
    async fn existing_backups(&self) -> Result<BTreeSet<String>, StoreError> {
        let names = self.store.pool.table_names().await?;
        Ok(names.into_iter().filter(|n| n.starts_with("marain_backup_")).collect())
    }

    /// Every backup table the history names, with the version that made it, its
    /// rows, and whether it still exists (pruned ones do not).
    pub async fn backups(&self) -> Result<Vec<BackupInfo>, StoreError> {
        let rows: Vec<(i64, String, i64, String, String)> = self
            .store
            .pool
            .fetch_all(
                "SELECT id, file, version, applied_at, backups FROM marain_history WHERE status = 'applied' ORDER BY id",
                &[],
            )
            .await?;
        let existing = self.existing_backups().await?;
        let dialect = self.store.dialect();
        let mut out = Vec::new();
        for (id, file, version, applied_at, json) in rows {
            for table in backup_names(id, &json)? {
                let rows = match existing.contains(&dialect.ident(&table)) {
                    true => {
                        let sql = format!("SELECT COUNT(*) FROM {}", dialect.table(&table));
                        Some(self.store.pool.fetch_one::<(i64,)>(&sql, &[]).await?.0)
                    }
                    false => None,
                };
                out.push(BackupInfo { table, file: file.clone(), version, applied_at: applied_at.clone(), rows });
            }
        }
        Ok(out)
    }

    /// Drops the backup tables of versions applied more than `older_than_days`
    /// days ago; returns their names. Their data can no longer be restored by a
    /// rollback.
    pub async fn prune_backups(&self, older_than_days: u32) -> Result<Vec<String>, StoreError> {
        // Older than the calendar goes back: nothing is.
        let Some(cutoff) =
            time::OffsetDateTime::now_utc().checked_sub(time::Duration::days(i64::from(older_than_days)))
        else {
            return Ok(Vec::new());
        };
        let mut pruned = Vec::new();
        for backup in self.backups().await? {
            let applied =
                time::OffsetDateTime::parse(&backup.applied_at, &time::format_description::well_known::Rfc3339);
            if backup.rows.is_some() && applied.is_ok_and(|t| t < cutoff) {
                let sql = format!("DROP TABLE IF EXISTS {}", self.store.dialect().table(&backup.table));
                self.store.pool.execute(&sql, &[]).await?;
                pruned.push(backup.table);
            }
        }
        Ok(pruned)
    }

    /// Every applied version of every file, oldest first.
    pub async fn applied_versions(&self) -> Result<Vec<AppliedVersion>, StoreError> {
        let rows: Vec<(String, i64, String)> = self
            .store
            .pool
            .fetch_all("SELECT file, version, applied_at FROM marain_history WHERE status = 'applied' ORDER BY id", &[])
            .await?;
        Ok(rows.into_iter().map(|(file, version, applied_at)| AppliedVersion { file, version, applied_at }).collect())
    }

    /// For each file of `since` (file → version), the backup tables its applied
    /// versions after that version made and that still exist, oldest first:
    /// what a rollback to that version refills from. One pass over the history.
    pub async fn backups_since(
        &self,
        since: &BTreeMap<String, i64>,
    ) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        let rows: Vec<(i64, String, i64, String)> = self
            .store
            .pool
            .fetch_all(
                "SELECT id, file, version, backups FROM marain_history WHERE status = 'applied' ORDER BY file, version",
                &[],
            )
            .await?;
        let existing = self.existing_backups().await?;
        let dialect = self.store.dialect();
        let mut out: BTreeMap<String, Vec<String>> = since.keys().map(|f| (f.clone(), Vec::new())).collect();
        for (id, file, version, json) in rows {
            let Some(names) = out.get_mut(&file).filter(|_| since.get(&file).is_some_and(|v| version > *v)) else {
                continue;
            };
            // A pruned backup cannot refill anything.
            names.extend(backup_names(id, &json)?.into_iter().filter(|n| existing.contains(&dialect.ident(n))));
        }
        Ok(out)
    }

    /// History, newest first, optionally of one file.
    pub async fn rows(&self, file: Option<&str>, limit: i64) -> Result<Vec<VersionRow>, StoreError> {
        let rows: Vec<HistoryRecord> = self
            .store
            .pool
            .fetch_all(
                "SELECT * FROM marain_history WHERE ($1 IS NULL OR file = $1) ORDER BY id DESC LIMIT $2",
                &[file.into(), limit.into()],
            )
            .await?;
        rows.into_iter().map(HistoryRecord::into_row).collect()
    }

    /// Walks the history in order and checks every row's hash and its link to the
    /// row before; returns how many rows are intact, or the first broken one.
    pub async fn verify_chain(&self) -> Result<usize, ChainBreak> {
        let rows: Vec<HistoryRecord> = self
            .store
            .pool
            .fetch_all("SELECT * FROM marain_history ORDER BY id", &[])
            .await
            .map_err(|e| ChainBreak { id: 0, reason: format!("cannot read the history: {e}") })?;
        let count = rows.len();
        let mut prev = String::new();
        let mut last_id = 0;
        for record in rows {
            let (id, stored_prev, stored_hash) = (record.id, record.prev_row_hash.clone(), record.row_hash.clone());
            last_id = id;
            let row = record.into_row().map_err(|e| ChainBreak { id, reason: e.to_string() })?;
            if stored_prev != prev {
                return Err(ChainBreak {
                    id,
                    reason: "it does not point at the row before it (a row was removed or inserted)".into(),
                });
            }
            if row_hash(&prev, &row) != stored_hash {
                return Err(ChainBreak {
                    id,
                    reason: "its content does not match its hash (the row was edited)".into(),
                });
            }
            prev = stored_hash;
        }
        // The head, kept apart, names the newest row: rows cut from the end
        // leave a shorter chain that is intact, but not the one recorded.
        let head: Option<(i64, String, i64)> = self
            .store
            .pool
            .fetch_optional("SELECT row_id, row_hash, rows FROM marain_history_head", &[])
            .await
            .map_err(|e| ChainBreak { id: 0, reason: format!("cannot read the history head: {e}") })?;
        let last_hash = prev;
        match head {
            None if count == 0 => {}
            None => return Err(ChainBreak { id: last_id, reason: "the history head is missing".into() }),
            Some((id, hash, rows)) if id == last_id && hash == last_hash && rows == count as i64 => {}
            Some((id, _, rows)) => {
                return Err(ChainBreak {
                    id,
                    reason: format!(
                        "the history recorded {rows} rows ending at row {id}, and {count} rows ending at row \
                         {last_id} remain (rows were removed from the end)"
                    ),
                })
            }
        }
        Ok(count)
    }
}

/// The backup tables a history row's `backups` column names.
fn backup_names(id: i64, json: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt { id, message: format!("backups: {e}") })
}

/// The hash of `file`'s newest applied version ("" when it has none, or when
/// that version deleted it).
pub(super) async fn head_hash(conn: &mut Conn<'_>, file: &str) -> Result<String, StoreError> {
    let head: Option<(String,)> = conn
        .fetch_optional(
            "SELECT hash FROM marain_history WHERE file = $1 AND status = 'applied' ORDER BY version DESC LIMIT 1",
            &[file.into()],
        )
        .await?;
    Ok(head.map(|(h,)| h).unwrap_or_default())
}

pub(super) async fn chain_head(conn: &mut Conn<'_>, file: &str) -> Result<(String, i64), StoreError> {
    let prev: Option<(String,)> =
        conn.fetch_optional("SELECT row_hash FROM marain_history ORDER BY id DESC LIMIT 1", &[]).await?;
    let (version,): (Option<i64>,) =
        conn.fetch_one("SELECT MAX(version) FROM marain_history WHERE file = $1", &[file.into()]).await?;
    Ok((prev.map(|(h,)| h).unwrap_or_default(), version.unwrap_or(0)))
}

/// The hash a row's successor must quote: everything the row asserts.
pub fn row_hash(prev: &str, row: &VersionRow) -> String {
    sha256_parts([
        prev,
        &row.file,
        &row.version.to_string(),
        &row.hash,
        row.yaml.as_deref().unwrap_or("\u{0}"),
        row.severity.as_str(),
        &to_json(&row.hazards),
        &to_json(&row.sql),
        &to_json(&row.rollback_sql),
        &to_json(&row.backups),
        row.status.as_str(),
        &row.actor,
        row.reason.as_deref().unwrap_or("\u{0}"),
        &row.applied_at,
    ])
}

pub(super) async fn insert_row(conn: &mut Conn<'_>, row: &VersionRow, prev: &str) -> Result<i64, StoreError> {
    let (id,): (i64,) = conn
        .fetch_one(
            "INSERT INTO marain_history (file, version, hash, yaml, severity, hazards, sql, rollback_sql, backups, \
             status, actor, reason, applied_at, duration_ms, prev_row_hash, row_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id",
            &[
                (&row.file).into(),
                row.version.into(),
                (&row.hash).into(),
                row.yaml.as_deref().into(),
                row.severity.as_str().into(),
                to_json(&row.hazards).into(),
                to_json(&row.sql).into(),
                to_json(&row.rollback_sql).into(),
                to_json(&row.backups).into(),
                row.status.as_str().into(),
                (&row.actor).into(),
                row.reason.as_deref().into(),
                (&row.applied_at).into(),
                row.duration_ms.into(),
                prev.into(),
                row_hash(prev, row).into(),
            ],
        )
        .await?;
    Ok(id)
}

/// A `marain_history` row as stored: JSON columns still text.
#[derive(sqlx::FromRow)]
struct HistoryRecord {
    id: i64,
    file: String,
    version: i64,
    hash: String,
    yaml: Option<String>,
    severity: String,
    hazards: String,
    sql: String,
    rollback_sql: String,
    backups: String,
    status: String,
    actor: String,
    reason: Option<String>,
    applied_at: String,
    duration_ms: i64,
    prev_row_hash: String,
    row_hash: String,
}

impl HistoryRecord {
    fn into_row(self) -> Result<VersionRow, StoreError> {
        let id = self.id;
        let corrupt = |message: String| StoreError::Corrupt { id, message };
        fn parse<T: serde::de::DeserializeOwned>(text: &str, col: &str) -> Result<T, String> {
            serde_json::from_str(text).map_err(|e| format!("{col}: {e}"))
        }
        Ok(VersionRow {
            id,
            severity: Severity::parse(&self.severity)
                .ok_or_else(|| corrupt(format!("unknown severity {}", self.severity)))?,
            hazards: parse(&self.hazards, "hazards").map_err(corrupt)?,
            sql: parse(&self.sql, "sql").map_err(corrupt)?,
            rollback_sql: parse(&self.rollback_sql, "rollback_sql").map_err(corrupt)?,
            backups: parse(&self.backups, "backups").map_err(corrupt)?,
            status: VersionStatus::parse(&self.status)
                .ok_or_else(|| corrupt(format!("unknown status {}", self.status)))?,
            file: self.file,
            version: self.version,
            hash: self.hash,
            yaml: self.yaml,
            actor: self.actor,
            reason: self.reason,
            applied_at: self.applied_at,
            duration_ms: self.duration_ms,
        })
    }
}
