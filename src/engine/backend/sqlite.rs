//! SQLite: one process owns the file. Applies go through one kept writer
//! connection in `BEGIN IMMEDIATE` transactions (which exclude every other
//! writer from their start), placeholders are anonymous, and values are what
//! SQLite's dynamic typing stores.

use std::time::Duration;

use super::{Backend, Statements};
use crate::content::SqlValue;
use crate::engine::arg::Arg;
use crate::model::FieldType;
use crate::plan::{Plan, PlanPath};
use crate::sql::Dialect;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct Sqlite;

impl Backend for Sqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    /// Every schema change makes each connection parse the whole schema again
    /// (about 12 ms per connection at 1,000 tables), so readers beyond the
    /// cores cost a reload each and add no speed.
    fn reader_connections(&self) -> u32 {
        std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8) as u32
    }

    fn kept_writer(&self) -> bool {
        true
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        &MIGRATIONS
    }

    /// A table rebuild needs foreign keys off, which SQLite only switches
    /// outside a transaction; a plan that deletes or restores data commits
    /// with `synchronous = FULL`, since the files cannot re-derive it.
    fn around_apply(&self, plan: &Plan) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        // An online cut-over drops the live table: with keys on, SQLite would
        // first delete its rows, and cascade to its child tables.
        if plan.foreign_keys_off || plan.path == PlanPath::Online {
            out.push(("PRAGMA foreign_keys = OFF", "PRAGMA foreign_keys = ON"));
        }
        if plan.moves_data() {
            out.push(("PRAGMA synchronous = FULL", "PRAGMA synchronous = NORMAL"));
        }
        // An online rebuild's cut-over renames the live table aside without
        // the other tables' keys following it (`legacy_alter_table`), and
        // gives the shadow table's indexes their fields' names in the schema
        // table (SQLite cannot rename an index); RESET then reloads this
        // connection's schema.
        if plan.path == PlanPath::Online {
            out.push(("PRAGMA legacy_alter_table = ON", "PRAGMA legacy_alter_table = OFF"));
            out.push(("PRAGMA writable_schema = ON", "PRAGMA writable_schema = RESET"));
        }
        out
    }

    /// `max_page_count` cannot go below the pages in use: 1 means no more.
    fn no_room(&self) -> Option<(&'static str, &'static str)> {
        Some(("PRAGMA max_page_count = 1", "PRAGMA max_page_count = 4294967294"))
    }

    fn disk_full(&self, code: &str) -> bool {
        code == "13"
    }

    /// One writer at a time: nothing to skip.
    fn skip_locked(&self) -> &'static str {
        ""
    }

    /// The host's clock, as SQLite reads it (one host: the database's).
    fn now_sql(&self) -> (&'static str, &'static str) {
        ("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')", "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)")
    }

    fn begin_writing(&self) -> &'static str {
        "BEGIN IMMEDIATE"
    }

    /// `BEGIN IMMEDIATE` serialises already; a lock wait is the busy timeout's.
    fn serialise(&self, _lock_key: i64, _lock_timeout: Option<Duration>) -> Vec<(String, Vec<Arg>)> {
        Vec::new()
    }

    /// No online phases run on SQLite: one process owns the database.
    fn lease(&self, _key: i64, _lock_timeout: Duration) -> (Statements, Statements) {
        (Vec::new(), Vec::new())
    }

    fn lock_timeout_statement(&self, _lock_timeout: Duration) -> Option<String> {
        None
    }

    fn free_lease(&self) -> Option<(&'static str, &'static str)> {
        None
    }

    /// An online rebuild cut short leaves its shadow table and the
    /// triggers keeping it on the live table (its backups stay until the
    /// change is approved again, as on PostgreSQL); one whose cut-over
    /// committed may leave the table it replaced (`marain_retired_<entity>`).
    /// A rollback's refill cut short leaves a shadow column (`<column>__marain`)
    /// and maybe its index on the live table.
    fn unfinished_phases_query(&self) -> Option<&'static str> {
        Some(
            "SELECT tbl_name, 'DROP TRIGGER IF EXISTS \"' || name || '\"' FROM sqlite_master \
             WHERE type = 'trigger' AND name LIKE 'marain\\_shadow\\_%' ESCAPE '\\' \
             UNION ALL SELECT tbl_name, 'DROP INDEX IF EXISTS \"' || name || '\"' FROM sqlite_master \
             WHERE type = 'index' AND tbl_name LIKE 'content\\_%' ESCAPE '\\' \
             AND name LIKE '%\\_\\_marain' ESCAPE '\\' \
             UNION ALL SELECT m.name, 'ALTER TABLE \"' || m.name || '\" DROP COLUMN \"' || p.name || '\"' \
             FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table' \
             AND m.name LIKE 'content\\_%' ESCAPE '\\' AND p.name LIKE '%\\_\\_marain' ESCAPE '\\' \
             UNION ALL SELECT 'content_' || substr(name, 15), 'DROP TABLE IF EXISTS \"' || name || '\"' \
             FROM sqlite_master WHERE type = 'table' AND name LIKE 'marain\\_shadow\\_%' ESCAPE '\\' \
             UNION ALL SELECT 'content_' || substr(name, 16), 'DROP TABLE IF EXISTS \"' || name || '\"' \
             FROM sqlite_master WHERE type = 'table' AND name LIKE 'marain\\_retired\\_%' ESCAPE '\\' \
             ORDER BY 2 DESC",
        )
    }

    fn lock_holders_query(&self) -> Option<&'static str> {
        None
    }

    fn notify(&self, _channel: &str, _payload: String) -> Option<(&'static str, Vec<Arg>)> {
        None
    }

    fn table_names_query(&self) -> &'static str {
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    }

    fn index_tables_query(&self) -> &'static str {
        "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' ORDER BY name"
    }

    fn table_columns_query(&self) -> &'static str {
        "SELECT name FROM pragma_table_info($1) ORDER BY cid"
    }

    /// SQLite cannot rename an index: it is built again under the new name.
    fn rename_index(&self, old: &str, new: &str, table: &str, column: &str) -> Vec<String> {
        let quote = crate::sql::quote;
        vec![
            format!("DROP INDEX IF EXISTS {}", quote(old)),
            format!("CREATE INDEX IF NOT EXISTS {} ON {} ({})", quote(new), quote(table), quote(column)),
        ]
    }

    /// SQLite allows 32,766.
    fn placeholders_per_statement(&self) -> usize {
        30_000
    }

    /// `?`: the driver looks each bound named parameter up by walking the list
    /// of names, so binding N named (`$n`) parameters costs N² and a statement
    /// of thousands is slower than its work; anonymous ones are not in that list.
    fn slot(&self, _n: usize) -> String {
        "?".to_string()
    }

    fn typed_slot(&self, _n: usize, _field_type: FieldType) -> String {
        "?".to_string()
    }

    /// Columns take what they are given (their declared type is an affinity).
    fn mark(&self, n: usize, _field_type: Option<FieldType>) -> String {
        format!("${n}")
    }

    fn cast_mark(&self, n: usize, _sql_type: &str) -> String {
        format!("${n}")
    }

    /// Booleans are 0 and 1.
    fn arg(&self, _field_type: FieldType, value: &SqlValue) -> Arg {
        plain_arg(value)
    }

    /// Timestamps are stored as text already.
    fn selected(&self, column: &str, _datetime: bool) -> String {
        Dialect::Sqlite.table(column)
    }

    /// Keys are checked at commit (`defer_foreign_keys`, reset by SQLite when
    /// the transaction ends), so the rows of a batch may reference each other.
    fn defer_keys(&self) -> Option<&'static str> {
        Some("PRAGMA defer_foreign_keys = ON")
    }

    fn writers_excluded(&self) -> bool {
        true
    }

    fn pages_as_json(&self) -> bool {
        true
    }

    fn legacy_data_type_query(&self) -> Option<&'static str> {
        None
    }

    fn timestamp_or_now(&self, n: usize) -> String {
        format!("COALESCE({}, CURRENT_TIMESTAMP)", self.slot(n))
    }
}

/// A validated value bound as it is.
pub(super) fn plain_arg(value: &SqlValue) -> Arg {
    match value {
        SqlValue::Null => Arg::Null,
        SqlValue::Text(s) => Arg::Text(s.clone()),
        SqlValue::Integer(i) => Arg::Int(*i),
        SqlValue::Float(f) => Arg::Float(*f),
    }
}
