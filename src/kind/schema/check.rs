//! The rules a schema file must keep with the rest of the site: entity ids are
//! unique, a rename hint names an entity no file defines any more, references
//! name defined entities, and no two entities need one database name.

use std::collections::BTreeSet;

use crate::error::FileError;
use crate::locate::{field_key, top_key};
use crate::site::{CheckScope, SchemaFile, Site};

pub(super) fn check(site: &Site, scope: &CheckScope) -> Vec<FileError> {
    let mut errors = Vec::new();
    for id in &scope.ids {
        let mut definers = site.definers_of(id);
        let Some(first) = definers.next() else { continue };
        for path in definers {
            let f = site.schema_file(path).expect("indexed files exist");
            errors.push(FileError::new(
                path,
                top_key(&f.text, "id"),
                Some("id".into()),
                format!("entity id `{id}` is already defined by {first}"),
            ));
        }
    }
    for f in scope.files.iter().filter_map(|p| site.schema_file(p)) {
        if let Some(from) = &f.entity.renamed_from {
            if let Some(other) = site.definers_of(from).next() {
                errors.push(FileError::new(
                    &f.path,
                    top_key(&f.text, "renamed_from"),
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
            if site.definers_of(target).next().is_none() {
                errors.push(FileError::new(
                    &f.path,
                    field_key(&f.text, i, "target_entity"),
                    Some(format!("fields[{i}].target_entity")),
                    format!(
                        "field `{}` references entity `{target}`, but no file defines it (expected schemas/{target}.schema.yaml){}",
                        field.id,
                        crate::suggest::hint(target, site.defined_ids())
                    ),
                ));
            }
        }
    }
    for name in &scope.names {
        errors.extend(name_clash(site, name));
    }
    errors
}

/// Two entities that would need the same table or index name (`a_b` with a
/// unique field `c` and `a` with a unique field `b_c` both need
/// `content_a_b_c_key`): the database holds one, so each file is told which
/// name and whose it is (the engine holds back the one that changed).
fn name_clash(site: &Site, name: &str) -> Vec<FileError> {
    let needs: Vec<(&SchemaFile, Option<String>)> = site
        .claimants_of(name)
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
            None => (top_key(&f.text, "id"), "id".to_string()),
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
