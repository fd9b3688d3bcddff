//! What changed between two versions of one entity schema, matched by stable ids.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::model::{EntitySchema, Field};

/// One change to one file: to an entity schema, a configuration or reference data. Matching
/// on it is exhaustive per kind, so a new kind of change cannot be silently left
/// unplanned by a planner that only handles the other kind.
///
/// Serialised as the inner change alone (`{"kind": "add_field", …}`).
// A file's change holds a handful of items, built once per plan; boxing the
// larger kind would only make every planner's `match` harder to read.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChangeItem {
    Entity(EntityChange),
    Config(ConfigChange),
    Record(crate::records::RecordChange),
}

/// One change to one entity. Field changes are matched by field id, or by
/// `renamed_from` when a field's new id replaces an old one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EntityChange {
    CreateEntity {
        entity: EntitySchema,
    },
    DropEntity {
        entity: EntitySchema,
    },
    /// The entity's id changed and it names the old id in `renamed_from`: the
    /// table (and its child tables) take the new name, rows kept. `entity` is the
    /// old version, under its old id.
    RenameEntity {
        entity: EntitySchema,
        to: String,
    },
    /// Name, description or flags edited: recorded, no DDL.
    EntityMetadata {
        entity: String,
        keys: Vec<String>,
    },
    AddField {
        entity: String,
        field: Field,
    },
    DropField {
        entity: String,
        field: Field,
    },
    RenameField {
        entity: String,
        from: Field,
        to: Field,
    },
    AlterField {
        entity: String,
        old: Field,
        new: Field,
        aspects: Vec<FieldAspect>,
    },
}

/// One change to one configuration file, by key path under `values`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConfigChange {
    ConfigCreated {
        config: String,
    },
    ConfigDeleted {
        config: String,
    },
    /// `id` or `provider` changed: the consumer changes.
    ConfigIdentity {
        config: String,
        key: String,
        old: String,
        new: String,
    },
    ConfigMetadata {
        config: String,
        keys: Vec<String>,
    },
    ConfigKeyAdded {
        config: String,
        path: String,
    },
    ConfigKeyRemoved {
        config: String,
        path: String,
    },
    ConfigValueChanged {
        config: String,
        path: String,
        old: String,
        new: String,
    },
    ConfigTypeChanged {
        config: String,
        path: String,
        old_type: String,
        new_type: String,
    },
    /// A secret is written into the file itself (added or changed) rather than
    /// named by reference (`crate::secrets`).
    ConfigSecretInFile {
        config: String,
        path: String,
    },
    ConfigMappingReplaced {
        config: String,
        path: String,
    },
}

impl ChangeItem {
    /// The entity or config the change is to.
    pub fn entity(&self) -> &str {
        match self {
            ChangeItem::Entity(e) => e.entity(),
            ChangeItem::Config(c) => c.config(),
            ChangeItem::Record(r) => r.entity(),
        }
    }

    /// The record's row diff, for a change to reference data.
    pub fn row_diff(&self) -> Option<crate::records::RowDiff> {
        match self {
            ChangeItem::Record(r) => Some(r.row_diff()),
            _ => None,
        }
    }

    /// A one-line account for people: `+ field article.subtitle (text, optional)`.
    pub fn summary(&self) -> String {
        match self {
            ChangeItem::Entity(e) => e.summary(),
            ChangeItem::Config(c) => c.summary(),
            ChangeItem::Record(r) => r.summary(),
        }
    }

    /// What happened, in words, for the line above a diff: "field `body`
    /// removed", "entity `tag` created", "`api.rate_limit.enabled` changed".
    pub fn headline(&self) -> String {
        match self {
            ChangeItem::Entity(e) => e.headline(),
            ChangeItem::Config(c) => c.headline(),
            ChangeItem::Record(r) => r.headline(),
        }
    }
}

/// The headline of a whole change: what each item did, then what the data
/// loses (from the probes' counts), joined by ` · `; e.g. "field `body`
/// removed · 1 value backed up".
pub fn headline<'a>(items: impl IntoIterator<Item = &'a ChangeItem>, hazards: &[crate::hazard::Hazard]) -> String {
    let mut parts: Vec<String> = items.into_iter().map(ChangeItem::headline).collect();
    parts.dedup();
    // A data file may change hundreds of records: name a few, count the rest.
    const NAMED: usize = 3;
    if parts.len() > NAMED + 1 {
        let more = parts.len() - NAMED;
        parts.truncate(NAMED);
        parts.push(format!("and {}", crate::plural::count(more as i64, "more change", "more changes")));
    }
    for hazard in hazards {
        let (Some(probe), Some(n)) = (&hazard.probe, hazard.counted) else { continue };
        if probe.kind == crate::hazard::ProbeKind::DeletedValues && n > 0 {
            let noun = probe.counts.split(' ').next().unwrap_or("rows");
            let one = noun.strip_suffix('s').unwrap_or(noun);
            parts.push(format!("{} backed up", crate::plural::count(n, one, noun)));
        }
    }
    parts.dedup();
    parts.join(" · ")
}

impl EntityChange {
    /// The entity it changes (the new id for a rename).
    pub fn entity(&self) -> &str {
        match self {
            EntityChange::CreateEntity { entity } | EntityChange::DropEntity { entity } => &entity.id,
            EntityChange::RenameEntity { to, .. } => to,
            EntityChange::EntityMetadata { entity, .. }
            | EntityChange::AddField { entity, .. }
            | EntityChange::DropField { entity, .. }
            | EntityChange::RenameField { entity, .. }
            | EntityChange::AlterField { entity, .. } => entity,
        }
    }

    pub fn headline(&self) -> String {
        match self {
            EntityChange::CreateEntity { entity } => format!("entity `{}` created", entity.id),
            EntityChange::DropEntity { entity } => format!("entity `{}` removed", entity.id),
            EntityChange::RenameEntity { entity, to } => format!("entity `{}` renamed to `{to}`", entity.id),
            EntityChange::EntityMetadata { entity, keys } => format!("entity `{entity}`: {} edited", keys.join(", ")),
            EntityChange::AddField { field, .. } => format!("field `{}` added", field.id),
            EntityChange::DropField { field, .. } => format!("field `{}` removed", field.id),
            EntityChange::RenameField { from, to, .. } => format!("field `{}` renamed to `{}`", from.id, to.id),
            EntityChange::AlterField { new, aspects, .. } => {
                let names: Vec<&str> = aspects.iter().map(|a| a.as_str()).collect();
                format!("field `{}`: {} changed", new.id, names.join(", "))
            }
        }
    }

    pub fn summary(&self) -> String {
        let describe = |f: &Field| {
            let mut s = format!("{}{}", f.field_type.as_str(), if f.required { ", required" } else { ", optional" });
            if !f.cardinality.is_single() {
                s.push_str(", multi-valued");
            }
            s
        };
        match self {
            EntityChange::CreateEntity { entity } => format!("+ entity {} ({} fields)", entity.id, entity.fields.len()),
            EntityChange::DropEntity { entity } => format!("- entity {}", entity.id),
            EntityChange::RenameEntity { entity, to } => format!("~ entity {} renamed to {to}", entity.id),
            EntityChange::EntityMetadata { entity, keys } => format!("~ entity {entity}: {} edited", keys.join(", ")),
            EntityChange::AddField { entity, field } => format!("+ field {entity}.{} ({})", field.id, describe(field)),
            EntityChange::DropField { entity, field } => format!("- field {entity}.{} ({})", field.id, describe(field)),
            EntityChange::RenameField { entity, from, to } => {
                format!("~ field {entity}.{} renamed to {}", from.id, to.id)
            }
            EntityChange::AlterField { entity, new, aspects, .. } => {
                let names: Vec<&str> = aspects.iter().map(|a| a.as_str()).collect();
                format!("~ field {entity}.{}: {} changed", new.id, names.join(", "))
            }
        }
    }
}

impl ConfigChange {
    /// The config id it changes.
    pub fn config(&self) -> &str {
        match self {
            ConfigChange::ConfigCreated { config }
            | ConfigChange::ConfigDeleted { config }
            | ConfigChange::ConfigIdentity { config, .. }
            | ConfigChange::ConfigMetadata { config, .. }
            | ConfigChange::ConfigKeyAdded { config, .. }
            | ConfigChange::ConfigKeyRemoved { config, .. }
            | ConfigChange::ConfigValueChanged { config, .. }
            | ConfigChange::ConfigTypeChanged { config, .. }
            | ConfigChange::ConfigMappingReplaced { config, .. }
            | ConfigChange::ConfigSecretInFile { config, .. } => config,
        }
    }

    pub fn headline(&self) -> String {
        match self {
            ConfigChange::ConfigCreated { config } => format!("config `{config}` created"),
            ConfigChange::ConfigDeleted { config } => format!("config `{config}` removed"),
            ConfigChange::ConfigIdentity { config, key, .. } => format!("config `{config}`: {key} changed"),
            ConfigChange::ConfigMetadata { config, keys } => format!("config `{config}`: {} edited", keys.join(", ")),
            ConfigChange::ConfigKeyAdded { config, path } => format!("`{config}.{path}` added"),
            ConfigChange::ConfigSecretInFile { config, path } => format!("`{config}.{path}` holds a secret"),
            ConfigChange::ConfigKeyRemoved { config, path } => format!("`{config}.{path}` removed"),
            ConfigChange::ConfigValueChanged { config, path, .. }
            | ConfigChange::ConfigTypeChanged { config, path, .. }
            | ConfigChange::ConfigMappingReplaced { config, path } => format!("`{config}.{path}` changed"),
        }
    }

    pub fn summary(&self) -> String {
        match self {
            ConfigChange::ConfigCreated { config } => format!("+ config {config}"),
            ConfigChange::ConfigDeleted { config } => format!("- config {config}"),
            ConfigChange::ConfigIdentity { config, key, old, new } => format!("~ config {config}: {key} {old} → {new}"),
            ConfigChange::ConfigMetadata { config, keys } => format!("~ config {config}: {} edited", keys.join(", ")),
            ConfigChange::ConfigKeyAdded { config, path } => format!("+ {config}.{path}"),
            ConfigChange::ConfigSecretInFile { config, path } => format!("! {config}.{path}: a secret in the file"),
            ConfigChange::ConfigKeyRemoved { config, path } => format!("- {config}.{path}"),
            ConfigChange::ConfigValueChanged { config, path, old, new } => format!("~ {config}.{path}: {old} → {new}"),
            ConfigChange::ConfigTypeChanged { config, path, old_type, new_type } => {
                format!("~ {config}.{path}: {old_type} → {new_type}")
            }
            ConfigChange::ConfigMappingReplaced { config, path } => format!("~ {config}.{path}: mapping → value"),
        }
    }
}

/// Which property of a field changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldAspect {
    Type,
    Required,
    Unique,
    Indexed,
    Default,
    Values,
    Cardinality,
    TargetEntity,
    Label,
    Description,
}

impl FieldAspect {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldAspect::Type => "type",
            FieldAspect::Required => "required",
            FieldAspect::Unique => "unique",
            FieldAspect::Indexed => "indexed",
            FieldAspect::Default => "default",
            FieldAspect::Values => "values",
            FieldAspect::Cardinality => "cardinality",
            FieldAspect::TargetEntity => "target_entity",
            FieldAspect::Label => "label",
            FieldAspect::Description => "description",
        }
    }

    /// Label and description live only in the YAML; they never touch the database.
    pub fn is_metadata(self) -> bool {
        matches!(self, FieldAspect::Label | FieldAspect::Description)
    }
}

fn aspects(old: &Field, new: &Field) -> Vec<FieldAspect> {
    let mut out = Vec::new();
    let mut check = |changed: bool, a| {
        if changed {
            out.push(a)
        }
    };
    check(old.field_type != new.field_type, FieldAspect::Type);
    check(old.required != new.required, FieldAspect::Required);
    check(old.unique != new.unique, FieldAspect::Unique);
    check(old.indexed != new.indexed, FieldAspect::Indexed);
    check(old.default != new.default, FieldAspect::Default);
    check(old.values != new.values, FieldAspect::Values);
    check(old.cardinality != new.cardinality, FieldAspect::Cardinality);
    check(old.target_entity != new.target_entity, FieldAspect::TargetEntity);
    check(old.label != new.label, FieldAspect::Label);
    check(old.description != new.description, FieldAspect::Description);
    out
}

/// Diffs two versions of a file's entity; `None` is "no file" (created or deleted).
/// An entity whose id changed inside a file is renamed when the new version says
/// it was `renamed_from` the old id, and otherwise dropped and created.
pub fn diff_entities(old: Option<&EntitySchema>, new: Option<&EntitySchema>) -> Vec<ChangeItem> {
    match (old, new) {
        (None, None) => vec![],
        (None, Some(n)) => vec![ChangeItem::Entity(EntityChange::CreateEntity { entity: n.clone() })],
        (Some(o), None) => vec![ChangeItem::Entity(EntityChange::DropEntity { entity: o.clone() })],
        (Some(o), Some(n)) if o.id != n.id && n.renamed_from.as_deref() == Some(o.id.as_str()) => {
            let mut items =
                vec![ChangeItem::Entity(EntityChange::RenameEntity { entity: o.clone(), to: n.id.clone() })];
            let moved = EntitySchema { id: n.id.clone(), renamed_from: n.renamed_from.clone(), ..o.clone() };
            items.extend(diff_same_entity(&moved, n));
            items
        }
        (Some(o), Some(n)) if o.id != n.id => {
            vec![
                ChangeItem::Entity(EntityChange::DropEntity { entity: o.clone() }),
                ChangeItem::Entity(EntityChange::CreateEntity { entity: n.clone() }),
            ]
        }
        (Some(o), Some(n)) => diff_same_entity(o, n),
    }
}

/// The old field that new field `nf` continues: the one with its id, or the one it
/// was `renamed_from` when that id is gone from the new version.
pub fn source_field<'a>(o: &'a EntitySchema, n: &'a EntitySchema, nf: &Field) -> Option<&'a Field> {
    Continuations::new(o, n).source(&nf.id)
}

/// Which new field continues which old one, computed once for a whole entity.
/// The one place the matching rule lives; prefer it to [`source_field`] when
/// asking about more than one field.
pub struct Continuations<'a> {
    source: HashMap<&'a str, &'a Field>,
    successor: HashMap<&'a str, &'a Field>,
}

impl<'a> Continuations<'a> {
    pub fn new(o: &'a EntitySchema, n: &'a EntitySchema) -> Self {
        let old: HashMap<&str, &Field> = o.fields.iter().map(|f| (f.id.as_str(), f)).collect();
        let new_ids: HashSet<&str> = n.fields.iter().map(|f| f.id.as_str()).collect();
        let mut source = HashMap::new();
        let mut successor = HashMap::new();
        for nf in &n.fields {
            let of = old.get(nf.id.as_str()).or_else(|| {
                let from = nf.renamed_from.as_deref()?;
                (!new_ids.contains(from)).then(|| old.get(from)).flatten()
            });
            if let Some(of) = of {
                source.insert(nf.id.as_str(), *of);
                successor.insert(of.id.as_str(), nf);
            }
        }
        Self { source, successor }
    }

    /// The old field new field `id` continues.
    pub fn source(&self, id: &str) -> Option<&'a Field> {
        self.source.get(id).copied()
    }

    /// The new field that continues old field `id`.
    pub fn successor(&self, id: &str) -> Option<&'a Field> {
        self.successor.get(id).copied()
    }
}

fn diff_same_entity(o: &EntitySchema, n: &EntitySchema) -> Vec<ChangeItem> {
    let entity = n.id.clone();
    let mut items = Vec::new();
    let mut keys = Vec::new();
    for (key, changed) in [
        ("name", o.name != n.name),
        ("description", o.description != n.description),
        ("versioned", o.versioned != n.versioned),
        ("recursive", o.recursive != n.recursive),
        ("cacheable", o.cacheable != n.cacheable),
    ] {
        if changed {
            keys.push(key.to_string());
        }
    }
    if !keys.is_empty() {
        items.push(ChangeItem::Entity(EntityChange::EntityMetadata { entity: entity.clone(), keys }));
    }

    let links = Continuations::new(o, n);
    let source = |nf: &Field| links.source(&nf.id);

    for of in &o.fields {
        if links.successor(&of.id).is_none() {
            items.push(ChangeItem::Entity(EntityChange::DropField { entity: entity.clone(), field: of.clone() }));
        }
    }
    for nf in &n.fields {
        match source(nf) {
            None => {
                items.push(ChangeItem::Entity(EntityChange::AddField { entity: entity.clone(), field: nf.clone() }))
            }
            Some(of) => {
                let renamed = of.id != nf.id;
                if renamed {
                    let to = Field { id: nf.id.clone(), ..of.clone() };
                    items.push(ChangeItem::Entity(EntityChange::RenameField {
                        entity: entity.clone(),
                        from: of.clone(),
                        to: to.clone(),
                    }));
                    let rest = aspects(&to, nf);
                    if !rest.is_empty() {
                        items.push(ChangeItem::Entity(EntityChange::AlterField {
                            entity: entity.clone(),
                            old: to,
                            new: nf.clone(),
                            aspects: rest,
                        }));
                    }
                } else {
                    let a = aspects(of, nf);
                    if !a.is_empty() {
                        items.push(ChangeItem::Entity(EntityChange::AlterField {
                            entity: entity.clone(),
                            old: of.clone(),
                            new: nf.clone(),
                            aspects: a,
                        }));
                    }
                }
            }
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::parse_entity_schema;

    fn entity(fields: &str) -> EntitySchema {
        parse_entity_schema("x", &format!("id: article\nname: Article\nfields:\n{fields}")).unwrap()
    }

    #[test]
    fn identical_is_empty() {
        let a = entity("  - id: title\n    type: text\n");
        assert!(diff_entities(Some(&a), Some(&a)).is_empty());
    }

    #[test]
    fn add_drop_rename_alter() {
        let a =
            entity("  - id: title\n    type: text\n  - id: body\n    type: text\n  - id: headline\n    type: text\n");
        let b = entity(
            "  - id: title\n    type: text\n    label: Title\n  - id: heading\n    type: text\n    renamed_from: headline\n  - id: summary\n    type: text\n",
        );
        let summaries: Vec<String> = diff_entities(Some(&a), Some(&b)).iter().map(|i| i.summary()).collect();
        assert_eq!(
            summaries,
            vec![
                "- field article.body (text, optional)",
                "~ field article.title: label changed",
                "~ field article.headline renamed to heading",
                "+ field article.summary (text, optional)",
            ]
        );
    }
}
