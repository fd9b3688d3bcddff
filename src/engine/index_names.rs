//! Index names of older releases (`idx_<entity>_<field>`, which two fields could
//! share) renamed to today's `idx_<entity>__<field>` at start-up, so later plans
//! find the index under the name they drop or rename. Runs once per database:
//! an index already under its new name, or belonging to another table, is left
//! as it is.

use std::collections::BTreeMap;

use super::store::{Store, StoreError};
use crate::site::Site;
use crate::sql::{index_name, legacy_index_name};

/// Renames the indexes of `site`'s fields still under their old name; returns
/// how many were renamed.
pub async fn rename_legacy(store: &Store, site: &Site) -> Result<usize, StoreError> {
    let dialect = store.dialect();
    let existing: BTreeMap<String, String> = store.pool().index_tables().await?.into_iter().collect();
    let mut statements = Vec::new();
    let mut renamed = 0;
    for file in site.schema_files() {
        let e = &file.entity;
        let table = dialect.ident(&e.table());
        for f in e.fields.iter().filter(|f| f.indexed) {
            let Some(column) = f.column() else { continue };
            let old = dialect.ident(&legacy_index_name(&e.id, &f.id));
            let new = dialect.ident(&index_name(&e.id, &f.id));
            if existing.get(&old) != Some(&table) || existing.contains_key(&new) {
                continue;
            }
            tracing::info!(index = %old, to = %new, file = %file.path, "renaming an index to today's naming");
            statements.extend(store.backend().rename_index(&old, &new, &table, &column));
            renamed += 1;
        }
    }
    if !statements.is_empty() {
        store.run_upkeep(&statements).await?;
    }
    Ok(renamed)
}
