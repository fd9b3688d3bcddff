//! The database: typed content tables and the append-only history, via sqlx.
//!
//! Each apply is one transaction holding the plan's SQL and the history row, so
//! the database never shows a change without its record or a record without its
//! change. Applies are serialised across processes: SQLite's `BEGIN IMMEDIATE`,
//! PostgreSQL's transaction-scoped advisory lock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sqlx::Connection;

use super::database::{scheme_only, Arg, Conn, Pool, PoolSize, Tx};

use crate::hash::sha256_parts;
use crate::hazard::{Hazard, Severity};
use crate::plan::Plan;
use crate::sql::Dialect;

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
    #[error("{file} was changed by another instance first; the change is planned again from what is applied now")]
    HeadMoved { file: String },
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
    pool: Pool,
    /// Where applies run. SQLite: a pool of one connection kept for good, since
    /// SQLite re-reads the whole schema on a connection whose schema another
    /// connection changed; applying on one connection keeps a thousand-table
    /// first start linear, not quadratic. PostgreSQL: the main pool.
    writer: Pool,
    /// One apply at a time within this process; across processes the database
    /// serialises them (SQLite's write lock, PostgreSQL's advisory lock).
    apply_lock: Arc<tokio::sync::Mutex<()>>,
    /// Crash points for the kill -9 tests (inert in release builds).
    failpoints: super::failpoint::Failpoints,
    /// This process, as named in the notifications it sends.
    instance: String,
}

/// The PostgreSQL channel every commit of a history row is announced on.
pub const CHANGES_CHANNEL: &str = "marain_changes";

/// What a notification on [`CHANGES_CHANNEL`] says: which instance applied
/// which version. Only a hint; readers load the history rows themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeNotice {
    pub instance: String,
    pub id: i64,
    pub file: String,
    pub version: i64,
}

/// The key of the transaction-scoped advisory lock every PostgreSQL apply takes
/// (`pg_advisory_xact_lock`): "marain" in ASCII. Transaction-scoped, so it works
/// behind PgBouncer in transaction mode and can never outlive a crashed apply.
pub const APPLY_LOCK_KEY: i64 = 0x6d61_7261_696e;

/// How often an apply that met a held table lock tries again before it gives up.
pub const LOCK_ATTEMPTS: u32 = 8;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Opens (creating if needed) the database at `url` — SQLite or PostgreSQL,
    /// by the URL's scheme — and brings Marain's own tables up to date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open { url: scheme_only(url), source };
        let readers = match Pool::dialect_of(url) {
            // Every schema change makes each SQLite connection parse the whole
            // schema again (about 12 ms per connection at 1,000 tables), so
            // readers beyond the cores cost a reload each and add no speed.
            Some(Dialect::Sqlite) => std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8) as u32,
            _ => 8,
        };
        let pool =
            Pool::connect(url, PoolSize { max_connections: readers, keep_forever: false }).await.map_err(open_err)?;
        match &pool {
            Pool::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await?,
            Pool::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await?,
        }
        let writer = match pool.dialect() {
            Dialect::Sqlite => {
                Pool::connect(url, PoolSize { max_connections: 1, keep_forever: true }).await.map_err(open_err)?
            }
            Dialect::Postgres => pool.clone(),
        };
        Ok(Self {
            pool,
            writer,
            apply_lock: Arc::new(tokio::sync::Mutex::new(())),
            failpoints: super::failpoint::Failpoints::from_env(),
            instance: uuid::Uuid::now_v7().to_string(),
        })
    }

    /// This process's name in notifications, unique per start.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The newest history row's id (0 for none): the one value that moves
    /// whenever any instance applies anything, for the sync poll.
    pub async fn history_head(&self) -> Result<i64, StoreError> {
        let (id,): (Option<i64>,) = self.pool.fetch_one("SELECT MAX(id) FROM marain_history", &[]).await?;
        Ok(id.unwrap_or(0))
    }

    /// Every applied version's file, version and hash, oldest first: which
    /// texts a file has had.
    pub async fn version_hashes(&self) -> Result<Vec<(String, i64, String)>, StoreError> {
        let sql = "SELECT file, version, hash FROM marain_history WHERE status = 'applied' ORDER BY id";
        Ok(self.pool.fetch_all(sql, &[]).await?)
    }

    /// Every history row after row `id`, oldest first: what other instances
    /// applied since this one last looked. The history is append-only and
    /// applies are serialised, so nothing committed can hide below `id`.
    pub async fn history_after(&self, id: i64) -> Result<Vec<VersionRow>, StoreError> {
        let rows: Vec<HistoryRecord> =
            self.pool.fetch_all("SELECT * FROM marain_history WHERE id > $1 ORDER BY id", &[id.into()]).await?;
        rows.into_iter().map(HistoryRecord::into_row).collect()
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Which SQL this store's database speaks.
    pub fn dialect(&self) -> Dialect {
        self.pool.dialect()
    }

    pub fn failpoints(&self) -> &super::failpoint::Failpoints {
        &self.failpoints
    }

    /// Counts what each of `plan`'s probes asks, on the live data.
    pub async fn probe(&self, plan: &Plan) -> Result<BTreeMap<String, i64>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        run_probes(&mut conn.conn(), plan).await
    }

    /// Runs `plan` (as statically graded) and appends its history row in one
    /// transaction; returns the row. Inside the transaction the file's applied
    /// head is read again (another instance may have moved it) and the probes run
    /// again: the change is refused if the head is no longer the plan's base, or
    /// if the data now grades it above `approved`.
    ///
    /// On PostgreSQL the transaction gives up waiting for any lock after
    /// `lock_timeout` (the error then says so, [`StoreError::is_lock_timeout`],
    /// and the caller may try again later), so the readers queued behind its
    /// lock request never wait longer than that.
    pub async fn apply(
        &self,
        plan: &Plan,
        approved: Severity,
        record: VersionRecord,
        lock_timeout: Duration,
    ) -> Result<VersionRow, StoreError> {
        let started = Instant::now();
        self.failpoints.begin_apply();
        let _one_at_a_time = self.apply_lock.lock().await;
        match self.dialect() {
            Dialect::Sqlite => self.apply_sqlite(plan, approved, record, started).await,
            Dialect::Postgres => self.apply_postgres(plan, approved, record, started, lock_timeout).await,
        }
    }

    /// Who holds locks on content tables right now, besides Marain's own
    /// connections: `pid … (application, state) running: query`, for the log
    /// line of an apply that had to wait.
    pub async fn lock_holders(&self) -> Result<Vec<String>, StoreError> {
        if self.dialect() != Dialect::Postgres {
            return Ok(Vec::new());
        }
        let rows: Vec<(i32, String, String, String)> = self
            .pool
            .fetch_all(
                "SELECT DISTINCT a.pid, COALESCE(a.application_name, ''), COALESCE(a.state, ''), \
                 left(COALESCE(a.query, ''), 200) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 JOIN pg_class c ON c.oid = l.relation \
                 WHERE c.relname LIKE 'content\\_%' AND l.granted AND a.pid <> pg_backend_pid() \
                 AND a.application_name <> 'marain' ORDER BY 1",
                &[],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(pid, app, state, query)| format!("pid {pid} ({app}, {state}) running: {query}"))
            .collect())
    }

    async fn apply_sqlite(
        &self,
        plan: &Plan,
        approved: Severity,
        record: VersionRecord,
        started: Instant,
    ) -> Result<VersionRow, StoreError> {
        let Pool::Sqlite(writer) = &self.writer else { unreachable!("the SQLite store has a SQLite writer") };
        let mut conn = writer.acquire().await?;
        if plan.foreign_keys_off {
            sqlx::query("PRAGMA foreign_keys = OFF").execute(&mut *conn).await?;
        }
        let touches_data = plan.moves_data();
        if touches_data {
            sqlx::query("PRAGMA synchronous = FULL").execute(&mut *conn).await?;
        }
        let result = async {
            let tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            self.apply_in(Tx::Sqlite(tx), plan, approved, record, started).await
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

    async fn apply_postgres(
        &self,
        plan: &Plan,
        approved: Severity,
        record: VersionRecord,
        started: Instant,
        lock_timeout: Duration,
    ) -> Result<VersionRow, StoreError> {
        let mut tx = self.writer.begin().await?;
        let mut conn = tx.conn();
        conn.execute(&format!("SET LOCAL lock_timeout = {}", lock_timeout.as_millis().max(1)), &[]).await?;
        // Every apply of every instance queues here, so heads are read and
        // written by one at a time.
        conn.execute("SELECT pg_advisory_xact_lock($1)", &[Arg::Int(APPLY_LOCK_KEY)]).await?;
        self.apply_in(tx, plan, approved, record, started).await
    }

    /// Runs `statements` in one transaction, serialised with every apply (the
    /// SQLite writer; PostgreSQL's apply lock): upkeep of names, not a change
    /// of any file, so no history row.
    pub async fn run_upkeep(&self, statements: &[String]) -> Result<(), StoreError> {
        let mut tx = match &self.writer {
            Pool::Sqlite(writer) => Tx::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(_) => self.writer.begin().await?,
        };
        let mut conn = tx.conn();
        if self.dialect() == Dialect::Postgres {
            conn.execute("SELECT pg_advisory_xact_lock($1)", &[Arg::Int(APPLY_LOCK_KEY)]).await?;
        }
        for sql in statements {
            conn.execute(sql, &[]).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The body of an apply, in an open transaction that serialises applies.
    async fn apply_in(
        &self,
        mut tx: Tx<'_>,
        plan: &Plan,
        approved: Severity,
        record: VersionRecord,
        started: Instant,
    ) -> Result<VersionRow, StoreError> {
        let mut conn = tx.conn();
        let head = head_hash(&mut conn, &record.file).await?;
        if head != plan.binding.base_hash {
            return Err(StoreError::HeadMoved { file: record.file });
        }
        let counts = run_probes(&mut conn, plan).await?;
        let mut plan = plan.clone();
        plan.regrade(|p| counts.get(&p.sql).copied());
        let now = plan.severity();
        if now > approved {
            let reasons = plan.hazards().into_iter().filter(|h| h.severity > approved).map(|h| h.message);
            return Err(StoreError::SeverityRose { approved, now, reasons: reasons.collect::<Vec<_>>().join("; ") });
        }
        for step in &plan.steps {
            for statement in &step.sql {
                conn.execute(statement, &[])
                    .await
                    .map_err(|source| StoreError::Statement { statement: statement.clone(), source })?;
                if step.fills_backup(statement) {
                    self.failpoints.reach("after_backup");
                }
            }
        }
        self.failpoints.reach("after_ddl");
        if plan.foreign_keys_off {
            let broken: Vec<(String,)> = conn.fetch_all("SELECT \"table\" FROM pragma_foreign_key_check", &[]).await?;
            let broken = broken.into_iter().filter(|(table,)| !plan.dangling.contains(table)).count();
            if broken > 0 {
                return Err(StoreError::ForeignKeys(broken));
            }
        }
        let (prev_row_hash, last_version) = chain_head(&mut conn, &record.file).await?;
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
        let id = insert_row(&mut conn, &row, &prev_row_hash).await?;
        conn.execute(
            "INSERT INTO marain_history_head AS h (singleton, row_id, row_hash, rows) VALUES (1, $1, $2, 1) \
             ON CONFLICT (singleton) DO UPDATE SET row_id = excluded.row_id, row_hash = excluded.row_hash, \
             rows = h.rows + 1",
            &[id.into(), row_hash(&prev_row_hash, &row).into()],
        )
        .await?;
        // A version of the file is live now: earlier refusals of it are moot.
        conn.execute("DELETE FROM marain_rejections WHERE file = $1", &[(&row.file).into()]).await?;
        let notice = ChangeNotice { instance: self.instance.clone(), id, file: row.file.clone(), version: row.version };
        announce(&mut conn, &notice).await?;
        self.failpoints.reach("before_commit");
        tx.commit().await?;
        Ok(VersionRow { id, ..row })
    }

    /// The newest applied row of every file ever recorded (including deletions).
    pub async fn latest_versions(&self) -> Result<Vec<VersionRow>, StoreError> {
        let rows: Vec<HistoryRecord> = self
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
        let names = self.pool.table_names().await?;
        Ok(names.into_iter().filter(|n| n.starts_with("marain_backup_")).collect())
    }

    /// Every backup table the history names, with the version that made it, its
    /// rows, and whether it still exists (pruned ones do not).
    pub async fn backups(&self) -> Result<Vec<BackupInfo>, StoreError> {
        let rows: Vec<(i64, String, i64, String, String)> = self
            .pool
            .fetch_all(
                "SELECT id, file, version, applied_at, backups FROM marain_history WHERE status = 'applied' ORDER BY id",
                &[],
            )
            .await?;
        let existing = self.existing_backups().await?;
        let dialect = self.dialect();
        let mut out = Vec::new();
        for (id, file, version, applied_at, json) in rows {
            for table in backup_names(id, &json)? {
                let rows = match existing.contains(&dialect.ident(&table)) {
                    true => {
                        let sql = format!("SELECT COUNT(*) FROM {}", dialect.table(&table));
                        Some(self.pool.fetch_one::<(i64,)>(&sql, &[]).await?.0)
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
                let sql = format!("DROP TABLE IF EXISTS {}", self.dialect().table(&backup.table));
                self.pool.execute(&sql, &[]).await?;
                pruned.push(backup.table);
            }
        }
        Ok(pruned)
    }

    /// Every applied version of every file, oldest first.
    pub async fn applied_versions(&self) -> Result<Vec<AppliedVersion>, StoreError> {
        let rows: Vec<(String, i64, String)> = self
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
            .pool
            .fetch_all(
                "SELECT id, file, version, backups FROM marain_history WHERE status = 'applied' ORDER BY file, version",
                &[],
            )
            .await?;
        let existing = self.existing_backups().await?;
        let dialect = self.dialect();
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
    pub async fn history(&self, file: Option<&str>, limit: i64) -> Result<Vec<VersionRow>, StoreError> {
        let rows: Vec<HistoryRecord> = self
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

    /// Column names of `table`, in order; empty when the table does not exist.
    pub async fn table_columns(&self, table: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.pool.table_columns(&self.dialect().ident(table)).await?)
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// How long the `attempt`-th retry after a lock timeout waits: doubling from
/// 100 ms, at most 2 s, with up to a quarter of jitter so that instances that
/// met the same lock do not come back in step.
pub fn lock_backoff(attempt: u32) -> Duration {
    let base = 100u64.saturating_mul(1 << attempt.min(5)).min(2000);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let jitter = u64::from(nanos) % (base / 4 + 1);
    Duration::from_millis(base + jitter)
}

/// Tells the other instances on this database about `notice`, in the
/// transaction of `conn`: delivered to every listener when, and only if, it
/// commits (see `sync`). Nothing to do on SQLite, which has one process.
pub(super) async fn announce(conn: &mut Conn<'_>, notice: &ChangeNotice) -> Result<(), StoreError> {
    if conn.dialect() == Dialect::Postgres {
        conn.execute("SELECT pg_notify($1, $2)", &[CHANGES_CHANNEL.into(), to_json(notice).into()]).await?;
    }
    Ok(())
}

/// The backup tables a history row's `backups` column names.
fn backup_names(id: i64, json: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt { id, message: format!("backups: {e}") })
}

async fn run_probes(conn: &mut Conn<'_>, plan: &Plan) -> Result<BTreeMap<String, i64>, StoreError> {
    let mut counts = BTreeMap::new();
    for probe in plan.probes() {
        let (n,): (i64,) = conn
            .fetch_one(&probe.sql, &[])
            .await
            .map_err(|source| StoreError::Statement { statement: probe.sql.clone(), source })?;
        counts.insert(probe.sql, n);
    }
    Ok(counts)
}

/// The hash of `file`'s newest applied version ("" when it has none, or when
/// that version deleted it).
async fn head_hash(conn: &mut Conn<'_>, file: &str) -> Result<String, StoreError> {
    let head: Option<(String,)> = conn
        .fetch_optional(
            "SELECT hash FROM marain_history WHERE file = $1 AND status = 'applied' ORDER BY version DESC LIMIT 1",
            &[file.into()],
        )
        .await?;
    Ok(head.map(|(h,)| h).unwrap_or_default())
}

async fn chain_head(conn: &mut Conn<'_>, file: &str) -> Result<(String, i64), StoreError> {
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

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

async fn insert_row(conn: &mut Conn<'_>, row: &VersionRow, prev: &str) -> Result<i64, StoreError> {
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
