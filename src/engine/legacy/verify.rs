//! `marain legacy verify`: every copied row's every mapped value in the typed
//! table against the JSON it came from, read by the same rules `run` copied by;
//! and `finish`, which verifies again and only then renames the legacy table
//! `content_legacy_<timestamp>` (kept; never dropped by us).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value as Json};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::source::LegacySource;
use super::{entities_for, transition, LegacyError};
use crate::engine::database::{Arg, Conn};
use crate::engine::rows::{select, selected, slot, typed};
use crate::engine::store::Store;
use crate::legacy::{convert, differences, record_json, Difference};
use crate::model::{EntitySchema, FieldType};
use crate::site::Site;
use crate::sql::{child_table, sqlite};

/// Rows compared per query.
const BATCH: usize = 1000;

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct VerifyReport {
    /// Per legacy type: rows compared, and rows the typed table does not have.
    pub types: BTreeMap<String, TypeCheck>,
    /// Legacy types no schema takes.
    pub unknown_types: Vec<String>,
    /// Every value that differs, named by row and field.
    pub differences: Vec<Difference>,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct TypeCheck {
    pub entity: String,
    pub compared: i64,
    pub not_copied: i64,
}

impl VerifyReport {
    /// Every copied row matches its legacy row.
    pub fn passed(&self) -> bool {
        self.differences.is_empty()
    }

    /// Every legacy row is copied and matches: `finish` may rename the table.
    pub fn complete(&self) -> bool {
        self.passed() && self.unknown_types.is_empty() && self.types.values().all(|t| t.not_copied == 0)
    }
}

/// Compares every copied row with the legacy row it came from.
pub async fn verify(store: &Store, source: &LegacySource, site: &Site) -> Result<VerifyReport, LegacyError> {
    let types = source.types().await?;
    let names: Vec<String> = types.iter().map(|(t, _)| t.clone()).collect();
    let entities = entities_for(site, &names);
    let mut report = VerifyReport {
        unknown_types: names.iter().filter(|t| !entities.contains_key(*t)).cloned().collect(),
        ..Default::default()
    };
    let mut conn = store.pool().acquire().await?;
    for (entity_type, entity) in &entities {
        let check = report.types.entry(entity_type.clone()).or_default();
        check.entity = entity.id.clone();
        let mut batches = source.batches(entity_type, BATCH);
        while let Some(rows) = batches.next().await? {
            let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
            let mut typed_rows = typed_rows(&mut conn.conn(), entity, &ids).await?;
            for row in rows {
                let Some(got) = typed_rows.remove(&row.id) else {
                    check.not_copied += 1;
                    continue;
                };
                check.compared += 1;
                match convert(entity, row.data.as_deref().unwrap_or("null")).record {
                    Ok(record) => {
                        let want = record_json(entity, &row.id, &record);
                        report.differences.extend(differences(entity, &row.id, &want, &got, &same_instant));
                    }
                    Err(misfits) => report.differences.push(Difference {
                        id: row.id.clone(),
                        field: String::new(),
                        legacy: misfits
                            .iter()
                            .map(|m| format!("{}: {}", m.key, m.reason))
                            .collect::<Vec<_>>()
                            .join("; "),
                        typed: "copied, but the legacy row no longer fits".into(),
                    }),
                }
            }
        }
    }
    Ok(report)
}

/// The typed rows of `ids` as the content API shows them, by id.
async fn typed_rows(
    conn: &mut Conn<'_>,
    entity: &EntitySchema,
    ids: &[String],
) -> Result<HashMap<String, Map<String, Json>>, sqlx::Error> {
    let d = conn.dialect();
    let marks: Vec<String> = (1..=ids.len()).map(|n| slot(d, n)).collect();
    let args: Vec<Arg> = ids.iter().map(Arg::from).collect();
    let sql = format!("{} WHERE {} IN ({})", select(d, entity), d.table("id"), marks.join(", "));
    let columns = sqlite::table_columns(entity);
    let mut out = HashMap::new();
    for row in conn.fetch_json(&sql, &args).await? {
        let by_column: HashMap<&str, Json> = columns.iter().map(String::as_str).zip(row).collect();
        let id = by_column.get("id").and_then(Json::as_str).unwrap_or_default().to_string();
        let mut record = Map::new();
        for field in &entity.fields {
            let value = match field.column() {
                Some(c) => typed(field.field_type, by_column.get(c.as_str()).cloned().unwrap_or(Json::Null)),
                None => Json::Array(Vec::new()),
            };
            record.insert(field.id.clone(), value);
        }
        out.insert(id, record);
    }
    for field in entity.fields.iter().filter(|f| !f.cardinality.is_single()) {
        let sql = format!(
            "SELECT {}, {} FROM {} WHERE {} IN ({}) ORDER BY {}, {}",
            d.table("parent_id"),
            selected(d, "value", field.field_type == FieldType::Datetime),
            d.table(&child_table(&entity.id, &field.id)),
            d.table("parent_id"),
            marks.join(", "),
            d.table("parent_id"),
            d.table("delta")
        );
        for row in conn.fetch_json(&sql, &args).await? {
            let mut values = row.into_iter();
            let parent = values.next().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            let value = typed(field.field_type, values.next().unwrap_or(Json::Null));
            if let Some(Json::Array(items)) = out.get_mut(&parent).and_then(|r| r.get_mut(&field.id)) {
                items.push(value);
            }
        }
    }
    Ok(out)
}

/// Whether two date-time texts name the same moment: RFC 3339, or
/// `YYYY-MM-DD[ HH:MM:SS]` taken as UTC (how PostgreSQL writes timestamps).
fn same_instant(a: &str, b: &str) -> bool {
    match (instant(a), instant(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

fn instant(s: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let long = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    if let Ok(t) = PrimitiveDateTime::parse(s, long) {
        return Some(t.assume_utc());
    }
    let date = format_description!("[year]-[month]-[day]");
    time::Date::parse(s, date).ok().map(|d| d.midnight().assume_utc())
}

/// Verifies, and when every legacy row is copied and matches, renames the
/// legacy table `content_legacy_<UTC timestamp>` and ends the move, in one
/// transaction. Returns the new name, or the report that stopped it.
pub async fn finish(store: &Store, source: &LegacySource, site: &Site) -> Result<(String, VerifyReport), LegacyError> {
    let report = ready_to_finish(store, source, site).await?;
    let renamed = retire(store, source).await?;
    Ok((renamed, report))
}

/// `verify`, refusing unless the move can finish: the legacy table is in this
/// database, and every row is copied and matches.
pub async fn ready_to_finish(store: &Store, source: &LegacySource, site: &Site) -> Result<VerifyReport, LegacyError> {
    if !source.same_database() {
        return Err(LegacyError::NotReady(
            "the legacy table is in another database; rename it there yourself once `verify` passes".into(),
        ));
    }
    let report = verify(store, source, site).await?;
    if !report.complete() {
        let waiting: i64 = report.types.values().map(|t| t.not_copied).sum();
        return Err(LegacyError::NotReady(format!(
            "{}, {} not copied, {} without a schema; `marain legacy verify` lists them",
            crate::plural::count(report.differences.len() as i64, "difference", "differences"),
            crate::plural::count(waiting, "row", "rows"),
            crate::plural::count(report.unknown_types.len() as i64, "entity type", "entity types")
        )));
    }
    Ok(report)
}

/// The last step of `finish`, once `verify` passed: renames the legacy table
/// `content_legacy_<timestamp>` (never dropped) and closes the move, so the
/// content API stops falling back to it. Returns the new name.
pub async fn retire(store: &Store, source: &LegacySource) -> Result<String, LegacyError> {
    let stamp = OffsetDateTime::now_utc().format(format_description!("[year][month][day][hour][minute][second]"));
    let renamed = format!("content_legacy_{}", stamp.unwrap_or_default());
    let d = store.dialect();
    let mut tx = store.pool().begin().await?;
    tx.conn().execute(&format!("ALTER TABLE {} RENAME TO {}", d.table(source.table()), d.table(&renamed)), &[]).await?;
    transition::close(&mut tx.conn(), source.table(), &renamed).await?;
    tx.commit().await?;
    Ok(renamed)
}
