//! `marain legacy run`: legacy rows into the typed tables, a batch per
//! transaction, in the order references need (targets first).
//!
//! Resumable and idempotent by id: a batch first asks which of its ids the typed
//! table already has and leaves those alone (they may have been written through
//! the API since), and inserts with `ON CONFLICT (id) DO NOTHING`, so a run
//! killed at any point and started again copies no row twice and skips none.
//! A row that does not fit stays in the legacy table, its reasons written to
//! `marain_legacy_misfits` in the same transaction; a row whose reference
//! targets are not copied yet waits for a later round of the same run.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value as Json};

use super::source::{LegacyRow, LegacySource};
use super::transition;
use super::{entities_for, fill_order, LegacyError};
use crate::content::{Record, SqlValue};
use crate::engine::database::{Arg, Conn};
use crate::engine::rows::{arg, mark, refusal};
use crate::engine::store::Store;
use crate::legacy::{convert, Misfit};
use crate::model::{EntitySchema, FieldType};
use crate::site::Site;
use crate::sql::{child_table, Dialect};

/// How `run` copies.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Rows per transaction.
    pub batch_size: usize,
    /// Keep the keys no field takes in `marain_legacy_extra` instead of leaving
    /// such rows in the legacy table.
    pub keep_unmapped: bool,
    /// While the move is under way, content API writes also update the legacy
    /// rows (so an old Marain process still reading them sees every change).
    pub dual_write: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self { batch_size: 1000, keep_unmapped: false, dual_write: true }
    }
}

/// Where one legacy type stands.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TypeProgress {
    /// The entity its rows go to.
    pub entity: String,
    /// Rows of this type in the legacy table.
    pub total: i64,
    /// Rows the typed table has (copied now or before).
    pub copied: i64,
    /// Rows that do not fit, with their reasons in `marain_legacy_misfits`.
    pub misfits: i64,
    /// Rows not looked at yet, or waiting for the rows they reference.
    pub waiting: i64,
}

/// Every type's progress, by legacy `entity_type`.
pub type Progress = BTreeMap<String, TypeProgress>;

/// Copies every legacy row that fits into its typed table. `report` is told the
/// progress after each batch. Returns the final counts.
pub async fn run(
    store: &Store,
    source: &LegacySource,
    site: &Site,
    options: &RunOptions,
    report: &mut dyn FnMut(&Progress),
) -> Result<Progress, LegacyError> {
    let types = source.types().await?;
    let names: Vec<String> = types.iter().map(|(t, _)| t.clone()).collect();
    let entities = entities_for(site, &names);
    for (entity_type, entity) in &entities {
        if store.pool().table_columns(&store.dialect().ident(&entity.table())).await?.is_empty() {
            return Err(LegacyError::NotApplied { entity_type: entity_type.clone(), entity: entity.id.clone() });
        }
    }
    let mut progress: Progress = types
        .iter()
        .filter_map(|(t, n)| {
            let entity = entities.get(t)?;
            Some((t.clone(), TypeProgress { entity: entity.id.clone(), total: *n, waiting: *n, ..Default::default() }))
        })
        .collect();
    transition::begin(store, source, options, &entities, &progress).await?;
    let mut waiting: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entity_type in fill_order(site, &entities) {
        let entity = entities[&entity_type];
        let mut after = String::new();
        loop {
            let rows = source.batch(&entity_type, &after, options.batch_size).await?;
            let Some(last) = rows.last() else { break };
            after = last.id.clone();
            let outcome = copy_batch(store, &entity_type, entity, site, rows, options, &mut progress).await?;
            waiting.entry(entity_type.clone()).or_default().extend(outcome);
            report(&progress);
        }
    }
    // Rows waiting for their references: again, while a round copies any.
    loop {
        let before: usize = waiting.values().map(Vec::len).sum();
        if before == 0 {
            break;
        }
        let last_round = std::mem::take(&mut waiting);
        for (entity_type, ids) in last_round {
            let entity = entities[&entity_type];
            // As many as one INSERT takes, so that rows referencing each other
            // in a cycle longer than a batch go in together.
            for chunk in ids.chunks(rows_per_statement(entity).max(options.batch_size)) {
                let rows = source.rows(chunk).await?;
                let outcome = copy_batch(store, &entity_type, entity, site, rows, options, &mut progress).await?;
                waiting.entry(entity_type.clone()).or_default().extend(outcome);
            }
        }
        let after: usize = waiting.values().map(Vec::len).sum();
        report(&progress);
        if after == before {
            break;
        }
    }
    // What still waits references rows that will not come: it does not fit.
    for (entity_type, ids) in waiting {
        let entity = entities[&entity_type];
        for chunk in ids.chunks(options.batch_size.max(1)) {
            let rows = source.rows(chunk).await?;
            record_dangling(store, &entity_type, entity, site, rows, &mut progress).await?;
        }
    }
    transition::end_run(store, source, &progress).await?;
    report(&progress);
    Ok(progress)
}

/// One legacy row read and checked, ready to insert.
struct Fitting {
    id: String,
    record: Record,
    unmapped: Map<String, Json>,
    created_at: Option<String>,
    updated_at: Option<String>,
}

/// Copies one batch of rows of `entity_type` in one transaction; returns the
/// ids that wait for rows they reference.
async fn copy_batch(
    store: &Store,
    entity_type: &str,
    entity: &EntitySchema,
    site: &Site,
    rows: Vec<LegacyRow>,
    options: &RunOptions,
    progress: &mut Progress,
) -> Result<Vec<String>, LegacyError> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let failpoints = store.failpoints();
    failpoints.begin_apply();
    let mut tx = store.pool().begin().await?;
    let present = existing_ids(&mut tx.conn(), &entity.table(), &ids).await?;
    let mut fitting = Vec::new();
    let mut misfits: Vec<(String, Vec<Misfit>)> = Vec::new();
    for row in rows {
        if present.contains(&row.id) {
            continue;
        }
        match convert(entity, row.data.as_deref().unwrap_or("null")).fit(options.keep_unmapped) {
            Ok((record, unmapped)) => fitting.push(Fitting {
                id: row.id,
                record,
                unmapped,
                created_at: row.created_at,
                updated_at: row.updated_at,
            }),
            Err(m) => misfits.push((row.id, m)),
        }
    }
    let mut inserted = 0;
    let mut waiting = Vec::new();
    let per_statement = rows_per_statement(entity);
    let mut rest = fitting;
    while !rest.is_empty() {
        let chunk: Vec<Fitting> = rest.drain(..per_statement.min(rest.len())).collect();
        let (ready, later) = split_waiting(&mut tx.conn(), entity, site, chunk).await?;
        waiting.extend(later);
        let (done, refused) = insert_chunk(&mut tx.conn(), entity, &ready).await?;
        inserted += done;
        let kept = |f: &&Fitting| {
            options.keep_unmapped && !f.unmapped.is_empty() && !refused.iter().any(|(id, _)| *id == f.id)
        };
        for f in ready.iter().filter(kept) {
            let sql = "INSERT INTO marain_legacy_extra (entity, id, data) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
            let data = Json::Object(f.unmapped.clone()).to_string();
            tx.conn().execute(sql, &[Arg::from(&entity.id), Arg::from(&f.id), Arg::from(data)]).await?;
        }
        misfits.extend(refused);
    }
    rewrite_misfits(&mut tx.conn(), entity_type, &ids, &misfits).await?;
    let p = progress.entry(entity_type.to_string()).or_default();
    // Every row looked at was counted as waiting (not looked at yet, or
    // waiting from an earlier round); now it is copied, a misfit or waiting.
    p.copied += present.len() as i64 + inserted as i64;
    p.misfits += misfits.len() as i64;
    p.waiting = (p.waiting - ids.len() as i64 + waiting.len() as i64).max(0);
    transition::record_progress(&mut tx.conn(), progress).await?;
    failpoints.reach("legacy_before_commit");
    tx.commit().await?;
    failpoints.reach("legacy_after_commit");
    Ok(waiting)
}

/// The ids among `ids` that `table` has.
async fn existing_ids(conn: &mut Conn<'_>, table: &str, ids: &[String]) -> Result<BTreeSet<String>, sqlx::Error> {
    let mut found = BTreeSet::new();
    let d = conn.dialect();
    for chunk in ids.chunks(1000) {
        if chunk.is_empty() {
            continue;
        }
        let marks: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
        let sql =
            format!("SELECT {id} FROM {} WHERE {id} IN ({})", d.table(table), marks.join(", "), id = d.table("id"));
        let args: Vec<Arg> = chunk.iter().map(Arg::from).collect();
        let rows: Vec<(String,)> = conn.fetch_all(&sql, &args).await?;
        found.extend(rows.into_iter().map(|(id,)| id));
    }
    Ok(found)
}

/// Every id a record references, by target entity.
fn references(entity: &EntitySchema, record: &Record) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for field in entity.fields.iter().filter(|f| f.field_type == FieldType::EntityReference) {
        let Some(target) = field.target_entity.clone() else { continue };
        let values: Vec<&SqlValue> = match field.column() {
            Some(c) => record.columns.iter().filter(|(col, _)| *col == c).map(|(_, v)| v).collect(),
            None => record.children.iter().filter(|(f, _)| *f == field.id).flat_map(|(_, v)| v).collect(),
        };
        for v in values {
            if let SqlValue::Text(id) = v {
                out.push((target.clone(), id.clone()));
            }
        }
    }
    out
}

/// Splits `fitting` (the rows of one INSERT) into the rows whose references
/// all resolve and the ids of the rest. A target resolves when its typed table
/// has it, or when it is a row of the same INSERT that itself resolves: the
/// database checks keys at the end of the statement (and a multi-valued
/// field's values go in after all the rows), so rows of one statement may
/// reference each other, in cycles too.
async fn split_waiting(
    conn: &mut Conn<'_>,
    entity: &EntitySchema,
    site: &Site,
    fitting: Vec<Fitting>,
) -> Result<(Vec<Fitting>, Vec<String>), LegacyError> {
    let wanted: Vec<Vec<(String, String)>> = fitting.iter().map(|f| references(entity, &f.record)).collect();
    let mut by_target: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (target, id) in wanted.iter().flatten() {
        by_target.entry(target.as_str()).or_default().insert(id.clone());
    }
    let mut present: BTreeSet<(String, String)> = BTreeSet::new();
    for (target, ids) in by_target {
        let Some(file) = site.entity_file(target) else { continue };
        let ids: Vec<String> = ids.into_iter().collect();
        for id in existing_ids(conn, &file.entity.table(), &ids).await? {
            present.insert((target.to_string(), id));
        }
    }
    let mut ready: BTreeSet<String> = fitting.iter().map(|f| f.id.clone()).collect();
    loop {
        let before = ready.len();
        for (f, refs) in fitting.iter().zip(&wanted) {
            let resolved = refs.iter().all(|(target, id)| {
                present.contains(&(target.clone(), id.clone())) || (*target == entity.id && ready.contains(id))
            });
            if !resolved {
                ready.remove(&f.id);
            }
        }
        if ready.len() == before {
            break;
        }
    }
    let (kept, waiting): (Vec<Fitting>, Vec<Fitting>) = fitting.into_iter().partition(|f| ready.contains(&f.id));
    Ok((kept, waiting.into_iter().map(|f| f.id).collect()))
}

/// How many rows one INSERT carries: below both backends' placeholder limits.
fn rows_per_statement(entity: &EntitySchema) -> usize {
    let columns = entity.fields.iter().filter(|f| f.cardinality.is_single()).count() + 3;
    (30_000 / columns).clamp(1, 500)
}

/// Inserts `chunk` under a savepoint; if the database refuses it (a unique
/// value taken, say), row by row, so only the refused rows stay behind.
/// Returns how many rows were inserted and the refused ones' reasons.
async fn insert_chunk(
    conn: &mut Conn<'_>,
    entity: &EntitySchema,
    chunk: &[Fitting],
) -> Result<(usize, Vec<(String, Vec<Misfit>)>), LegacyError> {
    if chunk.is_empty() {
        return Ok((0, Vec::new()));
    }
    conn.execute("SAVEPOINT legacy_chunk", &[]).await?;
    match insert_rows(conn, entity, chunk).await {
        Ok(n) => {
            conn.execute("RELEASE SAVEPOINT legacy_chunk", &[]).await?;
            return Ok((n, Vec::new()));
        }
        Err(e) if e.as_database_error().is_none() => return Err(e.into()),
        Err(_) => conn.execute("ROLLBACK TO SAVEPOINT legacy_chunk", &[]).await?,
    };
    let mut inserted = 0;
    let mut refused = Vec::new();
    for row in chunk {
        conn.execute("SAVEPOINT legacy_row", &[]).await?;
        match insert_rows(conn, entity, std::slice::from_ref(row)).await {
            Ok(n) => {
                inserted += n;
                conn.execute("RELEASE SAVEPOINT legacy_row", &[]).await?;
            }
            Err(e) if e.as_database_error().is_some() => {
                conn.execute("ROLLBACK TO SAVEPOINT legacy_row", &[]).await?;
                conn.execute("RELEASE SAVEPOINT legacy_row", &[]).await?;
                let reason = refusal(&e).unwrap_or_else(|| "the database refused the row".into());
                refused.push((row.id.clone(), vec![Misfit { key: String::new(), value: String::new(), reason }]));
            }
            Err(e) => return Err(e.into()),
        }
    }
    conn.execute("RELEASE SAVEPOINT legacy_chunk", &[]).await?;
    Ok((inserted, refused))
}

/// One multi-row INSERT of the rows and one per multi-valued field of their
/// values; rows the table has already are skipped. Returns how many were new.
async fn insert_rows(conn: &mut Conn<'_>, entity: &EntitySchema, rows: &[Fitting]) -> Result<usize, sqlx::Error> {
    let d = conn.dialect();
    let singles: Vec<_> = entity.fields.iter().filter(|f| f.cardinality.is_single()).collect();
    let mut columns = vec![d.table("id")];
    columns.extend(singles.iter().filter_map(|f| f.column()).map(|c| d.table(&c)));
    columns.extend([d.table("created_at"), d.table("updated_at")]);
    let mut tuples = Vec::with_capacity(rows.len());
    let mut args = Vec::with_capacity(rows.len() * columns.len());
    for row in rows {
        let mut marks = Vec::with_capacity(columns.len());
        args.push(Arg::from(&row.id));
        marks.push(format!("${}", args.len()));
        for field in &singles {
            let column = field.column().expect("single");
            let value = row.record.columns.iter().find(|(c, _)| *c == column).map(|(_, v)| v);
            args.push(value.map(|v| arg(d, field.field_type, v)).unwrap_or(Arg::Null));
            marks.push(mark(d, args.len(), Some(field.field_type)));
        }
        for stamp in [&row.created_at, &row.updated_at] {
            args.push(Arg::from(stamp.clone()));
            marks.push(timestamp_mark(d, args.len()));
        }
        tuples.push(format!("({})", marks.join(", ")));
    }
    let sql = format!(
        "INSERT INTO {} ({}) VALUES {} ON CONFLICT ({}) DO NOTHING RETURNING {}",
        d.table(&entity.table()),
        columns.join(", "),
        tuples.join(", "),
        d.table("id"),
        d.table("id"),
    );
    let new: Vec<(String,)> = conn.fetch_all(&sql, &args).await?;
    let new: BTreeSet<String> = new.into_iter().map(|(id,)| id).collect();
    for field in entity.fields.iter().filter(|f| !f.cardinality.is_single()) {
        let mut values = Vec::new();
        for row in rows.iter().filter(|r| new.contains(&r.id)) {
            if let Some((_, vs)) = row.record.children.iter().find(|(f, _)| *f == field.id) {
                values.extend(vs.iter().enumerate().map(|(delta, v)| (row.id.as_str(), delta, v)));
            }
        }
        for chunk in values.chunks(5_000) {
            let mut tuples = Vec::with_capacity(chunk.len());
            let mut args = Vec::with_capacity(chunk.len() * 3);
            for (id, delta, v) in chunk {
                args.push(Arg::from(*id));
                args.push(Arg::Int(*delta as i64));
                args.push(arg(d, field.field_type, v));
                let n = args.len();
                tuples.push(format!("(${}, ${}, {})", n - 2, n - 1, mark(d, n, Some(field.field_type))));
            }
            let sql = format!(
                "INSERT INTO {} ({}, {}, {}) VALUES {}",
                d.table(&child_table(&entity.id, &field.id)),
                d.table("parent_id"),
                d.table("delta"),
                d.table("value"),
                tuples.join(", ")
            );
            conn.execute(&sql, &args).await?;
        }
    }
    Ok(new.len())
}

/// A legacy timestamp (text, or NULL for now) as the typed table takes it.
fn timestamp_mark(d: Dialect, n: usize) -> String {
    match d {
        Dialect::Postgres => format!("COALESCE(CAST(${n} AS TIMESTAMPTZ), CURRENT_TIMESTAMP)"),
        Dialect::Sqlite => format!("COALESCE(${n}, CURRENT_TIMESTAMP)"),
    }
}

/// Replaces the recorded reasons of the rows `ids` with `misfits`.
async fn rewrite_misfits(
    conn: &mut Conn<'_>,
    entity_type: &str,
    ids: &[String],
    misfits: &[(String, Vec<Misfit>)],
) -> Result<(), sqlx::Error> {
    let (known,): (i64,) = conn
        .fetch_one("SELECT COUNT(*) FROM marain_legacy_misfits WHERE entity_type = $1", &[entity_type.into()])
        .await?;
    if known > 0 {
        for chunk in ids.chunks(1000) {
            let marks: Vec<String> = (2..=chunk.len() + 1).map(|n| format!("${n}")).collect();
            let sql =
                format!("DELETE FROM marain_legacy_misfits WHERE entity_type = $1 AND id IN ({})", marks.join(", "));
            let mut args = vec![Arg::from(entity_type)];
            args.extend(chunk.iter().map(Arg::from));
            conn.execute(&sql, &args).await?;
        }
    }
    for (id, reasons) in misfits {
        for m in reasons {
            conn.execute(
                "INSERT INTO marain_legacy_misfits (entity_type, id, json_key, value, reason) VALUES ($1, $2, $3, $4, $5)",
                &[entity_type.into(), id.into(), (&m.key).into(), (&m.value).into(), (&m.reason).into()],
            )
            .await?;
        }
    }
    Ok(())
}

/// Rows still waiting at the end of a run reference rows that are not in the
/// typed tables and will not be: they do not fit, with that reason.
async fn record_dangling(
    store: &Store,
    entity_type: &str,
    entity: &EntitySchema,
    site: &Site,
    rows: Vec<LegacyRow>,
    progress: &mut Progress,
) -> Result<(), LegacyError> {
    let mut tx = store.pool().begin().await?;
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut misfits = Vec::new();
    for row in rows {
        let Ok((record, _)) = convert(entity, row.data.as_deref().unwrap_or("null")).fit(true) else { continue };
        let mut reasons = Vec::new();
        for (target, id) in references(entity, &record) {
            let table = site.entity_file(&target).map(|f| f.entity.table()).unwrap_or_default();
            if existing_ids(&mut tx.conn(), &table, std::slice::from_ref(&id)).await?.is_empty() {
                reasons.push(Misfit {
                    key: String::new(),
                    value: id.clone(),
                    reason: format!("references `{target}` `{id}`, which is not in the typed table (it is missing, or does not fit)"),
                });
            }
        }
        if !reasons.is_empty() {
            misfits.push((row.id, reasons));
        }
    }
    rewrite_misfits(&mut tx.conn(), entity_type, &ids, &misfits).await?;
    let p = progress.entry(entity_type.to_string()).or_default();
    p.waiting = (p.waiting - misfits.len() as i64).max(0);
    p.misfits += misfits.len() as i64;
    transition::record_progress(&mut tx.conn(), progress).await?;
    tx.commit().await?;
    Ok(())
}
