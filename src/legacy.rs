//! Rows of the legacy JSON `content` table (`id, entity_type, data, created_at,
//! updated_at`) read against the typed entity schemas: which JSON key feeds
//! which field, which keys no field takes, which values do not fit and why, the
//! record they become, and the legacy `data` a typed record is written back as.
//!
//! One set of rules serves `marain legacy plan`, `run` and `verify` and the
//! content API's reads of rows not yet copied, so what is reported, what is
//! copied and what is served cannot disagree. The rules are those of the content
//! API ([`crate::content::validate_record`]); a key also maps to a field through
//! the field's `renamed_from`. The user-facing account is `docs/legacy.md`.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};

use crate::content::{validate_record, Record, SqlValue};
use crate::model::{Cardinality, EntitySchema, Field, FieldType};

pub mod infer;

/// Why one value of one legacy row cannot be copied.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Misfit {
    /// The JSON key as the legacy row spells it (empty for the row as a whole).
    pub key: String,
    /// The value, cut to [`SHOWN_VALUE_CHARS`] characters.
    pub value: String,
    pub reason: String,
}

/// How much of a misfit value a report shows.
pub const SHOWN_VALUE_CHARS: usize = 80;

/// One legacy row read against its entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversion {
    /// The record, or every reason it cannot be made.
    pub record: Result<Record, Vec<Misfit>>,
    /// Keys no field takes, with their values.
    pub unmapped: Map<String, Json>,
}

impl Conversion {
    /// What `run` does with the row: copy it (with the unmapped keys kept aside
    /// when `keep_unmapped`), or leave it where it is with its reasons. A row
    /// with keys no field takes is left unless they can be kept: copying it
    /// would lose them.
    pub fn fit(self, keep_unmapped: bool) -> Result<(Record, Map<String, Json>), Vec<Misfit>> {
        let unmapped_misfits = || {
            self.unmapped
                .iter()
                .map(|(k, v)| Misfit {
                    key: k.clone(),
                    value: shown(v),
                    reason: format!("no field takes `{k}`: add a field for it, or run with --keep-unmapped"),
                })
                .collect::<Vec<_>>()
        };
        match (self.record, keep_unmapped || self.unmapped.is_empty()) {
            (Ok(record), true) => Ok((record, self.unmapped)),
            (Ok(_), false) => Err(unmapped_misfits()),
            (Err(mut misfits), keep) => {
                if !keep {
                    misfits.extend(unmapped_misfits());
                }
                Err(misfits)
            }
        }
    }
}

/// The JSON keys that feed `entity`'s fields: each field's id and the id it
/// was renamed from.
pub fn key_map(entity: &EntitySchema) -> BTreeMap<&str, &Field> {
    let mut keys = BTreeMap::new();
    for field in &entity.fields {
        keys.insert(field.id.as_str(), field);
    }
    for field in &entity.fields {
        if let Some(old) = field.renamed_from.as_deref() {
            keys.entry(old).or_insert(field);
        }
    }
    keys
}

/// Reads one legacy row's `data` (its JSON text) as a record of `entity`.
pub fn convert(entity: &EntitySchema, data: &str) -> Conversion {
    let object = match serde_json::from_str::<Json>(data) {
        Ok(Json::Object(o)) => o,
        Ok(other) => {
            let misfit =
                Misfit { key: String::new(), value: shown(&other), reason: "data is not a JSON object".into() };
            return Conversion { record: Err(vec![misfit]), unmapped: Map::new() };
        }
        Err(e) => {
            let misfit =
                Misfit { key: String::new(), value: cut(data), reason: format!("data is not valid JSON ({e})") };
            return Conversion { record: Err(vec![misfit]), unmapped: Map::new() };
        }
    };
    convert_object(entity, &object)
}

/// [`convert`] of data already parsed.
pub fn convert_object(entity: &EntitySchema, object: &Map<String, Json>) -> Conversion {
    let keys = key_map(entity);
    let mut input = Map::new();
    // field id → the legacy key that fed it, to name misfits as the row spells them
    let mut source: BTreeMap<&str, &str> = BTreeMap::new();
    let mut unmapped = Map::new();
    let mut misfits = Vec::new();
    for (key, value) in object {
        match keys.get(key.as_str()) {
            // A legacy row repeating its own id in its data says nothing new.
            None if key == "id" => {}
            None => {
                unmapped.insert(key.clone(), value.clone());
            }
            Some(field) => match source.insert(&field.id, key) {
                Some(other) if !object[other].is_null() && !value.is_null() => misfits.push(Misfit {
                    key: key.clone(),
                    value: shown(value),
                    reason: format!("`{other}` and `{key}` both feed field `{}`; keep one", field.id),
                }),
                Some(other) if value.is_null() => {
                    source.insert(&field.id, other);
                }
                _ => {
                    input.insert(field.id.clone(), value.clone());
                }
            },
        }
    }
    let record = match validate_record(entity, &input) {
        Ok(record) if misfits.is_empty() => Ok(record),
        Ok(_) => Err(misfits),
        Err(problems) => {
            misfits.extend(problems.into_iter().map(|p| {
                let key = source.get(p.field.as_str()).copied().unwrap_or(p.field.as_str());
                let value = object.get(key).map(shown).unwrap_or_default();
                let reason = match object.get(key) {
                    None => format!("field `{}` {} and the row has no `{key}`", p.field, p.message),
                    Some(_) => format!("field `{}` {}", p.field, p.message),
                };
                Misfit { key: key.to_string(), value, reason }
            }));
            Err(misfits)
        }
    };
    Conversion { record, unmapped }
}

/// The content API's JSON of a record: every field of `entity` (multi-valued
/// ones as lists), booleans as booleans.
pub fn record_json(entity: &EntitySchema, id: &str, record: &Record) -> Map<String, Json> {
    let mut out = Map::new();
    out.insert("id".into(), Json::from(id));
    for field in &entity.fields {
        let value = match field.column() {
            Some(column) => record.columns.iter().find(|(c, _)| *c == column).map(|(_, v)| json(field.field_type, v)),
            None => record
                .children
                .iter()
                .find(|(f, _)| *f == field.id)
                .map(|(_, values)| Json::Array(values.iter().map(|v| json(field.field_type, v)).collect()))
                .or(Some(Json::Array(Vec::new()))),
        };
        out.insert(field.id.clone(), value.unwrap_or(Json::Null));
    }
    out
}

fn json(field_type: FieldType, v: &SqlValue) -> Json {
    match (field_type, v) {
        (_, SqlValue::Null) => Json::Null,
        (FieldType::Boolean, SqlValue::Integer(i)) => Json::Bool(*i != 0),
        (_, SqlValue::Integer(i)) => Json::from(*i),
        (_, SqlValue::Float(f)) => Json::from(*f),
        (_, SqlValue::Text(s)) => Json::from(s.as_str()),
    }
}

/// The best a row that does not fit can be served as: the fields that convert,
/// NULL (or no values) for the rest, and the reasons under `legacy_problems`.
pub fn partial_json(entity: &EntitySchema, id: &str, object: &Map<String, Json>) -> Map<String, Json> {
    let conversion = convert_object(entity, object);
    let problems = match conversion.record {
        Ok(record) => return record_json(entity, id, &record),
        Err(problems) => problems,
    };
    let bad: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    let kept: Map<String, Json> =
        object.iter().filter(|(k, _)| !bad.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    let relaxed = EntitySchema {
        fields: entity.fields.iter().map(|f| Field { required: false, ..f.clone() }).collect(),
        ..entity.clone()
    };
    let mut out = match convert_object(&relaxed, &kept).record {
        Ok(record) => record_json(entity, id, &record),
        Err(_) => record_json(entity, id, &Record::default()),
    };
    let listed = problems.iter().map(|p| Json::from(format!("{}: {}", p.key, p.reason))).collect();
    out.insert("legacy_problems".into(), Json::Array(listed));
    out
}

/// A legacy row's new `data` after a write through the content API: `old`
/// (the row's data before) with each field's value replaced under the key the
/// row already used for it (its id, or the id it was renamed from), so an old
/// reader finds its keys where they were; keys no field takes are kept.
pub fn legacy_data(
    entity: &EntitySchema,
    old: Option<&Map<String, Json>>,
    record: &Map<String, Json>,
) -> Map<String, Json> {
    let mut data = old.cloned().unwrap_or_default();
    for field in &entity.fields {
        let key = match (&field.renamed_from, old) {
            (Some(from), Some(old)) if old.contains_key(from) && !old.contains_key(&field.id) => from.clone(),
            _ => field.id.clone(),
        };
        let value = record.get(&field.id).cloned().unwrap_or(Json::Null);
        let empty_list = matches!(&value, Json::Array(items) if items.is_empty());
        if (value.is_null() || (empty_list && field.cardinality != Cardinality::One)) && !data.contains_key(&key) {
            continue;
        }
        data.insert(key, value);
    }
    data
}

/// A value as a report shows it: JSON, cut to [`SHOWN_VALUE_CHARS`].
pub fn shown(v: &Json) -> String {
    cut(&v.to_string())
}

fn cut(text: &str) -> String {
    match text.char_indices().nth(SHOWN_VALUE_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// One value that differs between a typed row and the legacy row it came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Difference {
    pub id: String,
    pub field: String,
    pub legacy: String,
    pub typed: String,
}

/// Compares a typed row (as the content API returns it) with what its legacy
/// row converts to, field by field. `same_instant` says whether two date-time
/// texts name the same moment (the database may write them another way).
pub fn differences(
    entity: &EntitySchema,
    id: &str,
    expected: &Map<String, Json>,
    typed: &Map<String, Json>,
    same_instant: &dyn Fn(&str, &str) -> bool,
) -> Vec<Difference> {
    let mut out = Vec::new();
    for field in &entity.fields {
        let (want, got) = (expected.get(&field.id).unwrap_or(&Json::Null), typed.get(&field.id).unwrap_or(&Json::Null));
        let same = match (want, got) {
            (Json::Array(a), Json::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(field.field_type, x, y, same_instant))
            }
            (a, b) => same_value(field.field_type, a, b, same_instant),
        };
        if !same {
            out.push(Difference {
                id: id.to_string(),
                field: field.id.clone(),
                legacy: shown(want),
                typed: shown(got),
            });
        }
    }
    out
}

fn same_value(t: FieldType, a: &Json, b: &Json, same_instant: &dyn Fn(&str, &str) -> bool) -> bool {
    match (t, a, b) {
        (FieldType::Float, Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        (FieldType::Datetime, Json::String(x), Json::String(y)) => x == y || same_instant(x, y),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::parse_entity_schema;
    use serde_json::json;

    fn article() -> EntitySchema {
        parse_entity_schema(
            "schemas/article.schema.yaml",
            "id: article\nname: A\nfields:\n  - id: title\n    type: text\n    required: true\n    renamed_from: headline\n  - id: views\n    type: integer\n  - id: status\n    type: text\n    values: [draft, live]\n  - id: tags\n    type: text\n    cardinality: -1\n  - id: live\n    type: boolean\n",
        )
        .unwrap()
    }

    #[test]
    fn keys_map_by_id_and_by_the_name_a_field_was_renamed_from() {
        let c = convert(&article(), r#"{"headline": "Hi", "views": 3, "tags": ["a"], "live": true, "colour": "red"}"#);
        let record = c.record.clone().unwrap();
        assert!(record.columns.contains(&("title".into(), SqlValue::Text("Hi".into()))));
        assert_eq!(c.unmapped, json!({"colour": "red"}).as_object().unwrap().clone());
        let misfits = c.fit(false).unwrap_err();
        assert_eq!(misfits[0].key, "colour");
        assert!(misfits[0].reason.contains("--keep-unmapped"), "{misfits:?}");
    }

    #[test]
    fn each_misfit_names_the_key_as_the_row_spells_it_and_why() {
        let c = convert(&article(), r#"{"views": "many", "status": "gone", "tags": "a"}"#);
        let misfits = c.fit(true).unwrap_err();
        let keys: Vec<(&str, &str)> = misfits.iter().map(|m| (m.key.as_str(), m.value.as_str())).collect();
        assert_eq!(keys, [("title", ""), ("views", "\"many\""), ("status", "\"gone\""), ("tags", "\"a\"")]);
        assert!(misfits[0].reason.contains("is required"), "{misfits:?}");
        assert!(misfits[2].reason.contains("draft, live"), "{misfits:?}");
    }

    #[test]
    fn data_that_is_not_an_object_is_one_misfit() {
        for data in ["[1]", "not json"] {
            let misfits = convert(&article(), data).fit(true).unwrap_err();
            assert_eq!(misfits.len(), 1);
            assert_eq!(misfits[0].key, "");
        }
    }

    #[test]
    fn two_keys_feeding_one_field_are_refused() {
        let misfits = convert(&article(), r#"{"headline": "A", "title": "B"}"#).fit(true).unwrap_err();
        assert!(misfits[0].reason.contains("both feed field `title`"), "{misfits:?}");
        assert!(convert(&article(), r#"{"headline": null, "title": "B"}"#).fit(true).is_ok());
    }

    #[test]
    fn a_write_goes_back_under_the_keys_the_row_used() {
        let e = article();
        let old = json!({"headline": "Old", "colour": "red", "views": 1});
        let record = json!({"id": "a1", "title": "New", "views": null, "status": null, "tags": [], "live": true});
        let data = legacy_data(&e, old.as_object(), record.as_object().unwrap());
        assert_eq!(Json::Object(data), json!({"headline": "New", "colour": "red", "views": null, "live": true}));
    }

    #[test]
    fn a_row_that_does_not_fit_is_served_with_its_problems() {
        let row = json!({"views": "many", "tags": ["x"]});
        let out = partial_json(&article(), "a1", row.as_object().unwrap());
        assert_eq!(out["views"], Json::Null);
        assert_eq!(out["tags"], json!(["x"]));
        assert_eq!(out["legacy_problems"].as_array().unwrap().len(), 2, "{out:?}");
    }

    #[test]
    fn differences_name_the_field_and_both_values() {
        let e = article();
        let want = record_json(&e, "a1", &convert(&e, r#"{"title": "A", "tags": ["x", "y"]}"#).record.unwrap());
        let mut got = want.clone();
        assert!(differences(&e, "a1", &want, &got, &|_, _| false).is_empty());
        got.insert("tags".into(), json!(["y", "x"]));
        let d = differences(&e, "a1", &want, &got, &|_, _| false);
        assert_eq!(
            d,
            [Difference {
                id: "a1".into(),
                field: "tags".into(),
                legacy: "[\"x\",\"y\"]".into(),
                typed: "[\"y\",\"x\"]".into()
            }]
        );
    }
}
