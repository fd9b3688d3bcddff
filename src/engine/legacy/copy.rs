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

use super::progress::{Progress, RunOptions, TypeProgress};
use super::source::{LegacyRow, LegacySource};
use super::transition;
use super::{entities_for, fill_order, LegacyError};
use crate::content::{Record, SqlValue};
use crate::engine::backend;
use crate::engine::database::{Arg, Conn};
use crate::engine::rows::{arg, placeholders_per_statement, refusal, slot, typed_slot};
use crate::engine::store::Store;
use crate::legacy::{convert, Misfit};
use crate::model::{EntitySchema, FieldType};
use crate::site::Site;
use crate::sql::{child_table, Dialect};

/// Rows looked at again at once in the rounds for rows that wait for their
/// references.
const RETRY_ROWS: usize = 5_000;

/// Copies every legacy row that fits into its typed table. `report` is told the
/// progress after each batch. Returns the final counts.
pub async fn run(
    store: &Store,
    source: &LegacySource,
    site: &Site,
    options: &RunOptions,
    report: &mut (dyn FnMut(&Progress) + Send),
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
        // Reading and converting the next batches (a task of its own, on
        // another core) overlaps with writing this one.
        let (batches, mut prepared) = tokio::sync::mpsc::channel(2);
        let reader =
            tokio::spawn(read_batches(source.clone(), entity_type.clone(), entity.clone(), options.clone(), batches));
        while let Some(batch) = prepared.recv().await {
            let outcome = copy_batch(store, &entity_type, entity, site, batch, options, &mut progress).await?;
            waiting.entry(entity_type.clone()).or_default().extend(outcome);
            report(&progress);
        }
        reader.await.map_err(|e| LegacyError::Source(sqlx::Error::Protocol(format!("the reader stopped: {e}"))))??;
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
            // Larger than a batch, so that rows referencing each other in a
            // cycle longer than one go in together (up to `rows_together`).
            for chunk in ids.chunks(RETRY_ROWS.max(options.batch_size)) {
                let rows = prepare(entity, source.rows(chunk).await?, options.keep_unmapped);
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

/// A legacy row read against its entity: ready to insert, or why not.
struct Prepared {
    id: String,
    outcome: Result<Fitting, Vec<Misfit>>,
}

/// Reads the rows of `entity_type` a batch at a time and sends each batch on,
/// converted; stops when the rows end or the receiver is gone.
async fn read_batches(
    source: LegacySource,
    entity_type: String,
    entity: EntitySchema,
    options: RunOptions,
    batches: tokio::sync::mpsc::Sender<Vec<Prepared>>,
) -> Result<(), LegacyError> {
    let mut rows = source.batches(&entity_type, options.batch_size);
    while let Some(batch) = rows.next().await? {
        if batches.send(prepare(&entity, batch, options.keep_unmapped)).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// Converts each row by the rules `plan` reports by.
fn prepare(entity: &EntitySchema, rows: Vec<LegacyRow>, keep_unmapped: bool) -> Vec<Prepared> {
    rows.into_iter()
        .map(|row| {
            let outcome =
                convert(entity, row.data.as_deref().unwrap_or("null")).fit(keep_unmapped).map(|(record, unmapped)| {
                    Fitting {
                        id: row.id.clone(),
                        record,
                        unmapped,
                        created_at: row.created_at,
                        updated_at: row.updated_at,
                    }
                });
            Prepared { id: row.id, outcome }
        })
        .collect()
}

/// Copies one batch of rows of `entity_type` in one transaction; returns the
/// ids that wait for rows they reference.
async fn copy_batch(
    store: &Store,
    entity_type: &str,
    entity: &EntitySchema,
    site: &Site,
    rows: Vec<Prepared>,
    options: &RunOptions,
    progress: &mut Progress,
) -> Result<Vec<String>, LegacyError> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let failpoints = store.failpoints();
    failpoints.begin_apply();
    let d = store.dialect();
    // Immediate: on SQLite no other writer can add an id between the check
    // below and the inserts.
    let mut tx = store.pool().begin_immediate().await?;
    let backend = store.backend();
    if let Some(defer) = backend.defer_keys() {
        tx.conn().execute(defer, &[]).await?;
    }
    let present = existing_in_range(&mut tx.conn(), &entity.table(), &ids).await?;
    let mut fitting = Vec::new();
    let mut misfits: Vec<(String, Vec<Misfit>)> = Vec::new();
    for row in rows.into_iter().filter(|r| !present.contains(&r.id)) {
        match row.outcome {
            Ok(f) => fitting.push(f),
            Err(m) => misfits.push((row.id, m)),
        }
    }
    let mut inserted = 0;
    let mut waiting = Vec::new();
    let mut turned_away = false;
    let together = rows_together(d, entity, fitting.len());
    let mut rest = fitting;
    while !rest.is_empty() {
        let chunk: Vec<Fitting> = rest.drain(..together.min(rest.len())).collect();
        let (ready, later) = split_waiting(&mut tx.conn(), entity, site, chunk).await?;
        waiting.extend(later);
        let (done, refused, unresolved) = insert_chunk(&mut tx.conn(), entity, &ready).await?;
        inserted += done;
        turned_away |= !(refused.is_empty() && unresolved.is_empty());
        waiting.extend(unresolved);
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
    if backend.defer_keys().is_some() && turned_away {
        // A row the database refused may be the target of rows inserted with
        // it (keys are checked at commit): those wait for a later round.
        let unhooked = unhook_dangling(&mut tx.conn(), entity).await?;
        inserted -= unhooked.len();
        waiting.extend(unhooked);
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
    for chunk in ids.chunks(placeholders_per_statement(d).min(1000)) {
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

/// The ids among `ids` that `table` has, asked as the range they span (two
/// placeholders instead of one per id): a batch's ids are one stretch of the
/// legacy table's order, and the typed table rarely has others inside it.
async fn existing_in_range(conn: &mut Conn<'_>, table: &str, ids: &[String]) -> Result<BTreeSet<String>, sqlx::Error> {
    let (Some(first), Some(last)) = (ids.iter().min(), ids.iter().max()) else { return Ok(BTreeSet::new()) };
    let d = conn.dialect();
    let sql = format!(
        "SELECT {id} FROM {} WHERE {id} >= {} AND {id} <= {}",
        d.table(table),
        slot(d, 1),
        slot(d, 2),
        id = d.table("id")
    );
    let rows: Vec<(String,)> = conn.fetch_all(&sql, &[first.into(), last.into()]).await?;
    let wanted: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    Ok(rows.into_iter().map(|(id,)| id).filter(|id| wanted.contains(id.as_str())).collect())
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

/// How many rows one INSERT carries.
fn rows_per_statement(d: Dialect, entity: &EntitySchema) -> usize {
    let columns = entity.fields.iter().filter(|f| f.cardinality.is_single()).count() + 3;
    (placeholders_per_statement(d) / columns).clamp(1, 500)
}

/// How many rows go in together so that the rows among them may reference
/// each other: a whole batch where keys are checked at commit, else one
/// INSERT (keys that are not `DEFERRABLE` are checked per statement).
fn rows_together(d: Dialect, entity: &EntitySchema, batch: usize) -> usize {
    match backend::of(d).defer_keys() {
        Some(_) => batch.max(1),
        None => rows_per_statement(d, entity),
    }
}

/// What became of the rows of one [`insert_chunk`].
type ChunkOutcome = (usize, Vec<(String, Vec<Misfit>)>, Vec<String>);

/// Inserts `chunk` under a savepoint; if the database refuses it (a unique
/// value taken, say), row by row, so only the refused rows stay behind.
/// Returns how many rows were inserted, the refused ones' reasons, and the
/// rows whose references the database did not find (they wait for a later
/// round; a row of the chunk they reference may have been refused).
async fn insert_chunk(
    conn: &mut Conn<'_>,
    entity: &EntitySchema,
    chunk: &[Fitting],
) -> Result<ChunkOutcome, LegacyError> {
    if chunk.is_empty() {
        return Ok((0, Vec::new(), Vec::new()));
    }
    conn.execute("SAVEPOINT legacy_chunk", &[]).await?;
    match insert_rows(conn, entity, chunk).await {
        Ok(n) => {
            conn.execute("RELEASE SAVEPOINT legacy_chunk", &[]).await?;
            return Ok((n, Vec::new(), Vec::new()));
        }
        Err(e) if e.as_database_error().is_none() => return Err(e.into()),
        Err(_) => conn.execute("ROLLBACK TO SAVEPOINT legacy_chunk", &[]).await?,
    };
    let mut inserted = 0;
    let mut refused = Vec::new();
    let mut unresolved = Vec::new();
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
                if e.as_database_error().is_some_and(|d| d.is_foreign_key_violation()) {
                    unresolved.push(row.id.clone());
                    continue;
                }
                let reason = refusal(&e).unwrap_or_else(|| "the database refused the row".into());
                refused.push((row.id.clone(), vec![Misfit { key: String::new(), value: String::new(), reason }]));
            }
            Err(e) => return Err(e.into()),
        }
    }
    conn.execute("RELEASE SAVEPOINT legacy_chunk", &[]).await?;
    Ok((inserted, refused, unresolved))
}

/// SQLite, keys deferred to commit: takes out again the rows this
/// transaction inserted whose references lead nowhere (their target was
/// refused or left waiting), until none is left; returns their ids.
async fn unhook_dangling(conn: &mut Conn<'_>, entity: &EntitySchema) -> Result<Vec<String>, sqlx::Error> {
    let d = conn.dialect();
    let mut tables = vec![(entity.table(), "id")];
    tables.extend(
        entity
            .fields
            .iter()
            .filter(|f| !f.cardinality.is_single())
            .map(|f| (child_table(&entity.id, &f.id), "parent_id")),
    );
    let mut unhooked = Vec::new();
    loop {
        let mut ids = BTreeSet::new();
        for (table, key) in &tables {
            let sql = format!(
                "SELECT CAST(t.{key} AS TEXT) FROM pragma_foreign_key_check({name}) c JOIN {table} t ON t.rowid = c.rowid",
                key = d.table(key),
                name = crate::sql::string_literal(d, table),
                table = d.table(table),
            );
            let rows: Vec<(String,)> = conn.fetch_all(&sql, &[]).await?;
            ids.extend(rows.into_iter().map(|(id,)| id));
        }
        if ids.is_empty() {
            return Ok(unhooked);
        }
        for id in ids {
            let sql = format!("DELETE FROM {} WHERE {} = $1", d.table(&entity.table()), d.table("id"));
            conn.execute(&sql, &[Arg::from(&id)]).await?;
            unhooked.push(id);
        }
    }
}

/// INSERTs of the rows, [`rows_per_statement`] at a time, then of each
/// multi-valued field's values; rows the table has already are skipped.
/// Returns how many were new.
async fn insert_rows(conn: &mut Conn<'_>, entity: &EntitySchema, rows: &[Fitting]) -> Result<usize, sqlx::Error> {
    let d = conn.dialect();
    let mut new = BTreeSet::new();
    for part in rows.chunks(rows_per_statement(d, entity)) {
        new.extend(insert_parents(conn, entity, part).await?);
    }
    for field in entity.fields.iter().filter(|f| !f.cardinality.is_single()) {
        let mut values = Vec::new();
        for row in rows.iter().filter(|r| new.contains(&r.id)) {
            if let Some((_, vs)) = row.record.children.iter().find(|(f, _)| *f == field.id) {
                values.extend(vs.iter().enumerate().map(|(delta, v)| (row.id.as_str(), delta, v)));
            }
        }
        for chunk in values.chunks((placeholders_per_statement(d) / 3).max(1)) {
            let mut tuples = Vec::with_capacity(chunk.len());
            let mut args = Vec::with_capacity(chunk.len() * 3);
            for (id, delta, v) in chunk {
                args.push(Arg::from(*id));
                args.push(Arg::Int(*delta as i64));
                args.push(arg(d, field.field_type, v));
                let n = args.len();
                tuples.push(format!(
                    "({}, {}, {})",
                    slot(d, n - 2),
                    slot(d, n - 1),
                    typed_slot(d, n, field.field_type)
                ));
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

/// One multi-row INSERT of the entity's own rows; returns the ids it added.
async fn insert_parents(
    conn: &mut Conn<'_>,
    entity: &EntitySchema,
    rows: &[Fitting],
) -> Result<Vec<String>, sqlx::Error> {
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
        marks.push(slot(d, args.len()));
        for field in &singles {
            let column = field.column().expect("single");
            let value = row.record.columns.iter().find(|(c, _)| *c == column).map(|(_, v)| v);
            args.push(value.map(|v| arg(d, field.field_type, v)).unwrap_or(Arg::Null));
            marks.push(typed_slot(d, args.len(), field.field_type));
        }
        for stamp in [&row.created_at, &row.updated_at] {
            args.push(Arg::from(stamp.clone()));
            marks.push(timestamp_mark(d, args.len()));
        }
        tuples.push(format!("({})", marks.join(", ")));
    }
    let sql = format!(
        "INSERT INTO {} ({}) VALUES {} ON CONFLICT ({}) DO NOTHING",
        d.table(&entity.table()),
        columns.join(", "),
        tuples.join(", "),
        d.table("id"),
    );
    match backend::of(d).writers_excluded() {
        // The batch's transaction excludes other writers and checked these ids
        // are new: every row goes in (and no row of ids crosses threads back to us).
        true => {
            let added = conn.execute(&sql, &args).await?;
            if added as usize != rows.len() {
                return Err(sqlx::Error::Protocol(format!(
                    "{} of {} rows were new, though no other writer could run",
                    added,
                    rows.len()
                )));
            }
            Ok(rows.iter().map(|r| r.id.clone()).collect())
        }
        // Another instance's content API may add an id meanwhile.
        false => {
            let new: Vec<(String,)> = conn.fetch_all(&format!("{sql} RETURNING {}", d.table("id")), &args).await?;
            Ok(new.into_iter().map(|(id,)| id).collect())
        }
    }
}

/// A legacy timestamp (text, or NULL for now) as the typed table takes it.
fn timestamp_mark(d: Dialect, n: usize) -> String {
    backend::of(d).timestamp_or_now(n)
}

/// Replaces the recorded reasons of the rows `ids` with `misfits`.
async fn rewrite_misfits(
    conn: &mut Conn<'_>,
    entity_type: &str,
    ids: &[String],
    misfits: &[(String, Vec<Misfit>)],
) -> Result<(), sqlx::Error> {
    let known: Option<(i64,)> = conn
        .fetch_optional(
            "SELECT CAST(1 AS BIGINT) FROM marain_legacy_misfits WHERE entity_type = $1 LIMIT 1",
            &[entity_type.into()],
        )
        .await?;
    if known.is_some() {
        for chunk in ids.chunks(placeholders_per_statement(conn.dialect()).min(1000) - 1) {
            let marks: Vec<String> = (2..=chunk.len() + 1).map(|n| slot(conn.dialect(), n)).collect();
            let sql = format!(
                "DELETE FROM marain_legacy_misfits WHERE entity_type = {} AND id IN ({})",
                slot(conn.dialect(), 1),
                marks.join(", ")
            );
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
