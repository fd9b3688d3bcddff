//! Entity schemas (`schemas/*.schema.yaml`): the first kind. Planning is DDL on
//! the entity's typed tables; a rollback refills re-created fields and tables
//! from the backups the dropping versions made.

mod check;

use std::collections::BTreeMap;

use crate::diff::{diff_entities, ChangeItem, EntityChange, FieldAspect};
use crate::error::FileError;
use crate::grade::{grade, GradedChange};
use crate::model::table_name;
use crate::plan::{plan_change_in, Dialect, Online, Plan, PlanBinding, PlanContext, Step};
use crate::site::{CheckScope, SchemaFile, Site, SiteFile};
use crate::sql::{child_table, sqlite};

use super::{FileKind, Undone};

pub struct SchemaKind;

impl FileKind for SchemaKind {
    fn name(&self) -> &'static str {
        "schema"
    }

    fn directory(&self) -> &'static str {
        "schemas"
    }

    fn pattern(&self) -> &'static str {
        "schemas/*.schema.yaml"
    }

    fn claims(&self, path: &str) -> bool {
        path.starts_with("schemas/") && path.ends_with(".schema.yaml") && !super::hidden(path)
    }

    fn stage(&self) -> u8 {
        0
    }

    fn parse(&self, path: &str, text: &str) -> Result<SiteFile, Vec<FileError>> {
        SchemaFile::parse(path, text).map(SiteFile::Schema)
    }

    fn check(&self, site: &Site, scope: &CheckScope) -> Vec<FileError> {
        check::check(site, scope)
    }

    fn plan(
        &self,
        old: Option<&SiteFile>,
        new: Option<&SiteFile>,
        binding: PlanBinding,
        ctx: &PlanContext,
    ) -> (GradedChange, Plan) {
        let (old, new) = (old.and_then(SiteFile::entity), new.and_then(SiteFile::entity));
        let graded = grade(follow_renames(diff_entities(old, new), ctx.renames));
        let plan = plan_change_in(old, new, &graded, binding, ctx);
        (graded, plan)
    }

    fn refill(&self, dialect: Dialect, undone: &Undone, plan: &mut Plan) {
        let items: Vec<&EntityChange> = undone
            .graded
            .items
            .iter()
            .filter_map(|i| match &i.item {
                ChangeItem::Entity(e) => Some(e),
                _ => None,
            })
            .collect();
        // Refills go online only in a plan that is otherwise in place: no
        // other step has phases of its own, and nothing is renamed (phases
        // run before every step of the cut-over, so before a rename).
        let renames =
            items.iter().any(|i| matches!(i, EntityChange::RenameEntity { .. } | EntityChange::RenameField { .. }));
        let online = !renames && plan.steps.iter().all(|s| s.online.is_none());
        // The entity as the rollback leaves it, when the refill is its only
        // change: PostgreSQL may then swap in a whole new table.
        let changes = items.iter().filter(|i| !matches!(i, EntityChange::EntityMetadata { .. })).count();
        let whole = undone.new.and_then(SiteFile::entity).filter(|_| changes == 1);
        for item in items {
            let Some(mut step) = refill_item(dialect, item, undone.backups) else { continue };
            if online {
                refill_online(dialect, item, &mut step, plan, whole);
            }
            plan.steps.push(step);
        }
    }
}

/// A reference retargeted from an entity to that entity's new name is no change
/// to the database: the foreign key follows the renamed table.
fn follow_renames(items: Vec<ChangeItem>, renames: &BTreeMap<String, String>) -> Vec<ChangeItem> {
    items
        .into_iter()
        .filter_map(|item| match item {
            ChangeItem::Entity(EntityChange::AlterField { entity, old, new, mut aspects })
                if aspects.contains(&FieldAspect::TargetEntity)
                    && old.target_entity.as_ref().and_then(|t| renames.get(t)) == new.target_entity.as_ref() =>
            {
                aspects.retain(|a| *a != FieldAspect::TargetEntity);
                (!aspects.is_empty()).then_some(ChangeItem::Entity(EntityChange::AlterField {
                    entity,
                    old,
                    new,
                    aspects,
                }))
            }
            other => Some(other),
        })
        .collect()
}

/// The step refilling what `item` re-creates from `backups` (the newest backup
/// of a table or column wins: it holds the latest values), if it re-creates any.
fn refill_item(dialect: Dialect, item: &EntityChange, backups: &[String]) -> Option<Step> {
    let find = |suffix: &str| backups.iter().rev().find(|b| b.ends_with(suffix)).cloned();
    let mut sql = Vec::new();
    let mut restores = Vec::new();
    match item {
        EntityChange::AddField { entity, field } => {
            let table = table_name(entity);
            match field.column() {
                Some(col) => {
                    if let Some(bk) = find(&format!("_{table}__{col}")) {
                        // Only the rows the backup holds: a row written since
                        // the drop keeps the field's default, as on the
                        // online path.
                        sql.push(format!(
                            "UPDATE {t} SET {c} = (SELECT {b}.{c} FROM {b} WHERE {b}.{id} = {t}.{id}) \
                             WHERE {id} IN (SELECT {id} FROM {b})",
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
        EntityChange::CreateEntity { entity } => {
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
        EntityChange::DropEntity { .. }
        | EntityChange::RenameEntity { .. }
        | EntityChange::EntityMetadata { .. }
        | EntityChange::DropField { .. }
        | EntityChange::RenameField { .. }
        | EntityChange::AlterField { .. } => {}
    }
    (!sql.is_empty()).then(|| Step {
        summary: format!("restore the data of {} from backup", item.summary().trim_start_matches("+ ")),
        sql,
        rollback_sql: vec![],
        hazards: vec![],
        backups: vec![],
        restores,
        online: None,
    })
}

/// Gives `refill`, the step refilling the column `item` brings back, and
/// the step of `plan` adding that column their online form, when the column
/// has one: the adding step's phases add a shadow column and fill it from
/// the backup, its cut-over names it; the refill has nothing left to do in
/// the cut-over. A required field without a default keeps the
/// one-transaction path (the rows written since the drop hold no value,
/// which its probe counts).
fn refill_online(
    dialect: Dialect,
    item: &EntityChange,
    refill: &mut Step,
    plan: &mut Plan,
    whole: Option<&crate::model::EntitySchema>,
) {
    let EntityChange::AddField { entity, field } = item else { return };
    let ([backup], true) = (refill.restores.as_slice(), !field.required || field.default.is_some()) else { return };
    let Some(adding) = plan.steps.iter_mut().find(|s| s.summary == item.summary() && !s.sql.is_empty()) else {
        return;
    };
    // Only an in-place add: a rebuild makes the column in its new table.
    if !adding.sql.first().is_some_and(|s| s.contains(" ADD COLUMN ")) {
        return;
    }
    let Some(online) = crate::plan::online_refill(dialect, entity, field, backup, whole) else { return };
    refill.online = Some(Online { table: online.table.clone(), phases: vec![], sql: vec![], retire: vec![] });
    adding.online = Some(online);
}

fn copy_child(dialect: Dialect, child: &str, backup: &str) -> String {
    let cols = format!("{}, {}, {}", dialect.table("parent_id"), dialect.table("delta"), dialect.table("value"));
    format!("INSERT INTO {} ({cols}) SELECT {cols} FROM {}", dialect.table(child), dialect.table(backup))
}
