//! Rows of the typed `content_<entity>` tables as SQL sees them, for the
//! content service and the legacy move alike: placeholders and bound values
//! per dialect, the `SELECT` of a live schema's columns, values read back as
//! JSON, and what a client may be told when the database refuses a row.

use serde_json::Value as Json;

use super::backend;
use super::database::Arg;
use crate::content::SqlValue;
use crate::model::{EntitySchema, FieldType};
use crate::sql::{sqlite, Dialect};

/// How many placeholders one statement of [`slot`]s may carry.
pub fn placeholders_per_statement(d: Dialect) -> usize {
    backend::of(d).placeholders_per_statement()
}

/// The `n`-th placeholder of a statement whose placeholders are all slots, in
/// order (anonymous where named ones cost more: see the backends).
pub fn slot(d: Dialect, n: usize) -> String {
    backend::of(d).slot(n)
}

/// [`mark`] as a [`slot`]: a value of `field_type` at the `n`-th slot.
pub fn typed_slot(d: Dialect, n: usize, field_type: FieldType) -> String {
    backend::of(d).typed_slot(n, field_type)
}

/// Why the database refused a row, in words a client may read, when it was a
/// unique or foreign key violation; `None` for every other failure.
pub fn refusal(e: &sqlx::Error) -> Option<String> {
    let d = e.as_database_error()?;
    if d.is_unique_violation() {
        return Some(
            unique_column(d)
                .map(|c| format!("the value of `{c}` is taken by another record"))
                .unwrap_or_else(|| "a value that must be unique is taken by another record".into()),
        );
    }
    if d.is_foreign_key_violation() {
        return Some(
            "a reference points at a record that does not exist, or other records still reference this one".into(),
        );
    }
    if d.is_check_violation() {
        return Some(match checked_column(d) {
            Some((c, true)) => format!(
                "`{c}` must have a value: a change making it required is being applied (docs/online-changes.md)"
            ),
            Some((c, false)) => format!("the value of `{c}` is not one the schema allows"),
            None => "a value is not one the schema allows".into(),
        });
    }
    if let Some(field) = converting(d) {
        return Some(format!(
            "the value of `{field}` cannot be held by the type a change being applied gives it \
             (docs/online-changes.md)"
        ));
    }
    if let sqlx::error::ErrorKind::NotNullViolation = d.kind() {
        if let Some(c) = shadow_not_null(d) {
            return Some(format!(
                "`{c}` must have a value: a change making it required is being applied (docs/online-changes.md)"
            ));
        }
        let column = d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().and_then(|pg| pg.column());
        return Some(match column.filter(|c| plain(c)) {
            Some(c) => format!("`{c}` must have a value"),
            None => "a required value is missing".into(),
        });
    }
    None
}

/// The column of SQLite's `NOT NULL constraint failed: <table>.<column>` when
/// the table is an online rebuild's shadow: the field is becoming required.
fn shadow_not_null(d: &dyn sqlx::error::DatabaseError) -> Option<String> {
    let target = d.message().strip_prefix("NOT NULL constraint failed: ")?;
    let (table, column) = target.split_once('.')?;
    (table.starts_with("marain_shadow_") && plain(column)).then(|| column.to_string())
}

/// The column a CHECK violation is about, from the constraint's name
/// (`<table>_<column>_check`, or `<table>_<column>_not_null` while a change
/// making the column required runs its phases: then `true`). PostgreSQL names
/// the table and the constraint apart from its sentence; SQLite's CHECKs have
/// no name, and its sentence quotes the expression, so it says nothing here.
fn checked_column(d: &dyn sqlx::error::DatabaseError) -> Option<(String, bool)> {
    let pg = d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?;
    let (table, name) = (pg.table()?, pg.constraint()?);
    let rest = name.strip_prefix(&format!("{table}_"))?;
    let (column, required) = match rest.strip_suffix("_not_null") {
        Some(column) => (column, true),
        None => (rest.strip_suffix("_check")?, false),
    };
    plain(column).then(|| (column.to_string(), required))
}

/// The column whose conversion failed, when the failure happened in the
/// trigger of an online type change; `None` for any other error. SQLite: the
/// shadow table's trigger raised `cannot convert <column>` (plan/sqlite/online.rs).
/// PostgreSQL: a data error whose context names the trigger's function,
/// named after the backup of the column (`marain_backup_<tag>_<table>__<column>_sync`).
fn converting(d: &dyn sqlx::error::DatabaseError) -> Option<String> {
    let Some(pg) = d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() else {
        let column = d.message().strip_prefix("marain: cannot convert ")?;
        return plain(column).then(|| column.to_string());
    };
    if !pg.code().starts_with("22") {
        return None;
    }
    let context = pg.r#where()?;
    let function = context.split("function ").nth(1)?.split('(').next()?;
    let backup = function.strip_prefix("marain_backup_")?.strip_suffix("_sync")?;
    let column = backup.rsplit("__").next()?;
    plain(column).then(|| column.to_string())
}

/// A name made only of the characters identifiers have: never a value.
fn plain(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The column a unique violation names, and only its name: never the
/// database's sentence, which quotes the value. SQLite says `UNIQUE constraint
/// failed: <table>.<column>`; PostgreSQL's detail says `Key (<column>)=(…)`.
fn unique_column(d: &dyn sqlx::error::DatabaseError) -> Option<String> {
    let column = match d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        Some(pg) => pg.detail()?.strip_prefix("Key (")?.split(')').next()?.to_string(),
        None => {
            let target = d.message().strip_prefix("UNIQUE constraint failed: ")?;
            target.split(',').next()?.trim().rsplit('.').next()?.to_string()
        }
    };
    plain(&column).then_some(column)
}

/// A placeholder for a value of `field_type` (a backend may need to be told
/// the type, since a bound NULL or text must become the column's own type).
pub fn mark(dialect: Dialect, n: usize, field_type: Option<FieldType>) -> String {
    backend::of(dialect).mark(n, field_type)
}

/// A validated value as bound (booleans as the backend keeps them).
pub fn arg(dialect: Dialect, field_type: FieldType, v: &SqlValue) -> Arg {
    backend::of(dialect).arg(field_type, v)
}

/// The type of the column `column` of `entity` holds, if it is a field's.
pub fn column_type(entity: &EntitySchema, column: &str) -> Option<FieldType> {
    entity.fields.iter().find(|f| f.column().as_deref() == Some(column)).map(|f| f.field_type)
}

/// A column as selected (timestamps as RFC 3339 text).
pub fn selected(d: Dialect, column: &str, datetime: bool) -> String {
    backend::of(d).selected(column, datetime)
}

/// `SELECT` of exactly the live schema's columns. Never `*`: sqlx caches each
/// statement's column map per connection, and after a reload changes the table a
/// cached `SELECT *` would describe columns that are gone.
pub fn select(d: Dialect, entity: &EntitySchema) -> String {
    let cols: Vec<String> = sqlite::table_columns(entity)
        .iter()
        .map(|c| {
            let datetime = matches!(c.as_str(), "created_at" | "updated_at")
                || column_type(entity, c) == Some(FieldType::Datetime);
            selected(d, c, datetime)
        })
        .collect();
    format!("SELECT {} FROM {}", cols.join(", "), d.table(&entity.table()))
}

/// A boolean field's value as JSON, whichever way the database stored it.
pub fn typed(field_type: FieldType, v: Json) -> Json {
    match (field_type, &v) {
        (FieldType::Boolean, Json::Number(n)) => Json::Bool(n.as_i64() == Some(1)),
        _ => v,
    }
}
