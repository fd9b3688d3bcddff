//! The content service: rows of the typed `content_<entity>` tables, read and
//! written as JSON, always against the schema that is live at that instant.
//!
//! [`ContentService`] is the one way in: each call takes its entity's schema
//! lock shared for its whole duration ([`SchemaLocks`]) and looks the entity
//! up in the snapshot once, so a request runs wholly before or wholly after a
//! change to its entity and sees one version of its schema throughout, while
//! changes to other entities do not hold it up.

use std::sync::Arc;

use super::content_latency::ContentLatency;
use super::database::{Arg, Conn};
use super::legacy::transition::{self, Transition, TransitionView};
use super::rows::{arg, column_type, mark, refusal, select, selected, typed};
use super::schema_locks::SchemaLocks;
use super::snapshot::Snapshot;
use super::store::{Store, StoreError};
use crate::content::{validate_record, FieldProblem, Record, SqlValue};
use crate::error::ErrorKind;
use crate::legacy::record_json;
use crate::model::{EntitySchema, FieldType};
use crate::sql::child_table;
use arc_swap::ArcSwap;
use serde_json::{Map, Value as Json};
use tokio::sync::OwnedRwLockReadGuard;

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
        match refusal(&e) {
            Some(why) => ContentError::Conflict(why),
            None => ContentError::Store(StoreError::Sql(e)),
        }
    }
}

/// Evaluates `$call` with `$t` the legacy move under way (or `None`); if the
/// legacy table went away meanwhile (another process finished the move), reads
/// the move again and evaluates it once more. (A macro: an async closure over
/// borrowed arguments is not `Send` for axum's handlers.)
macro_rules! with_transition {
    ($service:expr, $t:ident => $call:expr) => {
        with_transition!($service, transition, $t => $call)
    };
    ($service:expr, $read:ident, $t:ident => $call:expr) => {{
        let current = $service.$read().await?;
        let $t = current.as_deref();
        match $call {
            Err(ContentError::Store(_)) if current.is_some() => {
                $service.legacy.forget();
                let current = $service.$read().await?;
                let $t = current.as_deref();
                $call
            }
            other => other,
        }
    }};
}

/// The content API's entry point: a cheap handle on the engine's store, snapshot
/// and schema locks, and on the legacy move under way, if any
/// ([`transition`](super::legacy::transition): reads fall back to legacy rows
/// not copied yet, writes reach both tables).
#[derive(Clone)]
pub struct ContentService {
    store: Store,
    snapshot: Arc<ArcSwap<Snapshot>>,
    schema_locks: Arc<SchemaLocks>,
    legacy: Arc<TransitionView>,
    /// Every request's time goes in (online phases watch it).
    latency: Arc<ContentLatency>,
    /// Called with the entity after a write to rows that data files hold:
    /// the coordinator asks the worker for a drift check of those rows.
    rows_written: Arc<dyn Fn(&str) + Send + Sync>,
}

impl ContentService {
    pub(super) fn new(
        store: Store,
        snapshot: Arc<ArcSwap<Snapshot>>,
        schema_locks: Arc<SchemaLocks>,
        latency: Arc<ContentLatency>,
        rows_written: Arc<dyn Fn(&str) + Send + Sync>,
    ) -> Self {
        let legacy = Arc::new(TransitionView::new(store.clone()));
        Self { store, snapshot, schema_locks, legacy, latency, rows_written }
    }

    /// After a write to `entity`: when data files hold rows of it, the worker
    /// checks them, so a row the write changed shows as drift of its file.
    fn wrote(&self, entity: &str) {
        if self.snapshot.load().applied.data_files_of(entity).next().is_some() {
            (self.rows_written)(entity);
        }
    }

    /// Enters a request for entity `id`: its schema lock, shared, and its live
    /// schema read once under it, so the whole request sees one version. A
    /// name the snapshot does not define is refused before any lock is made.
    async fn enter(&self, id: &str) -> Result<(OwnedRwLockReadGuard<()>, EntitySchema), ContentError> {
        let unknown = || ContentError::UnknownEntity(id.to_string());
        self.snapshot.load().applied.entity_file(id).ok_or_else(unknown)?;
        let lock = self.schema_locks.read(id).await;
        // Read again: a change may have dropped or renamed it meanwhile.
        let snapshot = self.snapshot.load();
        let file = snapshot.applied.entity_file(id).ok_or_else(unknown)?;
        Ok((lock, file.entity.clone()))
    }

    /// The legacy move under way, if any.
    async fn transition(&self) -> Result<Option<Arc<Transition>>, ContentError> {
        self.legacy.current().await.map_err(|e| ContentError::Store(StoreError::Sql(e)))
    }

    /// The legacy move under way, read now: what a write goes by.
    async fn transition_now(&self) -> Result<Option<Arc<Transition>>, ContentError> {
        self.legacy.now().await.map_err(|e| ContentError::Store(StoreError::Sql(e)))
    }

    pub async fn create(&self, entity: &str, input: &Map<String, Json>) -> Result<Json, ContentError> {
        let _timing = self.latency.time();
        let (_lock, entity) = self.enter(entity).await?;
        let created = with_transition!(self, transition_now, t => create(&self.store, &entity, input, t).await);
        self.wrote(&entity.id);
        created
    }

    pub async fn update(&self, entity: &str, id: &str, input: &Map<String, Json>) -> Result<Json, ContentError> {
        let _timing = self.latency.time();
        let (_lock, entity) = self.enter(entity).await?;
        let updated = with_transition!(self, transition_now, t => update(&self.store, &entity, id, input, t).await);
        self.wrote(&entity.id);
        updated
    }

    pub async fn delete(&self, entity: &str, id: &str) -> Result<(), ContentError> {
        let _timing = self.latency.time();
        let (_lock, entity) = self.enter(entity).await?;
        let deleted = with_transition!(self, transition_now, t => delete(&self.store, &entity, id, t).await);
        self.wrote(&entity.id);
        deleted
    }

    pub async fn get(&self, entity: &str, id: &str) -> Result<Json, ContentError> {
        let _timing = self.latency.time();
        let (_lock, entity) = self.enter(entity).await?;
        match get(&self.store, &entity, id).await {
            Err(ContentError::NotFound { .. }) => {
                with_transition!(self, t => legacy_get(&self.store, &entity, id, t).await)
            }
            other => other,
        }
    }

    /// A page of records in id order, and how many there are in all.
    pub async fn list(&self, entity: &str, limit: i64, offset: i64) -> Result<(Vec<Json>, i64), ContentError> {
        let _timing = self.latency.time();
        let (_lock, entity) = self.enter(entity).await?;
        with_transition!(self, t => match t {
            None => list(&self.store, &entity, limit, offset).await,
            Some(t) => list_with_legacy(&self.store, &entity, limit, offset, t).await,
        })
    }
}

fn field_type(entity: &EntitySchema, field: &str) -> FieldType {
    entity.fields.iter().find(|f| f.id == field).map(|f| f.field_type).unwrap_or(FieldType::Text)
}

/// Inserts a record given as JSON; returns it as stored. During a legacy move
/// an id a legacy row still holds is taken, and (with dual writes) the record
/// gets a legacy row too.
async fn create(
    store: &Store,
    entity: &EntitySchema,
    input: &Map<String, Json>,
    legacy: Option<&Transition>,
) -> Result<Json, ContentError> {
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
    let _turn = store.write_turn().await;
    let mut tx = store.writers().begin().await.map_err(StoreError::Sql)?;
    if let Some(t) = legacy {
        if transition::legacy_row(&mut tx.conn(), t, &entity.id, &id).await?.is_some() {
            return Err(ContentError::Conflict(format!(
                "`{}` `{id}` exists (in the legacy table, not copied yet)",
                entity.id
            )));
        }
    }
    insert_record(&mut tx.conn(), entity, &id, &record, None).await?;
    if let Some(t) = legacy.filter(|t| t.dual_write) {
        transition::write_through(&mut tx.conn(), t, entity, &id, &record_json(entity, &id, &record)).await?;
    }
    tx.commit().await.map_err(StoreError::Sql)?;
    get(store, entity, &id).await
}

/// Inserts a validated record under `id` (with the creation time given, or now).
async fn insert_record(
    conn: &mut Conn<'_>,
    entity: &EntitySchema,
    id: &str,
    record: &Record,
    created_at: Option<String>,
) -> Result<(), ContentError> {
    let d = conn.dialect();
    let mut cols = vec![d.table("id")];
    let mut marks = vec![mark(d, 1, None)];
    let mut args = vec![Arg::from(id)];
    for (c, v) in record.columns.iter() {
        let t = column_type(entity, c).unwrap_or(FieldType::Text);
        cols.push(d.table(c));
        args.push(arg(d, t, v));
        marks.push(mark(d, args.len(), Some(t)));
    }
    if let Some(created) = created_at {
        cols.push(d.table("created_at"));
        args.push(Arg::Text(created));
        marks.push(super::backend::of(d).cast_mark(args.len(), "TIMESTAMPTZ"));
    }
    let sql = format!("INSERT INTO {} ({}) VALUES ({})", d.table(&entity.table()), cols.join(", "), marks.join(", "));
    conn.execute(&sql, &args).await?;
    for (field, values) in &record.children {
        insert_children(conn, entity, field, id, values).await?;
    }
    Ok(())
}

/// Replaces record `id` with `input` (PUT): fields left out take their default
/// or NULL, multi-valued fields are replaced as a whole. During a legacy move a
/// record still only in the legacy table is copied with the new values, and
/// (with dual writes) its legacy row takes them too.
async fn update(
    store: &Store,
    entity: &EntitySchema,
    id: &str,
    input: &Map<String, Json>,
    legacy: Option<&Transition>,
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
    let _turn = store.write_turn().await;
    let mut tx = store.writers().begin().await.map_err(StoreError::Sql)?;
    if tx.conn().execute(&sql, &args).await? == 0 {
        let row = match legacy {
            Some(t) => transition::legacy_row(&mut tx.conn(), t, &entity.id, id).await?,
            None => None,
        };
        let Some(row) = row else {
            return Err(ContentError::NotFound { entity: entity.id.clone(), id: id.to_string() });
        };
        insert_record(&mut tx.conn(), entity, id, &Record { children: Vec::new(), ..record.clone() }, row.created_at)
            .await?;
    }
    for field in entity.fields.iter().filter(|f| !f.cardinality.is_single()) {
        let child = d.table(&child_table(&entity.id, &field.id));
        tx.conn().execute(&format!("DELETE FROM {child} WHERE {} = $1", d.table("parent_id")), &[id.into()]).await?;
        let given = record.children.iter().find(|(f, _)| *f == field.id).map(|(_, v)| v.as_slice()).unwrap_or(&[]);
        insert_children(&mut tx.conn(), entity, &field.id, id, given).await?;
    }
    if let Some(t) = legacy.filter(|t| t.dual_write) {
        transition::write_through(&mut tx.conn(), t, entity, id, &record_json(entity, id, &record)).await?;
    }
    tx.commit().await.map_err(StoreError::Sql)?;
    get(store, entity, id).await
}

/// Deletes record `id`; its multi-valued fields go with it (ON DELETE CASCADE).
/// A record other records still reference is refused as a conflict. During a
/// legacy move (with dual writes) its legacy row goes too.
async fn delete(
    store: &Store,
    entity: &EntitySchema,
    id: &str,
    legacy: Option<&Transition>,
) -> Result<(), ContentError> {
    let d = store.dialect();
    let sql = format!("DELETE FROM {} WHERE {} = $1", d.table(&entity.table()), d.table("id"));
    let _turn = store.write_turn().await;
    let mut tx = store.writers().begin().await.map_err(StoreError::Sql)?;
    let deleted = tx.conn().execute(&sql, &[id.into()]).await.map_err(|e| match ContentError::from(e) {
        ContentError::Conflict(_) => ContentError::Conflict(format!(
            "other records still reference `{}` `{id}`; change or remove them first",
            entity.id
        )),
        other => other,
    })?;
    let legacy_deleted = match legacy {
        Some(t) if t.dual_write => transition::delete_through(&mut tx.conn(), t, &entity.id, id).await?,
        Some(t) if deleted == 0 && transition::legacy_row(&mut tx.conn(), t, &entity.id, id).await?.is_some() => {
            return Err(ContentError::Conflict(format!(
                "`{}` `{id}` is only in the legacy table and dual writes are off; copy it (`marain legacy run`) first",
                entity.id
            )));
        }
        _ => false,
    };
    if deleted == 0 && !legacy_deleted {
        return Err(ContentError::NotFound { entity: entity.id.clone(), id: id.to_string() });
    }
    tx.commit().await.map_err(StoreError::Sql)?;
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

/// A record the typed table lacks, from the legacy table during a move.
async fn legacy_get(
    store: &Store,
    entity: &EntitySchema,
    id: &str,
    legacy: Option<&Transition>,
) -> Result<Json, ContentError> {
    let not_found = || ContentError::NotFound { entity: entity.id.clone(), id: id.to_string() };
    let Some(t) = legacy else { return Err(not_found()) };
    let mut conn = store.pool().acquire().await.map_err(StoreError::Sql)?;
    let row = transition::legacy_row(&mut conn.conn(), t, &entity.id, id).await?.ok_or_else(not_found)?;
    Ok(transition::served(entity, &row))
}

/// A page of records during a legacy move: the typed table's and the legacy
/// rows not copied yet, in id order.
async fn list_with_legacy(
    store: &Store,
    entity: &EntitySchema,
    limit: i64,
    offset: i64,
    t: &Transition,
) -> Result<(Vec<Json>, i64), ContentError> {
    let mut conn = store.pool().acquire().await.map_err(StoreError::Sql)?;
    let (ids, total) = transition::page_ids(&mut conn.conn(), t, entity, limit, offset).await?;
    drop(conn);
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        match get(store, entity, &id).await {
            Err(ContentError::NotFound { .. }) => {
                if let Ok(item) = legacy_get(store, entity, &id, Some(t)).await {
                    items.push(item);
                }
            }
            other => items.push(other?),
        }
    }
    Ok((items, total))
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
