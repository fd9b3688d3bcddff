//! The entity-schema model that every later stage works on.

use serde::{Deserialize, Serialize};

/// Columns every content table has; fields may not reuse these ids.
pub const RESERVED_FIELD_IDS: [&str; 3] = ["id", "created_at", "updated_at"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntitySchema {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// Accepted and kept, not yet acted on (no revision table).
    pub versioned: Option<bool>,
    pub recursive: Option<bool>,
    pub cacheable: Option<bool>,
    /// Rename hint (an extension of this project): the table of entity
    /// `renamed_from` is renamed, its rows kept, when that entity is gone.
    pub renamed_from: Option<String>,
    pub fields: Vec<Field>,
}

impl EntitySchema {
    pub fn table(&self) -> String {
        table_name(&self.id)
    }

    pub fn field(&self, id: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.id == id)
    }
}

/// `content_<entity>`: the typed table holding an entity's rows.
pub fn table_name(entity: &str) -> String {
    format!("content_{entity}")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub id: String,
    pub field_type: FieldType,
    pub required: bool,
    pub label: Option<String>,
    pub description: Option<String>,
    pub cardinality: Cardinality,
    pub target_entity: Option<String>,
    pub unique: bool,
    pub indexed: bool,
    pub default: Option<Literal>,
    pub renamed_from: Option<String>,
    pub values: Option<Vec<String>>,
}

impl Field {
    /// The column this field occupies in the entity table; `None` for multi-valued
    /// fields, which live in a child table.
    pub fn column(&self) -> Option<String> {
        if !self.cardinality.is_single() {
            return None;
        }
        Some(match self.field_type {
            FieldType::EntityReference => format!("{}_id", self.id),
            _ => self.id.clone(),
        })
    }

    /// True when the two fields differ only in label/description.
    pub fn same_storage(&self, other: &Field) -> bool {
        let strip = |f: &Field| Field { label: None, description: None, renamed_from: None, ..f.clone() };
        strip(self) == strip(other)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    LongText,
    RichText,
    Slug,
    Integer,
    Float,
    Boolean,
    Datetime,
    EntityReference,
}

impl FieldType {
    pub const ALL: [(&'static str, FieldType); 9] = [
        ("text", FieldType::Text),
        ("long_text", FieldType::LongText),
        ("rich_text", FieldType::RichText),
        ("slug", FieldType::Slug),
        ("integer", FieldType::Integer),
        ("float", FieldType::Float),
        ("boolean", FieldType::Boolean),
        ("datetime", FieldType::Datetime),
        ("entity_reference", FieldType::EntityReference),
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, t)| *t)
    }

    pub fn as_str(self) -> &'static str {
        Self::ALL.iter().find(|(_, t)| *t == self).map(|(n, _)| *n).unwrap_or("text")
    }
}

/// How many values a field holds: one (a column) or several (a child table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cardinality {
    One,
    AtMost(u32),
    Unbounded,
}

impl Cardinality {
    pub fn is_single(self) -> bool {
        self == Cardinality::One
    }
}

/// A literal default value, already checked against the field's type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Literal {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}
