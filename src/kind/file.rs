//! The files of a site as their kinds parse them: [`SiteFile`], one variant
//! per kind, and [`SchemaFile`], the schema kind's parsed form (the config
//! kind's is `config::ConfigFile`, the data kind's `records::DataFile`). The
//! one place the variants are spelled out; everything else asks a file for
//! what it holds, or asks its kind.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::ConfigFile;
use crate::error::FileError;
use crate::hash::sha256_hex;
use crate::model::EntitySchema;
use crate::records::DataFile;
use crate::validate::parse_entity_schema;

/// One schema file as read: its text, its hash and the entity it defines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaFile {
    /// Path relative to the site root, with `/` separators (`schemas/article.schema.yaml`).
    pub path: String,
    pub hash: String,
    pub text: String,
    pub entity: EntitySchema,
}

impl SchemaFile {
    /// Parses and validates `text` as the file at `path`.
    pub fn parse(path: &str, text: &str) -> Result<Self, Vec<FileError>> {
        let entity = parse_entity_schema(path, text)?;
        Ok(Self { path: path.to_string(), hash: sha256_hex(text.as_bytes()), text: text.to_string(), entity })
    }
}

/// A file of the site, as its kind ([`crate::kind`]) parsed it. The variants
/// are the parsed forms; what to do with each is its kind's, found by path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SiteFile {
    Schema(SchemaFile),
    Config(ConfigFile),
    /// Shared: a data file may hold thousands of records, and a batch copies
    /// the files it plans.
    Data(Arc<DataFile>),
}

impl SiteFile {
    pub fn path(&self) -> &str {
        let (path, _, _) = self.parts();
        path
    }

    pub fn hash(&self) -> &str {
        let (_, hash, _) = self.parts();
        hash
    }

    pub fn text(&self) -> &str {
        let (_, _, text) = self.parts();
        text
    }

    /// Path, hash and text: what every kind's parsed form keeps.
    fn parts(&self) -> (&str, &str, &str) {
        match self {
            SiteFile::Schema(f) => (&f.path, &f.hash, &f.text),
            SiteFile::Config(f) => (&f.path, &f.hash, &f.text),
            SiteFile::Data(f) => (&f.path, &f.hash, &f.text),
        }
    }

    /// What the file is about: the entity a schema defines or a data file
    /// fills, the config id a configuration defines.
    pub fn subject(&self) -> &str {
        match self {
            SiteFile::Schema(f) => &f.entity.id,
            SiteFile::Config(f) => &f.doc.id,
            SiteFile::Data(f) => &f.entity,
        }
    }

    pub fn entity(&self) -> Option<&EntitySchema> {
        self.schema().map(|f| &f.entity)
    }

    pub fn schema(&self) -> Option<&SchemaFile> {
        match self {
            SiteFile::Schema(f) => Some(f),
            _ => None,
        }
    }

    pub fn config(&self) -> Option<&ConfigFile> {
        match self {
            SiteFile::Config(f) => Some(f),
            _ => None,
        }
    }

    pub fn data(&self) -> Option<&DataFile> {
        match self {
            SiteFile::Data(f) => Some(f),
            _ => None,
        }
    }
}

impl From<SchemaFile> for SiteFile {
    fn from(file: SchemaFile) -> Self {
        SiteFile::Schema(file)
    }
}

impl From<ConfigFile> for SiteFile {
    fn from(file: ConfigFile) -> Self {
        SiteFile::Config(file)
    }
}

impl From<DataFile> for SiteFile {
    fn from(file: DataFile) -> Self {
        SiteFile::Data(Arc::new(file))
    }
}
