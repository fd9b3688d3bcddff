//! The database: typed content tables and the append-only history, via sqlx.
//!
//! Each apply is one `BEGIN IMMEDIATE` transaction holding the plan's SQL and the
//! history row, so the database never shows a change without its record or a
//! record without its change.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Row, SqlitePool};

use crate::hash::sha256_parts;
use crate::hazard::{Hazard, Severity};
use crate::plan::Plan;
use crate::sql::quote;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("cannot migrate the history tables: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("statement failed: {statement}: {source}")]
    Statement { statement: String, source: sqlx::Error },
    #[error("foreign key check failed after the change: {0} rows reference missing rows")]
    ForeignKeys(usize),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("the live data changed since approval: the change is now {now} (approved as {approved}): {reasons}")]
    SeverityRose { approved: Severity, now: Severity, reasons: String },
    #[error("history row {id} is corrupt: {message}")]
    Corrupt { id: i64, message: String },
}

/// Where the tamper-evident chain of history rows breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("history row {id} breaks the chain: {reason}")]
pub struct ChainBreak {
    pub id: i64,
    pub reason: String,
}

/// What the history records about one applied version, besides the plan.
#[derive(Debug, Clone)]
pub struct VersionRecord {
    pub file: String,
    pub hash: String,
    /// `None` when this version deletes the file.
    pub yaml: Option<String>,
    pub actor: String,
    pub reason: Option<String>,
    pub applied_at: String,
}

/// One row of the history, as the API and the dashboard show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRow {
    pub id: i64,
    pub file: String,
    pub version: i64,
    pub hash: String,
    pub yaml: Option<String>,
    pub severity: Severity,
    pub hazards: Vec<Hazard>,
    pub sql: Vec<String>,
    pub rollback_sql: Vec<String>,
    pub backups: Vec<String>,
    pub status: VersionStatus,
    pub actor: String,
    pub reason: Option<String>,
    pub applied_at: String,
    pub duration_ms: i64,
}

/// What became of a recorded version. The history records applied versions;
/// refused and superseded changes are in the audit log (`secure.log`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionStatus {
    Applied,
}

impl VersionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionStatus::Applied => "applied",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "applied" => Some(VersionStatus::Applied),
            _ => None,
        }
    }
}

/// One applied version, without its texts: what point-in-time recovery scans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedVersion {
    pub file: String,
    pub version: i64,
    pub applied_at: String,
}

/// One backup table and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackupInfo {
    pub table: String,
    pub file: String,
    pub version: i64,
    pub applied_at: String,
    /// `None` once pruned.
    pub rows: Option<i64>,
}

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    /// The one connection every apply runs on. SQLite re-reads the whole schema
    /// on a connection whose schema another connection changed; applying on one
    /// connection keeps a thousand-table first start linear, not quadratic.
    writer: Arc<tokio::sync::Mutex<sqlx::SqliteConnection>>,
    /// Crash points for the kill -9 tests (inert in release builds).
    failpoints: super::failpoint::Failpoints,
}

impl Store {
    /// Opens (creating if needed) the database at `url` in WAL mode and brings the
    /// history tables up to date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open { url: url.to_string(), source };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL: a commit survives a process crash (kill -9) without an
            // fsync; only a power loss can drop the newest commits, and those are
            // re-derived from the files at start-up. Transactions that delete or
            // restore data switch to FULL (see `apply`): they cannot be re-derived.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options.clone()).await.map_err(open_err)?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let writer = sqlx::SqliteConnection::connect_with(&options).await.map_err(open_err)?;
        let writer = Arc::new(tokio::sync::Mutex::new(writer));
        Ok(Self { pool, writer, failpoints: super::failpoint::Failpoints::from_env() })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub fn failpoints(&self) -> &super::failpoint::Failpoints {
        &self.failpoints
    }

    /// Counts what each of `plan`'s probes asks, on the live data.
    pub async fn probe(&self, plan: &Plan) -> Result<BTreeMap<String, i64>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        run_probes(&mut conn, plan).await
    }

    /// Runs `plan` (as statically graded) and appends its history row in one
    /// transaction; returns the row. The probes run again inside the transaction,
    /// and the change is refused if the data now grades it above `approved`.
    pub async fn apply(
        &self,
        plan: &Plan,
        approved: Severity,
        record: VersionRecord,
    ) -> Result<VersionRow, StoreError> {
        let started = Instant::now();
        self.failpoints.begin_apply();
        let mut writer = self.writer.lock().await;
        let conn: &mut sqlx::SqliteConnection = &mut writer;
        if plan.foreign_keys_off {
            sqlx::query("PRAGMA foreign_keys = OFF").execute(&mut *conn).await?;
        }
        let touches_data = plan.moves_data();
        if touches_data {
            sqlx::query("PRAGMA synchronous = FULL").execute(&mut *conn).await?;
        }
        let result = async {
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            let counts = run_probes(&mut tx, plan).await?;
            let mut plan = plan.clone();
            plan.regrade(|p| counts.get(&p.sql).copied());
            let now = plan.severity();
            if now > approved {
                let reasons = plan.hazards().into_iter().filter(|h| h.severity > approved).map(|h| h.message);
                return Err(StoreError::SeverityRose {
                    approved,
                    now,
                    reasons: reasons.collect::<Vec<_>>().join("; "),
                });
            }
            for step in &plan.steps {
                for statement in &step.sql {
                    sqlx::query(statement)
                        .execute(&mut *tx)
                        .await
                        .map_err(|source| StoreError::Statement { statement: statement.clone(), source })?;
                    if step.fills_backup(statement) {
                        self.failpoints.reach("after_backup");
                    }
                }
            }
            self.failpoints.reach("after_ddl");
            if plan.foreign_keys_off {
                let broken = sqlx::query_scalar::<_, String>("SELECT \"table\" FROM pragma_foreign_key_check")
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .filter(|table| !plan.dangling.contains(table))
                    .count();
                if broken > 0 {
                    return Err(StoreError::ForeignKeys(broken));
                }
            }
            let (prev_row_hash, last_version) = chain_head(&mut tx, &record.file).await?;
            self.failpoints.reach("before_history");
            let row = VersionRow {
                id: 0,
                file: record.file,
                version: last_version + 1,
                hash: record.hash,
                yaml: record.yaml,
                severity: plan.severity(),
                hazards: plan.hazards(),
                sql: plan.sql(),
                rollback_sql: plan.rollback_sql(),
                backups: plan.backups(),
                status: VersionStatus::Applied,
                actor: record.actor,
                reason: record.reason,
                applied_at: record.applied_at,
                duration_ms: started.elapsed().as_millis() as i64,
            };
            let id = insert_row(&mut tx, &row, &prev_row_hash).await?;
            self.failpoints.reach("before_commit");
            tx.commit().await?;
            Ok(VersionRow { id, ..row })
        }
        .await;
        if plan.foreign_keys_off {
            sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
        }
        if touches_data {
            sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
        }
        result
    }

    /// The newest applied row of every file ever recorded (including deletions).
    pub async fn latest_versions(&self) -> Result<Vec<VersionRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM marain_history h WHERE status = 'applied' AND version = \
             (SELECT MAX(version) FROM marain_history WHERE file = h.file AND status = 'applied') ORDER BY file",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_from_sql).collect()
    }

    /// The applied version `version` of `file`.
    pub async fn version(&self, file: &str, version: i64) -> Result<Option<VersionRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM marain_history WHERE file = ?1 AND version = ?2 AND status = 'applied'")
            .bind(file)
            .bind(version)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(row_from_sql).transpose()
    }

    /// The backup tables made by `file`'s applied versions after `version`,
    /// oldest first: what a rollback to `version` restores from.
    /// Every backup table the history names, with the version that made it, its
    /// rows, and whether it still exists (pruned ones do not).
    pub async fn backups(&self) -> Result<Vec<BackupInfo>, StoreError> {
        let rows: Vec<(i64, String, i64, String, String)> = sqlx::query_as(
            "SELECT id, file, version, applied_at, backups FROM marain_history WHERE status = 'applied' ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        let existing: std::collections::BTreeSet<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'marain\\_backup\\_%' ESCAPE '\\'",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .collect();
        let mut out = Vec::new();
        for (id, file, version, applied_at, json) in rows {
            let names: Vec<String> = serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt { id, message: format!("backups: {e}") })?;
            for table in names {
                let rows = match existing.contains(&table) {
                    true => Some(
                        sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {}", quote(&table)))
                            .fetch_one(&self.pool)
                            .await?,
                    ),
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
        let cutoff = time::OffsetDateTime::now_utc() - time::Duration::days(i64::from(older_than_days));
        let mut pruned = Vec::new();
        for backup in self.backups().await? {
            let applied =
                time::OffsetDateTime::parse(&backup.applied_at, &time::format_description::well_known::Rfc3339);
            if backup.rows.is_some() && applied.is_ok_and(|t| t < cutoff) {
                sqlx::query(&format!("DROP TABLE IF EXISTS {}", quote(&backup.table))).execute(&self.pool).await?;
                pruned.push(backup.table);
            }
        }
        Ok(pruned)
    }

    /// Every applied version of every file, oldest first.
    pub async fn applied_versions(&self) -> Result<Vec<AppliedVersion>, StoreError> {
        let rows: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT file, version, applied_at FROM marain_history WHERE status = 'applied' ORDER BY id")
                .fetch_all(&self.pool)
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
        let rows: Vec<(i64, String, i64, String)> = sqlx::query_as(
            "SELECT id, file, version, backups FROM marain_history WHERE status = 'applied' ORDER BY file, version",
        )
        .fetch_all(&self.pool)
        .await?;
        let existing: std::collections::BTreeSet<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .collect();
        let mut out: BTreeMap<String, Vec<String>> = since.keys().map(|f| (f.clone(), Vec::new())).collect();
        for (id, file, version, json) in rows {
            let Some(names) = out.get_mut(&file).filter(|_| since.get(&file).is_some_and(|v| version > *v)) else {
                continue;
            };
            let made: Vec<String> = serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt { id, message: format!("backups: {e}") })?;
            // A pruned backup cannot refill anything.
            names.extend(made.into_iter().filter(|n| existing.contains(n)));
        }
        Ok(out)
    }

    /// History, newest first, optionally of one file.
    pub async fn history(&self, file: Option<&str>, limit: i64) -> Result<Vec<VersionRow>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM marain_history WHERE (?1 IS NULL OR file = ?1) ORDER BY id DESC LIMIT ?2")
                .bind(file)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(row_from_sql).collect()
    }

    /// Walks the history in order and checks every row's hash and its link to the
    /// row before; returns how many rows are intact, or the first broken one.
    pub async fn verify_chain(&self) -> Result<usize, ChainBreak> {
        let rows = sqlx::query("SELECT * FROM marain_history ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| ChainBreak { id: 0, reason: format!("cannot read the history: {e}") })?;
        let mut prev = String::new();
        for r in &rows {
            let row = row_from_sql(r).map_err(|e| ChainBreak { id: r.get("id"), reason: e.to_string() })?;
            let stored_prev: String = r.get("prev_row_hash");
            let stored_hash: String = r.get("row_hash");
            if stored_prev != prev {
                return Err(ChainBreak {
                    id: row.id,
                    reason: "it does not point at the row before it (a row was removed or inserted)".into(),
                });
            }
            if row_hash(&prev, &row) != stored_hash {
                return Err(ChainBreak {
                    id: row.id,
                    reason: "its content does not match its hash (the row was edited)".into(),
                });
            }
            prev = stored_hash;
        }
        Ok(rows.len())
    }

    /// Column names of `table`, in order; empty when the table does not exist.
    pub async fn table_columns(&self, table: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
            .bind(table)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get::<String, _>("name")).collect())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn run_probes(conn: &mut sqlx::SqliteConnection, plan: &Plan) -> Result<BTreeMap<String, i64>, StoreError> {
    let mut counts = BTreeMap::new();
    for probe in plan.probes() {
        let n: i64 = sqlx::query_scalar(&probe.sql)
            .fetch_one(&mut *conn)
            .await
            .map_err(|source| StoreError::Statement { statement: probe.sql.clone(), source })?;
        counts.insert(probe.sql, n);
    }
    Ok(counts)
}

async fn chain_head(conn: &mut sqlx::SqliteConnection, file: &str) -> Result<(String, i64), StoreError> {
    let prev: Option<String> = sqlx::query_scalar("SELECT row_hash FROM marain_history ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM marain_history WHERE file = ?1")
        .bind(file)
        .fetch_one(&mut *conn)
        .await?;
    Ok((prev.unwrap_or_default(), version.unwrap_or(0)))
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

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

async fn insert_row(conn: &mut sqlx::SqliteConnection, row: &VersionRow, prev: &str) -> Result<i64, StoreError> {
    let id = sqlx::query(
        "INSERT INTO marain_history (file, version, hash, yaml, severity, hazards, sql, rollback_sql, backups, status, \
         actor, reason, applied_at, duration_ms, prev_row_hash, row_hash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )
    .bind(&row.file)
    .bind(row.version)
    .bind(&row.hash)
    .bind(&row.yaml)
    .bind(row.severity.as_str())
    .bind(to_json(&row.hazards))
    .bind(to_json(&row.sql))
    .bind(to_json(&row.rollback_sql))
    .bind(to_json(&row.backups))
    .bind(row.status.as_str())
    .bind(&row.actor)
    .bind(&row.reason)
    .bind(&row.applied_at)
    .bind(row.duration_ms)
    .bind(prev)
    .bind(row_hash(prev, row))
    .execute(&mut *conn)
    .await?
    .last_insert_rowid();
    Ok(id)
}

fn row_from_sql(r: &sqlx::sqlite::SqliteRow) -> Result<VersionRow, StoreError> {
    let id: i64 = r.get("id");
    let corrupt = |message: String| StoreError::Corrupt { id, message };
    fn parse<T: serde::de::DeserializeOwned>(r: &sqlx::sqlite::SqliteRow, col: &str) -> Result<T, String> {
        serde_json::from_str(&r.get::<String, _>(col)).map_err(|e| format!("{col}: {e}"))
    }
    let severity: String = r.get("severity");
    let status: String = r.get("status");
    Ok(VersionRow {
        id,
        file: r.get("file"),
        version: r.get("version"),
        hash: r.get("hash"),
        yaml: r.get("yaml"),
        severity: Severity::parse(&severity).ok_or_else(|| corrupt(format!("unknown severity {severity}")))?,
        hazards: parse(r, "hazards").map_err(corrupt)?,
        sql: parse(r, "sql").map_err(corrupt)?,
        rollback_sql: parse(r, "rollback_sql").map_err(corrupt)?,
        backups: parse(r, "backups").map_err(corrupt)?,
        status: VersionStatus::parse(&status).ok_or_else(|| corrupt(format!("unknown status {status}")))?,
        actor: r.get("actor"),
        reason: r.get("reason"),
        applied_at: r.get("applied_at"),
        duration_ms: r.get("duration_ms"),
    })
}
