//! What differs between SQLite and PostgreSQL, behind one trait with one
//! implementation per backend (`backend/sqlite.rs`, `backend/postgres.rs`),
//! the way sqlx's `Migrate` has one per driver. The rest of the engine asks
//! [`of`]`(dialect)` (or the store's `backend()`) and never matches on a
//! dialect or a pool itself; `database.rs` holds the driver plumbing (the
//! pools, connections and transactions of either backend). A tidy check keeps
//! it that way.
//!
//! Each method says what the difference is for; the implementations say why
//! each backend does it its way.

mod postgres;
mod sqlite;

use std::time::Duration;

use super::arg::Arg;
use crate::content::SqlValue;
use crate::model::FieldType;
use crate::plan::Plan;
use crate::sql::Dialect;

pub use postgres::Postgres;
pub use sqlite::Sqlite;

/// Statements with their bound values, run in order.
pub type Statements = Vec<(String, Vec<Arg>)>;

/// One database backend's way of doing what the engine needs.
pub trait Backend: Sync {
    fn dialect(&self) -> Dialect;

    // Connections and migrations.

    /// How many reader connections the store's pool keeps.
    fn reader_connections(&self) -> u32;
    /// Whether applies go through a writer connection of their own, kept open
    /// (and so its parsed schema kept), rather than the readers' pool.
    fn kept_writer(&self) -> bool;
    /// Marain's own tables, migrated at start.
    fn migrator(&self) -> &'static sqlx::migrate::Migrator;

    // Applies: serialised across processes, with the history row in the
    // transaction.

    /// Settings of the writer connection that an apply of `plan` needs, each as
    /// (the statement run before the transaction begins, outside it; the one
    /// run once it ended, to set it back).
    fn around_apply(&self, plan: &Plan) -> Vec<(&'static str, &'static str)>;
    /// The setting (before, after, as [`Backend::around_apply`]) under which
    /// the database file may not grow, for the failpoint that fills the disk
    /// (`full:apply`); none where the backend cannot be told so.
    fn no_room(&self) -> Option<(&'static str, &'static str)>;
    /// The database's clock: (a query of now as RFC 3339 UTC, an expression
    /// of now in milliseconds since the Unix epoch). Several instances compare
    /// what they wrote by it, whatever their own clocks say.
    fn now_sql(&self) -> (&'static str, &'static str);
    /// What a subquery choosing rows to lease ends with, so that instances
    /// leasing at once skip each other's rows instead of waiting.
    fn skip_locked(&self) -> &'static str;
    /// Whether the database's error code `code` says its disk is full
    /// (SQLite's `SQLITE_FULL`, PostgreSQL's `disk_full`).
    fn disk_full(&self, code: &str) -> bool;
    /// The statement that begins a transaction holding the right to write from
    /// its first statement.
    fn begin_writing(&self) -> &'static str;
    /// Statements run first inside an apply's (or upkeep's) transaction, so
    /// that every instance's applies run one at a time; a `lock_timeout` bounds
    /// how long any lock of the transaction may be waited for.
    fn serialise(&self, lock_key: i64, lock_timeout: Option<Duration>) -> Vec<(String, Vec<Arg>)>;
    /// Statements taking, on a session of its own, the lease on one table's
    /// online phases (docs/online-changes.md), so only one instance runs them
    /// at a time and the lease ends with the session if the instance dies;
    /// `lock_timeout` bounds every lock the phases wait for. The second list
    /// gives the lease back. None where one process owns the database.
    fn lease(&self, key: i64, lock_timeout: Duration) -> (Statements, Statements);
    /// The statement setting how long the lease's session waits for a lock
    /// from now on; none where no phase runs.
    fn lock_timeout_statement(&self, lock_timeout: Duration) -> Option<String>;
    /// Queries that take lease `key` if nobody holds it (answering whether it
    /// was taken) and give it back; none where no phase runs.
    fn free_lease(&self) -> Option<(&'static str, &'static str)>;
    /// A query of the statements that clear what online phases cut short
    /// left on content tables (an index a concurrent build left invalid, a
    /// constraint never validated, a NOT NULL proof never dropped, a trigger
    /// keeping a backup, a shadow column), as rows of
    /// (table, statement); none where no phase runs.
    fn unfinished_phases_query(&self) -> Option<&'static str>;
    /// The query listing other sessions' locks on content tables (pid,
    /// application, state, query), where the backend can say.
    fn lock_holders_query(&self) -> Option<&'static str>;
    /// The statement telling the other instances on the database about a
    /// commit, delivered when (and only if) it commits; none where one process
    /// owns the database.
    fn notify(&self, channel: &str, payload: String) -> Option<(&'static str, Vec<Arg>)>;

    // The catalogue.

    /// Table names (of the current schema), ordered.
    fn table_names_query(&self) -> &'static str;
    /// (index, table) of every index (of the current schema), ordered.
    fn index_tables_query(&self) -> &'static str;
    /// Column names of the table named `$1`, in order.
    fn table_columns_query(&self) -> &'static str;
    /// Statements that give index `old` (on `table`'s `column`) the name `new`.
    fn rename_index(&self, old: &str, new: &str, table: &str, column: &str) -> Vec<String>;

    // Rows of the typed tables.

    /// How many placeholders one statement of slots may carry.
    fn placeholders_per_statement(&self) -> usize;
    /// The `n`-th placeholder of a statement whose placeholders are all slots, in order.
    fn slot(&self, n: usize) -> String;
    /// A value of `field_type` at the `n`-th slot.
    fn typed_slot(&self, n: usize, field_type: FieldType) -> String;
    /// The `n`-th placeholder, for a value of `field_type` when known.
    fn mark(&self, n: usize, field_type: Option<FieldType>) -> String;
    /// The `n`-th placeholder as a value of the SQL type `sql_type`.
    fn cast_mark(&self, n: usize, sql_type: &str) -> String;
    /// A validated value as bound for a column of `field_type`.
    fn arg(&self, field_type: FieldType, value: &SqlValue) -> Arg;
    /// The column `column` as selected (`datetime`: it holds a timestamp).
    fn selected(&self, column: &str, datetime: bool) -> String;

    // The legacy move.

    /// The statement making the transaction check foreign keys only at commit,
    /// where it takes one; `None` where keys are checked per statement.
    fn defer_keys(&self) -> Option<&'static str>;
    /// Whether a writing transaction excludes every other writer from its
    /// start (so ids found absent stay absent until commit).
    fn writers_excluded(&self) -> bool;
    /// Whether a page of legacy rows is best read as one JSON array (one hand
    /// over from the database's thread per page) rather than row by row.
    fn pages_as_json(&self) -> bool;
    /// The query for the SQL type of the legacy table `$1`'s `data` column,
    /// where the column may be other than text.
    fn legacy_data_type_query(&self) -> Option<&'static str>;
    /// A legacy timestamp at the `n`-th slot (text, or NULL for now).
    fn timestamp_or_now(&self, n: usize) -> String;
}

/// The backend of `dialect`.
pub fn of(dialect: Dialect) -> &'static dyn Backend {
    match dialect {
        Dialect::Sqlite => &Sqlite,
        Dialect::Postgres => &Postgres,
    }
}
