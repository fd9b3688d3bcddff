//! Planning a data file: one step backing up the rows the version writes or
//! deletes, then one step per record (an upsert or a DELETE), each with its
//! inverse, its hazards and the probes that re-grade them on the live rows.
//! A rollback refills the rows from those backups (`refill.rs`), so every
//! value comes back.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use crate::diff::ChangeItem;
use crate::grade::{grade, GradedChange};
use crate::hazard::{Hazard, HazardCode as C, Probe, ProbeKind, Severity as S, Shows};
use crate::model::{EntitySchema, FieldType};
use crate::plan::{Dialect, Plan, PlanBinding, PlanContext, Step};
use crate::records::{diff_records, DataFile, RecordChange};
use crate::site::Site;
use crate::sql::{backup_table, child_table, sqlite, string_literal};

use super::values::{same_as, written};

/// The marker ending a data backup's name: `marain_backup_<tag>_<table>__data`.
pub(super) const BACKUP_MARK: &str = "data";

pub(super) fn plan(
    old: Option<&DataFile>,
    new: Option<&DataFile>,
    binding: PlanBinding,
    ctx: &PlanContext,
) -> (GradedChange, Plan) {
    let entity_id = new.or(old).map(|f| f.entity.as_str()).unwrap_or_default();
    let changes = referenced_first(diff_records(old, new), ctx.site.entity_file(entity_id).map(|f| &f.entity));
    let graded = grade(changes.iter().cloned().map(ChangeItem::Record).collect());
    let mut plan = Plan::new(binding, ctx.dialect);
    let schema = ctx.site.entity_file(entity_id).map(|f| &f.entity).filter(|_| (ctx.existing)(entity_id));
    let Some(entity) = schema else {
        // The entity's table is gone by now (dropped in this batch, its rows
        // backed up by that drop): nothing is left to write or delete.
        plan.steps = changes
            .iter()
            .map(|c| {
                let gone = format!("record `{}`: the table of `{entity_id}` is gone; nothing to delete", c.id());
                Step::record(c.summary(), vec![Hazard::new(C::RecordRemoved, S::Safe, gone)])
            })
            .collect();
        return (graded, plan);
    };
    if changes.is_empty() {
        return (graded, plan);
    }
    let rows = Rows::new(ctx.dialect, entity, &plan.binding.backup_tag);
    let ids: Vec<String> = changes.iter().map(|c| string_literal(ctx.dialect, c.id())).collect();
    plan.steps.push(rows.backup_step(&ids));
    // The record ids data files define, for each entity this one references.
    let defined: Defined = entity
        .fields
        .iter()
        .filter_map(|f| f.target_entity.as_deref())
        .map(|target| {
            let ids = ctx.site.data_files_of(target).flat_map(|f| f.records.iter().map(|r| r.id.as_str()));
            (target, ids.collect())
        })
        .collect();
    let path = new.or(old).map(|f| f.path.as_str()).unwrap_or_default();
    for (change, gi) in changes.iter().zip(&graded.items) {
        let mut hazards = gi.hazards.clone();
        let step = match change {
            RecordChange::RecordAdded { values, .. } => {
                hazards.extend(missing_references(&defined, rows.d, entity, values));
                rows.write_step(change, None, values, hazards, path)
            }
            RecordChange::RecordChanged { old, new, .. } => {
                hazards.extend(missing_references(&defined, rows.d, entity, new));
                rows.write_step(change, Some(old), new, hazards, path)
            }
            RecordChange::RecordRemoved { .. } => {
                hazards.extend(referenced(ctx.site, rows.d, entity_id, change.id()));
                rows.remove_step(change, hazards)
            }
        };
        plan.steps.push(step);
    }
    (graded, plan)
}

/// The rows of one entity's table, as a data file's plan writes them: the
/// table, its child tables and the backups this version fills.
struct Rows<'a> {
    d: Dialect,
    entity: &'a EntitySchema,
    /// The entity table, quoted.
    table: String,
    id: String,
    /// The backup of the entity table's rows.
    backup: String,
    /// Each multi-valued field's child table and its backup.
    children: Vec<(String, String)>,
}

impl<'a> Rows<'a> {
    fn new(d: Dialect, entity: &'a EntitySchema, tag: &str) -> Self {
        let children = entity
            .fields
            .iter()
            .filter(|f| !f.cardinality.is_single())
            .map(|f| {
                let child = child_table(&entity.id, &f.id);
                let backup = backup_table(tag, &child, Some(BACKUP_MARK));
                (child, backup)
            })
            .collect();
        Rows {
            d,
            entity,
            table: d.table(&entity.table()),
            id: d.table("id"),
            backup: backup_table(tag, &entity.table(), Some(BACKUP_MARK)),
            children,
        }
    }

    /// `<table> WHERE id = '<id>'`.
    fn row(&self, id: &str) -> String {
        format!("{} WHERE {} = {}", self.table, self.id, string_literal(self.d, id))
    }

    /// The entity table's columns, quoted, in table order.
    fn all_columns(&self) -> String {
        let cols: Vec<String> = sqlite::table_columns(self.entity).iter().map(|c| self.d.table(c)).collect();
        cols.join(", ")
    }

    /// Copies every row this version writes or deletes (`ids`, quoted), and
    /// their multi-valued fields' values, into this version's backups.
    fn backup_step(&self, ids: &[String]) -> Step {
        let d = self.d;
        let ids = ids.join(", ");
        let mut step = Step {
            summary: format!("back up the rows of `{}` this version writes or deletes", self.entity.id),
            sql: vec![format!(
                "CREATE TABLE {} AS SELECT * FROM {} WHERE {} IN ({ids})",
                d.table(&self.backup),
                self.table,
                self.id
            )],
            rollback_sql: vec![],
            hazards: vec![],
            backups: vec![self.backup.clone()],
            restores: vec![],
            online: None,
        };
        for (child, backup) in &self.children {
            step.sql.push(format!(
                "CREATE TABLE {} AS SELECT * FROM {} WHERE {} IN ({ids})",
                d.table(backup),
                d.table(child),
                d.table("parent_id")
            ));
            step.backups.push(backup.clone());
        }
        step
    }

    /// What the database holds in the columns of the fields `change` names,
    /// shown beside a hazard its probe raised.
    fn shows(&self, change: &RecordChange) -> Option<Shows> {
        let columns: Vec<String> =
            change.named().into_iter().filter_map(|f| self.entity.field(f).and_then(|f| f.column())).collect();
        let listed: Vec<String> = columns.iter().map(|c| self.d.table(c)).collect();
        let sql = format!("SELECT {} FROM {}", listed.join(", "), self.row(change.id()));
        (!columns.is_empty()).then_some(Shows { sql, columns })
    }

    /// An added (`old` none) or changed record: an upsert of the fields it
    /// names, a field it named before and names no more back to its default or
    /// NULL. Its probe counts a row another writer made or changed first.
    fn write_step(
        &self,
        change: &RecordChange,
        old: Option<&BTreeMap<String, Json>>,
        values: &BTreeMap<String, Json>,
        mut hazards: Vec<Hazard>,
        path: &str,
    ) -> Step {
        let (d, id) = (self.d, change.id());
        let (code, sql, counts) = match old {
            None => (
                C::RecordAdded,
                format!("SELECT COUNT(*) FROM {}", self.row(id)),
                "rows with this id exist already (another writer made them); the file's values would replace the database's, backed up first".to_string(),
            ),
            Some(old) => (
                C::RecordChanged,
                format!(
                    "SELECT 1 - COUNT(*) + COALESCE(SUM(CASE WHEN {} THEN 0 ELSE 1 END), 0) FROM {}",
                    same_as(d, self.entity, old),
                    self.row(id)
                ),
                format!(
                    "rows were changed or deleted by another writer since {path} last applied; the file's values would replace the database's, backed up first"
                ),
            ),
        };
        if let Some(h) = hazards.iter_mut().find(|h| h.code == code) {
            h.probe = Some(Probe { code, kind: ProbeKind::ChangedElsewhere, sql, counts, shows: self.shows(change) });
        }
        let written = written(d, self.entity, values);
        let mut set = written.columns;
        for key in old.into_iter().flat_map(|o| o.keys()).filter(|k| !values.contains_key(*k)) {
            if let Some(col) = self.entity.field(key).and_then(|f| f.column()) {
                if !set.iter().any(|(c, _)| *c == col) {
                    set.push((col, "NULL".into()));
                }
            }
        }
        let mut cols = vec![self.id.clone()];
        let mut vals = vec![string_literal(self.d, id)];
        for (c, v) in &set {
            cols.push(d.table(c));
            vals.push(v.clone());
        }
        let mut updates: Vec<String> =
            set.iter().map(|(c, _)| format!("{} = excluded.{}", d.table(c), d.table(c))).collect();
        updates.push(format!("{} = CURRENT_TIMESTAMP", d.table("updated_at")));
        let upsert = format!(
            "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}",
            self.table,
            cols.join(", "),
            vals.join(", "),
            self.id,
            updates.join(", ")
        );
        // Multi-valued fields it names (or named before): their child rows
        // become exactly the values given, in order.
        let mut children = written.children;
        for key in old.into_iter().flat_map(|o| o.keys()).filter(|k| !values.contains_key(*k)) {
            if self.entity.field(key).is_some_and(|f| !f.cardinality.is_single()) {
                children.push((key.clone(), Vec::new()));
            }
        }
        let mut sql = vec![upsert];
        let (parent, lit) = (d.table("parent_id"), string_literal(self.d, id));
        let each = format!("{parent}, {}, {}", d.table("delta"), d.table("value"));
        for (field, items) in &children {
            let child = d.table(&child_table(&self.entity.id, field));
            sql.push(format!("DELETE FROM {child} WHERE {parent} = {lit}"));
            if !items.is_empty() {
                let rows: Vec<String> = items.iter().enumerate().map(|(i, v)| format!("({lit}, {i}, {v})")).collect();
                sql.push(format!("INSERT INTO {child} ({each}) VALUES {}", rows.join(", ")));
            }
        }
        let (t, b, key) = (&self.table, d.table(&self.backup), &self.id);
        let mut undo = match old {
            // Gone again, and a row another writer had made first comes back.
            None => vec![
                format!("DELETE FROM {}", self.row(id)),
                format!(
                    "INSERT INTO {t} ({c}) SELECT {c} FROM {b} WHERE {key} = {}",
                    string_literal(self.d, id),
                    c = self.all_columns()
                ),
            ],
            Some(_) => {
                let back: Vec<String> = set
                    .iter()
                    .map(|(c, _)| {
                        let c = d.table(c);
                        format!("{c} = (SELECT {b}.{c} FROM {b} WHERE {b}.{key} = {t}.{key})")
                    })
                    .collect();
                vec![format!("UPDATE {t} SET {} WHERE {key} = {}", back.join(", "), string_literal(self.d, id))]
            }
        };
        for (field, _) in &children {
            let child = child_table(&self.entity.id, field);
            let Some((_, backup)) = self.children.iter().find(|(c, _)| *c == child) else { continue };
            let child = d.table(&child);
            if old.is_some() {
                undo.push(format!("DELETE FROM {child} WHERE {parent} = {lit}"));
            }
            undo.push(format!(
                "INSERT INTO {child} ({each}) SELECT {each} FROM {} WHERE {parent} = {lit}",
                d.table(backup)
            ));
        }
        Step {
            summary: change.summary(),
            sql,
            rollback_sql: undo,
            hazards,
            backups: vec![],
            restores: vec![],
            online: None,
        }
    }

    /// A removed record: a DELETE (its multi-valued values go with it), whose
    /// probe finds whether the row is there at all.
    fn remove_step(&self, change: &RecordChange, mut hazards: Vec<Hazard>) -> Step {
        let (d, id) = (self.d, change.id());
        if let Some(h) = hazards.iter_mut().find(|h| h.code == C::RecordRemoved) {
            h.probe = Some(Probe {
                code: C::RecordRemoved,
                kind: ProbeKind::RowsDeleted,
                sql: format!("SELECT COUNT(*) FROM {}", self.row(id)),
                counts: "rows are found".into(),
                shows: self.shows(change),
            });
        }
        let lit = string_literal(self.d, id);
        let mut undo = vec![format!(
            "INSERT INTO {} ({c}) SELECT {c} FROM {} WHERE {} = {lit}",
            self.table,
            d.table(&self.backup),
            self.id,
            c = self.all_columns()
        )];
        for (child, backup) in &self.children {
            undo.push(format!(
                "INSERT INTO {} SELECT * FROM {} WHERE {} = {lit}",
                d.table(child),
                d.table(backup),
                d.table("parent_id")
            ));
        }
        Step {
            summary: change.summary(),
            sql: vec![format!("DELETE FROM {}", self.row(id))],
            rollback_sql: undo,
            hazards,
            backups: vec![],
            restores: vec![],
            online: None,
        }
    }
}

/// The changes with every record written after the records of the same file
/// it references (a category's `parent`), so each foreign key finds its row:
/// a depth-first order over those references, file order otherwise (a cycle
/// keeps file order where it closes). Removals stay last, in file order.
fn referenced_first(changes: Vec<RecordChange>, entity: Option<&EntitySchema>) -> Vec<RecordChange> {
    let Some(entity) = entity else { return changes };
    let own: Vec<&str> = entity
        .fields
        .iter()
        .filter(|f| f.target_entity.as_deref() == Some(entity.id.as_str()) && f.cardinality.is_single())
        .map(|f| f.id.as_str())
        .collect();
    if own.is_empty() {
        return changes;
    }
    fn written(c: &RecordChange) -> Option<&BTreeMap<String, Json>> {
        match c {
            RecordChange::RecordAdded { values, .. } | RecordChange::RecordChanged { new: values, .. } => Some(values),
            RecordChange::RecordRemoved { .. } => None,
        }
    }
    let index: BTreeMap<&str, usize> =
        changes.iter().enumerate().filter(|(_, c)| written(c).is_some()).map(|(i, c)| (c.id(), i)).collect();
    let mut order: Vec<usize> = Vec::with_capacity(changes.len());
    let mut state = vec![0u8; changes.len()]; // 0 new, 1 on the path, 2 placed
    for start in 0..changes.len() {
        if written(&changes[start]).is_none() || state[start] != 0 {
            continue;
        }
        // An explicit stack: a chain of thousands of records must not overflow.
        let mut stack = vec![(start, false)];
        while let Some((i, children_done)) = stack.pop() {
            if children_done {
                state[i] = 2;
                order.push(i);
                continue;
            }
            if state[i] != 0 {
                continue;
            }
            state[i] = 1;
            stack.push((i, true));
            let values = written(&changes[i]).expect("only written records are visited");
            for key in own.iter().rev() {
                let target = values.get(*key).and_then(|v| v.as_str()).and_then(|id| index.get(id));
                if let Some(&j) = target.filter(|&&j| state[j] == 0) {
                    stack.push((j, false));
                }
            }
        }
    }
    order.extend((0..changes.len()).filter(|i| written(&changes[*i]).is_none()));
    let mut slots: Vec<Option<RecordChange>> = changes.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Target entity → the record ids its data files define.
type Defined<'a> = BTreeMap<&'a str, BTreeSet<&'a str>>;

/// Hazards for references to records no data file defines: the row must exist
/// in the target's table, which a probe checks (a missing one BLOCKS).
fn missing_references(
    defined: &Defined,
    d: Dialect,
    entity: &EntitySchema,
    values: &BTreeMap<String, Json>,
) -> Vec<Hazard> {
    let mut out = Vec::new();
    for (key, value) in values {
        let Some(field) = entity.field(key).filter(|f| f.field_type == FieldType::EntityReference) else { continue };
        let (Some(target), Some(id)) = (field.target_entity.as_deref(), value.as_str()) else { continue };
        if defined.get(target).is_some_and(|ids| ids.contains(id)) {
            continue;
        }
        let mut h = Hazard::new(
            C::ReferencedRecordMissing,
            S::Safe,
            format!("`{key}` references `{target}` `{id}`, which no data file defines: the row must exist"),
        );
        h.probe = Some(Probe {
            code: C::ReferencedRecordMissing,
            kind: ProbeKind::Violations,
            sql: format!(
                "SELECT 1 - COUNT(*) FROM {} WHERE {} = {}",
                d.table(&crate::model::table_name(target)),
                d.table("id"),
                string_literal(d, id)
            ),
            counts: format!("referenced rows are missing (`{target}` `{id}`, named by `{key}`)"),
            shows: None,
        });
        out.push(h);
    }
    out
}

/// The hazard of removing a record other rows may reference: a probe counts
/// them, and any BLOCKS (the delete would break their references).
fn referenced(site: &Site, d: Dialect, entity: &str, id: &str) -> Option<Hazard> {
    let mut counts = Vec::new();
    for file in site.referrers_of(entity) {
        for f in file.entity.fields.iter().filter(|f| f.target_entity.as_deref() == Some(entity)) {
            let (table, col) = match f.column() {
                Some(col) => (file.entity.table(), col),
                None => (child_table(&file.entity.id, &f.id), "value".to_string()),
            };
            counts.push(format!(
                "(SELECT COUNT(*) FROM {} WHERE {} = {})",
                d.table(&table),
                d.table(&col),
                string_literal(d, id)
            ));
        }
    }
    if counts.is_empty() {
        return None;
    }
    let mut h = Hazard::new(
        C::RecordReferenced,
        S::Safe,
        format!("rows that reference `{entity}` `{id}` would block its removal"),
    );
    h.probe = Some(Probe {
        code: C::RecordReferenced,
        kind: ProbeKind::Violations,
        sql: format!("SELECT {}", counts.join(" + ")),
        counts: format!("rows hold a reference to `{entity}` `{id}`"),
        shows: None,
    });
    Some(h)
}
