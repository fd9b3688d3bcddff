//! PostgreSQL: several instances share the database. Applies take a
//! transaction-scoped advisory lock under a `lock_timeout`, commits are
//! announced with `NOTIFY`, placeholders are numbered and typed (a bound NULL
//! or text must become the column's own type), and keys are checked per
//! statement.

use std::time::Duration;

use super::sqlite::plain_arg;
use super::{Backend, Statements};
use crate::content::SqlValue;
use crate::engine::arg::Arg;
use crate::model::FieldType;
use crate::plan::Plan;
use crate::sql::{postgres, Dialect};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct Postgres;

impl Backend for Postgres {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn reader_connections(&self) -> u32 {
        8
    }

    /// Every connection may write; the advisory lock serialises applies.
    fn kept_writer(&self) -> bool {
        false
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        &MIGRATIONS
    }

    fn around_apply(&self, _plan: &Plan) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }

    fn no_room(&self) -> Option<(&'static str, &'static str)> {
        None
    }

    fn disk_full(&self, code: &str) -> bool {
        code == "53100"
    }

    fn skip_locked(&self) -> &'static str {
        " FOR UPDATE SKIP LOCKED"
    }

    /// The server's clock (the RFC 3339 text is `now()`, the transaction's
    /// start, as the history records it).
    fn now_sql(&self) -> (&'static str, &'static str) {
        (
            "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
            "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        )
    }

    fn begin_writing(&self) -> &'static str {
        "BEGIN"
    }

    /// Every apply of every instance queues on the advisory lock, so heads are
    /// read and written by one at a time; `lock_timeout` makes the transaction
    /// give up on any lock it waits for longer (the caller backs off and tries
    /// again), so the readers queued behind its lock request never wait longer.
    fn serialise(&self, lock_key: i64, lock_timeout: Option<Duration>) -> Vec<(String, Vec<Arg>)> {
        let mut out = Vec::new();
        if let Some(t) = lock_timeout {
            out.push((format!("SET LOCAL lock_timeout = {}", t.as_millis().max(1)), Vec::new()));
        }
        out.push(("SELECT pg_advisory_xact_lock($1)".to_string(), vec![Arg::Int(lock_key)]));
        out
    }

    /// A session-level advisory lock (released by the server if the session
    /// ends), and the session's `lock_timeout`, so that the brief strong locks
    /// the phases take (`ADD CONSTRAINT … NOT VALID`) never queue readers
    /// behind them for long.
    fn lease(&self, key: i64, lock_timeout: Duration) -> (Statements, Statements) {
        let take = vec![
            (self.lock_timeout_statement(lock_timeout).unwrap_or_default(), Vec::new()),
            ("SELECT pg_advisory_lock($1)".to_string(), vec![Arg::Int(key)]),
            // A batch is planned for its own key and size each time: a generic
            // plan cannot see that `LIMIT $1` is small and may read the table.
            ("SET plan_cache_mode = force_custom_plan".to_string(), Vec::new()),
        ];
        let give_back = vec![
            ("SELECT pg_advisory_unlock($1)".to_string(), vec![Arg::Int(key)]),
            ("RESET lock_timeout".to_string(), Vec::new()),
            ("RESET plan_cache_mode".to_string(), Vec::new()),
        ];
        (take, give_back)
    }

    fn lock_timeout_statement(&self, lock_timeout: Duration) -> Option<String> {
        Some(format!("SET lock_timeout = {}", lock_timeout.as_millis().max(1)))
    }

    fn free_lease(&self) -> Option<(&'static str, &'static str)> {
        Some(("SELECT pg_try_advisory_lock($1)", "SELECT pg_advisory_unlock($1)"))
    }

    /// The `_not_null` checks are ours (a `required` proven before `SET NOT
    /// NULL`); only CHECK constraints match, because PostgreSQL 18 keeps every
    /// `NOT NULL` as a constraint named `<table>_<column>_not_null` too.
    fn unfinished_phases_query(&self) -> Option<&'static str> {
        Some(
            "SELECT t.relname::text, format('DROP INDEX CONCURRENTLY IF EXISTS %I', c.relname) FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid \
             WHERE t.relnamespace = current_schema()::regnamespace AND t.relname LIKE 'content\\_%' \
             AND (NOT i.indisvalid OR (i.indisunique AND c.relname LIKE '%\\_key' \
             AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid))) \
             UNION ALL \
             SELECT t.relname::text, format('ALTER TABLE %I DROP CONSTRAINT IF EXISTS %I', t.relname, k.conname) \
             FROM pg_constraint k \
             JOIN pg_class t ON t.oid = k.conrelid WHERE t.relnamespace = current_schema()::regnamespace \
             AND t.relname LIKE 'content\\_%' AND (NOT k.convalidated OR (k.contype = 'c' AND k.conname LIKE '%\\_not\\_null')) \
             UNION ALL \
             SELECT t.relname::text, format('DROP FUNCTION IF EXISTS %I() CASCADE', p.proname) FROM pg_trigger g \
             JOIN pg_class t ON t.oid = g.tgrelid JOIN pg_proc p ON p.oid = g.tgfoid \
             WHERE NOT g.tgisinternal AND t.relnamespace = current_schema()::regnamespace \
             AND t.relname LIKE 'content\\_%' AND p.proname LIKE 'marain\\_backup\\_%' \
             UNION ALL \
             SELECT c.table_name::text, format('ALTER TABLE %I DROP COLUMN IF EXISTS %I', c.table_name, c.column_name) \
             FROM information_schema.columns c WHERE c.table_schema = current_schema() \
             AND c.table_name LIKE 'content\\_%' AND c.column_name LIKE '%\\_\\_marain' \
             UNION ALL \
             SELECT 'content_' || regexp_replace(c.relname, '^marain_(shadow|gone|retired)_', ''), \
             format('DROP TABLE IF EXISTS %I CASCADE', c.relname) FROM pg_class c \
             WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' \
             AND c.relname ~ '^marain_(shadow|gone|retired)_' \
             ORDER BY 1, 2",
        )
    }

    fn lock_holders_query(&self) -> Option<&'static str> {
        Some(
            "SELECT DISTINCT a.pid, COALESCE(a.application_name, ''), COALESCE(a.state, ''), \
             left(COALESCE(a.query, ''), 200) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             JOIN pg_class c ON c.oid = l.relation \
             WHERE c.relname LIKE 'content\\_%' AND l.granted AND a.pid <> pg_backend_pid() \
             AND a.application_name <> 'marain' ORDER BY 1",
        )
    }

    fn notify(&self, channel: &str, payload: String) -> Option<(&'static str, Vec<Arg>)> {
        Some(("SELECT pg_notify($1, $2)", vec![channel.into(), payload.into()]))
    }

    fn table_names_query(&self) -> &'static str {
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1"
    }

    fn index_tables_query(&self) -> &'static str {
        "SELECT indexname::text, tablename::text FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1"
    }

    fn table_columns_query(&self) -> &'static str {
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
    }

    fn rename_index(&self, old: &str, new: &str, _table: &str, _column: &str) -> Vec<String> {
        let quote = crate::sql::quote;
        vec![format!("ALTER INDEX IF EXISTS {} RENAME TO {}", quote(old), quote(new))]
    }

    /// PostgreSQL allows 65,535; kept equal to SQLite's so batches match.
    fn placeholders_per_statement(&self) -> usize {
        30_000
    }

    fn slot(&self, n: usize) -> String {
        format!("${n}")
    }

    fn typed_slot(&self, n: usize, field_type: FieldType) -> String {
        self.mark(n, Some(field_type))
    }

    fn mark(&self, n: usize, field_type: Option<FieldType>) -> String {
        match field_type {
            Some(t) => self.cast_mark(n, postgres::column_type(t)),
            None => format!("${n}"),
        }
    }

    fn cast_mark(&self, n: usize, sql_type: &str) -> String {
        format!("CAST(${n} AS {sql_type})")
    }

    /// Booleans are booleans.
    fn arg(&self, field_type: FieldType, value: &SqlValue) -> Arg {
        match (value, field_type) {
            (SqlValue::Integer(i), FieldType::Boolean) => Arg::Bool(*i != 0),
            _ => plain_arg(value),
        }
    }

    /// Timestamps as RFC 3339 text.
    fn selected(&self, column: &str, datetime: bool) -> String {
        let d = Dialect::Postgres;
        match datetime {
            true => format!("{} AS {}", crate::sql::convert::postgres_utc(&d.table(column)), d.table(column)),
            false => d.table(column),
        }
    }

    /// Keys that are not `DEFERRABLE` are checked at the end of each statement.
    fn defer_keys(&self) -> Option<&'static str> {
        None
    }

    /// Another instance's content API may add an id meanwhile.
    fn writers_excluded(&self) -> bool {
        false
    }

    fn pages_as_json(&self) -> bool {
        false
    }

    /// A legacy `data` column may be `json` or `jsonb`.
    fn legacy_data_type_query(&self) -> Option<&'static str> {
        Some(
            "SELECT data_type::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 AND column_name = 'data'",
        )
    }

    fn timestamp_or_now(&self, n: usize) -> String {
        format!("COALESCE({}, CURRENT_TIMESTAMP)", self.cast_mark(n, "TIMESTAMPTZ"))
    }
}
