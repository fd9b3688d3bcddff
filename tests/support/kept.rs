//! What an apply must do to the data, checked on the rows read back from a real
//! database: no row lost unless its entity was dropped, every kept value
//! unchanged, and every converted value what the conversion table of
//! `docs/grading.md` says (the plain-Rust model of [`super::conversion`]).
//! Shared by the case table and the property tests.

use std::collections::BTreeMap;

use marain::diff::{ChangeItem, EntityChange};
use marain::plan::Dialect;
use marain::site::SiteFile;
use marain::site_plan::FileChange;

use super::sqlite_harness::Data;

/// Compares the rows before and after `changes` were applied.
pub fn compare_after_apply(
    dialect: Dialect,
    changes: &[FileChange],
    data_before: &Data,
    data_after: &Data,
) -> Result<(), String> {
    let dropped: Vec<String> = changes
        .iter()
        .flat_map(|c| c.graded.items.iter())
        .filter_map(|i| match &i.item {
            ChangeItem::Entity(EntityChange::DropEntity { entity }) => Some(entity.table()),
            _ => None,
        })
        .collect();
    for (table, rows) in data_before {
        if dropped.iter().any(|d| table == d || table.starts_with(&format!("{d}__"))) {
            continue;
        }
        if let Some(after) = data_after.get(table) {
            if after.len() != rows.len() {
                return Err(format!("{table}: {} rows before, {} after", rows.len(), after.len()));
            }
        }
    }
    let (kept, children, converted) = kept_values(changes);
    let table_of = |place: &Place| match place {
        Place::Column { table, .. } => table.clone(),
        Place::FirstValue { child } => child.rsplit_once("__").map(|(t, _)| t.to_string()).unwrap_or_default(),
    };
    let ids =
        |table: &str| data_before.get(table).map(|rows| rows.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    // Converted values are what the conversion table (the plain-Rust model) says.
    for Converted { from, to, types: (a, b) } in &converted {
        for id in ids(&table_of(from)) {
            let before = value_at(data_before, from, &id).map(|v| rendered(dialect, *a, &v));
            let after = value_at(data_after, to, &id).map(|v| rendered(dialect, *b, &v));
            let want = before.as_ref().map(|v| super::conversion::expected(*a, *b, v));
            if want.as_ref().map(|w| w.as_ref()) != Some(after.as_ref()) {
                return Err(format!(
                    "{from:?} of {id}: {before:?} became {after:?} at {to:?}, the table says {want:?}"
                ));
            }
        }
    }
    for (from, to) in &kept {
        let table = table_of(from);
        for id in ids(&table) {
            let (before, after) = (value_at(data_before, from, &id), value_at(data_after, to, &id));
            if before != after {
                return Err(format!("{from:?} of {id}: {before:?} became {after:?} at {to:?}"));
            }
        }
    }
    for (old_child, new_child) in &children {
        if data_before.get(old_child) != data_after.get(new_child) {
            return Err(format!("the values of {old_child} changed on the way to {new_child}"));
        }
    }
    Ok(())
}

/// Where a kept value lives: a column of a table, or the first value (delta 0) of
/// a multi-valued field's child table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    Column { table: String, column: String },
    FirstValue { child: String },
}

/// A column whose values change type: where they are, and the two types.
struct Converted {
    from: Place,
    to: Place,
    types: (marain::FieldType, marain::FieldType),
}

/// Every value the change keeps, old place → new place: same-typed columns, and
/// the first value of a field moving between a column and a child table (one →
/// many keeps the column's value as value 0; many → one keeps value 0). Whole
/// child tables of same-typed multi-valued fields are listed in the second map;
/// single-valued columns whose type changes, in the third.
fn kept_values(changes: &[FileChange]) -> (BTreeMap<Place, Place>, BTreeMap<String, String>, Vec<Converted>) {
    let mut kept = BTreeMap::new();
    let mut children = BTreeMap::new();
    let mut converted = Vec::new();
    for change in changes {
        let (Some(SiteFile::Schema(old)), Some(SiteFile::Schema(new))) = (&change.old, &change.new) else { continue };
        if old.entity.id != new.entity.id && new.entity.renamed_from.as_ref() != Some(&old.entity.id) {
            continue;
        }
        let (old_table, table) = (old.entity.table(), new.entity.table());
        for nf in &new.entity.fields {
            let Some(of) = marain::diff::source_field(&old.entity, &new.entity, nf) else { continue };
            let place = |entity: &str, table: &str, f: &marain::model::Field| match f.column() {
                Some(column) => Place::Column { table: table.to_string(), column },
                None => Place::FirstValue { child: marain::sql::child_table(entity, &f.id) },
            };
            let (from, to) = (place(&old.entity.id, &old_table, of), place(&new.entity.id, &table, nf));
            if of.field_type != nf.field_type {
                if let (Place::Column { .. }, Place::Column { .. }) = (&from, &to) {
                    converted.push(Converted { from, to, types: (of.field_type, nf.field_type) });
                }
                continue;
            }
            if let (Place::FirstValue { child: a }, Place::FirstValue { child: b }) = (&from, &to) {
                children.insert(a.clone(), b.clone());
            }
            kept.insert(from, to);
        }
    }
    (kept, children, converted)
}

/// The value at `place` for record `id`, as the harness renders it (`NULL` when
/// a multi-valued field has no value 0).
fn value_at(data: &Data, place: &Place, id: &str) -> Option<String> {
    match place {
        Place::Column { table, column } => data.get(table)?.get(id)?.get(column).cloned(),
        Place::FirstValue { child } => Some(
            data.get(child)?.get(&format!("{id}#0")).and_then(|row| row.get("value").cloned()).unwrap_or("NULL".into()),
        ),
    }
}

/// A value as the harness renders it (SQLite's `quote()`, PostgreSQL's quoted
/// text form), typed as a field of type `t` holds it.
fn rendered(dialect: Dialect, t: marain::FieldType, text: &str) -> super::conversion::Value {
    use super::conversion::{datetime, Value};
    use marain::FieldType::*;
    if text == "NULL" {
        return Value::Null;
    }
    let quoted = text.starts_with('\'');
    let s = if quoted { text[1..text.len() - 1].replace("''", "'") } else { text.to_string() };
    let fallback = || Value::Text(s.clone());
    match t {
        Integer if !quoted || dialect == Dialect::Postgres => s.parse().map(Value::Int).unwrap_or_else(|_| fallback()),
        Float if !quoted || dialect == Dialect::Postgres => s.parse().map(Value::Float).unwrap_or_else(|_| fallback()),
        Boolean if dialect == Dialect::Postgres => Value::Bool(s == "true"),
        Boolean if !quoted => Value::Bool(s == "1"),
        // PostgreSQL writes `2026-02-01 10:00:00+00` in its session's zone (UTC).
        Datetime => Value::Time(datetime(&s.replace("+00", "Z")).unwrap_or(s)),
        _ => fallback(),
    }
}
