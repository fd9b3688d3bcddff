//! A starting schema for one legacy entity type, inferred from its rows' data:
//! `marain legacy infer`. Field types come from the values (every value of a key
//! an id of rows of one type makes a reference to that type), `required` where
//! no row lacks the key, multi-valued where the values are lists. What cannot
//! become a field (JSON objects, keys that are not identifiers) is written as a
//! comment saying so, never dropped without a word.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value as Json};

use crate::content::looks_like_datetime;
use crate::model::{FieldType, RESERVED_FIELD_IDS};
use crate::validate::identifier_problem;

/// Text longer than this (or with a line break) is inferred as `long_text`.
const SHORT_TEXT_CHARS: usize = 255;

/// The kinds of JSON value seen under one key, counted.
#[derive(Debug, Default, Clone)]
struct Kinds {
    counts: BTreeMap<Kind, u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Boolean,
    Integer,
    Float,
    Datetime,
    Text,
    LongText,
    Object,
}

impl Kinds {
    fn add(&mut self, kind: Kind) {
        *self.counts.entry(kind).or_default() += 1;
    }

    /// The field type that takes the most of these values, and how many values
    /// of other kinds will not fit it.
    fn field_type(&self, reference: Option<&str>) -> Option<(FieldType, u64)> {
        let count = |k| self.counts.get(&k).copied().unwrap_or(0);
        let numbers = count(Kind::Integer) + count(Kind::Float);
        let texts = count(Kind::Text) + count(Kind::LongText) + count(Kind::Datetime);
        let total: u64 = self.counts.values().sum();
        let (t, fits) = [
            (FieldType::Boolean, count(Kind::Boolean)),
            (if count(Kind::Float) > 0 { FieldType::Float } else { FieldType::Integer }, numbers),
            (text_type(count(Kind::Datetime) == texts, count(Kind::LongText) > 0, reference), texts),
        ]
        .into_iter()
        .max_by_key(|(_, n)| *n)?;
        (fits > 0).then_some((t, total - fits))
    }
}

fn text_type(all_datetimes: bool, long: bool, reference: Option<&str>) -> FieldType {
    match (reference, all_datetimes, long) {
        (Some(_), ..) => FieldType::EntityReference,
        (None, true, _) => FieldType::Datetime,
        (None, false, true) => FieldType::LongText,
        (None, false, false) => FieldType::Text,
    }
}

fn kind(v: &Json) -> Option<Kind> {
    Some(match v {
        Json::Null | Json::Array(_) => return None,
        Json::Bool(_) => Kind::Boolean,
        Json::Number(n) if n.is_i64() => Kind::Integer,
        Json::Number(_) => Kind::Float,
        Json::String(s) if looks_like_datetime(s) => Kind::Datetime,
        Json::String(s) if s.chars().count() > SHORT_TEXT_CHARS || s.contains('\n') => Kind::LongText,
        Json::String(_) => Kind::Text,
        Json::Object(_) => Kind::Object,
    })
}

/// What was seen under one key.
#[derive(Debug, Default, Clone)]
struct KeyStats {
    /// Rows where the key holds something (not null, not an empty list).
    present: u64,
    scalars: Kinds,
    items: Kinds,
    lists: u64,
    /// The types of the rows whose ids the strings seen are.
    targets: BTreeSet<String>,
    /// Strings seen, and how many of them are some row's id.
    strings: u64,
    ids: u64,
}

impl KeyStats {
    /// The one type whose rows' ids nearly all (nine in ten) of the strings
    /// are: a reference to it, the rest dangling.
    fn reference(&self) -> Option<&str> {
        let one = (self.targets.len() == 1).then(|| self.targets.iter().next()).flatten()?;
        (self.ids * 10 >= self.strings * 9 && self.ids > 0).then_some(one.as_str())
    }
}

/// The rows of one entity type, observed one at a time.
#[derive(Debug, Clone)]
pub struct Inference {
    entity_type: String,
    rows: u64,
    keys: BTreeMap<String, KeyStats>,
}

impl Inference {
    pub fn new(entity_type: &str) -> Self {
        Self { entity_type: entity_type.to_string(), rows: 0, keys: BTreeMap::new() }
    }

    /// Takes one row's data. `type_of_id` names the entity type of the legacy
    /// row with that id, if there is one.
    pub fn observe(&mut self, data: &Map<String, Json>, type_of_id: &dyn Fn(&str) -> Option<String>) {
        self.rows += 1;
        for (key, value) in data {
            if key == "id" {
                continue;
            }
            let stats = self.keys.entry(key.clone()).or_default();
            let mut strings = Vec::new();
            match value {
                Json::Null => continue,
                Json::Array(items) => {
                    stats.lists += 1;
                    if items.is_empty() {
                        continue;
                    }
                    for item in items {
                        if let Some(k) = kind(item) {
                            stats.items.add(k);
                        }
                        if let Json::String(s) = item {
                            strings.push(s.as_str());
                        }
                    }
                }
                other => {
                    if let Some(k) = kind(other) {
                        stats.scalars.add(k);
                    }
                    if let Json::String(s) = other {
                        strings.push(s.as_str());
                    }
                }
            }
            stats.present += 1;
            for s in strings {
                stats.strings += 1;
                if let Some(t) = type_of_id(s) {
                    stats.ids += 1;
                    stats.targets.insert(t);
                }
            }
        }
    }

    /// How many rows were observed.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The schema file's text: valid for `marain check`, with a comment for
    /// each key that could not become a field and each kind of value that will
    /// not fit the field chosen.
    pub fn schema_yaml(&self) -> String {
        let id = entity_id(&self.entity_type);
        let mut out = format!(
            "# Inferred by `marain legacy infer` from {} legacy row(s) of entity type `{}`.\n# Check every field before applying: types, `required`, references.\n",
            self.rows,
            one_line(&self.entity_type)
        );
        if id != self.entity_type {
            out.push_str(&format!("# The entity type is not an identifier; the entity is `{id}`.\n"));
        }
        out.push_str(&format!("id: {id}\nname: {}\nfields:\n", display_name(&id)));
        let mut fields = 0;
        for (key, stats) in &self.keys {
            if let Some(problem) = field_id_problem(key) {
                out.push_str(&format!("  # key `{}` is left out: as a field id it {problem}\n", one_line(key)));
                continue;
            }
            let multi = stats.lists > 0;
            let kinds = if multi { &stats.items } else { &stats.scalars };
            let reference = stats.reference();
            let Some((field_type, misfits)) = kinds.field_type(reference) else {
                let why = if kinds.counts.contains_key(&Kind::Object) {
                    "it holds JSON objects"
                } else {
                    "it is always empty"
                };
                out.push_str(&format!("  # key `{key}` is left out: {why}, which no field type takes (run with --keep-unmapped to keep it)\n"));
                continue;
            };
            let scalars_in_lists = if multi { stats.scalars.counts.values().sum::<u64>() } else { 0 };
            if misfits + scalars_in_lists > 0 {
                out.push_str(&format!(
                    "  # {} value(s) of `{key}` are of another kind and will not fit; `marain legacy plan` lists them\n",
                    misfits + scalars_in_lists
                ));
            }
            out.push_str(&format!("  - id: {key}\n    type: {}\n", field_type.as_str()));
            if stats.present == self.rows && self.rows > 0 {
                out.push_str("    required: true\n");
            }
            if multi {
                out.push_str("    cardinality: -1\n");
            }
            if let (FieldType::EntityReference, Some(target)) = (field_type, reference) {
                out.push_str(&format!("    target_entity: {}\n", entity_id(target)));
                if stats.ids < stats.strings {
                    out.push_str(&format!(
                        "    # {} value(s) are no row's id; `marain legacy run` leaves those rows where they are\n",
                        stats.strings - stats.ids
                    ));
                }
            }
            fields += 1;
        }
        if fields == 0 {
            out.push_str("  # no key of the data could become a field; this one is a placeholder\n  - id: title\n    type: text\n");
        }
        out
    }
}

/// Why `key` cannot be a field id, if it cannot.
fn field_id_problem(key: &str) -> Option<String> {
    if RESERVED_FIELD_IDS.contains(&key) {
        return Some("is reserved (every table has it)".into());
    }
    identifier_problem(key).map(|p| p.replace(&format!("`{key}` "), ""))
}

/// An entity id for a legacy entity type: the type itself when it is an
/// identifier, otherwise lower-cased with every other character an `_`.
pub fn entity_id(entity_type: &str) -> String {
    if identifier_problem(entity_type).is_none() && !entity_type.contains("__") {
        return entity_type.to_string();
    }
    let mut id: String =
        entity_type.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    while id.contains("__") {
        id = id.replace("__", "_");
    }
    let id = id.trim_matches('_');
    match id.chars().next() {
        Some(c) if c.is_ascii_lowercase() => id.chars().take(48).collect(),
        _ => format!("type_{}", id.chars().take(40).collect::<String>()),
    }
}

fn display_name(id: &str) -> String {
    let spaced = id.replace('_', " ");
    let mut chars = spaced.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::parse_entity_schema;
    use serde_json::json;

    fn infer(rows: &[Json]) -> String {
        let ids = |id: &str| id.starts_with("u").then(|| "user".to_string());
        let mut inference = Inference::new("article");
        for row in rows {
            inference.observe(row.as_object().unwrap(), &ids);
        }
        inference.schema_yaml()
    }

    #[test]
    fn types_required_lists_and_references_come_from_the_values() {
        let text = infer(&[
            json!({"title": "A", "views": 1, "score": 1, "live": true, "at": "2026-01-01T00:00:00Z", "tags": ["x"], "author": "u1", "meta": {"a": 1}}),
            json!({"title": "B", "views": 2, "score": 0.5, "tags": [], "author": "u2", "Bad Key": 1}),
        ]);
        let e = parse_entity_schema("schemas/article.schema.yaml", &text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        let field = |id: &str| e.field(id).unwrap_or_else(|| panic!("no {id} in\n{text}"));
        assert_eq!(field("title").field_type, FieldType::Text);
        assert!(field("title").required);
        assert_eq!(field("views").field_type, FieldType::Integer);
        assert_eq!(field("score").field_type, FieldType::Float);
        assert_eq!(field("live").field_type, FieldType::Boolean);
        assert!(!field("live").required);
        assert_eq!(field("at").field_type, FieldType::Datetime);
        assert!(!field("tags").cardinality.is_single());
        assert_eq!(field("author").field_type, FieldType::EntityReference);
        assert_eq!(field("author").target_entity.as_deref(), Some("user"));
        assert!(e.field("meta").is_none() && text.contains("`meta` is left out: it holds JSON objects"), "{text}");
        assert!(text.contains("key `Bad Key` is left out"), "{text}");
    }

    #[test]
    fn values_of_another_kind_are_counted_in_a_comment() {
        let text = infer(&[json!({"n": 1}), json!({"n": 2}), json!({"n": "three"})]);
        let e = parse_entity_schema("x", &text).unwrap();
        assert_eq!(e.field("n").unwrap().field_type, FieldType::Integer);
        assert!(text.contains("1 value(s) of `n` are of another kind"), "{text}");
    }

    #[test]
    fn odd_entity_types_become_identifiers() {
        assert_eq!(entity_id("blog-post"), "blog_post");
        assert_eq!(entity_id("2024 News"), "type_2024_news");
        assert_eq!(entity_id("article"), "article");
        let mut i = Inference::new("Blog Post");
        i.observe(json!({}).as_object().unwrap(), &|_| None);
        let e = parse_entity_schema("x", &i.schema_yaml()).unwrap();
        assert_eq!(e.id, "blog_post");
    }
}
