//! Content records checked against the live entity schema: what the content API
//! accepts, as plain values ready for the typed tables.

use serde_json::{Map, Value as Json};

use crate::model::{Cardinality, EntitySchema, Field, FieldType, Literal};

/// A value bound into SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Text(String),
    Integer(i64),
    Float(f64),
}

/// A validated record: the entity table's columns, and each multi-valued field's
/// values (stored in its child table, in order).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record {
    pub columns: Vec<(String, SqlValue)>,
    pub children: Vec<(String, Vec<SqlValue>)>,
}

/// One field a request got wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

/// Checks `input` against `entity`: unknown keys, required fields, types, allowed
/// values, value counts. Missing optional fields take their default or NULL.
pub fn validate_record(entity: &EntitySchema, input: &Map<String, Json>) -> Result<Record, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let mut record = Record::default();
    for key in input.keys() {
        if key != "id" && entity.field(key).is_none() {
            let hint = crate::suggest::hint(key, entity.fields.iter().map(|f| f.id.as_str()));
            problems.push(problem(key, format!("`{}` has no field `{key}`{hint}", entity.id)));
        }
    }
    for field in &entity.fields {
        let given = input.get(&field.id).filter(|v| !v.is_null());
        match (&field.cardinality, given) {
            (Cardinality::One, Some(v)) => match scalar(field, v) {
                Ok(value) => record.columns.push((field.column().expect("single"), value)),
                Err(m) => problems.push(problem(&field.id, m)),
            },
            (Cardinality::One, None) => match (&field.default, field.required) {
                (Some(d), _) => record.columns.push((field.column().expect("single"), literal(field, d))),
                (None, true) => problems.push(problem(&field.id, "is required".into())),
                (None, false) => {}
            },
            (bound, Some(Json::Array(items))) => {
                if let Cardinality::AtMost(n) = bound {
                    if items.len() > *n as usize {
                        problems.push(problem(&field.id, format!("takes at most {n} values, got {}", items.len())));
                        continue;
                    }
                }
                let values: Result<Vec<SqlValue>, String> = items.iter().map(|v| scalar(field, v)).collect();
                match values {
                    Ok(values) if values.is_empty() && field.required => {
                        problems.push(problem(&field.id, "needs at least one value".into()))
                    }
                    Ok(values) => record.children.push((field.id.clone(), values)),
                    Err(m) => problems.push(problem(&field.id, m)),
                }
            }
            (_, Some(_)) => problems.push(problem(&field.id, "takes a list of values".into())),
            (_, None) if field.required => problems.push(problem(&field.id, "needs at least one value".into())),
            (_, None) => {}
        }
    }
    if problems.is_empty() {
        Ok(record)
    } else {
        Err(problems)
    }
}

fn problem(field: &str, message: String) -> FieldProblem {
    FieldProblem { field: field.to_string(), message }
}

fn literal(field: &Field, l: &Literal) -> SqlValue {
    match (field.field_type, l) {
        (_, Literal::Text(s)) => SqlValue::Text(s.clone()),
        (_, Literal::Integer(i)) => SqlValue::Integer(*i),
        (_, Literal::Float(f)) => SqlValue::Float(*f),
        (_, Literal::Bool(b)) => SqlValue::Integer(i64::from(*b)),
    }
}

/// One value for a single-valued `field`, checked as [`validate_record`] checks it.
pub fn field_value(field: &Field, v: &Json) -> Result<SqlValue, String> {
    scalar(field, v)
}

fn scalar(field: &Field, v: &Json) -> Result<SqlValue, String> {
    let value = match (field.field_type, v) {
        (FieldType::Integer, Json::Number(n)) => n.as_i64().map(SqlValue::Integer).ok_or("must be a whole number")?,
        (FieldType::Float, Json::Number(n)) => SqlValue::Float(n.as_f64().ok_or("must be a number")?),
        (FieldType::Boolean, Json::Bool(b)) => SqlValue::Integer(i64::from(*b)),
        (FieldType::Datetime, Json::String(s)) if looks_like_datetime(s) => SqlValue::Text(s.clone()),
        (FieldType::Datetime, _) => return Err("must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z".into()),
        (
            FieldType::Text | FieldType::LongText | FieldType::RichText | FieldType::Slug | FieldType::EntityReference,
            Json::String(s),
        ) => SqlValue::Text(s.clone()),
        (t, _) => return Err(format!("must be a {}", json_kind(t))),
    };
    if let (Some(allowed), SqlValue::Text(s)) = (&field.values, &value) {
        if !allowed.contains(s) {
            return Err(format!("must be one of {}", allowed.join(", ")));
        }
    }
    Ok(value)
}

fn json_kind(t: FieldType) -> &'static str {
    match t {
        FieldType::Integer => "whole number",
        FieldType::Float => "number",
        FieldType::Boolean => "boolean",
        FieldType::EntityReference => "string id",
        _ => "string",
    }
}

/// `YYYY-MM-DD` followed by an optional time: enough to keep junk out; the
/// database stores the text as given.
pub(crate) fn looks_like_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::parse_entity_schema;
    use serde_json::json;

    fn article() -> EntitySchema {
        parse_entity_schema(
            "x",
            "id: article\nname: A\nfields:\n  - id: title\n    type: text\n    required: true\n  - id: views\n    type: integer\n  - id: status\n    type: text\n    default: draft\n    values: [draft, live]\n  - id: tags\n    type: text\n    cardinality: 2\n",
        )
        .unwrap()
    }

    fn check(v: Json) -> Result<Record, Vec<FieldProblem>> {
        validate_record(&article(), v.as_object().unwrap())
    }

    #[test]
    fn accepts_and_fills_defaults() {
        let r = check(json!({"title": "Hi", "tags": ["a", "b"]})).unwrap();
        assert_eq!(
            r.columns,
            vec![("title".into(), SqlValue::Text("Hi".into())), ("status".into(), SqlValue::Text("draft".into()))]
        );
        assert_eq!(r.children, vec![("tags".into(), vec![SqlValue::Text("a".into()), SqlValue::Text("b".into())])]);
    }

    #[test]
    fn reports_every_problem() {
        let errs = check(json!({"views": "many", "status": "gone", "tags": ["a", "b", "c"], "colour": 1})).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["colour", "title", "views", "status", "tags"]);
    }
}
