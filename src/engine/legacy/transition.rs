//! The move under way: the `marain_legacy` row that `run` writes and `finish`
//! closes, and what the content API does until then when the legacy table is in
//! the site's own database.
//!
//! - Reads: an id the typed table lacks is looked up in the legacy table and
//!   served converted by the same rules `run` copies by (a row that does not
//!   fit is served with what converts and its `legacy_problems`). Lists are the
//!   union of both, in id order.
//! - Writes (unless `run --no-dual-write`): in the same transaction as the typed
//!   write, the legacy row's `data` is rewritten under the keys it already used,
//!   a new record gets a legacy row, a deleted one loses it. An old Marain
//!   process still reading the legacy table sees every change.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde_json::{Map, Value as Json};

use super::progress::{Progress, RunOptions};
use super::source::{row_columns, LegacyRow, LegacySource};
use super::LegacyError;
use crate::engine::database::{Arg, Conn};
use crate::engine::now_rfc3339;
use crate::engine::store::Store;
use crate::legacy::{legacy_data, partial_json};
use crate::model::EntitySchema;
use crate::sql::Dialect;

/// A move under way in the site's own database.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub table: String,
    pub dual_write: bool,
    /// Legacy `entity_type` → entity id.
    pub types: BTreeMap<String, String>,
    /// PostgreSQL: the `data` column's type (`json`, `jsonb` or `text`).
    data_type: String,
}

impl Transition {
    /// The legacy types whose rows belong to `entity`.
    pub fn types_of(&self, entity: &str) -> Vec<&str> {
        self.types.iter().filter(|(_, e)| *e == entity).map(|(t, _)| t.as_str()).collect()
    }

    /// `entity_type IN ($from, …)` for `entity`, with its arguments.
    fn type_filter(&self, d: Dialect, entity: &str, from: usize) -> (String, Vec<Arg>) {
        let types = self.types_of(entity);
        let marks: Vec<String> = (from..from + types.len()).map(|n| format!("${n}")).collect();
        let list = if marks.is_empty() { "NULL".to_string() } else { marks.join(", ") };
        (format!("{} IN ({list})", d.table("entity_type")), types.into_iter().map(Arg::from).collect())
    }

    fn data_mark(&self, d: Dialect, n: usize) -> String {
        crate::engine::backend::of(d).cast_mark(n, &self.data_type)
    }
}

/// The row of `marain_legacy` as stored.
#[derive(sqlx::FromRow)]
struct TransitionRow {
    legacy_table: String,
    dual_write: bool,
    types: String,
}

/// Starts (or resumes) the move from `source`: the row the content API and the
/// dashboard read.
pub(super) async fn begin(
    store: &Store,
    source: &LegacySource,
    options: &RunOptions,
    entities: &BTreeMap<String, &EntitySchema>,
    progress: &Progress,
) -> Result<(), LegacyError> {
    let types: BTreeMap<&str, &str> = entities.iter().map(|(t, e)| (t.as_str(), e.id.as_str())).collect();
    let now = now_rfc3339();
    let sql = "INSERT INTO marain_legacy (legacy_table, same_database, dual_write, keep_unmapped, types, progress, \
               started_at, updated_at, running) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) \
               ON CONFLICT (legacy_table) DO UPDATE SET same_database = excluded.same_database, \
               dual_write = excluded.dual_write, keep_unmapped = excluded.keep_unmapped, types = excluded.types, \
               progress = excluded.progress, updated_at = excluded.updated_at, running = excluded.running, \
               finished_at = NULL, renamed_to = NULL";
    store
        .pool()
        .execute(
            sql,
            &[
                source.table().into(),
                Arg::Bool(source.same_database()),
                Arg::Bool(options.dual_write),
                Arg::Bool(options.keep_unmapped),
                serde_json::to_string(&types).unwrap_or_default().into(),
                serde_json::to_string(progress).unwrap_or_default().into(),
                now.into(),
                Arg::Bool(true),
            ],
        )
        .await?;
    Ok(())
}

/// The counts after a batch, in that batch's transaction.
pub(super) async fn record_progress(conn: &mut Conn<'_>, progress: &Progress) -> Result<(), sqlx::Error> {
    let sql = "UPDATE marain_legacy SET progress = $1, updated_at = $2 WHERE running AND finished_at IS NULL";
    conn.execute(sql, &[serde_json::to_string(progress).unwrap_or_default().into(), now_rfc3339().into()]).await?;
    Ok(())
}

pub(super) async fn end_run(store: &Store, source: &LegacySource, progress: &Progress) -> Result<(), LegacyError> {
    let sql = "UPDATE marain_legacy SET running = $1, progress = $2, updated_at = $3 WHERE legacy_table = $4";
    let args = [
        Arg::Bool(false),
        serde_json::to_string(progress).unwrap_or_default().into(),
        now_rfc3339().into(),
        source.table().into(),
    ];
    store.pool().execute(sql, &args).await?;
    Ok(())
}

/// Marks the move from `table` finished; the legacy table is now `renamed_to`.
pub(super) async fn close(conn: &mut Conn<'_>, table: &str, renamed_to: &str) -> Result<(), sqlx::Error> {
    let sql = "UPDATE marain_legacy SET finished_at = $1, renamed_to = $2, running = $3 WHERE legacy_table = $4";
    conn.execute(sql, &[now_rfc3339().into(), renamed_to.into(), Arg::Bool(false), table.into()]).await?;
    Ok(())
}

/// What the dashboard shows of a move: the table, whether a run is under way,
/// the newest counts, and when.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MoveStatus {
    pub legacy_table: String,
    pub same_database: bool,
    pub dual_write: bool,
    pub running: bool,
    pub progress: Progress,
    pub started_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
    pub renamed_to: Option<String>,
}

/// Every move recorded in this database, newest first.
pub async fn statuses(store: &Store) -> Result<Vec<MoveStatus>, LegacyError> {
    type Row = (String, bool, bool, bool, String, String, String, Option<String>, Option<String>);
    let rows: Vec<Row> = store
        .pool()
        .fetch_all(
            "SELECT legacy_table, same_database, dual_write, running, progress, started_at, updated_at, \
             finished_at, renamed_to FROM marain_legacy ORDER BY started_at DESC",
            &[],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(
                legacy_table,
                same_database,
                dual_write,
                running,
                progress,
                started_at,
                updated_at,
                finished_at,
                renamed_to,
            )| {
                MoveStatus {
                    legacy_table,
                    same_database,
                    dual_write,
                    running,
                    progress: serde_json::from_str(&progress).unwrap_or_default(),
                    started_at,
                    updated_at,
                    finished_at,
                    renamed_to,
                }
            },
        )
        .collect())
}

/// One reason a legacy row does not fit, as recorded by `run`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct MisfitRow {
    pub entity_type: String,
    pub id: String,
    pub json_key: String,
    pub value: String,
    pub reason: String,
}

/// The reasons recorded for the rows that do not fit, up to `limit`.
pub async fn misfits(store: &Store, limit: i64) -> Result<Vec<MisfitRow>, LegacyError> {
    let sql = "SELECT entity_type, id, json_key, value, reason FROM marain_legacy_misfits \
               ORDER BY entity_type, id, json_key LIMIT $1";
    Ok(store.pool().fetch_all(sql, &[Arg::Int(limit)]).await?)
}

/// How long the content API's reads trust what it read of `marain_legacy`: a
/// move started or finished from the command line is seen by reads within
/// this, and by writes at once (they read it afresh).
const FRESH_FOR: Duration = Duration::from_secs(1);

/// The content API's view of the move, read at most once per [`FRESH_FOR`].
pub struct TransitionView {
    store: Store,
    cached: ArcSwap<(Instant, Option<Arc<Transition>>)>,
}

impl TransitionView {
    pub fn new(store: Store) -> Self {
        let stale = Instant::now().checked_sub(FRESH_FOR * 2).unwrap_or_else(Instant::now);
        Self { store, cached: ArcSwap::from_pointee((stale, None)) }
    }

    /// The move under way in this database, if any.
    pub async fn current(&self) -> Result<Option<Arc<Transition>>, sqlx::Error> {
        let cached = self.cached.load();
        if cached.0.elapsed() < FRESH_FOR {
            return Ok(cached.1.clone());
        }
        self.now().await
    }

    /// The move under way, read now (a write decides by it: whether an id is
    /// still a legacy row's and whether to write both tables), and kept for the
    /// reads that follow.
    pub async fn now(&self) -> Result<Option<Arc<Transition>>, sqlx::Error> {
        let read = self.read().await?.map(Arc::new);
        self.cached.store(Arc::new((Instant::now(), read.clone())));
        Ok(read)
    }

    /// Forgets what was read, so the next call reads again.
    pub fn forget(&self) {
        let stale = Instant::now().checked_sub(FRESH_FOR * 2).unwrap_or_else(Instant::now);
        self.cached.store(Arc::new((stale, None)));
    }

    async fn read(&self) -> Result<Option<Transition>, sqlx::Error> {
        active(&self.store).await
    }
}

/// The move under way in the store's own database, read now.
pub async fn active(store: &Store) -> Result<Option<Transition>, sqlx::Error> {
    let sql = "SELECT legacy_table, dual_write, types FROM marain_legacy \
               WHERE same_database AND finished_at IS NULL ORDER BY started_at DESC LIMIT 1";
    let Some(row) = store.pool().fetch_optional::<TransitionRow>(sql, &[]).await? else { return Ok(None) };
    let data_type = match store.backend().legacy_data_type_query() {
        None => "text".to_string(),
        Some(sql) => {
            let found: Option<(String,)> = store.pool().fetch_optional(sql, &[(&row.legacy_table).into()]).await?;
            match found.map(|(t,)| t) {
                Some(t) if t == "json" || t == "jsonb" => t,
                Some(_) => "text".to_string(),
                // The table is gone (renamed by another process's finish).
                None => return Ok(None),
            }
        }
    };
    Ok(Some(Transition {
        table: row.legacy_table,
        dual_write: row.dual_write,
        types: serde_json::from_str(&row.types).unwrap_or_default(),
        data_type,
    }))
}

/// Legacy rows of `entity` the typed table does not have yet, the first
/// `limit` in id order.
pub async fn waiting_rows(
    conn: &mut Conn<'_>,
    t: &Transition,
    entity: &EntitySchema,
    limit: i64,
) -> Result<Vec<LegacyRow>, sqlx::Error> {
    let d = conn.dialect();
    let (filter, mut args) = t.type_filter(d, &entity.id, 1);
    let sql = format!(
        "SELECT {} FROM {} c WHERE c.{filter} AND NOT EXISTS (SELECT 1 FROM {typed} x WHERE x.{id} = c.{id}) \
         ORDER BY c.{id} LIMIT ${}",
        row_columns(d, true),
        d.table(&t.table),
        args.len() + 1,
        typed = d.table(&entity.table()),
        id = d.table("id"),
    );
    args.push(Arg::Int(limit));
    conn.fetch_all(&sql, &args).await
}

/// The legacy row `id` of `entity`, if the legacy table has one.
pub async fn legacy_row(
    conn: &mut Conn<'_>,
    t: &Transition,
    entity: &str,
    id: &str,
) -> Result<Option<LegacyRow>, sqlx::Error> {
    let d = conn.dialect();
    let (filter, mut args) = t.type_filter(d, entity, 2);
    let sql = format!(
        "SELECT {} FROM {} c WHERE c.{} = $1 AND c.{filter}",
        row_columns(d, true),
        d.table(&t.table),
        d.table("id")
    );
    args.insert(0, id.into());
    conn.fetch_optional(&sql, &args).await
}

/// A legacy row served as the content API serves a record.
pub fn served(entity: &EntitySchema, row: &LegacyRow) -> Json {
    let data = row.data.as_deref().and_then(|d| serde_json::from_str::<Json>(d).ok());
    let object = match data {
        Some(Json::Object(o)) => o,
        _ => Map::new(),
    };
    let mut out = partial_json(entity, &row.id, &object);
    out.insert("created_at".into(), row.created_at.clone().map(Json::from).unwrap_or(Json::Null));
    out.insert("updated_at".into(), row.updated_at.clone().map(Json::from).unwrap_or(Json::Null));
    Json::Object(out)
}

/// A page of ids of `entity`, in id order, from the typed table and the legacy
/// rows not copied yet, and how many there are in all.
pub async fn page_ids(
    conn: &mut Conn<'_>,
    t: &Transition,
    entity: &EntitySchema,
    limit: i64,
    offset: i64,
) -> Result<(Vec<String>, i64), sqlx::Error> {
    let d = conn.dialect();
    let (filter, types) = t.type_filter(d, &entity.id, 1);
    let n = types.len();
    let union = format!(
        "SELECT {id} AS id FROM {typed} UNION ALL SELECT CAST(c.{id} AS TEXT) FROM {legacy} c WHERE c.{filter} \
         AND NOT EXISTS (SELECT 1 FROM {typed} x WHERE x.{id} = c.{id})",
        id = d.table("id"),
        typed = d.table(&entity.table()),
        legacy = d.table(&t.table),
    );
    let (total,): (i64,) = conn.fetch_one(&format!("SELECT COUNT(*) FROM ({union}) u"), &types).await?;
    let sql = format!("SELECT id FROM ({union}) u ORDER BY id LIMIT ${} OFFSET ${}", n + 1, n + 2);
    let mut args = types;
    args.extend([Arg::Int(limit), Arg::Int(offset)]);
    let ids: Vec<(String,)> = conn.fetch_all(&sql, &args).await?;
    Ok((ids.into_iter().map(|(id,)| id).collect(), total))
}

/// After a write of record `id` (its JSON as the API returns it) to the typed
/// table: the legacy row gets the same values, under its own keys, or is made.
pub async fn write_through(
    conn: &mut Conn<'_>,
    t: &Transition,
    entity: &EntitySchema,
    id: &str,
    record: &Map<String, Json>,
) -> Result<(), sqlx::Error> {
    let d = conn.dialect();
    let old = legacy_row(conn, t, &entity.id, id).await?;
    let old_data = old.as_ref().and_then(|r| r.data.as_deref()).and_then(|s| serde_json::from_str::<Json>(s).ok());
    let data = Json::Object(legacy_data(entity, old_data.as_ref().and_then(Json::as_object), record)).to_string();
    let legacy = d.table(&t.table);
    match old {
        Some(_) => {
            let sql = format!(
                "UPDATE {legacy} SET {} = {}, {} = CURRENT_TIMESTAMP WHERE {} = $1",
                d.table("data"),
                t.data_mark(d, 2),
                d.table("updated_at"),
                d.table("id")
            );
            conn.execute(&sql, &[id.into(), data.into()]).await?;
        }
        None => {
            let entity_type =
                t.types_of(&entity.id).first().map(|s| s.to_string()).unwrap_or_else(|| entity.id.clone());
            let sql = format!(
                "INSERT INTO {legacy} ({}, {}, {}, {}, {}) VALUES ($1, $2, {}, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
                d.table("id"),
                d.table("entity_type"),
                d.table("data"),
                d.table("created_at"),
                d.table("updated_at"),
                t.data_mark(d, 3)
            );
            conn.execute(&sql, &[id.into(), entity_type.into(), data.into()]).await?;
        }
    }
    Ok(())
}

/// Deletes the legacy row of record `id`; returns whether there was one.
pub async fn delete_through(conn: &mut Conn<'_>, t: &Transition, entity: &str, id: &str) -> Result<bool, sqlx::Error> {
    let d = conn.dialect();
    let (filter, mut args) = t.type_filter(d, entity, 2);
    let sql = format!("DELETE FROM {} WHERE {} = $1 AND {filter}", d.table(&t.table), d.table("id"));
    args.insert(0, id.into());
    Ok(conn.execute(&sql, &args).await? > 0)
}
