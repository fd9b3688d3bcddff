//! Drift: the database's real tables no longer match what the applied files say.
//! Detected by introspection and reported; never "fixed" silently.

use std::collections::BTreeSet;

use super::store::{Store, StoreError};
use crate::site::Site;
use crate::sql::{child_table, sqlite};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    pub table: String,
    pub problem: String,
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
    for file in site.files() {
        let e = &file.entity;
        let mut tables = vec![(e.table(), sqlite::table_columns(e))];
        for f in e.fields.iter().filter(|f| !f.cardinality.is_single()) {
            tables.push((child_table(&e.id, &f.id), vec!["parent_id".into(), "delta".into(), "value".into()]));
        }
        for (table, columns) in tables {
            let table = dialect.ident(&table);
            expected.insert(table.clone());
            if !actual.contains(&table) {
                drift.push(Drift { table, problem: format!("the table is missing (it belongs to {})", file.path) });
                continue;
            }
            let real: BTreeSet<String> = store.table_columns(&table).await?.into_iter().collect();
            let wanted: BTreeSet<String> = columns.iter().map(|c| dialect.ident(c)).collect();
            for c in wanted.difference(&real) {
                drift.push(Drift { table: table.clone(), problem: format!("column `{c}` is missing") });
            }
            for c in real.difference(&wanted) {
                drift.push(Drift {
                    table: table.clone(),
                    problem: format!("column `{c}` is in the database but in no schema"),
                });
            }
        }
    }
    for table in actual.difference(&expected) {
        drift.push(Drift { table: table.clone(), problem: "the table exists but no schema defines it".into() });
    }
    Ok(drift)
}
