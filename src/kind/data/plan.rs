//! Planning a data file: one step backing up the rows the version writes or
//! deletes, then one step per record (an upsert or a DELETE), each with its
//! inverse, its hazards and the probes that re-grade them on the live rows.
//! A rollback refills the rows from those backups, so every value comes back.

use serde_json::{Map, Value as Json};

use crate::content::{field_value, validate_record, SqlValue};
use crate::diff::ChangeItem;
use crate::grade::{grade, GradedChange};
use crate::hazard::{Hazard, HazardCode as C, Probe, ProbeKind, Severity as S, Shows};
use crate::model::{EntitySchema, FieldType};
use crate::plan::{Dialect, Plan, PlanBinding, PlanContext, Step};
use crate::site::{Site, SiteFile};
use crate::sql::{backup_table, child_table, sqlite, string_literal};

use crate::records::{diff_records, DataFile, DataRecord, RecordChange};

/// The marker ending a data backup's name: `marain_backup_<tag>_<table>__data`.
const BACKUP_MARK: &str = "data";

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
                let h = Hazard::new(
                    C::RecordRemoved,
                    S::Safe,
                    format!("record `{}`: the table of `{entity_id}` is gone; nothing to delete", c.id()),
                );
                Step::record(c.summary(), vec![h])
            })
            .collect();
        return (graded, plan);
    };
    if changes.is_empty() {
        return (graded, plan);
    }
    let d = ctx.dialect;
    let table = entity.table();
    let t = d.table(&table);
    let id_col = d.table("id");
    let tag = plan.binding.backup_tag.clone();
    let ids: Vec<String> = changes.iter().map(|c| string_literal(c.id())).collect();
    let bk = backup_table(&tag, &table, Some(BACKUP_MARK));
    let mut backup = Step {
        summary: format!("back up the rows of `{entity_id}` this version writes or deletes"),
        sql: vec![format!("CREATE TABLE {} AS SELECT * FROM {t} WHERE {id_col} IN ({})", d.table(&bk), ids.join(", "))],
        rollback_sql: vec![],
        hazards: vec![],
        backups: vec![bk.clone()],
        restores: vec![],
    };
    let children: Vec<(String, String)> = entity
        .fields
        .iter()
        .filter(|f| !f.cardinality.is_single())
        .map(|f| {
            let child = child_table(entity_id, &f.id);
            let bkc = backup_table(&tag, &child, Some(BACKUP_MARK));
            (child, bkc)
        })
        .collect();
    for (child, bkc) in &children {
        backup.sql.push(format!(
            "CREATE TABLE {} AS SELECT * FROM {} WHERE {} IN ({})",
            d.table(bkc),
            d.table(child),
            d.table("parent_id"),
            ids.join(", ")
        ));
        backup.backups.push(bkc.clone());
    }
    plan.steps.push(backup);

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
    let row_of = |id: &str| format!("{t} WHERE {id_col} = {}", string_literal(id));
    let listed = |entity: &EntitySchema| -> String {
        let cols: Vec<String> = sqlite::table_columns(entity).iter().map(|c| d.table(c)).collect();
        cols.join(", ")
    };
    for (change, gi) in changes.iter().zip(&graded.items) {
        let id = change.id();
        let lit = string_literal(id);
        let mut hazards = gi.hazards.clone();
        let shows = {
            let columns: Vec<String> =
                change.named().into_iter().filter_map(|f| entity.field(f).and_then(|f| f.column())).collect();
            let listed: Vec<String> = columns.iter().map(|c| d.table(c)).collect();
            (!columns.is_empty())
                .then(|| Shows { sql: format!("SELECT {} FROM {}", listed.join(", "), row_of(id)), columns })
        };
        let step = match change {
            RecordChange::RecordAdded { values, .. } | RecordChange::RecordChanged { new: values, .. } => {
                let old_values = match change {
                    RecordChange::RecordChanged { old, .. } => Some(old),
                    _ => None,
                };
                let (count, counts) = match old_values {
                    None => (
                        format!("SELECT COUNT(*) FROM {}", row_of(id)),
                        "rows with this id exist already (another writer made them); the file's values would replace the database's, backed up first".to_string(),
                    ),
                    Some(old) => (
                        format!(
                            "SELECT 1 - COUNT(*) + COALESCE(SUM(CASE WHEN {} THEN 0 ELSE 1 END), 0) FROM {}",
                            same_as(d, entity, old),
                            row_of(id)
                        ),
                        format!(
                            "rows were changed or deleted by another writer since {} last applied; the file's values would replace the database's, backed up first",
                            new.map(|f| f.path.as_str()).unwrap_or("the file")
                        ),
                    ),
                };
                let code = if old_values.is_some() { C::RecordChanged } else { C::RecordAdded };
                if let Some(h) = hazards.iter_mut().find(|h| h.code == code) {
                    h.probe = Some(Probe { code, kind: ProbeKind::ChangedElsewhere, sql: count, counts, shows });
                }
                hazards.extend(missing_references(&defined, d, entity, values));
                let mut set = columns(d, entity, values);
                // A field the file named before and names no more: the file
                // let go of it, so it goes back to its default or NULL.
                for key in old_values.into_iter().flat_map(|o| o.keys()).filter(|k| !values.contains_key(*k)) {
                    if let Some(col) = entity.field(key).and_then(|f| f.column()) {
                        if !set.iter().any(|(c, _)| *c == col) {
                            set.push((col, "NULL".into()));
                        }
                    }
                }
                let mut cols = vec![id_col.clone()];
                let mut vals = vec![lit.clone()];
                for (c, v) in &set {
                    cols.push(d.table(c));
                    vals.push(v.clone());
                }
                let mut updates: Vec<String> =
                    set.iter().map(|(c, _)| format!("{} = excluded.{}", d.table(c), d.table(c))).collect();
                updates.push(format!("{} = CURRENT_TIMESTAMP", d.table("updated_at")));
                let upsert = format!(
                    "INSERT INTO {t} ({}) VALUES ({}) ON CONFLICT ({id_col}) DO UPDATE SET {}",
                    cols.join(", "),
                    vals.join(", "),
                    updates.join(", ")
                );
                let undo = match old_values {
                    None => vec![
                        format!("DELETE FROM {}", row_of(id)),
                        format!(
                            "INSERT INTO {t} ({c}) SELECT {c} FROM {} WHERE {id_col} = {lit}",
                            d.table(&bk),
                            c = listed(entity)
                        ),
                    ],
                    Some(_) => {
                        let back: Vec<String> = set
                            .iter()
                            .map(|(c, _)| {
                                let c = d.table(c);
                                format!(
                                    "{c} = (SELECT {b}.{c} FROM {b} WHERE {b}.{id_col} = {t}.{id_col})",
                                    b = d.table(&bk)
                                )
                            })
                            .collect();
                        vec![format!("UPDATE {t} SET {} WHERE {id_col} = {lit}", back.join(", "))]
                    }
                };
                Step {
                    summary: change.summary(),
                    sql: vec![upsert],
                    rollback_sql: undo,
                    hazards,
                    backups: vec![],
                    restores: vec![],
                }
            }
            RecordChange::RecordRemoved { .. } => {
                if let Some(h) = hazards.iter_mut().find(|h| h.code == C::RecordRemoved) {
                    h.probe = Some(Probe {
                        code: C::RecordRemoved,
                        kind: ProbeKind::RowsDeleted,
                        sql: format!("SELECT COUNT(*) FROM {}", row_of(id)),
                        counts: "rows are found".into(),
                        shows,
                    });
                }
                hazards.extend(referenced(ctx.site, d, entity_id, id));
                let mut undo = vec![format!(
                    "INSERT INTO {t} ({c}) SELECT {c} FROM {} WHERE {id_col} = {lit}",
                    d.table(&bk),
                    c = listed(entity)
                )];
                for (child, bkc) in &children {
                    undo.push(format!(
                        "INSERT INTO {} SELECT * FROM {} WHERE {} = {lit}",
                        d.table(child),
                        d.table(bkc),
                        d.table("parent_id")
                    ));
                }
                Step {
                    summary: change.summary(),
                    sql: vec![format!("DELETE FROM {}", row_of(id))],
                    rollback_sql: undo,
                    hazards,
                    backups: vec![],
                    restores: vec![],
                }
            }
        };
        plan.steps.push(step);
    }
    (graded, plan)
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
    fn written(c: &RecordChange) -> Option<&std::collections::BTreeMap<String, Json>> {
        match c {
            RecordChange::RecordAdded { values, .. } | RecordChange::RecordChanged { new: values, .. } => Some(values),
            RecordChange::RecordRemoved { .. } => None,
        }
    }
    let index: std::collections::BTreeMap<&str, usize> =
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

/// The columns a record sets, as SQL literals: the fields it names and the
/// defaults of those it leaves out, as the content API would store them.
fn columns(
    d: Dialect,
    entity: &EntitySchema,
    values: &std::collections::BTreeMap<String, Json>,
) -> Vec<(String, String)> {
    let input: Map<String, Json> = values.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let record = validate_record(entity, &input).unwrap_or_default();
    record
        .columns
        .into_iter()
        .map(|(c, v)| {
            let t = entity.fields.iter().find(|f| f.column().as_deref() == Some(c.as_str())).map(|f| f.field_type);
            let lit = literal(d, t.unwrap_or(FieldType::Text), &v);
            (c, lit)
        })
        .collect()
}

/// The columns of the fields a record names, with the values it gives them;
/// fields the schema no longer has, or values it no longer accepts, are left
/// out (the comparison then holds for what can still be compared).
pub fn expected_columns(d: Dialect, entity: &EntitySchema, record: &DataRecord) -> Vec<(String, String)> {
    record
        .values
        .iter()
        .filter_map(|(k, v)| {
            let field = entity.field(k)?;
            let col = field.column()?;
            let value = if v.is_null() { SqlValue::Null } else { field_value(field, v).ok()? };
            Some((col, literal(d, field.field_type, &value)))
        })
        .collect()
}

/// A condition true when a row holds every value `values` names (NULL-safe).
fn same_as(d: Dialect, entity: &EntitySchema, values: &std::collections::BTreeMap<String, Json>) -> String {
    let record = DataRecord { id: String::new(), values: values.clone() };
    let eq = match d {
        Dialect::Sqlite => "IS",
        Dialect::Postgres => "IS NOT DISTINCT FROM",
    };
    let parts: Vec<String> =
        expected_columns(d, entity, &record).into_iter().map(|(c, v)| format!("{} {eq} {v}", d.table(&c))).collect();
    match parts.is_empty() {
        true => "1 = 1".into(),
        false => parts.join(" AND "),
    }
}

/// The condition a row of `entity` meets when it no longer holds what `record`
/// sets: the engine's drift check of a data file.
pub fn row_differs(d: Dialect, entity: &EntitySchema, record: &DataRecord) -> String {
    format!("NOT ({})", same_as(d, entity, &record.values))
}

fn literal(d: Dialect, t: FieldType, v: &SqlValue) -> String {
    match (v, t, d) {
        (SqlValue::Null, ..) => "NULL".into(),
        (SqlValue::Integer(i), FieldType::Boolean, Dialect::Postgres) => (*i != 0).to_string().to_uppercase(),
        (SqlValue::Text(s), FieldType::Datetime, Dialect::Postgres) => {
            format!("CAST({} AS TIMESTAMPTZ)", string_literal(s))
        }
        (SqlValue::Text(s), ..) => string_literal(s),
        (SqlValue::Integer(i), ..) => i.to_string(),
        (SqlValue::Float(f), ..) => format!("{f:?}"),
    }
}

/// Target entity → the record ids its data files define.
type Defined<'a> = std::collections::BTreeMap<&'a str, std::collections::BTreeSet<&'a str>>;

/// Hazards for references to records no data file defines: the row must exist
/// in the target's table, which a probe checks (a missing one BLOCKS).
fn missing_references(
    defined: &Defined,
    d: Dialect,
    entity: &EntitySchema,
    values: &std::collections::BTreeMap<String, Json>,
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
                string_literal(id)
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
                string_literal(id)
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

/// What a rollback or recovery refills: every row the undone versions backed
/// up, newest backup first so the oldest (the state before the first undone
/// version touched the row) is what stays.
pub(super) fn refill(
    d: Dialect,
    site: &Site,
    old: Option<&SiteFile>,
    new: Option<&SiteFile>,
    backups: &[String],
) -> Vec<Step> {
    let entity_id = new.or(old).and_then(SiteFile::data).map(|f| f.entity.as_str());
    let Some(entity) = entity_id.and_then(|id| site.entity_file(id)).map(|f| &f.entity) else { return Vec::new() };
    let table = entity.table();
    let t = d.table(&table);
    let id_col = d.table("id");
    let cols = sqlite::table_columns(entity);
    let listed: Vec<String> = cols.iter().map(|c| d.table(c)).collect();
    let suffix = format!("_{table}__{BACKUP_MARK}");
    let mut steps = Vec::new();
    for bk in backups.iter().rev().filter(|b| b.ends_with(&suffix)) {
        let b = d.table(bk);
        let sets: Vec<String> = listed
            .iter()
            .skip(1)
            .map(|c| format!("{c} = (SELECT {b}.{c} FROM {b} WHERE {b}.{id_col} = {t}.{id_col})"))
            .collect();
        let mut sql = vec![
            format!("UPDATE {t} SET {} WHERE {id_col} IN (SELECT {id_col} FROM {b})", sets.join(", ")),
            format!(
                "INSERT INTO {t} ({c}) SELECT {c} FROM {b} WHERE {id_col} NOT IN (SELECT {id_col} FROM {t})",
                c = listed.join(", ")
            ),
        ];
        let mut restores = vec![bk.clone()];
        for f in entity.fields.iter().filter(|f| !f.cardinality.is_single()) {
            let child = child_table(&entity.id, &f.id);
            let Some(bkc) = backups.iter().find(|x| **x == bk.replace(&suffix, &format!("_{child}__{BACKUP_MARK}")))
            else {
                continue;
            };
            let (p, dl, v) = (d.table("parent_id"), d.table("delta"), d.table("value"));
            sql.push(format!("DELETE FROM {} WHERE {p} IN (SELECT {id_col} FROM {b})", d.table(&child)));
            sql.push(format!(
                "INSERT INTO {} ({p}, {dl}, {v}) SELECT {p}, {dl}, {v} FROM {}",
                d.table(&child),
                d.table(bkc)
            ));
            restores.push(bkc.clone());
        }
        steps.push(Step {
            summary: format!("restore the rows of `{}` as they were before the undone version", entity.id),
            sql,
            rollback_sql: vec![],
            hazards: vec![],
            backups: vec![],
            restores,
        });
    }
    steps
}
