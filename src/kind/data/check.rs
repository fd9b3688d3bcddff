//! The rules a data file must keep with the rest of the site: its entity is
//! defined, each record fits the entity's live schema (types, required fields,
//! allowed values) as content API input must, and no two data files of one
//! entity claim the same id.

use serde_json::{Map, Value as Json};

use crate::content::validate_record;
use crate::error::FileError;
use crate::locate::item_key;
use crate::site::{CheckScope, Site};

use super::DataFile;

pub(super) fn check(site: &Site, scope: &CheckScope) -> Vec<FileError> {
    let mut errors = Vec::new();
    for file in scope.files.iter().filter_map(|p| site.data(p)) {
        errors.extend(check_file(site, file));
    }
    errors
}

fn check_file(site: &Site, file: &DataFile) -> Vec<FileError> {
    let Some(schema) = site.entity_file(&file.entity) else {
        let defined = site.schema_files().map(|f| f.entity.id.as_str());
        return vec![FileError::new(
            &file.path,
            (1, 1),
            None,
            format!(
                "the records are of entity `{}` (the directory's name), but no file defines it (expected schemas/{}.schema.yaml){}",
                file.entity,
                file.entity,
                crate::suggest::hint(&file.entity, defined)
            ),
        )];
    };
    let entity = &schema.entity;
    let mut errors = Vec::new();
    // The ids the entity's other data files (earlier by path) claim, once.
    let claimed: std::collections::BTreeMap<&str, &str> = site
        .data_files_of(&file.entity)
        .filter(|o| o.path < file.path)
        .flat_map(|o| o.records.iter().map(move |r| (r.id.as_str(), o.path.as_str())))
        .collect();
    for (i, record) in file.records.iter().enumerate() {
        let at = |key: &str| item_key(&file.text, "records", i, key);
        let input: Map<String, Json> = record.values.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if let Err(problems) = validate_record(entity, &input) {
            for p in problems {
                errors.push(FileError::new(
                    &file.path,
                    at(&p.field),
                    Some(format!("records[{i}].{}", p.field)),
                    match p.message.starts_with('`') {
                        true => format!("record `{}`: {}", record.id, p.message),
                        false => format!("record `{}`: `{}` {}", record.id, p.field, p.message),
                    },
                ));
            }
        }
        if let Some(other) = claimed.get(record.id.as_str()) {
            errors.push(FileError::new(
                &file.path,
                at("id"),
                Some(format!("records[{i}].id")),
                format!("record `{}` of `{}` is already in {other}", record.id, file.entity),
            ));
        }
    }
    errors
}
