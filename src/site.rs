//! A site: every schema file at one moment, and the rules that span files.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::{is_config_path, ConfigFile};
use crate::error::FileError;
use crate::hash::{sha256_hex, sha256_parts};
use crate::locate::field_key;
use crate::model::{EntitySchema, FieldType};
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

/// A file of the site: an entity schema or a configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SiteFile {
    Schema(SchemaFile),
    Config(ConfigFile),
}

impl SiteFile {
    /// Parses `text` as whichever kind of file `path` names.
    pub fn parse(path: &str, text: &str) -> Result<Self, Vec<FileError>> {
        if is_schema_path(path) {
            SchemaFile::parse(path, text).map(SiteFile::Schema)
        } else if is_config_path(path) {
            ConfigFile::parse(path, text).map(SiteFile::Config)
        } else {
            Err(vec![FileError::new(path, (1, 1), None, "not a site file (schemas/*.schema.yaml or config/*.yaml)")])
        }
    }

    pub fn path(&self) -> &str {
        match self {
            SiteFile::Schema(f) => &f.path,
            SiteFile::Config(f) => &f.path,
        }
    }

    pub fn hash(&self) -> &str {
        match self {
            SiteFile::Schema(f) => &f.hash,
            SiteFile::Config(f) => &f.hash,
        }
    }

    pub fn text(&self) -> &str {
        match self {
            SiteFile::Schema(f) => &f.text,
            SiteFile::Config(f) => &f.text,
        }
    }

    /// The entity id or config id the file defines.
    pub fn subject(&self) -> &str {
        match self {
            SiteFile::Schema(f) => &f.entity.id,
            SiteFile::Config(f) => &f.doc.id,
        }
    }

    pub fn entity(&self) -> Option<&EntitySchema> {
        match self {
            SiteFile::Schema(f) => Some(&f.entity),
            SiteFile::Config(_) => None,
        }
    }

    pub fn config(&self) -> Option<&ConfigFile> {
        match self {
            SiteFile::Config(f) => Some(f),
            SiteFile::Schema(_) => None,
        }
    }
}

/// The environment whose `config.<id>.<env>.yaml` files apply when none is named.
pub const DEFAULT_ENV: &str = "dev";

/// Is `path` a file the site is made of?
pub fn is_site_path(path: &str) -> bool {
    is_schema_path(path) || is_config_path(path)
}

/// Is `path` (relative, `/`-separated) an entity-schema file?
pub fn is_schema_path(path: &str) -> bool {
    path.starts_with("schemas/")
        && path.ends_with(".schema.yaml")
        && !path.rsplit('/').next().unwrap_or("").starts_with('.')
}

/// The schema files and the active configuration files, keyed by path. Files are
/// shared between copies: the engine takes a new copy per change, and a site of
/// thousands of files must not be deep-copied on the hot path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Site {
    files: BTreeMap<String, Arc<SchemaFile>>,
    configs: BTreeMap<String, Arc<ConfigFile>>,
}

impl Site {
    pub fn configs(&self) -> impl Iterator<Item = &ConfigFile> {
        self.configs.values().map(Arc::as_ref)
    }

    pub fn config(&self, id: &str) -> Option<&ConfigFile> {
        self.configs.values().map(Arc::as_ref).find(|c| c.doc.id == id)
    }

    /// Either kind of file at `path`.
    pub fn file(&self, path: &str) -> Option<SiteFile> {
        self.files
            .get(path)
            .map(|f| SiteFile::Schema(f.as_ref().clone()))
            .or_else(|| self.configs.get(path).map(|f| SiteFile::Config(f.as_ref().clone())))
    }

    /// The entity or config id of the file at `path`, without copying the file.
    pub fn subject_of(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(|f| f.entity.id.as_str()).or_else(|| self.configs.get(path).map(|f| f.doc.id.as_str()))
    }

    pub fn hash_of(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(|f| f.hash.as_str()).or_else(|| self.configs.get(path).map(|f| f.hash.as_str()))
    }

    pub fn insert_file(&mut self, file: SiteFile) {
        match file {
            SiteFile::Schema(f) => self.insert(f),
            SiteFile::Config(f) => {
                self.configs.insert(f.path.clone(), Arc::new(f));
            }
        }
    }

    /// Every path, of both kinds.
    pub fn paths(&self) -> impl Iterator<Item = &String> {
        self.files.keys().chain(self.configs.keys())
    }

    pub fn files(&self) -> impl Iterator<Item = &SchemaFile> {
        self.files.values().map(Arc::as_ref)
    }

    pub fn get(&self, path: &str) -> Option<&SchemaFile> {
        self.files.get(path).map(Arc::as_ref)
    }

    pub fn insert(&mut self, file: SchemaFile) {
        self.files.insert(file.path.clone(), Arc::new(file));
    }

    /// Removes the file at `path`, of either kind.
    pub fn remove(&mut self, path: &str) {
        self.files.remove(path);
        self.configs.remove(path);
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The file that defines entity `id`.
    pub fn entity_file(&self, id: &str) -> Option<&SchemaFile> {
        self.files.values().map(Arc::as_ref).find(|f| f.entity.id == id)
    }

    /// Hash of the whole state: what a plan is bound to.
    pub fn state_hash(&self) -> String {
        let schemas = self.files.values().flat_map(|f| [f.path.as_str(), f.hash.as_str()]);
        let configs = self.configs.values().flat_map(|f| [f.path.as_str(), f.hash.as_str()]);
        sha256_parts(schemas.chain(configs))
    }

    /// Rules that span files: entity ids are unique, and every reference names an
    /// entity some file defines. Errors are reported against the referencing file.
    /// What the applied built-in configs (`system`, `api`, `hot_reload`) set for
    /// the running server.
    pub fn live_settings(&self) -> crate::live_config::LiveSettings {
        crate::live_config::LiveSettings::from_configs(|id| self.config(id).map(|c| &c.doc.values))
    }

    /// Which keys hold secrets on this site (`system.redact_keys` and the built-in words).
    pub fn redaction(&self) -> crate::secrets::Redaction {
        self.config("system").map(|c| crate::live_config::system_redaction(&c.doc.values)).unwrap_or_default()
    }

    pub fn check(&self) -> Vec<FileError> {
        let mut errors = Vec::new();
        let mut owners: BTreeMap<&str, &str> = BTreeMap::new();
        for f in self.files.values() {
            if let Some(first) = owners.insert(&f.entity.id, &f.path) {
                errors.push(FileError::new(
                    &f.path,
                    crate::locate::top_key(&f.text, "id"),
                    Some("id".into()),
                    format!("entity id `{}` is already defined by {first}", f.entity.id),
                ));
            }
        }
        let mut config_owners: BTreeMap<&str, &str> = BTreeMap::new();
        for c in self.configs.values() {
            if let Some(first) = config_owners.insert(&c.doc.id, &c.path) {
                errors.push(FileError::new(
                    &c.path,
                    crate::locate::top_key(&c.text, "id"),
                    Some("id".into()),
                    format!("config id `{}` is already defined by {first} for this environment", c.doc.id),
                ));
            }
        }
        for f in self.files.values() {
            let Some(from) = &f.entity.renamed_from else { continue };
            if let Some(other) = owners.get(from.as_str()) {
                errors.push(FileError::new(
                    &f.path,
                    crate::locate::top_key(&f.text, "renamed_from"),
                    Some("renamed_from".into()),
                    format!(
                        "`{}` is renamed_from `{from}`, but {other} still defines `{from}`; delete that file or drop the hint",
                        f.entity.id
                    ),
                ));
            }
        }
        errors.extend(self.name_clashes());
        for f in self.files.values() {
            for (i, field) in f.entity.fields.iter().enumerate() {
                let Some(target) = &field.target_entity else { continue };
                if !owners.contains_key(target.as_str()) {
                    errors.push(FileError::new(
                        &f.path,
                        field_key(&f.text, i, "target_entity"),
                        Some(format!("fields[{i}].target_entity")),
                        format!(
                            "field `{}` references entity `{target}`, but no file defines it (expected schemas/{target}.schema.yaml)",
                            field.id
                        ),
                    ));
                }
            }
        }
        errors
    }

    /// Two entities that would need the same table or index name (`a_b` with a
    /// unique field `c` and `a` with a unique field `b_c` both need
    /// `content_a_b_c_key`): the database holds one, so each file is told which
    /// name and whose it is (the engine holds back the one that changed).
    fn name_clashes(&self) -> Vec<FileError> {
        let mut owners: BTreeMap<String, Vec<(&SchemaFile, Option<&str>)>> = BTreeMap::new();
        for f in self.files.values() {
            for (name, field) in crate::sql::relation_names(&f.entity) {
                owners.entry(name).or_default().push((f, field));
            }
        }
        let whose = |field: Option<&str>, id: &str| match field {
            Some(field) => format!("field `{field}` of `{id}`"),
            None => format!("entity `{id}`"),
        };
        let mut errors = Vec::new();
        for (name, needs) in owners.iter().filter(|(_, needs)| needs.len() > 1) {
            for (i, (f, field)) in needs.iter().enumerate() {
                let (other, other_field) = needs[if i == 0 { 1 } else { 0 }];
                let (pos, key) = match field.and_then(|x| f.entity.fields.iter().position(|fl| fl.id == x)) {
                    Some(i) => (field_key(&f.text, i, "id"), format!("fields[{i}].id")),
                    None => (crate::locate::top_key(&f.text, "id"), "id".to_string()),
                };
                errors.push(FileError::new(
                    &f.path,
                    pos,
                    Some(key),
                    format!(
                        "{} needs the database name `{name}`, which {} in {} needs too; rename one of them",
                        whose(*field, &f.entity.id),
                        whose(other_field, &other.entity.id),
                        other.path
                    ),
                ));
            }
        }
        errors
    }

    /// Entity ids ordered so that every referenced entity comes before the ones
    /// referring to it. Self references and cycles are legal; members of a cycle
    /// keep their id order.
    pub fn dependency_order(&self) -> Vec<String> {
        let deps: BTreeMap<&str, BTreeSet<&str>> = self
            .files
            .values()
            .map(|f| {
                let targets = f
                    .entity
                    .fields
                    .iter()
                    .filter(|fl| fl.field_type == FieldType::EntityReference)
                    .filter_map(|fl| fl.target_entity.as_deref())
                    .filter(|t| *t != f.entity.id)
                    .collect();
                (f.entity.id.as_str(), targets)
            })
            .collect();
        // Kahn's algorithm by levels: each round releases, in id order, every
        // entity whose references are all released (one pass over the edges in
        // all, not one pass over the site per entity as a chain would need).
        let mut waiting_on: BTreeMap<&str, usize> = BTreeMap::new();
        let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (id, ds) in &deps {
            let known: Vec<&str> = ds.iter().copied().filter(|d| deps.contains_key(d)).collect();
            waiting_on.insert(id, known.len());
            for d in known {
                dependents.entry(d).or_default().push(id);
            }
        }
        let mut remaining: BTreeSet<&str> = deps.keys().copied().collect();
        let mut ready: BTreeSet<&str> = waiting_on.iter().filter(|(_, n)| **n == 0).map(|(id, _)| *id).collect();
        let mut order = Vec::with_capacity(deps.len());
        while !remaining.is_empty() {
            if ready.is_empty() {
                // A cycle: release the smallest remaining id to break it.
                ready.insert(*remaining.first().expect("remaining entity"));
            }
            let mut next = BTreeSet::new();
            for id in &ready {
                remaining.remove(id);
                order.push(id.to_string());
            }
            for id in &ready {
                for r in dependents.get(id).into_iter().flatten() {
                    let n = waiting_on.get_mut(r).expect("every dependent waits");
                    *n = n.saturating_sub(1);
                    if *n == 0 && remaining.contains(r) {
                        next.insert(*r);
                    }
                }
            }
            ready = next;
        }
        order
    }

    /// Builds a site from files for the default environment, returning it with
    /// the problems of the files that had to be left out.
    pub fn from_texts<'a>(texts: impl IntoIterator<Item = (&'a str, &'a str)>) -> (Site, Vec<FileError>) {
        Self::from_texts_for(DEFAULT_ENV, texts)
    }

    /// Builds a site for environment `env`: configuration files of other
    /// environments are checked but left out.
    pub fn from_texts_for<'a>(
        env: &str,
        texts: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> (Site, Vec<FileError>) {
        let mut site = Site::default();
        let mut errors = Vec::new();
        for (path, text) in texts {
            match SiteFile::parse(path, text) {
                Ok(SiteFile::Config(c)) if !c.is_active(env) => {}
                Ok(f) => site.insert_file(f),
                Err(e) => errors.extend(e),
            }
        }
        errors.extend(site.check());
        (site, errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(id: &str, target: Option<&str>) -> (String, String) {
        let reference = target
            .map(|t| format!("  - id: ref\n    type: entity_reference\n    target_entity: {t}\n"))
            .unwrap_or_default();
        (
            format!("schemas/{id}.schema.yaml"),
            format!("id: {id}\nname: {id}\nfields:\n  - id: title\n    type: text\n{reference}"),
        )
    }

    #[test]
    fn dangling_reference_names_both_files() {
        let (p, t) = file("article", Some("writer"));
        let (_, errors) = Site::from_texts([(p.as_str(), t.as_str())]);
        assert_eq!(errors.len(), 1);
        let msg = errors[0].to_string();
        assert!(msg.starts_with("schemas/article.schema.yaml:8:5:"), "{msg}");
        assert!(msg.contains("schemas/writer.schema.yaml"), "{msg}");
    }

    #[test]
    fn duplicate_entity_ids_rejected() {
        let (_, t) = file("a", None);
        let (_, errors) =
            Site::from_texts([("schemas/a.schema.yaml", t.as_str()), ("schemas/b.schema.yaml", t.as_str())]);
        assert!(errors[0].to_string().contains("already defined by schemas/a.schema.yaml"), "{errors:?}");
    }

    #[test]
    fn dependency_order_puts_targets_first_and_tolerates_cycles() {
        let files =
            [file("article", Some("user")), file("user", Some("user")), file("a", Some("b")), file("b", Some("a"))];
        let (site, errors) = Site::from_texts(files.iter().map(|(p, t)| (p.as_str(), t.as_str())));
        assert!(errors.is_empty(), "{errors:?}");
        let order = site.dependency_order();
        let pos = |id: &str| order.iter().position(|x| x == id).unwrap();
        assert!(pos("user") < pos("article"));
        assert_eq!(order.len(), 4);
    }
}
