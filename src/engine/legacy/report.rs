//! `marain legacy plan` and `infer`: read the legacy table, write nothing.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value as Json;

use super::source::LegacySource;
use super::{entities_for, LegacyError};
use crate::legacy::infer::{entity_id, Inference};
use crate::legacy::{convert, key_map, Misfit};
use crate::site::Site;

/// Rows read per query.
const BATCH: usize = 5000;

/// How many misfit rows a report lists per type (all are counted).
pub const LISTED_MISFITS: usize = 200;

/// What `run` would do with each legacy type.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct PlanReport {
    pub legacy_table: String,
    pub types: Vec<TypeReport>,
}

impl PlanReport {
    /// Every row of every type would be copied as it is.
    pub fn all_fit(&self) -> bool {
        self.types.iter().all(|t| t.entity.is_some() && t.misfit_rows == 0 && t.unmapped_keys.is_empty())
    }
}

/// One legacy `entity_type`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct TypeReport {
    pub entity_type: String,
    /// The entity its rows go to; `None` when no schema takes the type.
    pub entity: Option<String>,
    pub rows: i64,
    /// JSON key → the field it feeds, for the keys seen in the data.
    pub mapped_keys: BTreeMap<String, String>,
    /// Keys no field takes → how many rows have them.
    pub unmapped_keys: BTreeMap<String, i64>,
    /// Rows that fit (unmapped keys aside).
    pub fitting_rows: i64,
    /// Rows with a value that does not fit.
    pub misfit_rows: i64,
    /// The first [`LISTED_MISFITS`] of them: row id and each reason.
    pub misfits: Vec<(String, Misfit)>,
}

/// Reads every legacy row against `site`'s schemas.
pub async fn plan(source: &LegacySource, site: &Site) -> Result<PlanReport, LegacyError> {
    let types = source.types().await?;
    let names: Vec<String> = types.iter().map(|(t, _)| t.clone()).collect();
    let entities = entities_for(site, &names);
    let mut report = PlanReport { legacy_table: source.table().to_string(), types: Vec::new() };
    for (entity_type, rows) in types {
        let mut t = TypeReport { entity_type: entity_type.clone(), rows, ..Default::default() };
        let Some(entity) = entities.get(&entity_type) else {
            report.types.push(t);
            continue;
        };
        t.entity = Some(entity.id.clone());
        let keys = key_map(entity);
        let mut listed = 0;
        let mut batches = source.batches(&entity_type, BATCH);
        while let Some(batch) = batches.next().await? {
            for row in batch {
                let data = row.data.as_deref().unwrap_or("null");
                if let Ok(Json::Object(o)) = serde_json::from_str::<Json>(data) {
                    for key in o.keys() {
                        if let Some(field) = keys.get(key.as_str()) {
                            t.mapped_keys.entry(key.clone()).or_insert_with(|| field.id.clone());
                        }
                    }
                }
                let conversion = convert(entity, data);
                for key in conversion.unmapped.keys() {
                    *t.unmapped_keys.entry(key.clone()).or_default() += 1;
                }
                match conversion.record {
                    Ok(_) => t.fitting_rows += 1,
                    Err(misfits) => {
                        t.misfit_rows += 1;
                        if listed < LISTED_MISFITS {
                            listed += 1;
                            t.misfits.extend(misfits.into_iter().map(|m| (row.id.clone(), m)));
                        }
                    }
                }
            }
        }
        report.types.push(t);
    }
    Ok(report)
}

/// A starting schema per legacy type, inferred from its rows: (entity type,
/// entity id, schema file text).
pub async fn infer(source: &LegacySource) -> Result<Vec<(String, String, String)>, LegacyError> {
    let id_types: HashMap<String, String> = source.id_types().await?.into_iter().collect();
    let type_of_id = |id: &str| id_types.get(id).map(|t| entity_id(t));
    let mut out = Vec::new();
    for (entity_type, _) in source.types().await? {
        let mut inference = Inference::new(&entity_type);
        let mut batches = source.batches(&entity_type, BATCH);
        while let Some(batch) = batches.next().await? {
            for row in batch {
                if let Some(Ok(Json::Object(o))) = row.data.as_deref().map(serde_json::from_str::<Json>) {
                    inference.observe(&o, &type_of_id);
                }
            }
        }
        out.push((entity_type.clone(), entity_id(&entity_type), inference.schema_yaml()));
    }
    Ok(out)
}
