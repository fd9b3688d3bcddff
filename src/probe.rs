//! Probes: read-only SQL that counts, on the live data, what would make a change
//! fail or lose data. Static grading sees only the files; probe results re-grade:
//! violations make a step BLOCKED, an empty table downgrades a deletion.

use crate::diff::{source_field, ChangeItem, EntityChange, FieldAspect};
use crate::grade::is_widening;
use crate::hazard::{Hazard, HazardCode, Severity};
pub use crate::hazard::{Probe, ProbeKind};
use crate::model::{table_name, Cardinality, EntitySchema, Field};
use crate::sql::{child_table, convert, postgres, quote, string_literal, Dialect};

/// Up to this many rows a rebuild is SAFE: at the targeted 1,000,000 rows/s it
/// holds the write lock for about 10 ms.
pub const SMALL_REBUILD_ROWS: i64 = 10_000;

/// Counts the rows a rebuild of `entity`'s table copies.
pub fn rebuild_probe(entity: &str) -> Probe {
    Probe {
        code: HazardCode::TableRebuild,
        kind: ProbeKind::RowsCopied,
        sql: format!("SELECT COUNT(*) FROM {}", quote(&table_name(entity))),
        counts: "rows are copied".into(),
        shows: None,
    }
}

/// Probes for one change item, in `dialect`'s SQL. `old` is the entity as the
/// live table has it.
pub fn probes_for(
    item: &ChangeItem,
    old: Option<&EntitySchema>,
    new: Option<&EntitySchema>,
    dialect: Dialect,
) -> Vec<Probe> {
    let count = |from: &str, filter: &str| format!("SELECT COUNT(*) FROM {}{filter}", dialect.table(from));
    let p = |code, kind, sql, counts: String| Probe { code, kind, sql, counts, shows: None };
    // Other kinds' changes carry their probes from their own planners.
    let ChangeItem::Entity(item) = item else { return vec![] };
    match item {
        EntityChange::DropEntity { entity } => vec![p(
            HazardCode::EntityDropped,
            ProbeKind::DeletedValues,
            count(&entity.table(), ""),
            format!("rows of `{}` are deleted (backed up first)", entity.id),
        )],
        EntityChange::DropField { entity, field } => {
            let sql = match field.column() {
                Some(col) => count(&table_name(entity), &format!(" WHERE {} IS NOT NULL", quote(&col))),
                None => count(&child_table(entity, &field.id), ""),
            };
            vec![p(
                HazardCode::FieldDropped,
                ProbeKind::DeletedValues,
                sql,
                format!("values of `{}` are deleted", field.id),
            )]
        }
        EntityChange::AddField { entity, field }
            if field.required && field.default.is_none() && field.cardinality.is_single() =>
        {
            vec![p(
                HazardCode::RequiredFieldWithoutDefault,
                ProbeKind::RowsWithoutValue,
                count(&table_name(entity), ""),
                format!("rows have no value for the new required field `{}`", field.id),
            )]
        }
        EntityChange::AddField { entity, field }
            if field.unique && field.default.is_some() && field.cardinality.is_single() =>
        {
            vec![p(
                HazardCode::UniqueAdded,
                ProbeKind::Violations,
                format!("SELECT CASE WHEN COUNT(*) > 1 THEN COUNT(*) ELSE 0 END FROM {}", quote(&table_name(entity))),
                format!("rows would share the default of the new unique field `{}`", field.id),
            )]
        }
        EntityChange::AlterField { entity, new: nf, aspects, .. } => {
            let (Some(o), Some(n)) = (old, new) else { return vec![] };
            let Some(live) = source_field(o, n, nf) else { return vec![] };
            aspects.iter().filter_map(|a| violation_probe(entity, live, nf, *a, dialect)).collect()
        }
        // Nothing on the live data can make these fail or lose anything.
        EntityChange::CreateEntity { .. }
        | EntityChange::RenameEntity { .. }
        | EntityChange::EntityMetadata { .. }
        | EntityChange::AddField { .. }
        | EntityChange::RenameField { .. } => vec![],
    }
}

/// A probe counting rows that the new version of a field would reject. Values
/// live in the entity table, or in the child table's `value` column for a
/// multi-valued field.
fn violation_probe(entity: &str, live: &Field, new: &Field, aspect: FieldAspect, dialect: Dialect) -> Option<Probe> {
    let multi = !live.cardinality.is_single();
    if multi && new.cardinality.is_single() && aspect == FieldAspect::Cardinality {
        let child = child_table(entity, &live.id);
        return Some(Probe {
            code: HazardCode::CardinalityChanged,
            kind: ProbeKind::DeletedValues,
            sql: format!("SELECT COUNT(*) - COUNT(DISTINCT {}) FROM {}", quote("parent_id"), dialect.table(&child)),
            counts: format!("values of `{}` beyond each row's first are dropped (backed up first)", new.id),
            shows: None,
        });
    }
    if multi == new.cardinality.is_single() {
        return None; // Values moving between a column and a child table are only moved.
    }
    let (table, col, unit) = if multi {
        (child_table(entity, &live.id), quote("value"), "values")
    } else {
        (table_name(entity), quote(&live.column()?), "rows")
    };
    // Compared with text (allowed values, referenced ids): PostgreSQL compares
    // typed columns only with their own type.
    let as_text = match dialect {
        Dialect::Postgres if postgres::column_type(live.field_type) != "TEXT" => format!("CAST({col} AS TEXT)"),
        _ => col.clone(),
    };
    let violations = |code, filter: String, counts: String| {
        Some(Probe {
            code,
            kind: ProbeKind::Violations,
            sql: format!("SELECT COUNT(*) FROM {} WHERE {filter}", dialect.table(&table)),
            counts,
            shows: None,
        })
    };
    match aspect {
        FieldAspect::Cardinality => match new.cardinality {
            Cardinality::AtMost(n) if multi => Some(Probe {
                code: HazardCode::CardinalityChanged,
                kind: ProbeKind::Violations,
                sql: format!("SELECT COUNT(DISTINCT {}) FROM {} WHERE {} >= {n}", quote("parent_id"), dialect.table(&table), quote("delta")),
                counts: format!("rows hold more than {n} values of `{}`", new.id),
                shows: None,
            }),
            _ => None,
        },
        FieldAspect::Required if new.required && !multi => {
            violations(HazardCode::RequiredAdded, format!("{col} IS NULL"), format!("rows have no value for `{}`", new.id))
        }
        FieldAspect::Unique if new.unique && !multi => Some(Probe {
            code: HazardCode::UniqueAdded,
            kind: ProbeKind::Violations,
            sql: format!(
                "SELECT COUNT(*) FROM (SELECT {col} FROM {} WHERE {col} IS NOT NULL GROUP BY {col} HAVING COUNT(*) > 1) AS {}",
                dialect.table(&table),
                quote("duplicates")
            ),
            counts: format!("values of `{}` appear more than once", new.id),
            shows: None,
        }),
        // A widening has a probe too where some values do not survive it
        // (integers beyond 2^53 as floats, floats needing 16 digits as text).
        FieldAspect::Type => {
            let fits = convert::fits(dialect, &col, live.field_type, new.field_type)?;
            let code = match is_widening(live.field_type, new.field_type) {
                true => HazardCode::TypeWidened,
                false => HazardCode::TypeNarrowed,
            };
            violations(
                code,
                format!("{col} IS NOT NULL AND NOT ({fits})"),
                format!("{unit} of `{}` do not convert to {}", new.id, new.field_type.as_str()),
            )
        }
        FieldAspect::Values => {
            let allowed = new.values.as_ref()?;
            let list: Vec<String> = allowed.iter().map(|v| string_literal(dialect, v)).collect();
            violations(
                HazardCode::AllowedValuesChanged,
                format!("{col} IS NOT NULL AND {as_text} NOT IN ({})", list.join(", ")),
                format!("{unit} of `{}` are no longer allowed", new.id),
            )
        }
        FieldAspect::TargetEntity => {
            let target = new.target_entity.as_deref()?;
            violations(
                HazardCode::TargetChanged,
                format!("{col} IS NOT NULL AND {as_text} NOT IN (SELECT {} FROM {})", quote("id"), quote(&table_name(target))),
                format!("{unit} of `{entity}.{}` reference a `{target}` that does not exist", new.id),
            )
        }
        _ => None,
    }
}

/// Re-grades `hazard` with probe `probe`'s count.
pub fn regrade(hazard: &mut Hazard, probe: &Probe, count: i64) {
    let figure = crate::plural::count_phrase(count, &probe.counts);
    hazard.counted = Some(count);
    match probe.kind {
        ProbeKind::DeletedValues if count == 0 => {
            hazard.severity = hazard.severity.min(Severity::Warning);
            hazard.message = format!("{} — nothing to lose: 0 {}", hazard.message, probe.counts);
        }
        ProbeKind::DeletedValues => hazard.message = format!("{} — {figure}", hazard.message),
        ProbeKind::RowsWithoutValue if count == 0 => {
            hazard.severity = Severity::Safe;
            hazard.message = format!("{} — the table is empty, so nothing is missing", hazard.message);
        }
        ProbeKind::RowsWithoutValue | ProbeKind::Violations if count > 0 => {
            hazard.severity = Severity::Blocked;
            hazard.message = format!("{figure}: fix the data or the file before this can apply");
        }
        ProbeKind::RowsWithoutValue | ProbeKind::Violations => {
            hazard.message = format!("{} — checked: no row is affected", hazard.message);
        }
        ProbeKind::RowsCopied if count <= SMALL_REBUILD_ROWS => {
            hazard.severity = Severity::Safe;
            hazard.message = format!("{} — {figure}, a small table", hazard.message);
        }
        ProbeKind::RowsCopied => {
            hazard.message = format!("{} — {figure}; writes wait until it is done", hazard.message)
        }
        ProbeKind::ChangedElsewhere if count > 0 => {
            hazard.severity = hazard.severity.max(Severity::Warning);
            hazard.message = format!("{} — {figure}", hazard.message);
        }
        ProbeKind::ChangedElsewhere => {
            hazard.message = format!("{} — checked: no other writer has written the row", hazard.message);
        }
        ProbeKind::RowsDeleted if count == 0 => {
            hazard.severity = Severity::Safe;
            hazard.message = format!("{} — the row is gone already, nothing to delete", hazard.message);
        }
        ProbeKind::RowsDeleted => hazard.message = format!("{} — {figure}", hazard.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hazard(code: HazardCode, severity: Severity) -> Hazard {
        Hazard::new(code, severity, "m")
    }

    fn probe(kind: ProbeKind) -> Probe {
        Probe { code: HazardCode::FieldDropped, kind, sql: String::new(), counts: "rows x".into(), shows: None }
    }

    #[test]
    fn empty_deletion_is_downgraded_to_warning() {
        let mut h = hazard(HazardCode::FieldDropped, Severity::Breaking);
        regrade(&mut h, &probe(ProbeKind::DeletedValues), 0);
        assert_eq!(h.severity, Severity::Warning);
        let mut h = hazard(HazardCode::FieldDropped, Severity::Breaking);
        regrade(&mut h, &probe(ProbeKind::DeletedValues), 3);
        assert_eq!(h.severity, Severity::Breaking);
        assert!(h.message.ends_with("3 rows x"));
    }

    #[test]
    fn violations_block() {
        let mut h = hazard(HazardCode::RequiredAdded, Severity::Warning);
        regrade(&mut h, &probe(ProbeKind::Violations), 412);
        assert_eq!(h.severity, Severity::Blocked);
        assert!(h.message.starts_with("412 rows x"));
        let mut h = hazard(HazardCode::RequiredFieldWithoutDefault, Severity::Warning);
        regrade(&mut h, &probe(ProbeKind::RowsWithoutValue), 0);
        assert_eq!(h.severity, Severity::Safe);
    }
}
