//! Raw document → [`EntitySchema`], enforcing every single-file rule of
//! `docs/schema-format.md`.
//! Cross-file rules (duplicate ids, dangling references) live in [`crate::site`].

use std::collections::HashSet;

use crate::error::FileError;
use crate::locate::{field_key, top_key};
use crate::model::{Cardinality, EntitySchema, Field, FieldType, Literal, RESERVED_FIELD_IDS};
use crate::yaml::{self, RawField, RawScalar};

const MAX_IDENT: usize = 48;

/// Checks an identifier against `^[a-z][a-z0-9_]{0,47}$`, returning why it fails.
pub fn identifier_problem(id: &str) -> Option<String> {
    let mut chars = id.chars();
    match chars.next() {
        None => return Some("must not be empty".into()),
        Some(c) if !c.is_ascii_lowercase() => {
            return Some(format!("`{id}` must start with a lower-case letter a-z"));
        }
        _ => {}
    }
    if id.len() > MAX_IDENT {
        return Some(format!("`{id}` is {} characters, over the {MAX_IDENT}-character limit", id.len()));
    }
    if let Some(bad) = id.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')) {
        return Some(format!("`{id}` contains `{bad}`; only a-z, 0-9 and _ are allowed"));
    }
    None
}

/// Parses and validates one entity-schema file, reporting every problem found.
pub fn parse_entity_schema(file: &str, text: &str) -> Result<EntitySchema, Vec<FileError>> {
    let raw = yaml::parse_entity(file, text).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let mut err = |pos, field: String, msg: String| errors.push(FileError::new(file, pos, Some(field), msg));

    if let Some(p) = identifier_problem(&raw.id) {
        err(top_key(text, "id"), "id".into(), format!("entity id {p}"));
    } else if raw.id.contains("__") {
        err(
            top_key(text, "id"),
            "id".into(),
            format!("entity id `{}` must not contain `__` (reserved for child tables)", raw.id),
        );
    }
    if let Some(from) = &raw.renamed_from {
        if let Some(p) = identifier_problem(from) {
            err(top_key(text, "renamed_from"), "renamed_from".into(), format!("renamed_from {p}"));
        } else if *from == raw.id {
            err(top_key(text, "renamed_from"), "renamed_from".into(), "renamed_from names the entity itself".into());
        }
    }
    if raw.name.trim().is_empty() {
        err(top_key(text, "name"), "name".into(), "name must not be empty".into());
    }
    if raw.fields.is_empty() {
        err(top_key(text, "fields"), "fields".into(), "an entity needs at least one field".into());
    }

    let mut seen = HashSet::new();
    let mut fields = Vec::with_capacity(raw.fields.len());
    for (i, rf) in raw.fields.into_iter().enumerate() {
        let at = |key: &str| field_key(text, i, key);
        let path = |key: &str| format!("fields[{i}].{key}");
        if let Some(p) = identifier_problem(&rf.id) {
            err(at("id"), path("id"), format!("field id {p}"));
        } else if RESERVED_FIELD_IDS.contains(&rf.id.as_str()) {
            err(at("id"), path("id"), format!("field id `{}` is reserved (every table has it)", rf.id));
        } else if !seen.insert(rf.id.clone()) {
            err(at("id"), path("id"), format!("field id `{}` appears twice", rf.id));
        }
        match field_from_raw(rf) {
            Ok(f) => fields.push(f),
            Err((key, msg)) => err(at(key), path(key), msg),
        }
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(EntitySchema {
        id: raw.id,
        name: raw.name,
        description: raw.description,
        versioned: raw.versioned,
        recursive: raw.recursive,
        cacheable: raw.cacheable,
        renamed_from: raw.renamed_from,
        fields,
    })
}

/// One field's own rules; the error names the offending key.
fn field_from_raw(rf: RawField) -> Result<Field, (&'static str, String)> {
    let field_type = FieldType::parse(&rf.field_type).ok_or_else(|| {
        let known: Vec<&str> = FieldType::ALL.iter().map(|(n, _)| *n).collect();
        match crate::suggest::closest(&rf.field_type, known.iter().copied()) {
            Some(near) => ("type", format!("unknown type `{}` — did you mean `{near}`?", rf.field_type)),
            None => ("type", format!("unknown type `{}`; expected one of {}", rf.field_type, known.join(", "))),
        }
    })?;
    let cardinality = match rf.cardinality.unwrap_or(1) {
        1 => Cardinality::One,
        -1 => Cardinality::Unbounded,
        n if n > 1 && n <= i64::from(u32::MAX) => Cardinality::AtMost(n as u32),
        n => {
            return Err((
                "cardinality",
                format!("cardinality {n} is invalid; use 1, a number above 1, or -1 for unbounded"),
            ))
        }
    };
    match (field_type, &rf.target_entity) {
        (FieldType::EntityReference, None) => {
            return Err(("target_entity", format!("field `{}` is an entity_reference and needs target_entity", rf.id)));
        }
        (FieldType::EntityReference, Some(t)) => {
            if let Some(p) = identifier_problem(t) {
                return Err(("target_entity", format!("target_entity {p}")));
            }
        }
        (_, Some(_)) => {
            return Err((
                "target_entity",
                format!("target_entity is only allowed on entity_reference fields, not on `{}`", field_type.as_str()),
            ));
        }
        _ => {}
    }
    if let Some(from) = &rf.renamed_from {
        if let Some(p) = identifier_problem(from) {
            return Err(("renamed_from", format!("renamed_from {p}")));
        }
    }
    let unique = rf.unique.unwrap_or(false);
    if unique && !cardinality.is_single() {
        return Err(("unique", "unique is only allowed on single-valued fields".into()));
    }
    if let Some(values) = &rf.values {
        if !is_textual(field_type) {
            return Err((
                "values",
                format!("allowed values are only supported on text fields, not `{}`", field_type.as_str()),
            ));
        }
        if values.is_empty() {
            return Err(("values", "values must list at least one allowed value".into()));
        }
    }
    let default = match rf.default {
        None => None,
        Some(raw) => {
            let lit = literal_for(field_type, raw).map_err(|m| ("default", m))?;
            if let (Some(values), Literal::Text(t)) = (&rf.values, &lit) {
                if !values.contains(t) {
                    return Err(("default", format!("default `{t}` is not one of the allowed values")));
                }
            }
            Some(lit)
        }
    };
    Ok(Field {
        id: rf.id,
        field_type,
        required: rf.required.unwrap_or(false),
        label: rf.label,
        description: rf.description,
        cardinality,
        target_entity: rf.target_entity,
        unique,
        indexed: rf.indexed.unwrap_or(false),
        default,
        renamed_from: rf.renamed_from,
        values: rf.values,
    })
}

fn is_textual(t: FieldType) -> bool {
    matches!(t, FieldType::Text | FieldType::LongText | FieldType::RichText | FieldType::Slug)
}

fn literal_for(t: FieldType, raw: RawScalar) -> Result<Literal, String> {
    match (t, raw) {
        (FieldType::Integer, RawScalar::Integer(i)) => Ok(Literal::Integer(i)),
        (FieldType::Float, RawScalar::Integer(i)) => Ok(Literal::Float(i as f64)),
        (FieldType::Float, RawScalar::Float(f)) if f.is_finite() => Ok(Literal::Float(f)),
        (FieldType::Boolean, RawScalar::Bool(b)) => Ok(Literal::Bool(b)),
        (t, RawScalar::Text(s)) if is_textual(t) || t == FieldType::Datetime => Ok(Literal::Text(s)),
        (FieldType::EntityReference, _) => Err("entity_reference fields cannot have a default".into()),
        (t, raw) => Err(format!("default {raw:?} does not fit type `{}`", t.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        parse_entity_schema("schemas/x.schema.yaml", text).unwrap_err().into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn bad_identifiers_are_rejected() {
        for bad in ["../x", "drop table", "Upper", "1abc", &"a".repeat(49)] {
            let text = format!("id: a\nname: A\nfields:\n  - id: \"{bad}\"\n    type: text\n");
            let errs = errors(&text);
            assert!(errs[0].starts_with("schemas/x.schema.yaml:4:5: field id"), "{bad}: {errs:?}");
        }
    }

    #[test]
    fn unknown_type_names_line_of_type() {
        let errs = errors("id: a\nname: A\nfields:\n  - id: t\n    type: strnig\n");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("schemas/x.schema.yaml:5:5: unknown type `strnig`"), "{errs:?}");
        assert!(errs[0].contains("expected one of text"), "nothing is close: the list: {errs:?}");
        let errs = errors("id: a\nname: A\nfields:\n  - id: t\n    type: txt\n");
        assert!(errs[0].ends_with("unknown type `txt` — did you mean `text`?"), "{errs:?}");
    }

    #[test]
    fn reserved_and_duplicate_field_ids() {
        let errs = errors("id: a\nname: A\nfields:\n  - id: created_at\n    type: text\n  - id: t\n    type: text\n  - id: t\n    type: text\n");
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].contains("reserved"));
        assert!(errs[1].starts_with("schemas/x.schema.yaml:8:5:") && errs[1].contains("twice"), "{errs:?}");
    }

    #[test]
    fn reference_needs_target() {
        let errs = errors("id: a\nname: A\nfields:\n  - id: owner\n    type: entity_reference\n");
        assert!(errs[0].contains("needs target_entity"), "{errs:?}");
    }

    #[test]
    fn default_is_type_checked() {
        let errs = errors("id: a\nname: A\nfields:\n  - id: n\n    type: integer\n    default: lots\n");
        assert!(errs[0].starts_with("schemas/x.schema.yaml:6:5:") && errs[0].contains("does not fit"), "{errs:?}");
    }

    #[test]
    fn extensions_parse() {
        let e = parse_entity_schema(
            "x",
            "id: a\nname: A\nfields:\n  - id: status\n    type: text\n    default: draft\n    values: [draft, live]\n    indexed: true\n",
        )
        .unwrap();
        assert_eq!(e.fields[0].default, Some(Literal::Text("draft".into())));
        assert!(e.fields[0].indexed);
    }
}
