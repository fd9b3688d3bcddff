//! A site: every file of every kind at one moment, and the indexes the rules that span files need.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

use serde::{Deserialize, Serialize};

use crate::config::ConfigFile;
use crate::error::FileError;
use crate::hash::{sha256_hex, sha256_parts};
use crate::locate::field_key;
use crate::model::{EntitySchema, FieldType};
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
        match self {
            SiteFile::Schema(f) => Some(&f.entity),
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

/// The environment whose `config.<id>.<env>.yaml` files apply when none is named.
pub const DEFAULT_ENV: &str = "dev";

/// The schema files and the active configuration files, keyed by path, with the
/// indexes the cross-file rules need (who defines an entity, who references
/// it, who is renamed from it, who needs a database name, who defines a
/// config). The maps are persistent (`imbl`): a copy shares everything with the
/// original, so the engine's copy per batch is O(1) and the batch's own files
/// cost O(k log n); nothing on the hot path walks the whole site.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(into = "SiteFiles", from = "SiteFiles")]
pub struct Site {
    files: OrdMap<String, Arc<SchemaFile>>,
    configs: OrdMap<String, Arc<ConfigFile>>,
    data: OrdMap<String, Arc<DataFile>>,
    index: SiteIndex,
}

/// Who needs what, by key → the paths of the files that need it.
#[derive(Debug, Clone, Default)]
struct SiteIndex {
    /// Entity id → the files defining it (more than one is an error).
    defines: OrdMap<String, OrdSet<String>>,
    /// Entity id → the files with a reference to it.
    referrers: OrdMap<String, OrdSet<String>>,
    /// Entity id → the files renamed from it.
    renamed_from: OrdMap<String, OrdSet<String>>,
    /// Table or index name → the files whose entity needs it.
    names: OrdMap<String, OrdSet<String>>,
    /// Config id → the configuration files defining it.
    configs: OrdMap<String, OrdSet<String>>,
    /// Entity id → the data files holding its records.
    data_of: OrdMap<String, OrdSet<String>>,
}

fn index_add(map: &mut OrdMap<String, OrdSet<String>>, key: &str, path: &str) {
    map.entry(key.to_string()).or_default().insert(path.to_string());
}

fn index_remove(map: &mut OrdMap<String, OrdSet<String>>, key: &str, path: &str) {
    if let Some(set) = map.get_mut(key) {
        set.remove(path);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

/// The entity ids `e`'s fields reference (itself included).
fn targets(e: &EntitySchema) -> impl Iterator<Item = &str> {
    e.fields.iter().filter_map(|f| f.target_entity.as_deref())
}

impl SiteIndex {
    fn add_schema(&mut self, f: &SchemaFile) {
        index_add(&mut self.defines, &f.entity.id, &f.path);
        for t in targets(&f.entity) {
            index_add(&mut self.referrers, t, &f.path);
        }
        if let Some(from) = &f.entity.renamed_from {
            index_add(&mut self.renamed_from, from, &f.path);
        }
        for (name, _) in crate::sql::relation_names(&f.entity) {
            index_add(&mut self.names, &name, &f.path);
        }
    }

    fn remove_schema(&mut self, f: &SchemaFile) {
        index_remove(&mut self.defines, &f.entity.id, &f.path);
        for t in targets(&f.entity) {
            index_remove(&mut self.referrers, t, &f.path);
        }
        if let Some(from) = &f.entity.renamed_from {
            index_remove(&mut self.renamed_from, from, &f.path);
        }
        for (name, _) in crate::sql::relation_names(&f.entity) {
            index_remove(&mut self.names, &name, &f.path);
        }
    }
}

/// How a site is written out: its files (the indexes are rebuilt on reading).
#[derive(Serialize, Deserialize)]
struct SiteFiles {
    schemas: Vec<SchemaFile>,
    configs: Vec<ConfigFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    data: Vec<DataFile>,
}

impl From<Site> for SiteFiles {
    fn from(site: Site) -> Self {
        SiteFiles {
            schemas: site.files().cloned().collect(),
            configs: site.configs().cloned().collect(),
            data: site.data.values().map(|f| f.as_ref().clone()).collect(),
        }
    }
}

impl From<SiteFiles> for Site {
    fn from(files: SiteFiles) -> Self {
        let mut site = Site::default();
        files.schemas.into_iter().for_each(|f| site.insert(f));
        files.configs.into_iter().for_each(|f| site.insert_file(SiteFile::Config(f)));
        files.data.into_iter().for_each(|f| site.insert_file(SiteFile::Data(Arc::new(f))));
        site
    }
}

impl PartialEq for Site {
    fn eq(&self, other: &Self) -> bool {
        self.files == other.files && self.configs == other.configs && self.data == other.data
    }
}

/// What a scoped check looks at: entity ids, files, database names, config ids.
/// Each kind's [`FileKind::check`] takes what it needs from it.
#[derive(Default)]
pub struct CheckScope<'a> {
    pub ids: BTreeSet<&'a str>,
    pub files: BTreeSet<&'a str>,
    pub names: BTreeSet<String>,
    pub config_ids: BTreeSet<&'a str>,
}

impl Site {
    pub fn configs(&self) -> impl Iterator<Item = &ConfigFile> {
        self.configs.values().map(Arc::as_ref)
    }

    /// The configuration file defining config `id` (the first by path).
    pub fn config(&self, id: &str) -> Option<&ConfigFile> {
        let path = self.index.configs.get(id)?.iter().next()?;
        self.configs.get(path).map(Arc::as_ref)
    }

    /// The file at `path`, of any kind.
    pub fn file(&self, path: &str) -> Option<SiteFile> {
        self.files
            .get(path)
            .map(|f| SiteFile::Schema(f.as_ref().clone()))
            .or_else(|| self.configs.get(path).map(|f| SiteFile::Config(f.as_ref().clone())))
            .or_else(|| self.data.get(path).map(|f| SiteFile::Data(f.clone())))
    }

    /// The subject ([`SiteFile::subject`]) of the file at `path`, without copying the file.
    pub fn subject_of(&self, path: &str) -> Option<&str> {
        self.files
            .get(path)
            .map(|f| f.entity.id.as_str())
            .or_else(|| self.configs.get(path).map(|f| f.doc.id.as_str()))
            .or_else(|| self.data.get(path).map(|f| f.entity.as_str()))
    }

    pub fn hash_of(&self, path: &str) -> Option<&str> {
        self.files
            .get(path)
            .map(|f| f.hash.as_str())
            .or_else(|| self.configs.get(path).map(|f| f.hash.as_str()))
            .or_else(|| self.data.get(path).map(|f| f.hash.as_str()))
    }

    pub fn insert_file(&mut self, file: SiteFile) {
        match file {
            SiteFile::Schema(f) => self.insert(f),
            SiteFile::Config(f) => {
                self.remove(&f.path);
                index_add(&mut self.index.configs, &f.doc.id, &f.path);
                self.configs.insert(f.path.clone(), Arc::new(f));
            }
            SiteFile::Data(f) => {
                self.remove(&f.path);
                index_add(&mut self.index.data_of, &f.entity, &f.path);
                self.data.insert(f.path.clone(), f);
            }
        }
    }

    /// Every path, of every kind.
    pub fn paths(&self) -> impl Iterator<Item = &String> {
        self.files.keys().chain(self.configs.keys()).chain(self.data.keys())
    }

    /// The data file at `path`.
    pub fn data(&self, path: &str) -> Option<&DataFile> {
        self.data.get(path).map(Arc::as_ref)
    }

    /// Every data file.
    pub fn data_files(&self) -> impl Iterator<Item = &DataFile> {
        self.data.values().map(Arc::as_ref)
    }

    /// The data files holding records of entity `id`, by path.
    pub fn data_files_of<'a>(&'a self, id: &str) -> impl Iterator<Item = &'a DataFile> + 'a {
        self.index.data_of.get(id).into_iter().flatten().filter_map(|p| self.data(p))
    }

    /// The schema files with a reference to entity `id` (itself included).
    pub fn referrers_of<'a>(&'a self, id: &str) -> impl Iterator<Item = &'a SchemaFile> + 'a {
        self.index.referrers.get(id).into_iter().flatten().filter_map(|p| self.get(p))
    }

    pub fn files(&self) -> impl Iterator<Item = &SchemaFile> {
        self.files.values().map(Arc::as_ref)
    }

    pub fn get(&self, path: &str) -> Option<&SchemaFile> {
        self.files.get(path).map(Arc::as_ref)
    }

    pub fn insert(&mut self, file: SchemaFile) {
        self.remove(&file.path);
        self.index.add_schema(&file);
        self.files.insert(file.path.clone(), Arc::new(file));
    }

    /// Removes the file at `path`, of any kind.
    pub fn remove(&mut self, path: &str) {
        if let Some(old) = self.files.remove(path) {
            self.index.remove_schema(&old);
        }
        if let Some(old) = self.configs.remove(path) {
            index_remove(&mut self.index.configs, &old.doc.id, path);
        }
        if let Some(old) = self.data.remove(path) {
            index_remove(&mut self.index.data_of, &old.entity, path);
        }
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The file that defines entity `id` (the first by path).
    pub fn entity_file(&self, id: &str) -> Option<&SchemaFile> {
        let path = self.index.defines.get(id)?.iter().next()?;
        self.get(path)
    }

    /// Hash of the whole state: what a plan is bound to.
    pub fn state_hash(&self) -> String {
        let schemas = self.files.values().flat_map(|f| [f.path.as_str(), f.hash.as_str()]);
        let configs = self.configs.values().flat_map(|f| [f.path.as_str(), f.hash.as_str()]);
        let data = self.data.values().flat_map(|f| [f.path.as_str(), f.hash.as_str()]);
        sha256_parts(schemas.chain(configs).chain(data))
    }

    /// What the applied built-in configs (`system`, `api`, `hot_reload`) set for
    /// the running server.
    pub fn live_settings(&self) -> crate::live_config::LiveSettings {
        crate::live_config::LiveSettings::from_configs(|id| self.config(id).map(|c| &c.doc.values))
    }

    /// Which keys hold secrets on this site (`system.redact_keys` and the built-in words).
    pub fn redaction(&self) -> crate::secrets::Redaction {
        self.config("system").map(|c| crate::live_config::system_redaction(&c.doc.values)).unwrap_or_default()
    }

    /// What a check of the whole site looks at (`kind::check` runs it).
    pub fn whole_scope(&self) -> CheckScope<'_> {
        CheckScope {
            ids: self.index.defines.keys().map(String::as_str).collect(),
            files: self.files.keys().chain(self.data.keys()).map(String::as_str).collect(),
            names: self.index.names.keys().cloned().collect(),
            config_ids: self.index.configs.keys().map(String::as_str).collect(),
        }
    }

    /// What a check of a site that was `before` and changed at `paths` looks
    /// at: the changed files, the entities they define or defined, the files
    /// referring to those, renamed from them or holding their records, and the
    /// database names they need. Its size depends on the change, not the site.
    pub fn scope_of_changes<'a>(
        &'a self,
        before: &'a Site,
        paths: impl IntoIterator<Item = &'a String>,
    ) -> CheckScope<'a> {
        let mut scope = CheckScope::default();
        for path in paths {
            for site in [self, before] {
                if let Some(f) = site.files.get(path) {
                    scope.ids.insert(f.entity.id.as_str());
                }
                if let Some(c) = site.configs.get(path) {
                    scope.config_ids.insert(c.doc.id.as_str());
                }
            }
            if let Some(f) = self.files.get(path) {
                scope.files.insert(path.as_str());
                scope.names.extend(crate::sql::relation_names(&f.entity).into_iter().map(|(n, _)| n));
            }
            if let Some(f) = self.data.get(path) {
                scope.files.insert(path.as_str());
                // Another data file of the entity may claim the same ids.
                scope.files.extend(self.index.data_of.get(&f.entity).into_iter().flatten().map(String::as_str));
            }
        }
        for id in scope.ids.clone() {
            for index in [&self.index.referrers, &self.index.renamed_from, &self.index.data_of] {
                scope.files.extend(index.get(id).into_iter().flatten().map(String::as_str));
            }
        }
        scope
    }

    /// The configuration rules: config ids are unique per environment.
    pub(crate) fn check_configs(&self, scope: &CheckScope) -> Vec<FileError> {
        let mut errors = Vec::new();
        for id in &scope.config_ids {
            let Some(paths) = self.index.configs.get(*id) else { continue };
            let first = paths.iter().next().expect("an index entry is never empty");
            for path in paths.iter().skip(1) {
                let c = self.configs.get(path).expect("indexed configs exist");
                errors.push(FileError::new(
                    path,
                    crate::locate::top_key(&c.text, "id"),
                    Some("id".into()),
                    format!("config id `{id}` is already defined by {first} for this environment"),
                ));
            }
        }
        errors
    }

    /// The schema rules: entity ids are unique, a rename hint names an entity
    /// no file defines any more, references name defined entities, and no two
    /// entities need one database name.
    pub(crate) fn check_schemas(&self, scope: &CheckScope) -> Vec<FileError> {
        let mut errors = Vec::new();
        for id in &scope.ids {
            let Some(paths) = self.index.defines.get(*id) else { continue };
            let first = paths.iter().next().expect("an index entry is never empty");
            for path in paths.iter().skip(1) {
                let f = self.get(path).expect("indexed files exist");
                errors.push(FileError::new(
                    path,
                    crate::locate::top_key(&f.text, "id"),
                    Some("id".into()),
                    format!("entity id `{id}` is already defined by {first}"),
                ));
            }
        }
        for f in scope.files.iter().filter_map(|p| self.get(p)) {
            if let Some(from) = &f.entity.renamed_from {
                if let Some(other) = self.index.defines.get(from).and_then(|p| p.iter().next()) {
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
            for (i, field) in f.entity.fields.iter().enumerate() {
                let Some(target) = &field.target_entity else { continue };
                if !self.index.defines.contains_key(target) {
                    errors.push(FileError::new(
                        &f.path,
                        field_key(&f.text, i, "target_entity"),
                        Some(format!("fields[{i}].target_entity")),
                        format!(
                            "field `{}` references entity `{target}`, but no file defines it (expected schemas/{target}.schema.yaml){}",
                            field.id,
                            crate::suggest::hint(target, self.index.defines.keys().map(String::as_str))
                        ),
                    ));
                }
            }
        }
        for name in &scope.names {
            errors.extend(self.name_clash(name));
        }
        errors
    }

    /// Two entities that would need the same table or index name (`a_b` with a
    /// unique field `c` and `a` with a unique field `b_c` both need
    /// `content_a_b_c_key`): the database holds one, so each file is told which
    /// name and whose it is (the engine holds back the one that changed).
    fn name_clash(&self, name: &str) -> Vec<FileError> {
        let Some(paths) = self.index.names.get(name) else { return Vec::new() };
        let needs: Vec<(&SchemaFile, Option<String>)> = paths
            .iter()
            .filter_map(|p| self.get(p))
            .map(|f| {
                let field = crate::sql::relation_names(&f.entity).into_iter().find(|(n, _)| n == name);
                (f, field.and_then(|(_, field)| field.map(str::to_string)))
            })
            .collect();
        let entities: BTreeSet<&str> = needs.iter().map(|(f, _)| f.entity.id.as_str()).collect();
        if entities.len() < 2 {
            return Vec::new();
        }
        let whose = |field: Option<&str>, id: &str| match field {
            Some(field) => format!("field `{field}` of `{id}`"),
            None => format!("entity `{id}`"),
        };
        let mut errors = Vec::new();
        for (i, (f, field)) in needs.iter().enumerate() {
            let (other, other_field) = &needs[if i == 0 { 1 } else { 0 }];
            let (pos, key) = match field.as_deref().and_then(|x| f.entity.fields.iter().position(|fl| fl.id == x)) {
                Some(i) => (field_key(&f.text, i, "id"), format!("fields[{i}].id")),
                None => (crate::locate::top_key(&f.text, "id"), "id".to_string()),
            };
            errors.push(FileError::new(
                &f.path,
                pos,
                Some(key),
                format!(
                    "{} needs the database name `{name}`, which {} in {} needs too; rename one of them",
                    whose(field.as_deref(), &f.entity.id),
                    whose(other_field.as_deref(), &other.entity.id),
                    other.path
                ),
            ));
        }
        errors
    }

    /// Entity ids ordered so that every referenced entity comes before the ones
    /// referring to it. Self references and cycles are legal; members of a cycle
    /// keep their id order.
    pub fn dependency_order(&self) -> Vec<String> {
        self.dependency_order_of(self.index.defines.keys().map(String::as_str))
    }

    /// The entities `ids` in dependency order among themselves (references to
    /// entities outside `ids` are already satisfied): what a batch that changes
    /// only these needs, at a cost that depends on them alone.
    pub fn dependency_order_of<'a>(&'a self, ids: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let ids: BTreeSet<&str> = ids.into_iter().collect();
        let deps: BTreeMap<&str, BTreeSet<&str>> = ids
            .iter()
            .filter_map(|id| self.entity_file(id))
            .map(|f| {
                let targets = f
                    .entity
                    .fields
                    .iter()
                    .filter(|fl| fl.field_type == FieldType::EntityReference)
                    .filter_map(|fl| fl.target_entity.as_deref())
                    .filter(|t| *t != f.entity.id && ids.contains(t))
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
