//! The database: typed content tables and the append-only history, via sqlx.
//!
//! Each apply is one transaction holding the plan's SQL and the history row, so
//! the database never shows a change without its record or a record without its
//! change. Applies are serialised across processes: SQLite's `BEGIN IMMEDIATE`,
//! PostgreSQL's transaction-scoped advisory lock.

//! The store is split by concern, each a view on the one connection pool with
//! one job: [`Store`] itself opens the database and applies plans
//! (`store/apply.rs`); [`History`] is the history rows and the backup tables
//! they name (`store/history.rs`); [`Accounts`] is accounts, API tokens,
//! dashboard sessions and failed sign-ins (`accounts.rs`, `signed_in.rs`,
//! `sign_in.rs`); [`ClusterTables`] is what the instances sharing a database
//! keep there for one another: proposals, rejections, webhook claims
//! (`proposals.rs`, `rejections.rs`, `deliveries.rs`). What differs between
//! SQLite and PostgreSQL is the backend's (`backend/`).

mod apply;
mod history;
mod log_heads;
mod online_runs;
mod phases;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use apply::lock_backoff;
pub use history::row_hash;
pub use online_runs::{OnlineRun, Orphan, RunControl, RunState};
pub use phases::{Lease, Pace, PhaseRun, BRIEF_WAIT};

use super::database::{scheme_only, Conn, Pool, PoolSize};
use crate::hazard::{Hazard, Severity};
use crate::sql::Dialect;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("cannot migrate the history tables: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("statement failed: {statement}: {source}")]
    Statement { statement: String, source: sqlx::Error },
    #[error("the data does not allow the change: {found} rows found by {statement}")]
    Disproved { statement: String, found: i64 },
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
    #[error("the commit of {file} did not complete (the connection to the database was lost, or the database refused it); the history shows nothing of it applied")]
    NotCommitted { file: String },
    #[error(
        "the database's disk is full: nothing of the change to {file} was applied; free space and approve it again"
    )]
    DiskFull { file: String },
    #[error("the online phases of the change to {file} were aborted by {by}; what they made is cleared and the applied schema stays live")]
    Aborted { file: String, by: String },
}

/// Where the tamper-evident chain of history rows breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("history row {id} breaks the chain: {reason}")]
pub struct ChainBreak {
    pub id: i64,
    pub reason: String,
}

/// What the history records about one applied version, besides the plan (when
/// it was applied is the database's clock, read in the apply's transaction).
#[derive(Debug, Clone)]
pub struct VersionRecord {
    pub file: String,
    pub hash: String,
    /// `None` when this version deletes the file.
    pub yaml: Option<String>,
    pub actor: String,
    pub reason: Option<String>,
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
    /// Where content writes and an online change's phases run. SQLite: a pool
    /// of its own, so that a write waiting for SQLite's one write lock
    /// (behind a batch of an online change, or another write) holds none of
    /// the readers' connections, and reads never queue behind it. PostgreSQL:
    /// the main pool (its writers do not wait for one another's tables).
    writers: Pool,
    /// What needs a database session of its own across statements:
    /// migrations, `LISTEN`, an online change's lease (a session-level
    /// advisory lock and its `SET`s). The main pool's connections unless the
    /// main URL is a pooler's in transaction mode, where a session does not
    /// outlive a transaction; then straight to PostgreSQL (`--direct-database`,
    /// docs/multi-instance.md).
    direct: Pool,
    /// Turns at SQLite's one write lock for content writes and an online
    /// change's batches, taken in the order asked (tokio's mutex is fair):
    /// SQLite's own busy wait is not, and a writer sleeping in it can miss
    /// every gap between one batch and the next.
    write_turns: Arc<tokio::sync::Mutex<()>>,
    /// One apply at a time within this process; across processes the database
    /// serialises them (SQLite's write lock, PostgreSQL's advisory lock).
    apply_lock: Arc<tokio::sync::Mutex<()>>,
    /// Crash points for the kill -9 tests (inert in release builds).
    failpoints: super::failpoint::Failpoints,
    /// This process, as named in the notifications it sends.
    instance: String,
}

/// Connections straight to PostgreSQL beside a pooler: the listener, the
/// leases of online changes (one per table being changed) and a spare.
const DIRECT_CONNECTIONS: u32 = 4;

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

/// The history of applied versions and the backups they made.
#[derive(Clone, Copy)]
pub struct History<'s> {
    pub(super) store: &'s Store,
}

/// Accounts, API tokens, dashboard sessions and failed sign-ins.
#[derive(Clone, Copy)]
pub struct Accounts<'s> {
    pub(super) store: &'s Store,
}

/// What the instances sharing a database keep there for one another:
/// proposals, rejections, webhook claims.
#[derive(Clone, Copy)]
pub struct ClusterTables<'s> {
    pub(super) store: &'s Store,
}

impl Store {
    /// Opens (creating if needed) the database at `url` — SQLite or PostgreSQL,
    /// by the URL's scheme — and brings Marain's own tables up to date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_through(url, None).await
    }

    /// [`Store::open`] where `url` may be a connection pooler's in
    /// transaction mode: then `direct` reaches the same PostgreSQL database
    /// without it, for what needs a session (see the field `direct`).
    pub async fn open_through(url: &str, direct: Option<&str>) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open { url: scheme_only(url), source };
        let readers = Pool::dialect_of(url).map_or(8, |d| super::backend::of(d).reader_connections());
        let size =
            |max_connections, keep_forever| PoolSize { max_connections, keep_forever, behind_pooler: direct.is_some() };
        let direct = match direct {
            Some(direct_url) => {
                Pool::check_direct(url, direct_url)
                    .map_err(|source| StoreError::Open { url: scheme_only(direct_url), source })?;
                let size = PoolSize { max_connections: DIRECT_CONNECTIONS, keep_forever: false, behind_pooler: false };
                let direct = Pool::connect(direct_url, size)
                    .await
                    .map_err(|source| StoreError::Open { url: scheme_only(direct_url), source })?;
                direct.migrate().await?;
                Some(direct)
            }
            None => None,
        };
        let pool = Pool::connect(url, size(readers, false)).await.map_err(open_err)?;
        if direct.is_none() {
            pool.migrate().await?;
        }
        let (writer, writers) = match pool.backend().kept_writer() {
            true => (
                Pool::connect(url, size(1, true)).await.map_err(open_err)?,
                Pool::connect(url, size(readers, false)).await.map_err(open_err)?,
            ),
            false => (pool.clone(), pool.clone()),
        };
        let direct = direct.unwrap_or_else(|| writers.clone());
        Ok(Self {
            pool,
            writer,
            writers,
            direct,
            write_turns: Arc::new(tokio::sync::Mutex::new(())),
            apply_lock: Arc::new(tokio::sync::Mutex::new(())),
            failpoints: super::failpoint::Failpoints::from_env(),
            instance: uuid::Uuid::now_v7().to_string(),
        })
    }

    /// Now by the database's clock: what instances whose own clocks differ
    /// agree on.
    pub async fn database_now(&self) -> Result<time::OffsetDateTime, StoreError> {
        let (now,): (String,) = self.pool.fetch_one(self.backend().now_sql().0, &[]).await?;
        time::OffsetDateTime::parse(&now, &time::format_description::well_known::Rfc3339)
            .map_err(|e| StoreError::Corrupt { id: 0, message: format!("the database's clock reads {now:?}: {e}") })
    }

    /// This process's name in notifications, unique per start.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Where content writes run (see the field).
    pub fn writers(&self) -> &Pool {
        &self.writers
    }

    /// A turn at writing, held until the write transaction ends, where
    /// writers exclude each other (SQLite); `None` where they do not.
    pub async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend().writers_excluded() {
            true => Some(self.write_turns.lock().await),
            false => None,
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Whether the main URL is a pooler's in transaction mode.
    pub fn behind_pooler(&self) -> bool {
        self.pool.behind_pooler()
    }

    /// Connections whose session lasts as long as they do (see the field).
    pub fn direct(&self) -> &Pool {
        &self.direct
    }

    /// Which SQL this store's database speaks.
    pub fn dialect(&self) -> Dialect {
        self.pool.dialect()
    }

    /// The history of applied versions and the backups they made.
    pub fn history(&self) -> History<'_> {
        History { store: self }
    }

    /// Accounts, API tokens, sessions and sign-in failures.
    pub fn accounts(&self) -> Accounts<'_> {
        Accounts { store: self }
    }

    /// The tables the instances sharing the database keep for one another.
    pub fn cluster(&self) -> ClusterTables<'_> {
        ClusterTables { store: self }
    }

    /// What differs on this store's backend.
    pub fn backend(&self) -> &'static dyn super::backend::Backend {
        self.pool.backend()
    }

    pub fn failpoints(&self) -> &super::failpoint::Failpoints {
        &self.failpoints
    }

    /// Column names of `table`, in order; empty when the table does not exist.
    pub async fn table_columns(&self, table: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.pool.table_columns(&self.dialect().ident(table)).await?)
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
        self.writers.close().await;
        // Its own pool only beside a pooler; else a clone, closed already.
        self.direct.close().await;
    }
}

/// Tells the other instances on this database about `notice`, in the
/// transaction of `conn`: delivered to every listener when, and only if, it
/// commits (see `sync`). Nothing to do on SQLite, which has one process.
pub(super) async fn announce(conn: &mut Conn<'_>, notice: &ChangeNotice) -> Result<(), StoreError> {
    if let Some((sql, args)) = conn.backend().notify(CHANGES_CHANNEL, to_json(notice)) {
        conn.execute(sql, &args).await?;
    }
    Ok(())
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}
