//! Rows of the typed `content_<entity>` tables as SQL sees them, for the
//! content service and the legacy move alike: placeholders and bound values
//! per dialect, the `SELECT` of a live schema's columns, values read back as
//! JSON, and what a client may be told when the database refuses a row.

use serde_json::Value as Json;

use super::database::Arg;
use crate::content::SqlValue;
use crate::model::{EntitySchema, FieldType};
use crate::sql::{postgres, sqlite, Dialect};

/// How many placeholders one statement of [`slot`]s may carry (SQLite allows
/// 32,766, PostgreSQL 65,535).
pub fn placeholders_per_statement(d: Dialect) -> usize {
    match d {
        Dialect::Sqlite => 30_000,
        Dialect::Postgres => 30_000,
    }
}

/// The `n`-th placeholder of a statement whose placeholders are all slots, in
/// order: `?` on SQLite, `$n` on PostgreSQL. The driver looks each bound
/// SQLite parameter's name up by walking the list of names, so binding N
/// named (`$n`) parameters costs N² and a statement of thousands is slower
/// than its work; anonymous ones are not in that list.
pub fn slot(d: Dialect, n: usize) -> String {
    match d {
        Dialect::Sqlite => "?".to_string(),
        Dialect::Postgres => format!("${n}"),
    }
}

/// [`mark`] as a [`slot`]: a value of `field_type` at the `n`-th slot.
pub fn typed_slot(d: Dialect, n: usize, field_type: FieldType) -> String {
    match d {
        Dialect::Sqlite => "?".to_string(),
        Dialect::Postgres => mark(d, n, Some(field_type)),
    }
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
    d.is_foreign_key_violation()
        .then(|| "a reference points at a record that does not exist, or other records still reference this one".into())
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
    column.chars().all(|c| c.is_ascii_alphanumeric() || c == '_').then_some(column)
}

/// A placeholder for a value of `field_type`: PostgreSQL is told the type,
/// since a bound NULL or text must become the column's own type.
pub fn mark(dialect: Dialect, n: usize, field_type: Option<FieldType>) -> String {
    match (dialect, field_type) {
        (Dialect::Postgres, Some(t)) => format!("CAST(${n} AS {})", postgres::column_type(t)),
        _ => format!("${n}"),
    }
}

/// A validated value as bound: PostgreSQL's booleans are booleans, SQLite's 0/1.
pub fn arg(dialect: Dialect, field_type: FieldType, v: &SqlValue) -> Arg {
    match (v, dialect, field_type) {
        (SqlValue::Integer(i), Dialect::Postgres, FieldType::Boolean) => Arg::Bool(*i != 0),
        (SqlValue::Null, ..) => Arg::Null,
        (SqlValue::Text(s), ..) => Arg::Text(s.clone()),
        (SqlValue::Integer(i), ..) => Arg::Int(*i),
        (SqlValue::Float(f), ..) => Arg::Float(*f),
    }
}

/// The type of the column `column` of `entity` holds, if it is a field's.
pub fn column_type(entity: &EntitySchema, column: &str) -> Option<FieldType> {
    entity.fields.iter().find(|f| f.column().as_deref() == Some(column)).map(|f| f.field_type)
}

/// A column as selected: PostgreSQL's timestamps as RFC 3339 text.
pub fn selected(d: Dialect, column: &str, datetime: bool) -> String {
    match (d, datetime) {
        (Dialect::Postgres, true) => {
            let text = postgres::convert(&d.table(column), FieldType::Datetime, FieldType::Text);
            format!("{text} AS {}", d.table(column))
        }
        _ => d.table(column),
    }
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
