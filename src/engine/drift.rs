//! Drift: the database's real tables no longer match what the applied files say,
//! or a row a data file wrote was changed by another writer since. Detected by
//! introspection and reported; never "fixed" silently.

use std::collections::BTreeSet;

use super::store::{Store, StoreError};
use crate::kind::data::{row_differs, DataFile};
use crate::site::Site;
use crate::sql::{child_table, sqlite, string_literal};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    pub table: String,
    pub problem: String,
    /// The data file whose rows drifted, for drift of rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// A legacy content table that `marain legacy finish` renamed and keeps
/// (`content_legacy_<YYYYMMDDhhmmss>`): the operator's to drop, not drift.
fn kept_legacy(table: &str) -> bool {
    table
        .strip_prefix("content_legacy_")
        .is_some_and(|stamp| stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit()))
}

/// Compares every table the applied site implies with the database.
pub async fn detect(store: &Store, site: &Site) -> Result<Vec<Drift>, StoreError> {
    let mut drift = Vec::new();
    let dialect = store.dialect();
    let actual: BTreeSet<String> = store
        .pool()
        .table_names()
        .await?
        .into_iter()
        .filter(|t| t.starts_with("content_") && !kept_legacy(t))
        .collect();
    let mut expected = BTreeSet::new();
    for file in site.schema_files() {
        let e = &file.entity;
        let mut tables = vec![(e.table(), sqlite::table_columns(e))];
        for f in e.fields.iter().filter(|f| !f.cardinality.is_single()) {
            tables.push((child_table(&e.id, &f.id), vec!["parent_id".into(), "delta".into(), "value".into()]));
        }
        for (table, columns) in tables {
            let table = dialect.ident(&table);
            expected.insert(table.clone());
            if !actual.contains(&table) {
                drift.push(Drift {
                    table,
                    problem: format!("the table is missing (it belongs to {})", file.path),
                    file: None,
                });
                continue;
            }
            let real: BTreeSet<String> = store.table_columns(&table).await?.into_iter().collect();
            let wanted: BTreeSet<String> = columns.iter().map(|c| dialect.ident(c)).collect();
            for c in wanted.difference(&real) {
                drift.push(Drift { table: table.clone(), problem: format!("column `{c}` is missing"), file: None });
            }
            for c in real.difference(&wanted) {
                drift.push(Drift {
                    table: table.clone(),
                    problem: format!("column `{c}` is in the database but in no schema"),
                    file: None,
                });
            }
        }
    }
    for table in actual.difference(&expected) {
        drift.push(Drift {
            table: table.clone(),
            problem: "the table exists but no schema defines it".into(),
            file: None,
        });
    }
    for file in site.data_files() {
        drift.extend(rows(store, site, file).await?);
    }
    Ok(drift)
}

/// The drift of the rows of entity `entity`'s data files alone: what a write
/// through the content API may have caused.
pub async fn detect_rows(store: &Store, site: &Site, entity: &str) -> Result<Vec<Drift>, StoreError> {
    let mut drift = Vec::new();
    for file in site.data_files_of(entity) {
        drift.extend(rows(store, site, file).await?);
    }
    Ok(drift)
}

/// Rows of `file` that another writer changed or deleted since it applied.
async fn rows(store: &Store, site: &Site, file: &DataFile) -> Result<Vec<Drift>, StoreError> {
    let Some(entity) = site.entity_file(&file.entity).map(|f| &f.entity) else { return Ok(Vec::new()) };
    if file.records.is_empty() {
        return Ok(Vec::new());
    }
    let d = store.dialect();
    let table = d.table(&entity.table());
    let id = d.table("id");
    let ids: Vec<String> = file.records.iter().map(|r| string_literal(d, &r.id)).collect();
    let present: BTreeSet<String> = store
        .pool()
        .fetch_json(&format!("SELECT {id} FROM {table} WHERE {id} IN ({})", ids.join(", ")), &[])
        .await?
        .into_iter()
        .filter_map(|row| row.first().and_then(|v| v.as_str()).map(str::to_string))
        .collect();
    let mut out = Vec::new();
    let fields: BTreeSet<&str> = file.records.iter().flat_map(|r| r.values.keys().map(String::as_str)).collect();
    let fields: Vec<&crate::model::Field> =
        fields.into_iter().filter_map(|f| entity.field(f)).filter(|f| f.column().is_some()).collect();
    let differs: Vec<String> = file
        .records
        .iter()
        .filter(|r| present.contains(&r.id))
        .map(|r| format!("({id} = {} AND {})", string_literal(d, &r.id), row_differs(d, entity, r)))
        .collect();
    // The rows that differ, by id, with the values of the fields the file names.
    let mut changed: std::collections::BTreeMap<String, Vec<serde_json::Value>> = Default::default();
    if !differs.is_empty() {
        let mut cols = vec![id.clone()];
        cols.extend(fields.iter().filter_map(|f| f.column()).map(|c| d.table(&c)));
        let sql = format!("SELECT {} FROM {table} WHERE {}", cols.join(", "), differs.join(" OR "));
        for row in store.pool().fetch_json(&sql, &[]).await? {
            if let Some(row_id) = row.first().and_then(|v| v.as_str()).map(str::to_string) {
                changed.insert(row_id, row);
            }
        }
    }
    for record in &file.records {
        let drifted =
            |problem: String| Drift { table: d.ident(&entity.table()), problem, file: Some(file.path.clone()) };
        if !present.contains(&record.id) {
            out.push(drifted(format!(
                "row `{}` that {} wrote is gone (deleted by another writer)",
                record.id, file.path
            )));
            continue;
        }
        let Some(row) = changed.get(&record.id) else { continue };
        let mut shown = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            let Some(wanted) = record.values.get(&f.id) else { continue };
            let held = row.get(i + 1).cloned().unwrap_or_default();
            if !same_value(&held, wanted) {
                shown.push(format!("`{}` is {held} in the database, {wanted} in the file", f.id));
            }
        }
        if shown.is_empty() {
            // What differs is in a child table: name the multi-valued fields.
            let many: Vec<String> = record
                .values
                .keys()
                .filter(|k| entity.field(k).is_some_and(|f| !f.cardinality.is_single()))
                .map(|k| format!("`{k}`"))
                .collect();
            shown.push(match many.is_empty() {
                true => "its values differ from the file's".into(),
                false => format!("the values of {} differ from the file's", many.join(", ")),
            });
        }
        out.push(drifted(format!(
            "row `{}` was changed by another writer since {} applied: {}",
            record.id,
            file.path,
            shown.join("; ")
        )));
    }
    Ok(out)
}

/// Whether a value read back equals the file's, across how each database
/// returns it (booleans as 0/1 on SQLite, numbers as floats).
fn same_value(held: &serde_json::Value, wanted: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (held, wanted) {
        (J::Number(n), J::Bool(b)) => n.as_i64() == Some(i64::from(*b)),
        (J::Number(a), J::Number(b)) => a.as_f64() == b.as_f64(),
        _ => held == wanted,
    }
}
