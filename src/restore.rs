//! Rollback and point-in-time recovery, planned: every file goes back to the text
//! of an earlier applied version, and whatever that brings back (a field, an
//! entity) is refilled from the backup tables the later versions made when they
//! dropped it. Plain functions: the engine gathers the texts and the backup names,
//! this decides the changes; `tests/restore_plan.rs` runs it without a database.

use std::collections::BTreeMap;

use crate::diff::{ChangeItem, EntityChange};
use crate::model::table_name;
use crate::plan::{Plan, PlanContext, Step};
use crate::site::{Site, SiteFile};
use crate::site_plan::{plan_file_in, plan_sites_in, FileChange};
use crate::sql::{child_table, sqlite, Dialect};

/// Where one file goes back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreTarget {
    /// The applied version it returns to; 0 when the file did not exist then.
    pub version: i64,
    /// That version's text; `None` when the file is absent at that version.
    pub text: Option<String>,
    /// The backup tables the file's versions after `version` made and that still
    /// exist, oldest first: what refills the data those versions dropped.
    pub backups: Vec<String>,
}

/// A planned change that returns a file to `to_version`.
#[derive(Debug, Clone, PartialEq)]
pub struct Restore {
    pub change: FileChange,
    pub to_version: i64,
}

/// What to do with a target whose text is already the applied one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unchanged {
    /// Nothing to plan (point-in-time recovery: only differing files change).
    Skip,
    /// Plan an empty change anyway (a one-file rollback: approving it still
    /// rewrites the file on disk to that text, discarding an unapplied edit).
    Rewrite,
}

/// Plans every file of `targets` from the `applied` site back to its target, as
/// one batch in the order the database accepts, each with the steps that refill
/// its data from its backups. `next_version(file)` is the version each change
/// will be recorded as (it names the backups the change itself makes).
///
/// Fails, naming why, when a target text no longer parses or when the site the
/// targets make breaks a cross-file rule (a reference to an entity that is gone).
pub fn plan_restore(
    dialect: Dialect,
    applied: &Site,
    targets: &BTreeMap<String, RestoreTarget>,
    next_version: impl Fn(&str) -> i64,
    unchanged: Unchanged,
) -> Result<Vec<Restore>, String> {
    let mut site = applied.clone();
    for (path, target) in targets {
        match &target.text {
            Some(text) => site.insert_file(SiteFile::parse(path, text).map_err(|errors| {
                let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
                messages.join("; ")
            })?),
            None => site.remove(path),
        }
    }
    let problems = site.check();
    if !problems.is_empty() {
        return Err(problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "));
    }
    let tag = |file: &str, short: &str| format!("v{}_{short}", next_version(file));
    let mut changes = plan_sites_in(dialect, applied, &site, tag);
    if unchanged == Unchanged::Rewrite {
        let unplanned: Vec<&String> = targets.keys().filter(|p| !changes.iter().any(|c| &c.file == *p)).collect();
        for path in unplanned {
            let ctx = PlanContext::alone(dialect);
            changes.push(plan_file_in(path, applied.file(path).as_ref(), site.file(path).as_ref(), tag, &ctx));
        }
    }
    Ok(changes
        .into_iter()
        .filter_map(|mut change| {
            let target = targets.get(&change.file)?;
            let items: Vec<ChangeItem> = change.graded.items.iter().map(|i| i.item.clone()).collect();
            add_restore_steps(dialect, &mut change.plan, &items, &target.backups);
            Some(Restore { change, to_version: target.version })
        })
        .collect())
}

/// Adds to `plan` the steps that refill what it re-creates from `backups`, the
/// backup tables recorded by the versions being rolled back (newest last).
fn add_restore_steps(dialect: Dialect, plan: &mut Plan, items: &[ChangeItem], backups: &[String]) {
    // The newest backup of a table (and column) wins: it holds the latest values.
    let find = |suffix: &str| backups.iter().rev().find(|b| b.ends_with(suffix)).cloned();
    for item in items {
        let mut sql = Vec::new();
        let mut restores = Vec::new();
        match item {
            ChangeItem::Entity(EntityChange::AddField { entity, field }) => {
                let table = table_name(entity);
                match field.column() {
                    Some(col) => {
                        if let Some(bk) = find(&format!("_{table}__{col}")) {
                            sql.push(format!(
                                "UPDATE {t} SET {c} = (SELECT {b}.{c} FROM {b} WHERE {b}.{id} = {t}.{id})",
                                t = dialect.table(&table),
                                c = dialect.table(&col),
                                b = dialect.table(&bk),
                                id = dialect.table("id"),
                            ));
                            restores.push(bk);
                        }
                    }
                    None => {
                        let child = child_table(entity, &field.id);
                        if let Some(bk) = find(&format!("_{child}")) {
                            sql.push(copy_child(dialect, &child, &bk));
                            restores.push(bk);
                        }
                    }
                }
            }
            ChangeItem::Entity(EntityChange::CreateEntity { entity }) => {
                let table = entity.table();
                if let Some(bk) = find(&format!("_{table}")) {
                    let cols: Vec<String> = sqlite::table_columns(entity).iter().map(|c| dialect.table(c)).collect();
                    sql.push(format!(
                        "INSERT INTO {} ({c}) SELECT {c} FROM {}",
                        dialect.table(&table),
                        dialect.table(&bk),
                        c = cols.join(", ")
                    ));
                    restores.push(bk);
                }
                for f in entity.fields.iter().filter(|f| !f.cardinality.is_single()) {
                    let child = child_table(&entity.id, &f.id);
                    if let Some(bk) = find(&format!("_{child}")) {
                        sql.push(copy_child(dialect, &child, &bk));
                        restores.push(bk);
                    }
                }
            }
            // Nothing else re-creates data that a later version dropped: a
            // dropped field or entity comes back only as AddField/CreateEntity.
            ChangeItem::Entity(
                EntityChange::DropEntity { .. }
                | EntityChange::RenameEntity { .. }
                | EntityChange::EntityMetadata { .. }
                | EntityChange::DropField { .. }
                | EntityChange::RenameField { .. }
                | EntityChange::AlterField { .. },
            )
            | ChangeItem::Config(_) => {}
        }
        if !sql.is_empty() {
            plan.steps.push(Step {
                summary: format!("restore the data of {} from backup", item.summary().trim_start_matches("+ ")),
                sql,
                rollback_sql: vec![],
                hazards: vec![],
                backups: vec![],
                restores,
            });
        }
    }
}

fn copy_child(dialect: Dialect, child: &str, backup: &str) -> String {
    let cols = format!("{}, {}, {}", dialect.table("parent_id"), dialect.table("delta"), dialect.table("value"));
    format!("INSERT INTO {} ({cols}) SELECT {cols} FROM {}", dialect.table(child), dialect.table(backup))
}
