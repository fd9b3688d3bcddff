//! The SQLite planner.
//!
//! SQLite can add, rename and drop simple columns in place. Everything else
//! (constraints, types, reference columns, values moving between a column and a
//! child table) goes through SQLite's documented table rebuild: create the target
//! table under a temporary name, copy the rows, drop the old table, rename.

mod online;

use std::collections::HashMap;

pub(crate) use online::online_refill;
use online::{online_rebuild, Kept};

use super::{
    backup_child, renamed_old, restore_child, ForeignKey, Online, Originals, Plan, PlanBinding, PlanContext, Step,
};
use crate::diff::{ChangeItem, Continuations, EntityChange, FieldAspect};
use crate::grade::{GradedChange, GradedItem};
use crate::hazard::{Hazard, HazardCode, ProbeKind, Severity};
use crate::model::{EntitySchema, Field, FieldType};
use crate::sql::{backup_table, child_table, convert, index_name, quote, rebuild_table, sqlite, Dialect};

pub(super) fn plan(
    old: Option<&EntitySchema>,
    new: Option<&EntitySchema>,
    graded: &GradedChange,
    binding: PlanBinding,
    ctx: &PlanContext,
) -> Plan {
    let tag = binding.backup_tag.clone();
    let mut plan = Plan::new(binding, Dialect::Sqlite);
    let renamed =
        graded.items.iter().any(|gi| matches!(gi.item, ChangeItem::Entity(EntityChange::RenameEntity { .. })));
    let moved;
    let modification = match (old, new) {
        (Some(o), Some(n)) if o.id == n.id => Some((o, n)),
        (Some(o), Some(n)) if renamed => {
            moved = renamed_old(o, n);
            Some((&moved, n))
        }
        _ => None,
    };
    let Some((o, n)) = modification else {
        for gi in &graded.items {
            let step = match &gi.item {
                ChangeItem::Entity(EntityChange::CreateEntity { entity }) => Step {
                    summary: gi.item.summary(),
                    sql: sqlite::create_entity(entity),
                    rollback_sql: Dialect::Sqlite.drop_entity(entity),
                    hazards: gi.hazards.clone(),
                    backups: vec![],
                    restores: vec![],
                    online: None,
                },
                ChangeItem::Entity(EntityChange::DropEntity { entity }) => {
                    dangle(&mut plan, entity, ctx);
                    drop_entity_step(entity, &tag, gi.hazards.clone())
                }
                other => unreachable!("entity created or dropped, got {other:?}"),
            };
            plan.steps.push(step);
        }
        return plan;
    };

    let mut storage = Vec::new();
    for gi in &graded.items {
        if let ChangeItem::Entity(EntityChange::RenameEntity { entity, to }) = &gi.item {
            plan.steps.push(rename_entity_step(entity, to, gi));
        } else if storage_effect(&gi.item) {
            storage.push(gi);
        } else {
            plan.steps.push(Step::record(gi.item.summary(), gi.hazards.clone()));
        }
    }
    if storage.is_empty() {
        return plan;
    }
    let forward_native = storage.iter().all(|gi| native(&gi.item, Direction::Forward));
    let backward_native = storage.iter().all(|gi| native(&gi.item, Direction::Backward));
    if forward_native {
        let first = plan.steps.len();
        plan.steps.extend(storage.iter().map(|gi| native_step(&gi.item, gi.hazards.clone(), &tag)));
        if !backward_native {
            // SQLite can do this in place but cannot undo it in place: the inverse
            // is one rebuild back to the old shape, run first when rolling back.
            let inverse = rebuild_step(o, n, vec![], &tag, false);
            for step in &mut plan.steps[first..] {
                step.rollback_sql.clear();
            }
            plan.steps.push(Step {
                summary: format!("~ inverse rebuilds table content_{}", n.id),
                sql: vec![],
                rollback_sql: inverse.rollback_sql,
                hazards: vec![],
                backups: vec![],
                restores: vec![],
                online: None,
            });
            plan.rollback_foreign_keys_off = true;
        }
        if !renamed {
            in_place_online(&mut plan.steps[first..first + storage.len()], o, n, &storage, &tag);
        }
    } else {
        let mut hazards: Vec<Hazard> = storage.iter().flat_map(|gi| gi.hazards.iter().cloned()).collect();
        let mut rebuild = Hazard::new(
            HazardCode::TableRebuild,
            Severity::Warning,
            format!("table content_{} is rebuilt: {}", n.id, super::REBUILD_LOCKED),
        );
        rebuild.probe = Some(crate::probe::rebuild_probe(&n.id));
        hazards.push(rebuild);
        let mut step = rebuild_step(o, n, hazards, &tag, !renamed);
        step.summary = storage.iter().map(|gi| gi.item.summary()).chain([step.summary]).collect::<Vec<_>>().join("; ");
        plan.steps.push(step);
        plan.foreign_keys_off = true;
        plan.rollback_foreign_keys_off = true;
    }
    plan
}

/// Gives in-place `steps` (one per item of `storage`) an online form when one
/// of them reads every row (`DROP COLUMN` rewrites the table, `CREATE INDEX`
/// sorts it) and all are single-valued fields: the shadow-table rebuild
/// (`online.rs`), carried by the first step; the others have nothing left
/// for the cut-over. Faster in one transaction, which holds the database's
/// only write lock meanwhile; the threshold decides.
fn in_place_online(steps: &mut [Step], o: &EntitySchema, n: &EntitySchema, storage: &[&GradedItem], tag: &str) {
    let single = |f: &Field| f.cardinality.is_single();
    let mut kept = Vec::new();
    let mut reads_every_row = false;
    for gi in storage {
        let ChangeItem::Entity(item) = &gi.item else { return };
        match item {
            EntityChange::AddField { field, .. } if single(field) => {}
            EntityChange::RenameField { from, .. } if single(from) => {}
            EntityChange::DropField { entity, field } if single(field) => {
                let column = field.column().unwrap_or_default();
                let backup = backup_table(tag, &crate::model::table_name(entity), Some(&column));
                kept.push(Kept { backup, column, sql_type: sqlite::column_type(field.field_type) });
                reads_every_row = true;
            }
            EntityChange::AlterField { old, new, .. } if single(old) && single(new) => {
                reads_every_row |= new.indexed && !old.indexed;
            }
            _ => return,
        }
    }
    if !reads_every_row {
        return;
    }
    let probes = storage.iter().flat_map(|gi| &gi.hazards).filter_map(|h| h.probe.as_ref());
    let proofs = probes.filter(|p| matches!(p.kind, ProbeKind::Violations | ProbeKind::RowsWithoutValue));
    let online = online_rebuild(o, n, &kept, proofs.map(|p| p.sql.clone()).collect());
    let nothing = Online { table: online.table.clone(), phases: vec![], sql: vec![], retire: vec![] };
    for step in steps.iter_mut() {
        step.online = Some(nothing.clone());
    }
    if let Some(first) = steps.first_mut() {
        first.online = Some(online);
    }
}

/// A reference cycle deleted in one batch: no order of drops keeps every key
/// valid between the files' transactions, so keys are off and the tables that
/// are dropped later (forward) or restored earlier (inverse) are left dangling.
fn dangle(plan: &mut Plan, e: &EntitySchema, ctx: &PlanContext) {
    if !ctx.referrers_dropped_later.is_empty() {
        plan.foreign_keys_off = true;
        plan.dangling.extend(ctx.referrers_dropped_later.iter().map(ForeignKey::table));
    }
    let gone_targets: Vec<ForeignKey> = e
        .fields
        .iter()
        .map(|f| ForeignKey { entity: e.id.clone(), field: f.clone() })
        .filter(|fk| !fk.target().is_empty() && fk.target() != e.id && !(ctx.existing)(fk.target()))
        .collect();
    if !gone_targets.is_empty() {
        plan.rollback_foreign_keys_off = true;
        plan.rollback_dangling.extend(gone_targets.iter().map(ForeignKey::table));
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Forward,
    Backward,
}

/// Renames the entity's table and child tables. SQLite rewrites the references
/// other tables hold; indexes carry the entity's name, so they are recreated.
fn rename_entity_step(old: &EntitySchema, to: &str, gi: &crate::grade::GradedItem) -> Step {
    let renamed = EntitySchema { id: to.to_string(), ..old.clone() };
    let sql_for = |a: &EntitySchema, b: &EntitySchema| {
        let mut sql = vec![format!("ALTER TABLE {} RENAME TO {}", quote(&a.table()), quote(&b.table()))];
        for f in &a.fields {
            if !f.cardinality.is_single() {
                sql.push(format!(
                    "ALTER TABLE {} RENAME TO {}",
                    quote(&child_table(&a.id, &f.id)),
                    quote(&child_table(&b.id, &f.id))
                ));
            }
            if f.indexed && f.cardinality.is_single() {
                sql.push(format!("DROP INDEX {}", quote(&index_name(&a.id, &f.id))));
                sql.extend(sqlite::create_index(&b.id, f));
            }
        }
        sql
    };
    Step {
        summary: gi.item.summary(),
        sql: sql_for(old, &renamed),
        rollback_sql: sql_for(&renamed, old),
        hazards: gi.hazards.clone(),
        backups: vec![],
        restores: vec![],
        online: None,
    }
}

fn storage_effect(item: &ChangeItem) -> bool {
    // Only entity changes reach a schema planner.
    let ChangeItem::Entity(item) = item else { return false };
    match item {
        EntityChange::EntityMetadata { .. } => false,
        EntityChange::AlterField { aspects, .. } => aspects.iter().any(|a| !a.is_metadata()),
        EntityChange::CreateEntity { .. }
        | EntityChange::DropEntity { .. }
        | EntityChange::RenameEntity { .. }
        | EntityChange::AddField { .. }
        | EntityChange::DropField { .. }
        | EntityChange::RenameField { .. } => true,
    }
}

/// SQLite refuses DROP COLUMN on reference and UNIQUE columns.
fn droppable(f: &Field) -> bool {
    f.field_type != FieldType::EntityReference && !f.unique
}

/// SQLite refuses ADD COLUMN for UNIQUE, and for NOT NULL without a default.
fn addable(f: &Field) -> bool {
    !(f.unique || (f.required && f.default.is_none()))
}

/// Can SQLite do `item` (or, backward, undo it) in place, without a rebuild?
fn native(item: &ChangeItem, direction: Direction) -> bool {
    let adds = |f: &Field| addable(f);
    let drops = |f: &Field| droppable(f);
    let ChangeItem::Entity(item) = item else { return false };
    match item {
        EntityChange::AddField { field, .. } | EntityChange::DropField { field, .. }
            if !field.cardinality.is_single() =>
        {
            true
        }
        EntityChange::AddField { field, .. } if direction == Direction::Forward => adds(field),
        EntityChange::AddField { field, .. } => drops(field),
        EntityChange::DropField { field, .. } if direction == Direction::Forward => drops(field),
        EntityChange::DropField { field, .. } => adds(field),
        EntityChange::RenameField { .. } => true,
        // A multi-valued field's storage is its own child table, rebuilt alone.
        EntityChange::AlterField { old, new, .. } if !old.cardinality.is_single() && !new.cardinality.is_single() => {
            true
        }
        EntityChange::AlterField { aspects, old, new, .. } => {
            aspects.iter().all(|a| a.is_metadata() || *a == FieldAspect::Indexed)
                && old.cardinality.is_single() == new.cardinality.is_single()
        }
        // Whole tables and metadata have their own steps; nothing to do in place.
        EntityChange::CreateEntity { .. }
        | EntityChange::DropEntity { .. }
        | EntityChange::RenameEntity { .. }
        | EntityChange::EntityMetadata { .. } => false,
    }
}

fn table(entity: &str) -> String {
    quote(&crate::model::table_name(entity))
}

fn backup_column(tag: &str, entity: &str, f: &Field) -> (String, String) {
    let col = f.column().expect("single-valued");
    let bk = backup_table(tag, &crate::model::table_name(entity), Some(&col));
    let sql = format!("CREATE TABLE {} AS SELECT {}, {} FROM {}", quote(&bk), quote("id"), quote(&col), table(entity));
    (bk, sql)
}

fn drop_child(entity: &str, f: &Field) -> String {
    format!("DROP TABLE {}", quote(&child_table(entity, &f.id)))
}

fn drop_entity_step(e: &EntitySchema, tag: &str, hazards: Vec<Hazard>) -> Step {
    let mut sql = Vec::new();
    let mut rollback = sqlite::create_entity(e);
    let mut backups = Vec::new();
    let bk = backup_table(tag, &e.table(), None);
    let cols: Vec<String> = sqlite::table_columns(e).iter().map(|c| quote(c)).collect();
    sql.push(format!("CREATE TABLE {} AS SELECT {} FROM {}", quote(&bk), cols.join(", "), quote(&e.table())));
    rollback.push(format!(
        "INSERT INTO {} ({c}) SELECT {c} FROM {}",
        quote(&e.table()),
        quote(&bk),
        c = cols.join(", ")
    ));
    backups.push(bk);
    for f in e.fields.iter().filter(|f| !f.cardinality.is_single()) {
        let (bk, copy) = backup_child(Dialect::Sqlite, tag, &e.id, f);
        sql.push(copy);
        rollback.push(restore_child(Dialect::Sqlite, &bk, &e.id, f));
        backups.push(bk);
    }
    sql.extend(Dialect::Sqlite.drop_entity(e));
    Step {
        summary: format!("- entity {}", e.id),
        sql,
        rollback_sql: rollback,
        hazards,
        backups,
        restores: vec![],
        online: None,
    }
}

fn native_step(item: &ChangeItem, hazards: Vec<Hazard>, tag: &str) -> Step {
    let mut step = Step::record(item.summary(), hazards);
    let ChangeItem::Entity(item) = item else { return step };
    let (sql, rb) = (&mut step.sql, &mut step.rollback_sql);
    match item {
        EntityChange::AddField { entity, field } if field.cardinality.is_single() => {
            sql.push(format!("ALTER TABLE {} ADD COLUMN {}", table(entity), sqlite::column_def(field)));
            sql.extend(sqlite::create_index(entity, field));
            if field.indexed {
                rb.push(sqlite::drop_index(entity, field));
            }
            rb.push(format!("ALTER TABLE {} DROP COLUMN {}", table(entity), quote(&field.column().unwrap())));
        }
        EntityChange::AddField { entity, field } => {
            sql.push(sqlite::create_child_table(entity, field));
            rb.push(drop_child(entity, field));
        }
        EntityChange::DropField { entity, field } if field.cardinality.is_single() => {
            let col = field.column().unwrap();
            let (bk, copy) = backup_column(tag, entity, field);
            sql.push(copy);
            if field.indexed {
                sql.push(sqlite::drop_index(entity, field));
            }
            sql.push(format!("ALTER TABLE {} DROP COLUMN {}", table(entity), quote(&col)));
            rb.push(format!("ALTER TABLE {} ADD COLUMN {}", table(entity), sqlite::column_def(field)));
            rb.push(format!(
                "UPDATE {t} SET {c} = (SELECT {b}.{c} FROM {b} WHERE {b}.{id} = {t}.{id})",
                t = table(entity),
                c = quote(&col),
                b = quote(&bk),
                id = quote("id"),
            ));
            rb.extend(sqlite::create_index(entity, field));
            step.backups.push(bk);
        }
        EntityChange::DropField { entity, field } => {
            let (bk, copy) = backup_child(Dialect::Sqlite, tag, entity, field);
            sql.push(copy);
            sql.push(drop_child(entity, field));
            rb.push(sqlite::create_child_table(entity, field));
            rb.push(restore_child(Dialect::Sqlite, &bk, entity, field));
            step.backups.push(bk);
        }
        EntityChange::RenameField { entity, from, to } if from.cardinality.is_single() => {
            let rename = |a: &Field, b: &Field| {
                let mut out = Vec::new();
                if a.indexed {
                    out.push(sqlite::drop_index(entity, a));
                }
                out.push(format!(
                    "ALTER TABLE {} RENAME COLUMN {} TO {}",
                    table(entity),
                    quote(&a.column().unwrap()),
                    quote(&b.column().unwrap())
                ));
                out.extend(sqlite::create_index(entity, b));
                out
            };
            *sql = rename(from, to);
            *rb = rename(to, from);
        }
        EntityChange::RenameField { entity, from, to } => {
            let (a, b) = (quote(&child_table(entity, &from.id)), quote(&child_table(entity, &to.id)));
            sql.push(format!("ALTER TABLE {a} RENAME TO {b}"));
            rb.push(format!("ALTER TABLE {b} RENAME TO {a}"));
        }
        EntityChange::AlterField { entity, old, new, .. } if !new.cardinality.is_single() => {
            let kept = Originals::of(tag, entity, old, new);
            sql.extend(kept.iter().map(|k| k.copy(Dialect::Sqlite)));
            sql.extend(rebuild_child_sql(entity, old, new));
            rb.extend(rebuild_child_sql(entity, new, old));
            if let Some(kept) = kept {
                rb.push(kept.restore(Dialect::Sqlite));
                step.backups.push(kept.backup);
            }
        }
        EntityChange::AlterField { entity, old, new, aspects } if aspects.contains(&FieldAspect::Indexed) => {
            let toggle = |f: &Field| match sqlite::create_index(entity, f) {
                Some(create) => create,
                None => sqlite::drop_index(entity, f),
            };
            sql.push(toggle(new));
            rb.push(toggle(old));
        }
        // Label or description only: recorded, no SQL.
        EntityChange::AlterField { .. } => {}
        // Whole-table changes and metadata are planned before native steps.
        EntityChange::CreateEntity { .. }
        | EntityChange::DropEntity { .. }
        | EntityChange::RenameEntity { .. }
        | EntityChange::EntityMetadata { .. } => {}
    }
    step
}

/// Rebuilds a child table from the shape of field `from` to the shape `to` asks
/// for (same name), keeping every value, converted when the type changes.
fn rebuild_child_sql(entity: &str, from: &Field, to: &Field) -> Vec<String> {
    let child = child_table(entity, &to.id);
    let tmp = format!("marain_rebuild_{child}");
    let keys = format!("{}, {}", quote("parent_id"), quote("delta"));
    let value = convert::value(Dialect::Sqlite, &quote("value"), from.field_type, to.field_type);
    vec![
        sqlite::create_child_table(entity, to).replacen(&quote(&child), &quote(&tmp), 1),
        format!(
            "INSERT INTO {} ({keys}, {}) SELECT {keys}, {value} FROM {}",
            quote(&tmp),
            quote("value"),
            quote(&child)
        ),
        format!("DROP TABLE {}", quote(&child)),
        format!("ALTER TABLE {} RENAME TO {}", quote(&tmp), quote(&child)),
    ]
}

/// Copies `from`'s rows into a fresh table shaped like `to`. `source` gives, for
/// each single-valued field of `to`, the SQL expression (over the old table) that
/// fills it, or `None` to leave it to its default.
fn rebuild_sql(to: &EntitySchema, source: impl Fn(&Field) -> Option<String>) -> Vec<String> {
    let tmp = rebuild_table(&to.id);
    let mut cols = vec![quote("id")];
    let mut exprs = vec![quote("id")];
    for f in to.fields.iter().filter(|f| f.cardinality.is_single()) {
        if let Some(expr) = source(f) {
            cols.push(quote(&f.column().unwrap()));
            exprs.push(expr);
        }
    }
    for c in ["created_at", "updated_at"] {
        cols.push(quote(c));
        exprs.push(quote(c));
    }
    let mut sql = vec![
        sqlite::create_table_as(to, &tmp),
        format!("INSERT INTO {} ({}) SELECT {} FROM {}", quote(&tmp), cols.join(", "), exprs.join(", "), table(&to.id)),
        format!("DROP TABLE {}", table(&to.id)),
        format!("ALTER TABLE {} RENAME TO {}", quote(&tmp), table(&to.id)),
    ];
    sql.extend(to.fields.iter().filter_map(|f| sqlite::create_index(&to.id, f)));
    sql
}

/// A rebuild of `o`'s table into `n`'s shape, with its online form when
/// `online` allows one and it moves no values between a column and a child
/// table (docs/online-changes.md).
fn rebuild_step(o: &EntitySchema, n: &EntitySchema, hazards: Vec<Hazard>, tag: &str, online: bool) -> Step {
    let entity = &n.id;
    // What the online form keeps, and whether it can take this rebuild.
    let mut kept = Vec::new();
    let mut columns_only = online;
    let mut sql = Vec::new();
    let mut after_rebuild = Vec::new();
    let mut backups = Vec::new();
    let mut restore_children = Vec::new();
    let mut undo_children = Vec::new();
    // Originals of converted values, put back after the inverse rebuild.
    let mut restore_values = Vec::new();

    // Old fields no new field continues: back them up before they disappear.
    let links = Continuations::new(o, n);
    let mut dropped_columns: HashMap<&str, String> = HashMap::new();
    for of in o.fields.iter().filter(|f| links.successor(&f.id).is_none()) {
        if of.cardinality.is_single() {
            let (bk, copy) = backup_column(tag, entity, of);
            let column = of.column().unwrap_or_default();
            kept.push(Kept { backup: bk.clone(), column, sql_type: sqlite::column_type(of.field_type) });
            sql.push(copy);
            dropped_columns.insert(&of.id, bk.clone());
            backups.push(bk);
        } else {
            columns_only = false;
            let gone = ChildBackup::of(tag, entity, of);
            sql.extend([gone.copy, gone.drop]);
            restore_children.extend(gone.restore);
            backups.push(gone.backup);
        }
    }
    for nf in &n.fields {
        let Some(of) = links.source(&nf.id) else {
            if !nf.cardinality.is_single() {
                columns_only = false;
                sql.push(sqlite::create_child_table(entity, nf));
                undo_children.push(drop_child(entity, nf));
            }
            continue;
        };
        match (of.cardinality.is_single(), nf.cardinality.is_single()) {
            (true, true) => {
                if let Some(originals) = Originals::of(tag, entity, of, nf) {
                    let sql_type = sqlite::column_type(originals.original);
                    kept.push(Kept { backup: originals.backup.clone(), column: originals.column.clone(), sql_type });
                    sql.push(originals.copy(Dialect::Sqlite));
                    restore_values.push(originals.restore(Dialect::Sqlite));
                    backups.push(originals.backup);
                }
            }
            // One → many: the column's values become each row's first value.
            (true, false) => {
                columns_only = false;
                sql.push(sqlite::create_child_table(entity, nf));
                sql.push(move_into_child(entity, of, nf));
                restore_children.push(drop_child(entity, nf));
            }
            // Many → one: the first value stays, the child table is backed up.
            (false, true) => {
                columns_only = false;
                let gone = ChildBackup::of(tag, entity, of);
                sql.push(gone.copy);
                after_rebuild.push(gone.drop);
                undo_children.extend(gone.restore);
                backups.push(gone.backup);
            }
            (false, false) => {
                // Taken under the old name, put back once the name is back.
                if let Some(kept) = Originals::of(tag, entity, of, nf) {
                    sql.push(kept.copy(Dialect::Sqlite));
                    restore_values.push(kept.restore(Dialect::Sqlite));
                    backups.push(kept.backup);
                }
                let renamed = of.id != nf.id;
                let (a, b) = (quote(&child_table(entity, &of.id)), quote(&child_table(entity, &nf.id)));
                if renamed {
                    sql.push(format!("ALTER TABLE {a} RENAME TO {b}"));
                }
                // Same values, new shape (type, bound, allowed values): rebuild the
                // child table under its new name; undo before renaming back.
                let old_shape = Field { id: nf.id.clone(), ..of.clone() };
                if renamed || !old_shape.same_storage(nf) || of.field_type != nf.field_type {
                    columns_only = false;
                }
                if !old_shape.same_storage(nf) {
                    sql.extend(rebuild_child_sql(entity, &old_shape, nf));
                    undo_children.extend(rebuild_child_sql(entity, nf, &old_shape));
                }
                if renamed {
                    undo_children.push(format!("ALTER TABLE {b} RENAME TO {a}"));
                }
            }
        }
    }
    sql.extend(rebuild_sql(n, |nf| {
        let of = links.source(&nf.id)?;
        match of.column() {
            Some(c) => Some(convert::value(Dialect::Sqlite, &quote(&c), of.field_type, nf.field_type)),
            None => Some(first_value(entity, of)),
        }
    }));
    sql.extend(after_rebuild);

    let mut rollback = undo_children;
    rollback.extend(rebuild_sql(o, |of| {
        if let Some(nf) = links.successor(&of.id) {
            return Some(match nf.column() {
                Some(c) => convert::value(Dialect::Sqlite, &quote(&c), nf.field_type, of.field_type),
                None => first_value(entity, nf),
            });
        }
        let bk = dropped_columns.get(of.id.as_str())?;
        let col = quote(&of.column()?);
        Some(format!(
            "(SELECT {b}.{col} FROM {b} WHERE {b}.{id} = {t}.{id})",
            b = quote(bk),
            id = quote("id"),
            t = table(entity)
        ))
    }));
    rollback.extend(restore_children);
    rollback.extend(restore_values);

    let online = columns_only.then(|| {
        // Rows breaking a new rule, values a new type cannot hold: proven
        // absent before the cut-over, which then need not scan for them.
        let probes = hazards.iter().filter_map(|h| h.probe.as_ref());
        let proofs = probes.filter(|p| matches!(p.kind, ProbeKind::Violations | ProbeKind::RowsWithoutValue));
        online_rebuild(o, n, &kept, proofs.map(|p| p.sql.clone()).collect())
    });
    Step {
        summary: format!("~ rebuild table content_{entity}"),
        sql,
        rollback_sql: rollback,
        hazards,
        backups,
        restores: vec![],
        online,
    }
}

/// The first value (lowest delta) of multi-valued field `f` for the row of the
/// entity table being copied.
fn first_value(entity: &str, f: &Field) -> String {
    format!(
        "(SELECT {v} FROM {c} WHERE {c}.{p} = {t}.{id} ORDER BY {d} LIMIT 1)",
        v = quote("value"),
        c = quote(&child_table(entity, &f.id)),
        p = quote("parent_id"),
        t = table(entity),
        id = quote("id"),
        d = quote("delta"),
    )
}

/// Copies single-valued `of`'s column into `nf`'s child table as each row's value 0.
fn move_into_child(entity: &str, of: &Field, nf: &Field) -> String {
    let col = quote(&of.column().expect("single-valued"));
    format!(
        "INSERT INTO {} ({}, {}, {}) SELECT {}, 0, {col} FROM {} WHERE {col} IS NOT NULL",
        quote(&child_table(entity, &nf.id)),
        quote("parent_id"),
        quote("delta"),
        quote("value"),
        quote("id"),
        table(entity),
    )
}

/// A child table a rebuild removes: the copy into its backup, its `DROP`, and the
/// two statements that bring it back with its values.
struct ChildBackup {
    backup: String,
    copy: String,
    drop: String,
    restore: [String; 2],
}

impl ChildBackup {
    fn of(tag: &str, entity: &str, f: &Field) -> Self {
        let (backup, copy) = backup_child(Dialect::Sqlite, tag, entity, f);
        let restore = [sqlite::create_child_table(entity, f), restore_child(Dialect::Sqlite, &backup, entity, f)];
        ChildBackup { drop: drop_child(entity, f), backup, copy, restore }
    }
}
