//! The content service: rows of the typed `content_<entity>` tables, read and
//! written as JSON, always against the schema that is live at that instant.
//!
//! [`ContentService`] is the one way in: each call takes the schema lock shared
//! for its whole duration and looks the entity up in the snapshot once, so a
//! request runs wholly before or wholly after a schema change and sees one
//! version of the schema throughout.

use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::{Map, Value as Json};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, TypeInfo, ValueRef};

use super::snapshot::Snapshot;
use super::store::{Store, StoreError};
use crate::content::{validate_record, FieldProblem, SqlValue};
use crate::error::ErrorKind;
use crate::model::{EntitySchema, FieldType};
use crate::sql::{child_table, quote, sqlite};

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
                let taken = unique_column(d.message())
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

/// The column SQLite names in `UNIQUE constraint failed: <table>.<column>`; only
/// the column name leaves, never the database's sentence.
fn unique_column(message: &str) -> Option<&str> {
    let target = message.strip_prefix("UNIQUE constraint failed: ")?;
    let first = target.split(',').next()?.trim();
    let column = first.rsplit('.').next()?;
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
    let mut tx = store.pool().begin().await.map_err(StoreError::Sql)?;
    let mut cols = vec![quote("id")];
    cols.extend(record.columns.iter().map(|(c, _)| quote(c)));
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let sql = format!("INSERT INTO {} ({}) VALUES ({})", quote(&entity.table()), cols.join(", "), marks.join(", "));
    let mut query = sqlx::query(&sql).bind(&id);
    for (_, v) in &record.columns {
        query = bind(query, v);
    }
    query.execute(&mut *tx).await?;
    for (field, values) in &record.children {
        insert_children(&mut tx, &quote(&child_table(&entity.id, field)), &id, values).await?;
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
    let null = SqlValue::Null;
    let values: Vec<(String, &SqlValue)> = entity
        .fields
        .iter()
        .filter_map(|f| f.column())
        .map(|c| {
            let v = record.columns.iter().find(|(col, _)| *col == c).map(|(_, v)| v).unwrap_or(&null);
            (c, v)
        })
        .collect();
    let mut sets: Vec<String> =
        values.iter().enumerate().map(|(i, (c, _))| format!("{} = ?{}", quote(c), i + 2)).collect();
    sets.push(format!("{} = CURRENT_TIMESTAMP", quote("updated_at")));
    let sql = format!("UPDATE {} SET {} WHERE {} = ?1", quote(&entity.table()), sets.join(", "), quote("id"));
    let mut tx = store.pool().begin().await.map_err(StoreError::Sql)?;
    let mut query = sqlx::query(&sql).bind(id);
    for (_, v) in &values {
        query = bind(query, v);
    }
    if query.execute(&mut *tx).await?.rows_affected() == 0 {
        return Err(ContentError::NotFound { entity: entity.id.clone(), id: id.to_string() });
    }
    for field in entity.fields.iter().filter(|f| !f.cardinality.is_single()) {
        let child = quote(&child_table(&entity.id, &field.id));
        sqlx::query(&format!("DELETE FROM {child} WHERE {} = ?1", quote("parent_id")))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let given = record.children.iter().find(|(f, _)| *f == field.id).map(|(_, v)| v.as_slice()).unwrap_or(&[]);
        insert_children(&mut tx, &child, id, given).await?;
    }
    tx.commit().await.map_err(StoreError::Sql)?;
    get(store, entity, id).await
}

/// Deletes record `id`; its multi-valued fields go with it (ON DELETE CASCADE).
/// A record other records still reference is refused as a conflict.
async fn delete(store: &Store, entity: &EntitySchema, id: &str) -> Result<(), ContentError> {
    let sql = format!("DELETE FROM {} WHERE {} = ?1", quote(&entity.table()), quote("id"));
    let deleted = sqlx::query(&sql).bind(id).execute(store.pool()).await.map_err(|e| match ContentError::from(e) {
        ContentError::Conflict(_) => ContentError::Conflict(format!(
            "other records still reference `{}` `{id}`; change or remove them first",
            entity.id
        )),
        other => other,
    })?;
    if deleted.rows_affected() == 0 {
        return Err(ContentError::NotFound { entity: entity.id.clone(), id: id.to_string() });
    }
    Ok(())
}

async fn insert_children(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    child: &str,
    id: &str,
    values: &[SqlValue],
) -> Result<(), ContentError> {
    let sql = format!(
        "INSERT INTO {child} ({}, {}, {}) VALUES (?1, ?2, ?3)",
        quote("parent_id"),
        quote("delta"),
        quote("value")
    );
    for (delta, v) in values.iter().enumerate() {
        bind(sqlx::query(&sql).bind(id).bind(delta as i64), v).execute(&mut **tx).await?;
    }
    Ok(())
}

/// `SELECT` of exactly the live schema's columns. Never `*`: sqlx caches each
/// statement's column map per connection, and after a reload changes the table a
/// cached `SELECT *` would describe columns that are gone.
fn select(entity: &EntitySchema) -> String {
    let cols: Vec<String> = sqlite::table_columns(entity).iter().map(|c| quote(c)).collect();
    format!("SELECT {} FROM {}", cols.join(", "), quote(&entity.table()))
}

/// One record by id.
async fn get(store: &Store, entity: &EntitySchema, id: &str) -> Result<Json, ContentError> {
    let sql = format!("{} WHERE {} = ?1", select(entity), quote("id"));
    let row = sqlx::query(&sql).bind(id).fetch_optional(store.pool()).await?;
    let row = row.ok_or_else(|| ContentError::NotFound { entity: entity.id.clone(), id: id.to_string() })?;
    to_json(store, entity, &row).await
}

/// A page of records in id order, and how many there are in all.
async fn list(store: &Store, entity: &EntitySchema, limit: i64, offset: i64) -> Result<(Vec<Json>, i64), ContentError> {
    let total: i64 =
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", quote(&entity.table()))).fetch_one(store.pool()).await?;
    let sql = format!("{} ORDER BY {} LIMIT ?1 OFFSET ?2", select(entity), quote("id"));
    let rows = sqlx::query(&sql).bind(limit).bind(offset).fetch_all(store.pool()).await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        items.push(to_json(store, entity, row).await?);
    }
    Ok((items, total))
}

fn bind<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    v: &'q SqlValue,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    match v {
        SqlValue::Null => query.bind(None::<String>),
        SqlValue::Text(s) => query.bind(s),
        SqlValue::Integer(i) => query.bind(i),
        SqlValue::Float(f) => query.bind(f),
    }
}

/// The value at `index` as JSON, by what SQLite actually stored.
fn column(row: &SqliteRow, index: usize) -> Json {
    let Ok(raw) = row.try_get_raw(index) else { return Json::Null };
    if raw.is_null() {
        return Json::Null;
    }
    match raw.type_info().name() {
        "INTEGER" => row.try_get::<i64, _>(index).map(Json::from).unwrap_or(Json::Null),
        "REAL" => row.try_get::<f64, _>(index).map(Json::from).unwrap_or(Json::Null),
        _ => row.try_get::<String, _>(index).map(Json::from).unwrap_or(Json::Null),
    }
}

/// Builds the JSON of a row selected by [`select`]: columns in `table_columns` order.
async fn to_json(store: &Store, entity: &EntitySchema, row: &SqliteRow) -> Result<Json, ContentError> {
    let id: String = row.try_get(0).map_err(StoreError::Sql)?;
    let mut out = Map::new();
    out.insert("id".into(), Json::from(id.clone()));
    let mut index = 1;
    for field in &entity.fields {
        let value = match field.column() {
            Some(_) => {
                let v = column(row, index);
                index += 1;
                match (field.field_type, &v) {
                    (FieldType::Boolean, Json::Number(n)) => Json::Bool(n.as_i64() == Some(1)),
                    _ => v,
                }
            }
            None => {
                let sql = format!(
                    "SELECT {} FROM {} WHERE {} = ?1 ORDER BY {}",
                    quote("value"),
                    quote(&child_table(&entity.id, &field.id)),
                    quote("parent_id"),
                    quote("delta")
                );
                let rows = sqlx::query(&sql).bind(&id).fetch_all(store.pool()).await?;
                Json::Array(rows.iter().map(|r| column(r, 0)).collect())
            }
        };
        out.insert(field.id.clone(), value);
    }
    out.insert("created_at".into(), column(row, index));
    out.insert("updated_at".into(), column(row, index + 1));
    Ok(Json::Object(out))
}
