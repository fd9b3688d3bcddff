//! A site: every file of every kind at one moment, and the indexes the rules that span files need.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

use serde::{Deserialize, Serialize};

use crate::config::ConfigFile;

use crate::hash::sha256_parts;
use crate::model::{EntitySchema, FieldType};
use crate::records::DataFile;

pub use crate::kind::file::{SchemaFile, SiteFile};

/// The environment whose `config.<id>.<env>.yaml` files apply when none is named.
pub const DEFAULT_ENV: &str = "dev";

/// Every file of the site for the active environment, of any kind, keyed by
/// path, with the indexes the cross-file rules need (who defines an entity,
/// who references it, who is renamed from it, who needs a database name, who
/// defines a config, who holds an entity's records). The maps are persistent
/// (`imbl`): a copy shares everything with the original, so the engine's copy
/// per batch is O(1) and the batch's own files cost O(k log n); nothing on the
/// hot path walks the whole site. Methods named for one kind (`schema_files`,
/// `configs`, `data_files`) are views; the rest cover every kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(into = "SiteFiles", from = "SiteFiles")]
pub struct Site {
    files: OrdMap<String, Arc<SiteFile>>,
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
            schemas: site.schema_files().cloned().collect(),
            configs: site.configs().cloned().collect(),
            data: site.data_files().cloned().collect(),
        }
    }
}

impl From<SiteFiles> for Site {
    fn from(files: SiteFiles) -> Self {
        let mut site = Site::default();
        files.schemas.into_iter().for_each(|f| site.insert_file(f.into()));
        files.configs.into_iter().for_each(|f| site.insert_file(f.into()));
        files.data.into_iter().for_each(|f| site.insert_file(f.into()));
        site
    }
}

impl PartialEq for Site {
    fn eq(&self, other: &Self) -> bool {
        self.files == other.files
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
    /// The configuration files only (a view by kind).
    pub fn configs(&self) -> impl Iterator<Item = &ConfigFile> {
        self.files.values().filter_map(|f| f.config())
    }

    /// The configuration file defining config `id` (the first by path).
    pub fn config(&self, id: &str) -> Option<&ConfigFile> {
        let path = self.index.configs.get(id)?.iter().next()?;
        self.files.get(path)?.config()
    }

    /// The file at `path`, of any kind.
    pub fn file(&self, path: &str) -> Option<SiteFile> {
        self.files.get(path).map(|f| f.as_ref().clone())
    }

    /// The subject ([`SiteFile::subject`]) of the file at `path`, without copying the file.
    pub fn subject_of(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(|f| f.subject())
    }

    pub fn hash_of(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(|f| f.hash())
    }

    /// Puts `file` in place, of any kind, replacing what was at its path.
    pub fn insert_file(&mut self, file: SiteFile) {
        let path = file.path().to_string();
        self.remove(&path);
        if let Some(f) = file.schema() {
            self.index.add_schema(f);
        }
        if let Some(c) = file.config() {
            index_add(&mut self.index.configs, &c.doc.id, &path);
        }
        if let Some(d) = file.data() {
            index_add(&mut self.index.data_of, &d.entity, &path);
        }
        self.files.insert(path, Arc::new(file));
    }

    /// Every path, of every kind.
    pub fn paths(&self) -> impl Iterator<Item = &String> {
        self.files.keys()
    }

    /// How many files the site has, of every kind.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether the site has no file of any kind.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The data file at `path`.
    pub fn data(&self, path: &str) -> Option<&DataFile> {
        self.files.get(path)?.data()
    }

    /// The data files only (a view by kind).
    pub fn data_files(&self) -> impl Iterator<Item = &DataFile> {
        self.files.values().filter_map(|f| f.data())
    }

    /// The data files holding records of entity `id`, by path.
    pub fn data_files_of<'a>(&'a self, id: &str) -> impl Iterator<Item = &'a DataFile> + 'a {
        self.index.data_of.get(id).into_iter().flatten().filter_map(|p| self.data(p))
    }

    /// The schema files with a reference to entity `id` (itself included).
    pub fn referrers_of<'a>(&'a self, id: &str) -> impl Iterator<Item = &'a SchemaFile> + 'a {
        self.index.referrers.get(id).into_iter().flatten().filter_map(|p| self.schema_file(p))
    }

    /// The schema files only (a view by kind; [`Site::paths`] lists every file).
    pub fn schema_files(&self) -> impl Iterator<Item = &SchemaFile> {
        self.files.values().filter_map(|f| f.schema())
    }

    /// The schema file at `path`, if that path holds one.
    pub fn schema_file(&self, path: &str) -> Option<&SchemaFile> {
        self.files.get(path)?.schema()
    }

    /// Puts a schema file in place (a view by kind of [`Site::insert_file`]).
    pub fn insert_schema(&mut self, file: SchemaFile) {
        self.insert_file(file.into());
    }

    /// Removes the file at `path`, of any kind.
    pub fn remove(&mut self, path: &str) {
        let Some(old) = self.files.remove(path) else { return };
        if let Some(f) = old.schema() {
            self.index.remove_schema(f);
        }
        if let Some(c) = old.config() {
            index_remove(&mut self.index.configs, &c.doc.id, path);
        }
        if let Some(d) = old.data() {
            index_remove(&mut self.index.data_of, &d.entity, path);
        }
    }

    /// How many schema files the site has (a view by kind of [`Site::len`]).
    pub fn schema_count(&self) -> usize {
        self.index.defines.values().map(|paths| paths.len()).sum()
    }

    /// The file that defines entity `id` (the first by path).
    pub fn entity_file(&self, id: &str) -> Option<&SchemaFile> {
        let path = self.index.defines.get(id)?.iter().next()?;
        self.schema_file(path)
    }

    /// Hash of the whole state: what a plan is bound to.
    pub fn state_hash(&self) -> String {
        // Schemas, then configs, then data: the order the hash has always had.
        let schemas = self.schema_files().flat_map(|f| [f.path.as_str(), f.hash.as_str()]);
        let configs = self.configs().flat_map(|f| [f.path.as_str(), f.hash.as_str()]);
        let data = self.data_files().flat_map(|f| [f.path.as_str(), f.hash.as_str()]);
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
            files: self.files.iter().filter(|(_, f)| f.config().is_none()).map(|(p, _)| p.as_str()).collect(),
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
                if let Some(f) = site.schema_file(path) {
                    scope.ids.insert(f.entity.id.as_str());
                }
                if let Some(c) = site.files.get(path).and_then(|f| f.config()) {
                    scope.config_ids.insert(c.doc.id.as_str());
                }
            }
            if let Some(f) = self.schema_file(path) {
                scope.files.insert(path.as_str());
                scope.names.extend(crate::sql::relation_names(&f.entity).into_iter().map(|(n, _)| n));
            }
            if let Some(f) = self.data(path) {
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

    /// The files defining entity `id`, by path (more than one is an error).
    pub fn definers_of<'a>(&'a self, id: &str) -> impl Iterator<Item = &'a String> + 'a {
        self.index.defines.get(id).into_iter().flatten()
    }

    /// Every entity id some file defines.
    pub fn defined_ids(&self) -> impl Iterator<Item = &str> {
        self.index.defines.keys().map(String::as_str)
    }

    /// The configuration files defining config `id`, by path (more than one
    /// for an environment is an error).
    pub fn config_files_of<'a>(&'a self, id: &str) -> impl Iterator<Item = &'a ConfigFile> + 'a {
        self.index.configs.get(id).into_iter().flatten().filter_map(|p| self.files.get(p)?.config())
    }

    /// The schema files whose entity needs the table or index name `name`.
    pub fn claimants_of<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a SchemaFile> + 'a {
        self.index.names.get(name).into_iter().flatten().filter_map(|p| self.schema_file(p))
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
