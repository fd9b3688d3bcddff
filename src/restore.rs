//! Restoring data on rollback: when a rollback brings back a field or an entity
//! that a later version dropped, its values come back from the backup tables that
//! drop made.

use crate::diff::ChangeItem;
use crate::model::table_name;
use crate::plan::{Plan, Step};
use crate::sql::{child_table, quote, sqlite};

/// Adds to `plan` the steps that refill what it re-creates from `backups`, the
/// backup tables recorded by the versions being rolled back (newest last).
pub fn add_restore_steps(plan: &mut Plan, items: &[ChangeItem], backups: &[String]) {
    // The newest backup of a table (and column) wins: it holds the latest values.
    let find = |suffix: &str| backups.iter().rev().find(|b| b.ends_with(suffix)).cloned();
    for item in items {
        let mut sql = Vec::new();
        match item {
            ChangeItem::AddField { entity, field } => {
                let table = table_name(entity);
                match field.column() {
                    Some(col) => {
                        if let Some(bk) = find(&format!("_{table}__{col}")) {
                            sql.push(format!(
                                "UPDATE {t} SET {c} = (SELECT {b}.{c} FROM {b} WHERE {b}.{id} = {t}.{id})",
                                t = quote(&table),
                                c = quote(&col),
                                b = quote(&bk),
                                id = quote("id"),
                            ));
                        }
                    }
                    None => {
                        let child = child_table(entity, &field.id);
                        if let Some(bk) = find(&format!("_{child}")) {
                            sql.push(copy_child(&child, &bk));
                        }
                    }
                }
            }
            ChangeItem::CreateEntity { entity } => {
                let table = entity.table();
                if let Some(bk) = find(&format!("_{table}")) {
                    let cols: Vec<String> = sqlite::table_columns(entity).iter().map(|c| quote(c)).collect();
                    sql.push(format!(
                        "INSERT INTO {} ({c}) SELECT {c} FROM {}",
                        quote(&table),
                        quote(&bk),
                        c = cols.join(", ")
                    ));
                }
                for f in entity.fields.iter().filter(|f| !f.cardinality.is_single()) {
                    let child = child_table(&entity.id, &f.id);
                    if let Some(bk) = find(&format!("_{child}")) {
                        sql.push(copy_child(&child, &bk));
                    }
                }
            }
            _ => {}
        }
        if !sql.is_empty() {
            plan.steps.push(Step {
                summary: format!("restore the data of {} from backup", item.summary().trim_start_matches("+ ")),
                sql,
                rollback_sql: vec![],
                hazards: vec![],
                backups: vec![],
            });
        }
    }
}

fn copy_child(child: &str, backup: &str) -> String {
    let cols = format!("{}, {}, {}", quote("parent_id"), quote("delta"), quote("value"));
    format!("INSERT INTO {} ({cols}) SELECT {cols} FROM {}", quote(child), quote(backup))
}
