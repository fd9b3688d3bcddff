//! The PostgreSQL planner: everything is altered in place, one step per change.
//!
//! Types change with `ALTER COLUMN … TYPE … USING`, CHECK and foreign-key
//! constraints are added `NOT VALID` and then validated, and a foreign key whose
//! target table does not exist yet (a reference cycle created in one batch) is
//! left to the plan that creates the target. Every constraint has a name, so
//! renames carry their constraints along and inverses drop exactly what was added.

mod online;
mod swap;

pub(crate) use online::online_refill;
use online::{online_drop, online_retype};
pub(crate) use swap::{online_swap, Reshape};

use std::collections::{BTreeMap, BTreeSet};

use super::{backup_child, restore_child, ForeignKey, Online, Originals, Phase, Plan, PlanBinding, PlanContext, Step};
use crate::diff::{ChangeItem, EntityChange};
use crate::grade::{GradedChange, GradedItem};
use crate::hazard::{Hazard, HazardCode, Severity};
use crate::model::{table_name, EntitySchema, Field};
use crate::probe::rebuild_probe;
use crate::sql::postgres::{
    child_constraint_names, create_child_table, create_table, delta_check, literal, pkey_name, q, table_columns,
    ColumnSpec,
};
use crate::sql::{backup_table, child_table, convert, index_name, quote, Dialect};

pub(super) fn plan(graded: &GradedChange, binding: PlanBinding, ctx: &PlanContext) -> Plan {
    let tag = binding.backup_tag.clone();
    let mut plan = Plan::new(binding, Dialect::Postgres);
    let mut created = None;
    let mut renamed_before = false;
    let alone = entities_changed_once(graded);
    for gi in &graded.items {
        if let ChangeItem::Entity(EntityChange::CreateEntity { entity }) = &gi.item {
            created = Some(entity.id.clone());
        }
        if let ChangeItem::Entity(EntityChange::RenameEntity { to, .. }) = &gi.item {
            created = Some(to.clone());
        }
        let mut step = Planner { ctx, tag: &tag, deferred: &mut plan.deferred, alone: &alone }.step(gi);
        if renamed_before {
            // Phases run before every step's cut-over SQL, so before this
            // rename too: they would name what is not there yet.
            step.online = None;
        }
        renamed_before |=
            matches!(gi.item, ChangeItem::Entity(EntityChange::RenameField { .. } | EntityChange::RenameEntity { .. }));
        plan.steps.push(step);
    }
    if let (Some(entity), false) = (created, ctx.waiting.is_empty()) {
        // Keys of tables created earlier in this batch that waited for this one.
        let mut step = Step::record(format!("+ foreign keys waiting for content_{entity}"), vec![]);
        for fk in &ctx.waiting {
            let spec = ColumnSpec::of_any(&fk.entity, &fk.field);
            step.sql.extend(spec.add_fkey(true));
            step.rollback_sql.push(spec.drop_constraint(&spec.fkey_name()));
        }
        plan.steps.push(step);
    }
    plan
}

/// The entities only one item of the change alters (metadata aside): a type
/// change of one of them may swap in a whole new table (`swap.rs`), which
/// another step's statements on the same table would not expect.
fn entities_changed_once(graded: &GradedChange) -> BTreeSet<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for gi in &graded.items {
        match &gi.item {
            ChangeItem::Entity(EntityChange::EntityMetadata { .. }) => {}
            ChangeItem::Entity(item) => *counts.entry(item.entity()).or_default() += 1,
            _ => {}
        }
    }
    counts.into_iter().filter(|(_, n)| *n == 1).map(|(e, _)| e.to_string()).collect()
}

struct Planner<'a> {
    ctx: &'a PlanContext<'a>,
    tag: &'a str,
    deferred: &'a mut Vec<ForeignKey>,
    /// [`entities_changed_once`].
    alone: &'a BTreeSet<String>,
}

impl Planner<'_> {
    fn step(&mut self, gi: &GradedItem) -> Step {
        let mut step = Step::record(gi.item.summary(), gi.hazards.clone());
        // Only entity changes reach a schema planner.
        let ChangeItem::Entity(item) = &gi.item else { return step };
        match item {
            EntityChange::CreateEntity { entity } => self.create_entity(entity, &mut step),
            EntityChange::DropEntity { entity } => self.drop_entity(entity, &mut step),
            EntityChange::RenameEntity { entity, to } => {
                let renamed = EntitySchema { id: to.clone(), ..entity.clone() };
                step.sql = rename_entity(entity, &renamed);
                step.rollback_sql = rename_entity(&renamed, entity);
            }
            EntityChange::AddField { entity, field } => {
                step.sql = self.add_field(entity, field, None);
                step.rollback_sql = drop_field_sql(entity, field);
            }
            EntityChange::DropField { entity, field } => self.drop_field(entity, field, &mut step),
            EntityChange::RenameField { entity, from, to } => {
                step.sql = rename_field(entity, from, to);
                step.rollback_sql = rename_field(entity, to, from);
            }
            EntityChange::AlterField { entity, old, new, .. } => self.alter_field(entity, old, new, &mut step),
            // Recorded with its hazards; no SQL.
            EntityChange::EntityMetadata { .. } => {}
        }
        step
    }

    /// Adds `spec`'s foreign key now if its target exists, or leaves it to the
    /// plan creating the target.
    fn fkey(&mut self, spec: &ColumnSpec, field: &Field, table_has_rows: bool) -> Vec<String> {
        let Some(target) = &spec.target else { return vec![] };
        if *target == spec.entity || (self.ctx.existing)(target) {
            spec.add_fkey(table_has_rows)
        } else {
            self.deferred.push(ForeignKey { entity: spec.entity.clone(), field: field.clone() });
            vec![]
        }
    }

    fn create_entity(&mut self, e: &EntitySchema, step: &mut Step) {
        step.sql.push(create_table(e));
        step.sql.extend(e.fields.iter().filter(|f| !f.cardinality.is_single()).map(|f| create_child_table(&e.id, f)));
        for f in &e.fields {
            let spec = ColumnSpec::of_any(&e.id, f);
            step.sql.extend(spec.create_index());
            step.sql.extend(self.fkey(&spec, f, false));
        }
        step.rollback_sql.extend(Dialect::Postgres.drop_entity(e));
    }

    fn drop_entity(&mut self, e: &EntitySchema, step: &mut Step) {
        let bk = backup_table(self.tag, &e.table(), None);
        let cols: Vec<String> = table_columns(e).iter().map(|c| quote(c)).collect();
        step.sql.push(format!("CREATE TABLE {} AS SELECT {} FROM {}", q(&bk), cols.join(", "), q(&e.table())));
        step.backups.push(bk.clone());
        let mut restore =
            vec![format!("INSERT INTO {} ({c}) SELECT {c} FROM {}", q(&e.table()), q(&bk), c = cols.join(", "))];
        for f in e.fields.iter().filter(|f| !f.cardinality.is_single()) {
            let (bk, copy) = backup_child(Dialect::Postgres, self.tag, &e.id, f);
            step.sql.push(copy);
            restore.push(restore_child(Dialect::Postgres, &bk, &e.id, f));
            step.backups.push(bk);
        }
        // Keys of tables dropped later in this batch that still point here.
        let incoming: Vec<ColumnSpec> =
            self.ctx.referrers_dropped_later.iter().map(|fk| ColumnSpec::of_any(&fk.entity, &fk.field)).collect();
        step.sql.extend(incoming.iter().map(|s| s.drop_constraint(&s.fkey_name())));
        step.sql.extend(Dialect::Postgres.drop_entity(e));

        step.rollback_sql.push(create_table(e));
        step.rollback_sql
            .extend(e.fields.iter().filter(|f| !f.cardinality.is_single()).map(|f| create_child_table(&e.id, f)));
        step.rollback_sql.extend(restore);
        for f in &e.fields {
            let spec = ColumnSpec::of_any(&e.id, f);
            step.rollback_sql.extend(spec.create_index());
            // At rollback time, targets dropped after this entity are not back yet;
            // their own inverse re-adds this key (as `incoming`).
            if spec.target.as_ref().is_some_and(|t| *t == e.id || (self.ctx.existing)(t)) {
                step.rollback_sql.extend(spec.add_fkey(true));
            }
        }
        step.rollback_sql.extend(incoming.iter().flat_map(|s| s.add_fkey(true)));
    }

    /// `ADD COLUMN` (or a child table) for `f`, refilled from `backup` when the
    /// inverse of a drop restores it.
    fn add_field(&mut self, entity: &str, f: &Field, backup: Option<&str>) -> Vec<String> {
        let spec = ColumnSpec::of_any(entity, f);
        if !f.cardinality.is_single() {
            let mut sql = vec![create_child_table(entity, f)];
            if let Some(bk) = backup {
                sql.push(restore_child(Dialect::Postgres, bk, entity, f));
            }
            sql.extend(self.fkey(&spec, f, backup.is_some()));
            return sql;
        }
        let mut def = format!("{} {}", quote(&spec.column), spec.sql_type());
        if let Some(d) = &spec.default {
            def.push_str(&format!(" DEFAULT {}", literal(d)));
        }
        if spec.not_null && backup.is_none() {
            def.push_str(" NOT NULL");
        }
        let t = q(&spec.table);
        let mut sql = vec![format!("ALTER TABLE {t} ADD COLUMN {def}")];
        if let Some(bk) = backup {
            sql.push(format!(
                "UPDATE {t} SET {c} = {b}.{c} FROM {b} WHERE {b}.{id} = {t}.{id}",
                c = quote(&spec.column),
                b = q(bk),
                id = quote("id"),
            ));
            if spec.not_null {
                sql.push(format!("ALTER TABLE {t} ALTER COLUMN {} SET NOT NULL", quote(&spec.column)));
            }
        }
        if spec.unique {
            sql.push(spec.add_unique());
        }
        sql.extend(spec.add_check());
        sql.extend(self.fkey(&spec, f, true));
        sql.extend(spec.create_index());
        sql
    }

    fn drop_field(&mut self, entity: &str, f: &Field, step: &mut Step) {
        if let Some(col) = f.column() {
            let spec = ColumnSpec::of_any(entity, f);
            let bk = backup_table(self.tag, &table_name(entity), Some(&col));
            step.online = Some(online_drop(&spec, &bk, drop_field_sql(entity, f)));
        }
        let bk = match f.column() {
            Some(col) => {
                let bk = backup_table(self.tag, &table_name(entity), Some(&col));
                step.sql.push(format!(
                    "CREATE TABLE {} AS SELECT {}, {} FROM {}",
                    q(&bk),
                    quote("id"),
                    quote(&col),
                    q(&table_name(entity))
                ));
                bk
            }
            None => {
                let (bk, copy) = backup_child(Dialect::Postgres, self.tag, entity, f);
                step.sql.push(copy);
                bk
            }
        };
        step.sql.extend(drop_field_sql(entity, f));
        step.rollback_sql = self.add_field(entity, f, Some(&bk));
        step.backups.push(bk);
    }

    fn alter_field(&mut self, entity: &str, old: &Field, new: &Field, step: &mut Step) {
        match (old.cardinality.is_single(), new.cardinality.is_single()) {
            (true, true) | (false, false) => {
                let (a, b) = (ColumnSpec::of_any(entity, old), ColumnSpec::of_any(entity, new));
                let kept = Originals::of(self.tag, entity, old, new);
                step.sql.extend(kept.iter().map(|k| k.copy(Dialect::Postgres)));
                step.sql.extend(self.alter_column(&a, &b, new));
                match (&kept, old.cardinality.is_single()) {
                    (None, true) => step.online = self.online_alter(&a, &b, new),
                    (Some(kept), true) => {
                        let whole = self.alone.contains(entity).then(|| self.ctx.site.entity_file(entity)).flatten();
                        let swapped = whole.and_then(|file| {
                            swap::online_swap(&file.entity, swap::Reshape::Retype { a: &a, b: &b, kept })
                        });
                        step.online = swapped.or_else(|| online_retype(&a, &b, kept));
                    }
                    _ => {}
                }
                step.rollback_sql = self.alter_column(&b, &a, old);
                if let Some(kept) = kept {
                    step.rollback_sql.push(kept.restore(Dialect::Postgres));
                    step.backups.push(kept.backup);
                }
                if !new.cardinality.is_single() && old.cardinality != new.cardinality {
                    step.sql.extend(alter_bound(entity, old, new));
                    step.rollback_sql.extend(alter_bound(entity, new, old));
                }
                if a.sql_type() != b.sql_type() && old.cardinality.is_single() {
                    let mut rewrite = Hazard::new(
                        HazardCode::TableRebuild,
                        Severity::Warning,
                        format!("table {} is rewritten: {}", a.table, super::REWRITE_LOCKED),
                    );
                    rewrite.probe = Some(rebuild_probe(entity));
                    step.hazards.push(rewrite);
                }
            }
            // Graded BLOCKED: values would move and change shape at once.
            _ if !same_values(old, new) => {}
            (true, false) => {
                step.sql = self.one_to_many(entity, old, new);
                step.rollback_sql = self.many_to_one(entity, new, old);
            }
            (false, true) => {
                let (bk, copy) = backup_child(Dialect::Postgres, self.tag, entity, old);
                step.sql.push(copy);
                step.sql.extend(self.many_to_one(entity, old, new));
                step.rollback_sql = self.one_to_many(entity, new, old);
                // The inverse refills every value, not just the first.
                step.rollback_sql.push(format!("DELETE FROM {}", q(&child_table(entity, &old.id))));
                step.rollback_sql.push(restore_child(Dialect::Postgres, &bk, entity, old));
                step.backups.push(bk);
            }
        }
    }

    /// Column `of` becomes child table `nf`: each row's value becomes value 0.
    fn one_to_many(&mut self, entity: &str, of: &Field, nf: &Field) -> Vec<String> {
        let col = quote(&of.column().expect("single-valued"));
        let mut sql = vec![create_child_table(entity, nf)];
        sql.push(format!(
            "INSERT INTO {} ({}, {}, {}) SELECT {}, 0, {col} FROM {} WHERE {col} IS NOT NULL",
            q(&child_table(entity, &nf.id)),
            quote("parent_id"),
            quote("delta"),
            quote("value"),
            quote("id"),
            q(&table_name(entity)),
        ));
        sql.extend(self.fkey(&ColumnSpec::of_child_value(entity, nf), nf, true));
        sql.push(format!("ALTER TABLE {} DROP COLUMN {col}", q(&table_name(entity))));
        sql
    }

    /// Child table `of` becomes column `nf`, holding each row's first value.
    fn many_to_one(&mut self, entity: &str, of: &Field, nf: &Field) -> Vec<String> {
        let spec = ColumnSpec::of_field(entity, nf).expect("single-valued");
        let t = q(&spec.table);
        let c = quote(&spec.column);
        let mut def = format!("{c} {}", spec.sql_type());
        if let Some(d) = &spec.default {
            def.push_str(&format!(" DEFAULT {}", literal(d)));
        }
        let child = q(&child_table(entity, &of.id));
        let mut sql = vec![
            format!("ALTER TABLE {t} ADD COLUMN {def}"),
            format!(
                "UPDATE {t} SET {c} = (SELECT {v} FROM {child} WHERE {child}.{p} = {t}.{id} ORDER BY {d} LIMIT 1)",
                v = quote("value"),
                p = quote("parent_id"),
                id = quote("id"),
                d = quote("delta"),
            ),
        ];
        if spec.not_null {
            sql.push(format!("ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL"));
        }
        if spec.unique {
            sql.push(spec.add_unique());
        }
        sql.extend(spec.add_check());
        sql.extend(self.fkey(&spec, nf, true));
        sql.extend(spec.create_index());
        sql.push(format!("DROP TABLE {child}"));
        sql
    }

    /// The online form of taking column `a` to `b` (docs/online-changes.md),
    /// when `b` adds what reads every row: an index, a unique key, `NOT NULL`,
    /// allowed values or a reference, on a column neither renamed nor retyped.
    /// Those are built or validated in phases beside live traffic; the
    /// cut-over does the rest of [`Planner::alter_column`] and only catalogue
    /// work.
    fn online_alter(&mut self, a: &ColumnSpec, b: &ColumnSpec, field: &Field) -> Option<Online> {
        if a.column != b.column || a.sql_type() != b.sql_type() {
            return None;
        }
        let index = b.indexed && !a.indexed;
        let unique = b.unique && !a.unique;
        let not_null = b.not_null && !a.not_null;
        let check = b.values.is_some() && a.values.is_none();
        let fkey = a.target.is_none() && b.target.as_ref().is_some_and(|t| *t == b.entity || (self.ctx.existing)(t));
        if !(index || unique || not_null || check || fkey) {
            return None;
        }
        let mut phases = Vec::new();
        let mut rest = b.clone();
        if index {
            rest.indexed = false;
            phases.push(Phase {
                summary: format!("build index {} concurrently", b.index_name()),
                reset: vec![ColumnSpec::drop_index_concurrently(&b.index_name())],
                sql: vec![b.create_index_concurrently()],
                batches: vec![],
                batch_writes: vec![],
                proofs: vec![],
            });
        }
        if unique {
            rest.unique = false;
            phases.push(Phase {
                summary: format!("build the unique index of {}.{} concurrently", b.table, b.column),
                reset: vec![ColumnSpec::drop_index_concurrently(&b.key_name())],
                sql: vec![b.create_unique_index_concurrently()],
                batches: vec![],
                batch_writes: vec![],
                proofs: vec![],
            });
        }
        if not_null {
            rest.not_null = false;
            phases.push(Phase {
                summary: format!("prove {}.{} holds no NULL", b.table, b.column),
                reset: vec![b.drop_constraint_if_exists(&b.not_null_check_name())],
                sql: b.add_not_null_check(),
                batches: vec![],
                batch_writes: vec![],
                proofs: vec![],
            });
        }
        if check {
            rest.values = None;
            phases.push(Phase {
                summary: format!("add and validate the allowed values of {}.{}", b.table, b.column),
                reset: vec![b.drop_constraint_if_exists(&b.check_name())],
                sql: b.add_check(),
                batches: vec![],
                batch_writes: vec![],
                proofs: vec![],
            });
        }
        if fkey {
            rest.target = None;
            phases.push(Phase {
                summary: format!("add and validate the reference of {}.{}", b.table, b.column),
                reset: vec![b.drop_constraint_if_exists(&b.fkey_name())],
                sql: b.add_fkey(true),
                batches: vec![],
                batch_writes: vec![],
                proofs: vec![],
            });
        }
        // What is left, then the phases' work made part of the schema. (A key
        // left to a later plan was deferred by the one-transaction form already.)
        let deferred = self.deferred.len();
        let mut sql = self.alter_column(a, &rest, field);
        self.deferred.truncate(deferred);
        if unique {
            sql.push(b.add_unique_using_index());
        }
        if not_null {
            let c = quote(&b.column);
            sql.push(format!("ALTER TABLE {} ALTER COLUMN {c} SET NOT NULL", q(&b.table)));
            sql.push(b.drop_constraint(&b.not_null_check_name()));
        }
        Some(Online { table: b.table.clone(), phases, sql, retire: vec![] })
    }

    /// Statements taking column `a` to `b` in place. Whatever is attached to the
    /// column and changes is dropped first and re-added after the type change.
    fn alter_column(&mut self, a: &ColumnSpec, b: &ColumnSpec, field: &Field) -> Vec<String> {
        let renamed = a.column != b.column;
        let retyped = a.sql_type() != b.sql_type();
        let t = q(&a.table);
        let mut sql = Vec::new();
        let check_changes = renamed || retyped || a.values != b.values;
        let fkey_changes = renamed || a.target != b.target;
        let key_changes = renamed || retyped || a.unique != b.unique;
        let default_changes = retyped || a.default != b.default;
        if a.values.is_some() && check_changes {
            sql.push(a.drop_constraint(&a.check_name()));
        }
        if a.target.is_some() && fkey_changes {
            sql.push(a.drop_constraint(&a.fkey_name()));
        }
        if a.unique && key_changes {
            sql.push(a.drop_constraint(&a.key_name()));
        }
        if a.indexed && !b.indexed {
            sql.push(a.drop_index());
        }
        if a.default.is_some() && default_changes {
            sql.push(format!("ALTER TABLE {t} ALTER COLUMN {} DROP DEFAULT", quote(&a.column)));
        }
        if renamed {
            sql.push(format!("ALTER TABLE {t} RENAME COLUMN {} TO {}", quote(&a.column), quote(&b.column)));
        }
        let c = quote(&b.column);
        if retyped {
            sql.push(format!(
                "ALTER TABLE {t} ALTER COLUMN {c} TYPE {} USING {}",
                b.sql_type(),
                convert::value(Dialect::Postgres, &c, a.field_type, b.field_type)
            ));
        }
        if a.not_null != b.not_null {
            let verb = if b.not_null { "SET" } else { "DROP" };
            sql.push(format!("ALTER TABLE {t} ALTER COLUMN {c} {verb} NOT NULL"));
        }
        if let (Some(d), true) = (&b.default, default_changes) {
            sql.push(format!("ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT {}", literal(d)));
        }
        if b.unique && key_changes {
            sql.push(b.add_unique());
        }
        if check_changes {
            sql.extend(b.add_check());
        }
        if fkey_changes {
            sql.extend(self.fkey(b, field, true));
        }
        if b.indexed && !a.indexed {
            sql.extend(b.create_index());
        }
        sql
    }
}

/// Values and their constraints are untouched: only the cardinality differs.
fn same_values(old: &Field, new: &Field) -> bool {
    old.field_type == new.field_type && old.values == new.values && old.target_entity == new.target_entity
}

/// The child table's bound on `delta`.
fn alter_bound(entity: &str, old: &Field, new: &Field) -> Vec<String> {
    let child = child_table(entity, &new.id);
    let name = q(&format!("{child}_delta_check"));
    let mut sql = Vec::new();
    if delta_check(old).is_some() {
        sql.push(format!("ALTER TABLE {} DROP CONSTRAINT {name}", q(&child)));
    }
    if let Some(check) = delta_check(new) {
        sql.push(format!("ALTER TABLE {} ADD CONSTRAINT {name} {check} NOT VALID", q(&child)));
        sql.push(format!("ALTER TABLE {} VALIDATE CONSTRAINT {name}", q(&child)));
    }
    sql
}

fn drop_field_sql(entity: &str, f: &Field) -> Vec<String> {
    match f.column() {
        // Its constraints and index go with the column.
        Some(col) => vec![format!("ALTER TABLE {} DROP COLUMN {}", q(&table_name(entity)), quote(&col))],
        None => vec![format!("DROP TABLE {}", q(&child_table(entity, &f.id)))],
    }
}

fn rename_constraint(table: &str, from: &str, to: &str) -> String {
    format!("ALTER TABLE {} RENAME CONSTRAINT {} TO {}", q(table), q(from), q(to))
}

fn rename_index(from: &str, to: &str) -> String {
    format!("ALTER INDEX {} RENAME TO {}", q(from), q(to))
}

/// Renames a field's column (or child table) and every name derived from it.
fn rename_field(entity: &str, from: &Field, to: &Field) -> Vec<String> {
    if !from.cardinality.is_single() {
        return rename_child(entity, entity, from, to);
    }
    let (a, b) = (ColumnSpec::of_any(entity, from), ColumnSpec::of_any(entity, to));
    let mut sql =
        vec![format!("ALTER TABLE {} RENAME COLUMN {} TO {}", q(&a.table), quote(&a.column), quote(&b.column))];
    for (x, y) in a.constraint_names().iter().zip(b.constraint_names()) {
        sql.push(rename_constraint(&a.table, x, &y));
    }
    if a.indexed {
        sql.push(rename_index(&a.index_name(), &b.index_name()));
    }
    sql
}

/// Renames a child table and its constraints, for a field or an entity rename.
fn rename_child(from_entity: &str, to_entity: &str, from: &Field, to: &Field) -> Vec<String> {
    let (a, b) = (child_table(from_entity, &from.id), child_table(to_entity, &to.id));
    let mut sql = vec![format!("ALTER TABLE {} RENAME TO {}", q(&a), q(&b))];
    let names = |e: &str, f: &Field| {
        let mut n = child_constraint_names(e, f);
        n.extend(ColumnSpec::of_child_value(e, f).constraint_names());
        n
    };
    for (x, y) in names(from_entity, from).iter().zip(names(to_entity, to)) {
        sql.push(rename_constraint(&b, x, &y));
    }
    sql
}

/// Renames an entity's table, child tables, constraints and indexes. Foreign
/// keys of other tables follow the table by themselves.
fn rename_entity(a: &EntitySchema, b: &EntitySchema) -> Vec<String> {
    let (ta, tb) = (a.table(), b.table());
    let mut sql = vec![format!("ALTER TABLE {} RENAME TO {}", q(&ta), q(&tb))];
    sql.push(rename_constraint(&tb, &pkey_name(&ta), &pkey_name(&tb)));
    for f in &a.fields {
        if !f.cardinality.is_single() {
            sql.extend(rename_child(&a.id, &b.id, f, f));
            continue;
        }
        let (sa, sb) = (ColumnSpec::of_any(&a.id, f), ColumnSpec::of_any(&b.id, f));
        for (x, y) in sa.constraint_names().iter().zip(sb.constraint_names()) {
            sql.push(rename_constraint(&tb, x, &y));
        }
        if f.indexed {
            sql.push(rename_index(&index_name(&a.id, &f.id), &index_name(&b.id, &f.id)));
        }
    }
    sql
}
