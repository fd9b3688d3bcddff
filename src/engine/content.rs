//! The content service: rows of the typed `content_<entity>` tables, read and
//! written as JSON, always against the schema that is live at that instant.
//!
//! [`ContentService`] is the one way in: each call takes the schema lock shared
//! for its whole duration and looks the entity up in the snapshot once, so a
//! request runs wholly before or wholly after a schema change and sees one
//! version of the schema throughout.

use std::sync::Arc;

use super::database::{Arg, Conn};
use super::snapshot::Snapshot;
use super::store::{Store, StoreError};
use crate::content::{validate_record, FieldProblem, SqlValue};
use crate::error::ErrorKind;
use crate::model::{EntitySchema, FieldType};
use crate::sql::{child_table, postgres, sqlite, Dialect};
use arc_swap::ArcSwap;
use serde_json::{Map, Value as Json};

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("no entity `{0}` is defined")]
    UnknownEntity(String),
    #[error("no `{entity}` with id `{id}`")]
    NotFound { entity: String, id: String },
    #[error("invalid `{entity}`: {}", .problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; "))]
    Invalid { entity: String, problems: Vec<FieldProblem> },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl ContentError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ContentError::UnknownEntity(_) | ContentError::NotFound { .. } => ErrorKind::NotFound,
            ContentError::Invalid { .. } => ErrorKind::Invalid,
            ContentError::Conflict(_) => ErrorKind::Conflict,
            ContentError::Store(_) => ErrorKind::Unavailable,
        }
    }

    /// What the client is told: the store's own text stays in the log.
    pub fn public_message(&self) -> String {
        match self {
            ContentError::Store(_) => "the content store is unavailable; the server log has the details".into(),
            other => other.to_string(),
        }
    }

    /// Logs the whole error when its public message leaves something out, as
    /// [`EngineError::log_internal`](super::EngineError::log_internal) does.
    pub fn log_internal(&self) {
        if let ContentError::Store(inner) = self {
            tracing::error!(error = %inner, "content request failed");
        }
    }
}

impl From<sqlx::Error> for ContentError {
    fn from(e: sqlx::Error) -> Self {
        match e.as_database_error() {
            Some(d) if d.is_unique_violation() => {
                let taken = unique_column(d)
                    .map(|c| format!("the value of `{c}` is taken by another record"))
                    .unwrap_or_else(|| "a value that must be unique is taken by another record".into());
                ContentError::Conflict(taken)
            }
            Some(d) if d.is_foreign_key_violation() => ContentError::Conflict(
                "a reference points at a record that does not exist, or other records still reference this one".into(),
            ),
            _ => ContentError::Store(StoreError::Sql(e)),
        }
    }
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

/// The content API's entry point: a cheap handle on the engine's store, snapshot
/// and schema lock.
#[derive(Clone)]
pub struct ContentService {
    store: Store,
    snapshot: Arc<ArcSwap<Snapshot>>,
    schema_lock: Arc<tokio::sync::RwLock<()>>,
}

impl ContentService {
    pub(super) fn new(
        store: Store,
        snapshot: Arc<ArcSwap<Snapshot>>,
        schema_lock: Arc<tokio::sync::RwLock<()>>,
    ) -> Self {
        Self { store, snapshot, schema_lock }
    }

    /// The live schema of entity `id`, taken once so a whole request sees one version.
    fn live_entity(&self, id: &str) -> Result<EntitySchema, ContentError> {
        let snapshot = self.snapshot.load();
        let file = snapshot.applied.entity_file(id).ok_or_else(|| ContentError::UnknownEntity(id.to_string()))?;
        Ok(file.entity.clone())
    }

    pub async fn create(&self, entity: &str, input: &Map<String, Json>) -> Result<Json, ContentError> {
        let _lock = self.schema_lock.read().await;
        create(&self.store, &self.live_entity(entity)?, input).await
    }

    pub async fn update(&self, entity: &str, id: &str, input: &Map<String, Json>) -> Result<Json, ContentError> {
        let _lock = self.schema_lock.read().await;
        update(&self.store, &self.live_entity(entity)?, id, input).await
    }

    pub async fn delete(&self, entity: &str, id: &str) -> Result<(), ContentError> {
        let _lock = self.schema_lock.read().await;
        delete(&self.store, &self.live_entity(entity)?, id).await
    }

    pub async fn get(&self, entity: &str, id: &str) -> Result<Json, ContentError> {
        let _lock = self.schema_lock.read().await;
        get(&self.store, &self.live_entity(entity)?, id).await
    }

    /// A page of records in id order, and how many there are in all.
    pub async fn list(&self, entity: &str, limit: i64, offset: i64) -> Result<(Vec<Json>, i64), ContentError> {
        let _lock = self.schema_lock.read().await;
        list(&self.store, &self.live_entity(entity)?, limit, offset).await
    }
}

/// A placeholder for a value of `field_type`: PostgreSQL is told the type,
/// since a bound NULL or text must become the column's own type.
fn mark(dialect: Dialect, n: usize, field_type: Option<FieldType>) -> String {
    match (dialect, field_type) {
        (Dialect::Postgres, Some(t)) => format!("CAST(${n} AS {})", postgres::column_type(t)),
        _ => format!("${n}"),
    }
}

/// A validated value as bound: PostgreSQL's booleans are booleans, SQLite's 0/1.
fn arg(dialect: Dialect, field_type: FieldType, v: &SqlValue) -> Arg {
    match (v, dialect, field_type) {
        (SqlValue::Integer(i), Dialect::Postgres, FieldType::Boolean) => Arg::Bool(*i != 0),
        (SqlValue::Null, ..) => Arg::Null,
        (SqlValue::Text(s), ..) => Arg::Text(s.clone()),
        (SqlValue::Integer(i), ..) => Arg::Int(*i),
        (SqlValue::Float(f), ..) => Arg::Float(*f),
    }
}

/// The type of the column `column` of `entity` holds, if it is a field's.
fn column_type(entity: &EntitySchema, column: &str) -> Option<FieldType> {
    entity.fields.iter().find(|f| f.column().as_deref() == Some(column)).map(|f| f.field_type)
}

fn field_type(entity: &EntitySchema, field: &str) -> FieldType {
    entity.fields.iter().find(|f| f.id == field).map(|f| f.field_type).unwrap_or(FieldType::Text)
}

/// Inserts a record given as JSON; returns it as stored.
async fn create(store: &Store, entity: &EntitySchema, input: &Map<String, Json>) -> Result<Json, ContentError> {
    let record = validate_record(entity, input)
        .map_err(|problems| ContentError::Invalid { entity: entity.id.clone(), problems })?;
    let id = match input.get("id") {
        Some(Json::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => {
            let problems = vec![FieldProblem { field: "id".into(), message: "must be a non-empty string".into() }];
            return Err(ContentError::Invalid { entity: entity.id.clone(), problems });
        }
        None => uuid::Uuid::now_v7().to_string(),
    };
    let d = store.dialect();
    let mut cols = vec![d.table("id")];
    let mut marks = vec![mark(d, 1, None)];
    let mut args = vec![Arg::from(&id)];
    for (i, (c, v)) in record.columns.iter().enumerate() {
        let t = column_type(entity, c).unwrap_or(FieldType::Text);
        cols.push(d.table(c));
        marks.push(mark(d, i + 2, Some(t)));
        args.push(arg(d, t, v));
    }
    let sql = format!("INSERT INTO {} ({}) VALUES ({})", d.table(&entity.table()), cols.join(", "), marks.join(", "));
    let mut tx = store.pool().begin().await.map_err(StoreError::Sql)?;
    tx.conn().execute(&sql, &args).await?;
    for (field, values) in &record.children {
        insert_children(&mut tx.conn(), entity, field, &id, values).await?;
    }
    tx.commit().await.map_err(StoreError::Sql)?;
    get(store, entity, &id).await
}

/// Replaces record `id` with `input` (PUT): fields left out take their default
/// or NULL, multi-valued fields are replaced as a whole.
async fn update(
    store: &Store,
    entity: &EntitySchema,
    id: &str,
    input: &Map<String, Json>,
) -> Result<Json, ContentError> {
    let record = validate_record(entity, input)
        .map_err(|problems| ContentError::Invalid { entity: entity.id.clone(), problems })?;
    if let Some(given) = input.get("id").filter(|v| v.as_str() != Some(id)) {
        let problems =
            vec![FieldProblem { field: "id".into(), message: format!("is `{id}` in the path, {given} in the body") }];
        return Err(ContentError::Invalid { entity: entity.id.clone(), problems });
    }
    let d = store.dialect();
    let null = SqlValue::Null;
    let mut sets = Vec::new();
    let mut args = vec![Arg::from(id)];
    for field in entity.fields.iter() {
        let Some(c) = field.column() else { continue };
        let v = record.columns.iter().find(|(col, _)| *col == c).map(|(_, v)| v).unwrap_or(&null);
        args.push(arg(d, field.field_type, v));
        sets.push(format!("{} = {}", d.table(&c), mark(d, args.len(), Some(field.field_type))));
    }
    sets.push(format!("{} = CURRENT_TIMESTAMP", d.table("updated_at")));
    let sql = format!("UPDATE {} SET {} WHERE {} = $1", d.table(&entity.table()), sets.join(", "), d.table("id"));
    let mut tx = store.pool().begin().await.map_err(StoreError::Sql)?;
    if tx.conn().execute(&sql, &args).await? == 0 {
        return Err(ContentError::NotFound { entity: entity.id.clone(), id: id.to_string() });
    }
    for field in entity.fields.iter().filter(|f| !f.cardinality.is_single()) {
        let child = d.table(&child_table(&entity.id, &field.id));
        tx.conn().execute(&format!("DELETE FROM {child} WHERE {} = $1", d.table("parent_id")), &[id.into()]).await?;
        let given = record.children.iter().find(|(f, _)| *f == field.id).map(|(_, v)| v.as_slice()).unwrap_or(&[]);
        insert_children(&mut tx.conn(), entity, &field.id, id, given).await?;
    }
    tx.commit().await.map_err(StoreError::Sql)?;
    get(store, entity, id).await
}

/// Deletes record `id`; its multi-valued fields go with it (ON DELETE CASCADE).
/// A record other records still reference is refused as a conflict.
async fn delete(store: &Store, entity: &EntitySchema, id: &str) -> Result<(), ContentError> {
    let d = store.dialect();
    let sql = format!("DELETE FROM {} WHERE {} = $1", d.table(&entity.table()), d.table("id"));
    let deleted = store.pool().execute(&sql, &[id.into()]).await.map_err(|e| match ContentError::from(e) {
        ContentError::Conflict(_) => ContentError::Conflict(format!(
            "other records still reference `{}` `{id}`; change or remove them first",
            entity.id
        )),
        other => other,
    })?;
    if deleted == 0 {
        return Err(ContentError::NotFound { entity: entity.id.clone(), id: id.to_string() });
    }
    Ok(())
}

async fn insert_children(
    conn: &mut Conn<'_>,
    entity: &EntitySchema,
    field: &str,
    id: &str,
    values: &[SqlValue],
) -> Result<(), ContentError> {
    let d = conn.dialect();
    let t = field_type(entity, field);
    let sql = format!(
        "INSERT INTO {} ({}, {}, {}) VALUES ($1, $2, {})",
        d.table(&child_table(&entity.id, field)),
        d.table("parent_id"),
        d.table("delta"),
        d.table("value"),
        mark(d, 3, Some(t)),
    );
    for (delta, v) in values.iter().enumerate() {
        conn.execute(&sql, &[id.into(), Arg::Int(delta as i64), arg(d, t, v)]).await?;
    }
    Ok(())
}

/// A column as selected: PostgreSQL's timestamps as RFC 3339 text.
fn selected(d: Dialect, column: &str, datetime: bool) -> String {
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
fn select(d: Dialect, entity: &EntitySchema) -> String {
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

/// One record by id.
async fn get(store: &Store, entity: &EntitySchema, id: &str) -> Result<Json, ContentError> {
    let d = store.dialect();
    let sql = format!("{} WHERE {} = $1", select(d, entity), d.table("id"));
    let row = store.pool().fetch_json(&sql, &[id.into()]).await?.into_iter().next();
    let row = row.ok_or_else(|| ContentError::NotFound { entity: entity.id.clone(), id: id.to_string() })?;
    to_json(store, entity, row).await
}

/// A page of records in id order, and how many there are in all.
async fn list(store: &Store, entity: &EntitySchema, limit: i64, offset: i64) -> Result<(Vec<Json>, i64), ContentError> {
    let d = store.dialect();
    let (total,): (i64,) =
        store.pool().fetch_one(&format!("SELECT COUNT(*) FROM {}", d.table(&entity.table())), &[]).await?;
    let sql = format!("{} ORDER BY {} LIMIT $1 OFFSET $2", select(d, entity), d.table("id"));
    let rows = store.pool().fetch_json(&sql, &[limit.into(), offset.into()]).await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        items.push(to_json(store, entity, row).await?);
    }
    Ok((items, total))
}

/// A boolean field's value as JSON, whichever way the database stored it.
fn typed(field_type: FieldType, v: Json) -> Json {
    match (field_type, &v) {
        (FieldType::Boolean, Json::Number(n)) => Json::Bool(n.as_i64() == Some(1)),
        _ => v,
    }
}

/// Builds the JSON of a row selected by [`select`]: columns in `table_columns` order.
async fn to_json(store: &Store, entity: &EntitySchema, row: Vec<Json>) -> Result<Json, ContentError> {
    let d = store.dialect();
    let mut values = row.into_iter();
    let id = values.next().unwrap_or(Json::Null);
    let id_text = id.as_str().unwrap_or_default().to_string();
    let mut out = Map::new();
    out.insert("id".into(), id);
    for field in &entity.fields {
        let value = match field.column() {
            Some(_) => typed(field.field_type, values.next().unwrap_or(Json::Null)),
            None => {
                let sql = format!(
                    "SELECT {} FROM {} WHERE {} = $1 ORDER BY {}",
                    selected(d, "value", field.field_type == FieldType::Datetime),
                    d.table(&child_table(&entity.id, &field.id)),
                    d.table("parent_id"),
                    d.table("delta")
                );
                let rows = store.pool().fetch_json(&sql, &[Arg::from(&id_text)]).await?;
                let items = rows.into_iter().map(|r| typed(field.field_type, r.into_iter().next().unwrap_or_default()));
                Json::Array(items.collect())
            }
        };
        out.insert(field.id.clone(), value);
    }
    out.insert("created_at".into(), values.next().unwrap_or(Json::Null));
    out.insert("updated_at".into(), values.next().unwrap_or(Json::Null));
    Ok(Json::Object(out))
}
