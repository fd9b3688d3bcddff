//! A record's values as SQL: the literals a data file's rows are written with,
//! and the NULL-safe comparison that tells whether a row still holds what the
//! file wrote (the probe of a change, the engine's drift check).

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};

use crate::content::{field_value, validate_record, SqlValue};
use crate::model::{EntitySchema, FieldType};
use crate::plan::Dialect;
use crate::records::DataRecord;
use crate::sql::{child_table, string_literal};

/// What a record writes, as SQL literals: the columns of the fields it names
/// (and the defaults of those it leaves out, as the content API would store
/// them), and the values of each multi-valued field it names, in order (none
/// for `null` or `[]`), which become that field's child rows.
pub(super) struct Written {
    pub columns: Vec<(String, String)>,
    pub children: Vec<(String, Vec<String>)>,
}

pub(super) fn written(d: Dialect, entity: &EntitySchema, values: &BTreeMap<String, Json>) -> Written {
    let input: Map<String, Json> = values.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    // The site check has run validate_record on it already (kind::data::check).
    let record = validate_record(entity, &input).unwrap_or_default();
    let columns = record
        .columns
        .into_iter()
        .map(|(c, v)| {
            let t = entity.fields.iter().find(|f| f.column().as_deref() == Some(c.as_str())).map(|f| f.field_type);
            let lit = literal(d, t.unwrap_or(FieldType::Text), &v);
            (c, lit)
        })
        .collect();
    let children = entity
        .fields
        .iter()
        .filter(|f| !f.cardinality.is_single() && values.contains_key(&f.id))
        .map(|f| {
            let given = record.children.iter().find(|(id, _)| *id == f.id).map(|(_, v)| v.as_slice()).unwrap_or(&[]);
            (f.id.clone(), given.iter().map(|v| literal(d, f.field_type, v)).collect())
        })
        .collect();
    Written { columns, children }
}

/// The columns of the fields a record names, with the values it gives them;
/// fields the schema no longer has, or values it no longer accepts, are left
/// out (the comparison then holds for what can still be compared).
fn expected_columns(d: Dialect, entity: &EntitySchema, values: &BTreeMap<String, Json>) -> Vec<(String, String)> {
    values
        .iter()
        .filter_map(|(k, v)| {
            let field = entity.field(k)?;
            let col = field.column()?;
            let value = if v.is_null() { SqlValue::Null } else { field_value(field, v).ok()? };
            Some((col, literal(d, field.field_type, &value)))
        })
        .collect()
}

/// A condition true when a row holds every value `values` names (NULL-safe).
pub(super) fn same_as(d: Dialect, entity: &EntitySchema, values: &BTreeMap<String, Json>) -> String {
    let eq = match d {
        Dialect::Sqlite => "IS",
        Dialect::Postgres => "IS NOT DISTINCT FROM",
    };
    let mut parts: Vec<String> =
        expected_columns(d, entity, values).into_iter().map(|(c, v)| format!("{} {eq} {v}", d.table(&c))).collect();
    // A multi-valued field: its child rows of this row are exactly the values
    // named, in order (the subqueries refer to the row being looked at).
    let owner = format!("{}.{}", d.table(&entity.table()), d.table("id"));
    let (parent, delta, value) = (d.table("parent_id"), d.table("delta"), d.table("value"));
    for field in entity.fields.iter().filter(|f| !f.cardinality.is_single()) {
        let Some(given) = values.get(&field.id) else { continue };
        let items: Vec<&Json> = match given {
            Json::Null => Vec::new(),
            Json::Array(items) => items.iter().collect(),
            _ => continue,
        };
        let Ok(items) = items.into_iter().map(|v| field_value(field, v)).collect::<Result<Vec<_>, _>>() else {
            continue;
        };
        let child = d.table(&child_table(&entity.id, &field.id));
        let count = format!("(SELECT COUNT(*) FROM {child} WHERE {parent} = {owner})");
        let n = items.len();
        if n == 0 {
            parts.push(format!("{count} = 0"));
            continue;
        }
        let each: Vec<String> = items
            .iter()
            .enumerate()
            .map(|(i, v)| format!("({delta} = {i} AND {value} {eq} {})", literal(d, field.field_type, v)))
            .collect();
        parts.push(format!(
            "{count} = {n} AND (SELECT COUNT(*) FROM {child} WHERE {parent} = {owner} AND ({})) = {n}",
            each.join(" OR ")
        ));
    }
    match parts.is_empty() {
        true => "1 = 1".into(),
        false => parts.join(" AND "),
    }
}

/// The condition a row of `entity` meets when it no longer holds what `record`
/// sets: the engine's drift check of a data file.
pub fn row_differs(d: Dialect, entity: &EntitySchema, record: &DataRecord) -> String {
    format!("NOT ({})", same_as(d, entity, &record.values))
}

fn literal(d: Dialect, t: FieldType, v: &SqlValue) -> String {
    match (v, t, d) {
        (SqlValue::Null, ..) => "NULL".into(),
        (SqlValue::Integer(i), FieldType::Boolean, Dialect::Postgres) => (*i != 0).to_string().to_uppercase(),
        (SqlValue::Text(s), FieldType::Datetime, Dialect::Postgres) => {
            format!("CAST({} AS TIMESTAMPTZ)", string_literal(d, s))
        }
        (SqlValue::Text(s), ..) => string_literal(d, s),
        (SqlValue::Integer(i), ..) => i.to_string(),
        (SqlValue::Float(f), ..) => format!("{f:?}"),
    }
}
