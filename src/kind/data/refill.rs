//! What a rollback or recovery of a data file refills from the backups its
//! undone versions made.

use crate::kind::Undone;
use crate::plan::{Dialect, Step};
use crate::site::SiteFile;
use crate::sql::{child_table, sqlite};

use super::plan::BACKUP_MARK;

/// What a rollback or recovery refills: every row the undone versions backed
/// up, newest backup first so the oldest (the state before the first undone
/// version touched the row) is what stays.
pub(super) fn refill(d: Dialect, undone: &Undone) -> Vec<Step> {
    let (site, backups) = (undone.site, undone.backups);
    let entity_id = undone.new.or(undone.old).and_then(SiteFile::data).map(|f| f.entity.as_str());
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
            online: None,
        });
    }
    steps
}
