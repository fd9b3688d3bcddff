//! The only module that knows serde_yaml: swapping the YAML parser is a change here.
//!
//! It turns text into raw documents (every key the format allows, unknown keys
//! rejected) and maps parser errors to [`FileError`]s with a position.

use serde::Deserialize;

use crate::error::FileError;

pub mod expansion;
pub mod outline;

/// Files larger than this are refused before parsing: nothing a person writes by
/// hand is this big, and the limit bounds the parser's memory.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEntity {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub versioned: Option<bool>,
    pub recursive: Option<bool>,
    pub cacheable: Option<bool>,
    pub renamed_from: Option<String>,
    pub fields: Vec<RawField>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    pub id: String,
    #[serde(rename = "type")]
    pub field_type: String,
    pub required: Option<bool>,
    pub label: Option<String>,
    pub description: Option<String>,
    pub cardinality: Option<i64>,
    pub target_entity: Option<String>,
    pub unique: Option<bool>,
    pub indexed: Option<bool>,
    pub default: Option<RawScalar>,
    pub renamed_from: Option<String>,
    pub values: Option<Vec<String>>,
}

/// A configuration document (`config/*.yaml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub provider: Option<String>,
    pub version: Option<RawScalar>,
    /// Any nested mapping; kept as JSON values so nothing else needs serde_yaml.
    pub values: Option<serde_json::Value>,
}

/// A reference-data document (`data/<entity>/*.yaml`): records of one entity.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawData {
    /// Each record a mapping of field id → value, kept as JSON values (checked
    /// against the entity's schema later, the way the content API checks them).
    pub records: Vec<serde_json::Value>,
}

/// A scalar as YAML typed it, before it is checked against a field type.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum RawScalar {
    Bool(bool),
    Integer(i64),
    Float(f64),
    Text(String),
}

/// Parses an entity-schema document.
pub fn parse_entity(file: &str, text: &str) -> Result<RawEntity, FileError> {
    parse_document(file, text)
}

/// Parses a configuration document.
pub fn parse_config(file: &str, text: &str) -> Result<RawConfig, FileError> {
    parse_document(file, text)
}

/// Parses a reference-data document.
pub fn parse_data(file: &str, text: &str) -> Result<RawData, FileError> {
    parse_document(file, text)
}

/// Size limit first, so an oversized file is never handed to the parser.
fn parse_document<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, FileError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(FileError::new(
            file,
            (1, 1),
            None,
            format!("file is {} bytes, over the {MAX_FILE_BYTES}-byte limit", text.len()),
        ));
    }
    // Before loading, which would make every copy an alias stands for.
    if let Err(over) = expansion::check(text) {
        return Err(FileError::new(file, over.at, None, over.message));
    }
    serde_yaml::from_str(text).map_err(|e| to_file_error(file, &e))
}

fn to_file_error(file: &str, e: &serde_yaml::Error) -> FileError {
    let pos = e.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
    // serde_yaml prefixes the path inside the document ("fields[1]: ..."); keep it
    // as the field and strip the position suffix it appends to the message.
    let raw = e.to_string();
    let msg = raw.split(" at line ").next().unwrap_or(&raw).to_string();
    let (field, message) = match msg.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => (Some(path.to_string()), rest.to_string()),
        _ => (None, msg),
    };
    FileError::new(file, pos, field, with_suggestion(message))
}

/// serde says "unknown field `nme`, expected one of `id`, `name`, …": put the
/// close one first, "unknown field `nme` — did you mean `name`?", keeping the list.
fn with_suggestion(message: String) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else { return message };
    let Some((word, tail)) = rest.split_once('`') else { return message };
    let Some(list) = tail.split_once("expected").map(|(_, list)| list) else { return message };
    let allowed: Vec<&str> = list.split('`').skip(1).step_by(2).collect();
    match crate::suggest::closest(word, allowed.iter().copied()) {
        Some(near) => format!("unknown field `{word}` — did you mean `{near}`?{tail}"),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_reported_with_position() {
        let text = "id: a\nname: A\nfields:\n  - id: t\n    type: text\n    colour: red\n";
        let err = parse_entity("schemas/a.schema.yaml", text).unwrap_err();
        assert_eq!(err.line, 6, "{err}");
        assert!(err.message.contains("unknown field `colour`"), "{err}");
        assert!(!err.message.contains("did you mean"), "nothing is close to `colour`: {err}");
        let text = "id: a\nname: A\nfields:\n  - id: t\n    tpye: text\n";
        let err = parse_entity("schemas/a.schema.yaml", text).unwrap_err();
        assert!(err.message.starts_with("unknown field `tpye` — did you mean `type`?"), "{err}");
        assert_eq!(err.field.as_deref(), Some("fields[0]"));
    }

    #[test]
    fn bad_yaml_names_line_and_column() {
        let err = parse_entity("x.yaml", "id: a\nname: [unclosed\n").unwrap_err();
        assert!(err.line >= 2, "{err}");
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let err = parse_entity("x.yaml", "id: a\nid: b\nname: A\nfields: []\n").unwrap_err();
        assert!(err.message.contains("duplicate"), "{err}");
    }

    #[test]
    fn oversized_file_is_refused_before_parsing() {
        let text = "#".repeat(MAX_FILE_BYTES + 1);
        let err = parse_entity("big.yaml", &text).unwrap_err();
        assert!(err.message.contains("limit"), "{err}");
    }
}
