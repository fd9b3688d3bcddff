//! One handle on SQLite or PostgreSQL, chosen by the URL's scheme alone.
//!
//! sqlx's own `Any` driver cannot carry what the content tables hold (SQLite's
//! declared `BOOLEAN`/`TIMESTAMP` columns, PostgreSQL's `TIMESTAMPTZ`), so the
//! engine uses this small layer instead: the same statement text (`$1`, `$2` …
//! placeholders, which both drivers accept) runs on whichever pool the site has,
//! rows come back as plain Rust types, and the few places where the dialects
//! differ ask [`Database::dialect`].

use std::str::FromStr;
use std::time::Duration;

use serde_json::Value as Json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{FromRow, PgConnection, PgPool, Row, SqliteConnection, SqlitePool, TypeInfo, ValueRef};

use super::backend::Backend;
use crate::sql::Dialect;

pub use super::arg::Arg;

/// A row type both drivers can decode.
pub trait Record: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}
impl<T> Record for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}

/// Runs `$body` with `$c` bound to the backend's own value, whichever it is.
macro_rules! each_backend {
    ($value:expr, $enum:ident, $c:ident => $body:expr) => {
        match $value {
            $enum::Sqlite($c) => $body,
            $enum::Postgres($c, ..) => $body,
        }
    };
}

/// How a PostgreSQL connection runs a statement. sqlx sends a statement
/// with arguments in two rounds (parse, then bind and execute), and names it
/// to keep it prepared even with its cache off. Behind a pooler in
/// transaction mode, the next round may reach another server session, where
/// the name means nothing or something else; only within a transaction do
/// the rounds stay on one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Statements {
    /// Straight to PostgreSQL: prepared once, kept for the connection's life.
    Kept,
    /// Behind a pooler, outside a transaction: each statement unnamed, in a
    /// transaction of its own.
    Unnamed,
    /// Behind a pooler, in an open transaction: each statement unnamed.
    UnnamedInTransaction,
}

impl Statements {
    /// How statements run once a transaction is open.
    fn in_transaction(self) -> Statements {
        match self {
            Statements::Kept => Statements::Kept,
            Statements::Unnamed | Statements::UnnamedInTransaction => Statements::UnnamedInTransaction,
        }
    }
}

/// Runs `$body` (a `Result<_, sqlx::Error>`) with `$conn` the PostgreSQL
/// connection to run it on and `$kept` whether its statement may stay
/// prepared, as `$statements` says (see [`Statements`]).
macro_rules! on_postgres {
    ($c:expr, $statements:expr, |$conn:ident, $kept:ident| $body:expr) => {
        match $statements {
            Statements::Kept | Statements::UnnamedInTransaction => {
                let $kept = matches!($statements, Statements::Kept);
                let $conn = &mut **$c;
                $body
            }
            Statements::Unnamed => {
                let mut tx = sqlx::Connection::begin(&mut **$c).await?;
                let $kept = false;
                let $conn = &mut *tx;
                let out = $body;
                if out.is_ok() {
                    tx.commit().await?;
                }
                out
            }
        }
    };
}

/// `args` as the driver's own argument list, in order.
fn arguments<'q, DB: sqlx::Database>(args: &'q [Arg]) -> Result<<DB as sqlx::Database>::Arguments<'q>, sqlx::Error>
where
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    f64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    use sqlx::Arguments;
    let mut out = <DB as sqlx::Database>::Arguments::<'q>::default();
    for arg in args {
        match arg {
            Arg::Null => out.add(None::<&str>),
            Arg::Text(s) => out.add(Some(s.as_str())),
            Arg::Int(i) => out.add(*i),
            Arg::Float(f) => out.add(*f),
            Arg::Bool(b) => out.add(*b),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(out)
}

/// One connection (or open transaction) of either backend.
pub enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection, Statements),
}

impl Conn<'_> {
    pub fn dialect(&self) -> Dialect {
        match self {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Postgres(..) => Dialect::Postgres,
        }
    }

    /// What differs on this connection's backend.
    pub fn backend(&self) -> &'static dyn Backend {
        super::backend::of(self.dialect())
    }

    /// Runs one statement; returns the rows it affected.
    pub async fn execute(&mut self, sql: &str, args: &[Arg]) -> Result<u64, sqlx::Error> {
        match self {
            Conn::Sqlite(c) => {
                Ok(sqlx::query_with(sql, arguments::<sqlx::Sqlite>(args)?).execute(&mut **c).await?.rows_affected())
            }
            Conn::Postgres(c, statements) => {
                on_postgres!(c, *statements, |conn, kept| sqlx::query_with(sql, arguments::<sqlx::Postgres>(args)?)
                    .persistent(kept)
                    .execute(conn)
                    .await
                    .map(|done| done.rows_affected()))
            }
        }
    }

    pub async fn fetch_all<T: Record>(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<T>, sqlx::Error> {
        match self {
            Conn::Sqlite(c) => sqlx::query_as_with(sql, arguments::<sqlx::Sqlite>(args)?).fetch_all(&mut **c).await,
            Conn::Postgres(c, statements) => {
                on_postgres!(c, *statements, |conn, kept| sqlx::query_as_with(sql, arguments::<sqlx::Postgres>(args)?)
                    .persistent(kept)
                    .fetch_all(conn)
                    .await)
            }
        }
    }

    pub async fn fetch_optional<T: Record>(&mut self, sql: &str, args: &[Arg]) -> Result<Option<T>, sqlx::Error> {
        match self {
            Conn::Sqlite(c) => {
                sqlx::query_as_with(sql, arguments::<sqlx::Sqlite>(args)?).fetch_optional(&mut **c).await
            }
            Conn::Postgres(c, statements) => {
                on_postgres!(c, *statements, |conn, kept| sqlx::query_as_with(sql, arguments::<sqlx::Postgres>(args)?)
                    .persistent(kept)
                    .fetch_optional(conn)
                    .await)
            }
        }
    }

    pub async fn fetch_one<T: Record>(&mut self, sql: &str, args: &[Arg]) -> Result<T, sqlx::Error> {
        match self {
            Conn::Sqlite(c) => sqlx::query_as_with(sql, arguments::<sqlx::Sqlite>(args)?).fetch_one(&mut **c).await,
            Conn::Postgres(c, statements) => {
                on_postgres!(c, *statements, |conn, kept| sqlx::query_as_with(sql, arguments::<sqlx::Postgres>(args)?)
                    .persistent(kept)
                    .fetch_one(conn)
                    .await)
            }
        }
    }

    /// Rows as JSON values, each column by the type the database reports for it:
    /// integers, floats, booleans and text (anything else as text).
    pub async fn fetch_json(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<Vec<Json>>, sqlx::Error> {
        match self {
            Conn::Sqlite(c) => {
                let rows = sqlx::query_with(sql, arguments::<sqlx::Sqlite>(args)?).fetch_all(&mut **c).await?;
                Ok(rows.iter().map(json_row).collect())
            }
            Conn::Postgres(c, statements) => {
                // Not kept prepared: after a change of a column's type the same
                // text returns another type, which a kept statement refuses.
                let rows = on_postgres!(c, *statements, |conn, _kept| sqlx::query_with(
                    sql,
                    arguments::<sqlx::Postgres>(args)?
                )
                .persistent(false)
                .fetch_all(conn)
                .await)?;
                Ok(rows.iter().map(json_row).collect())
            }
        }
    }
}

fn json_row<R: Row>(row: &R) -> Vec<Json>
where
    usize: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i32: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    f64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    (0..row.columns().len())
        .map(|i| {
            let Ok(raw) = row.try_get_raw(i) else { return Json::Null };
            if raw.is_null() {
                return Json::Null;
            }
            // SQLite reports the stored value's own type; PostgreSQL the column's.
            let name = raw.type_info().name().to_ascii_uppercase();
            match name.as_str() {
                "INTEGER" | "INT8" | "BIGINT" => row.try_get_unchecked::<i64, _>(i).map(Json::from),
                "INT4" | "INT" => row.try_get_unchecked::<i32, _>(i).map(Json::from),
                "REAL" | "FLOAT8" | "DOUBLE PRECISION" => row.try_get_unchecked::<f64, _>(i).map(Json::from),
                "BOOL" | "BOOLEAN" => row.try_get_unchecked::<bool, _>(i).map(Json::from),
                _ => row.try_get_unchecked::<String, _>(i).map(Json::from),
            }
            .unwrap_or(Json::Null)
        })
        .collect()
}

/// A pool of either backend.
#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool, Statements),
}

/// An open transaction of either backend.
pub enum Tx<'c> {
    Sqlite(sqlx::Transaction<'c, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'c, sqlx::Postgres>, Statements),
}

impl Tx<'_> {
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Sqlite(tx) => Conn::Sqlite(tx),
            Tx::Postgres(tx, statements) => Conn::Postgres(tx, statements.in_transaction()),
        }
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        each_backend!(self, Tx, tx => tx.commit().await)
    }
}

/// A connection taken from a [`Pool`], returned to it on drop.
pub enum Pooled {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>, Statements),
}

impl Pooled {
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Pooled::Sqlite(c) => Conn::Sqlite(c),
            Pooled::Postgres(c, statements) => Conn::Postgres(c, *statements),
        }
    }

    /// Closes this connection instead of returning it to the pool (it is
    /// broken, or its session could not be set back); the pool opens another.
    pub async fn close(self) {
        let closed = match self {
            Pooled::Sqlite(c) => c.close().await,
            Pooled::Postgres(c, _) => c.close().await,
        };
        if let Err(e) = closed {
            tracing::debug!(error = %e, "closing a connection");
        }
    }

    /// Takes this connection out of the pool for good and drops it, which
    /// closes it: what its session held (an advisory lock) ends with it. For
    /// where nothing can be awaited (a `Drop`).
    pub fn detach(self) {
        match self {
            Pooled::Sqlite(c) => drop(c.detach()),
            Pooled::Postgres(c, _) => drop(c.detach()),
        }
    }

    /// A transaction on this connection, begun with `statement` (`BEGIN`,
    /// SQLite's `BEGIN IMMEDIATE`).
    pub async fn begin_with(&mut self, statement: &'static str) -> Result<Tx<'_>, sqlx::Error> {
        use sqlx::Connection;
        Ok(match self {
            Pooled::Sqlite(c) => Tx::Sqlite(c.begin_with(statement).await?),
            Pooled::Postgres(c, statements) => Tx::Postgres(c.begin_with(statement).await?, *statements),
        })
    }
}

/// How [`Pool::connect`] sets a pool up.
#[derive(Debug, Clone, Copy)]
pub struct PoolSize {
    pub max_connections: u32,
    /// Connections are never closed for being idle or old (the SQLite writer
    /// keeps its one connection and so its parsed schema).
    pub keep_forever: bool,
    /// The URL is a pooler's in transaction mode (PgBouncer): consecutive
    /// transactions of one connection may run on different server sessions, so
    /// no statement is kept prepared on the server (sqlx's statement cache is
    /// off; each statement is parsed, bound and run in one round).
    pub behind_pooler: bool,
}

/// Creates the SQLite file `path`, when it is missing, readable and writable
/// by this user only (0600): it holds every content row, the accounts'
/// password hashes and the sessions. SQLite makes its `-wal` and `-shm`
/// files with the database file's mode. An existing file keeps its mode; a
/// failure here is left for the connection to report.
fn create_private(path: &std::path::Path) {
    use std::os::unix::fs::OpenOptionsExt;
    if path.as_os_str().is_empty() || path == std::path::Path::new(":memory:") {
        return;
    }
    let _ = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path);
}

impl Pool {
    /// The backend a URL names: `sqlite:` or `postgres:`/`postgresql:`.
    pub fn dialect_of(url: &str) -> Option<Dialect> {
        let scheme = url.split(':').next()?;
        match scheme {
            "sqlite" => Some(Dialect::Sqlite),
            "postgres" | "postgresql" => Some(Dialect::Postgres),
            _ => None,
        }
    }

    /// Connects to `url`. SQLite files are created when missing and run in WAL
    /// mode with foreign keys on.
    pub async fn connect(url: &str, size: PoolSize) -> Result<Pool, sqlx::Error> {
        let lasting = |d: Duration| (!size.keep_forever).then_some(d);
        match Self::dialect_of(url) {
            Some(Dialect::Sqlite) => {
                let options = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // WAL + NORMAL: a commit survives a process crash (kill -9)
                    // without an fsync; only a power loss can drop the newest
                    // commits, and those are re-derived from the files at
                    // start-up. Transactions that delete or restore data switch
                    // to FULL (see `Store::apply`): they cannot be re-derived.
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    // Type conversions match texts with REGEXP, as PostgreSQL
                    // does with `~` (see `sql::convert`).
                    .with_regexp()
                    .busy_timeout(Duration::from_secs(5));
                create_private(options.get_filename());
                let pool = SqlitePoolOptions::new()
                    .max_connections(size.max_connections)
                    .idle_timeout(lasting(Duration::from_secs(600)))
                    .max_lifetime(lasting(Duration::from_secs(1800)))
                    .connect_with(options)
                    .await?;
                Ok(Pool::Sqlite(pool))
            }
            Some(Dialect::Postgres) => {
                // sqlx starts every session with `TimeZone=UTC`: a date-time
                // written without a zone means UTC, as on SQLite and in the
                // conversions (which do not depend on it, see `sql::convert`).
                let mut options = PgConnectOptions::from_str(url)?.application_name("marain");
                if size.behind_pooler {
                    options = options.statement_cache_capacity(0);
                }
                let pool_options = || {
                    PgPoolOptions::new()
                        // SQL means what it says whatever the server's
                        // default: under the legacy `off` a backslash in a
                        // literal escapes (`LIKE 'content\_%'` would match any
                        // character). Set in a statement, not in the start-up
                        // packet, so a pooler in transaction mode keeps it
                        // (PgBouncer tracks this setting per client). Literals
                        // made from files do not rely on it (`sql::string_literal`).
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                sqlx::Executor::execute(conn, "SET standard_conforming_strings = on").await?;
                                Ok(())
                            })
                        })
                        .max_connections(size.max_connections)
                        .idle_timeout(lasting(Duration::from_secs(600)))
                        .max_lifetime(lasting(Duration::from_secs(1800)))
                        .acquire_timeout(Duration::from_secs(10))
                };
                let pool = match pool_options().connect_with(options.clone()).await {
                    // Like a SQLite file, a missing database is created (when
                    // the account may); every other failure is reported.
                    Err(e) if e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "3D000") => {
                        use sqlx::migrate::MigrateDatabase;
                        match sqlx::Postgres::create_database(url).await {
                            // Another instance created it a moment ago.
                            Err(e) if e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "42P04") => {}
                            other => other?,
                        }
                        pool_options().connect_with(options).await?
                    }
                    other => other?,
                };
                let statements = if size.behind_pooler { Statements::Unnamed } else { Statements::Kept };
                Ok(Pool::Postgres(pool, statements))
            }
            None => Err(sqlx::Error::Configuration(
                format!("`{}` is neither a sqlite: nor a postgres: URL", scheme_only(url)).into(),
            )),
        }
    }

    /// A direct URL goes only with a PostgreSQL database behind a pooler.
    pub fn check_direct(pooled: &str, direct: &str) -> Result<(), sqlx::Error> {
        match (Self::dialect_of(pooled), Self::dialect_of(direct)) {
            (Some(Dialect::Postgres), Some(Dialect::Postgres)) => Ok(()),
            _ => Err(sqlx::Error::Configuration(
                "a direct database URL goes with a PostgreSQL database behind a pooler: both must be postgres:// URLs"
                    .into(),
            )),
        }
    }

    /// Whether this pool's URL is a pooler's in transaction mode.
    pub fn behind_pooler(&self) -> bool {
        matches!(self, Pool::Postgres(_, Statements::Unnamed))
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Pool::Sqlite(_) => Dialect::Sqlite,
            Pool::Postgres(..) => Dialect::Postgres,
        }
    }

    /// What differs on this pool's backend.
    pub fn backend(&self) -> &'static dyn Backend {
        super::backend::of(self.dialect())
    }

    /// Brings Marain's own tables up to date with the backend's migrations.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        let migrator = self.backend().migrator();
        match self {
            Pool::Sqlite(p) => migrator.run(p).await,
            Pool::Postgres(p, _) => migrator.run(p).await,
        }
    }

    /// The PostgreSQL pool, for what only PostgreSQL offers (`LISTEN`).
    pub fn postgres(&self) -> Option<&PgPool> {
        match self {
            Pool::Postgres(p, _) => Some(p),
            Pool::Sqlite(_) => None,
        }
    }

    pub async fn acquire(&self) -> Result<Pooled, sqlx::Error> {
        Ok(match self {
            Pool::Sqlite(p) => Pooled::Sqlite(p.acquire().await?),
            Pool::Postgres(p, statements) => Pooled::Postgres(p.acquire().await?, *statements),
        })
    }

    pub async fn begin(&self) -> Result<Tx<'static>, sqlx::Error> {
        Ok(match self {
            Pool::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Pool::Postgres(p, statements) => Tx::Postgres(p.begin().await?, *statements),
        })
    }

    /// A transaction that holds the right to write from its first statement
    /// (SQLite: `BEGIN IMMEDIATE`), so what it reads before it writes cannot
    /// be changed meanwhile by another writer. PostgreSQL: a plain `BEGIN`.
    pub async fn begin_immediate(&self) -> Result<Tx<'static>, sqlx::Error> {
        Ok(match self {
            Pool::Sqlite(p) => {
                Tx::Sqlite(sqlx::Transaction::begin(p.acquire().await?, Some("BEGIN IMMEDIATE".into())).await?)
            }
            Pool::Postgres(p, statements) => Tx::Postgres(p.begin().await?, *statements),
        })
    }

    pub async fn execute(&self, sql: &str, args: &[Arg]) -> Result<u64, sqlx::Error> {
        self.acquire().await?.conn().execute(sql, args).await
    }

    pub async fn fetch_all<T: Record>(&self, sql: &str, args: &[Arg]) -> Result<Vec<T>, sqlx::Error> {
        self.acquire().await?.conn().fetch_all(sql, args).await
    }

    pub async fn fetch_optional<T: Record>(&self, sql: &str, args: &[Arg]) -> Result<Option<T>, sqlx::Error> {
        self.acquire().await?.conn().fetch_optional(sql, args).await
    }

    pub async fn fetch_one<T: Record>(&self, sql: &str, args: &[Arg]) -> Result<T, sqlx::Error> {
        self.acquire().await?.conn().fetch_one(sql, args).await
    }

    pub async fn fetch_json(&self, sql: &str, args: &[Arg]) -> Result<Vec<Vec<Json>>, sqlx::Error> {
        self.acquire().await?.conn().fetch_json(sql, args).await
    }

    /// Names of the tables in the database (PostgreSQL: in the current schema).
    pub async fn table_names(&self) -> Result<Vec<String>, sqlx::Error> {
        let rows: Vec<(String,)> = self.fetch_all(self.backend().table_names_query(), &[]).await?;
        Ok(rows.into_iter().map(|(n,)| n).collect())
    }

    /// Every index in the database (PostgreSQL: in the current schema), as
    /// (index name, table name).
    pub async fn index_tables(&self) -> Result<Vec<(String, String)>, sqlx::Error> {
        self.fetch_all(self.backend().index_tables_query(), &[]).await
    }

    /// Column names of `table`, in order; empty when it does not exist.
    pub async fn table_columns(&self, table: &str) -> Result<Vec<String>, sqlx::Error> {
        let rows: Vec<(String,)> = self.fetch_all(self.backend().table_columns_query(), &[table.into()]).await?;
        Ok(rows.into_iter().map(|(n,)| n).collect())
    }

    pub async fn close(&self) {
        each_backend!(self, Pool, p => p.close().await)
    }
}

/// The scheme of a URL, never its credentials, for error messages.
pub fn scheme_only(url: &str) -> String {
    match url.split_once(':') {
        Some((scheme, _)) => format!("{scheme}:…"),
        None => "(no scheme)".into(),
    }
}
