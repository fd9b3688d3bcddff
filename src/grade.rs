//! Grading: every change item gets its hazards; `docs/grading.md` lists every
//! code with its severity.
//!
//! Grading here is static — it sees only the files. Probes on live data (row,
//! NULL and duplicate counts) re-grade later, in the engine.

use serde::{Deserialize, Serialize};

use crate::diff::{ChangeItem, EntityChange, FieldAspect};
use crate::hazard::{worst, Hazard, HazardCode as C, Severity as S};
use crate::model::{Cardinality, Field, FieldType};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradedItem {
    pub item: ChangeItem,
    pub hazards: Vec<Hazard>,
}

impl GradedItem {
    pub fn severity(&self) -> S {
        worst(&self.hazards)
    }
}

/// The graded change set of one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradedChange {
    pub items: Vec<GradedItem>,
}

impl GradedChange {
    pub fn severity(&self) -> S {
        self.items.iter().map(GradedItem::severity).max().unwrap_or(S::Safe)
    }

    pub fn hazards(&self) -> impl Iterator<Item = &Hazard> {
        self.items.iter().flat_map(|i| i.hazards.iter())
    }
}

pub fn grade(items: Vec<ChangeItem>) -> GradedChange {
    GradedChange { items: items.into_iter().map(|item| GradedItem { hazards: hazards_of(&item), item }).collect() }
}

fn hazards_of(item: &ChangeItem) -> Vec<Hazard> {
    let h = Hazard::new;
    match item {
        ChangeItem::Entity(EntityChange::CreateEntity { entity }) => {
            vec![h(C::EntityCreated, S::Safe, format!("new entity `{}` gets table content_{}", entity.id, entity.id))]
        }
        ChangeItem::Entity(EntityChange::DropEntity { entity }) => vec![h(
            C::EntityDropped,
            S::Breaking,
            format!("entity `{}` is removed: its table and every row are dropped (backed up first)", entity.id),
        )],
        ChangeItem::Entity(EntityChange::RenameEntity { entity, to }) => vec![h(
            C::EntityRenamed,
            S::Breaking,
            format!(
                "entity `{}` is renamed to `{to}`: table content_{} becomes content_{to}, rows kept; API readers of /api/v1/entity/{} must move to /api/v1/entity/{to}",
                entity.id, entity.id, entity.id
            ),
        )],
        ChangeItem::Entity(EntityChange::EntityMetadata { entity, keys }) => {
            vec![h(C::MetadataOnly, S::Safe, format!("`{entity}`: {} edited; no database change", keys.join(", ")))]
        }
        ChangeItem::Entity(EntityChange::AddField { entity, field }) => {
            let mut hazards = vec![added(entity, field)];
            if field.unique && field.default.is_some() && field.cardinality.is_single() {
                hazards.push(Hazard::new(
                    C::UniqueAdded,
                    S::Warning,
                    format!(
                        "unique field `{}` is added to `{entity}` with a default: every existing row would get the same value",
                        field.id
                    ),
                ));
            }
            hazards
        }
        ChangeItem::Entity(EntityChange::DropField { entity, field }) => vec![h(
            C::FieldDropped,
            S::Breaking,
            format!("field `{}` of `{entity}` is removed: its values are deleted (backed up first)", field.id),
        )],
        ChangeItem::Entity(EntityChange::RenameField { entity, from, to }) => vec![h(
            C::FieldRenamed,
            S::Breaking,
            format!(
                "field `{}` of `{entity}` is renamed to `{}`: data is kept, API readers of `{}` break",
                from.id, to.id, from.id
            ),
        )],
        ChangeItem::Config(config_item) => crate::config::config_hazards(config_item),
        ChangeItem::Record(record) => record.hazards(),
        ChangeItem::Entity(EntityChange::AlterField { entity, old, new, aspects }) => {
            let mut out: Vec<Hazard> = Vec::new();
            for hz in aspects.iter().map(|a| altered(entity, old, new, *a)) {
                if !out.contains(&hz) {
                    out.push(hz);
                }
            }
            let moves = old.cardinality.is_single() != new.cardinality.is_single();
            let reshapes = aspects.iter().any(|a| matches!(a, FieldAspect::Type | FieldAspect::Values | FieldAspect::TargetEntity));
            if moves && reshapes {
                out.push(h(
                    C::NotYetSupported,
                    S::Blocked,
                    format!(
                        "`{entity}.{}` moves between a column and a child table while its type, allowed values or target also change; \
                         change the cardinality in one edit and the rest in another",
                        new.id
                    ),
                ));
            }
            out
        }
    }
}

fn added(entity: &str, f: &Field) -> Hazard {
    if f.required && f.default.is_none() && f.cardinality.is_single() {
        Hazard::new(
            C::RequiredFieldWithoutDefault,
            S::Warning,
            format!(
                "required field `{}` is added to `{entity}` without a default: existing rows have no value for it",
                f.id
            ),
        )
    } else {
        Hazard::new(C::FieldAdded, S::Safe, format!("new field `{}` on `{entity}`", f.id))
    }
}

/// How many values a cardinality admits; unbounded is the largest.
fn bound(c: Cardinality) -> u64 {
    match c {
        Cardinality::One => 1,
        Cardinality::AtMost(n) => u64::from(n),
        Cardinality::Unbounded => u64::MAX,
    }
}

/// Text-like types accept any value; integer widens to float; a boolean is 0 or
/// 1 as a number, so every boolean converts, and back.
pub fn is_widening(from: FieldType, to: FieldType) -> bool {
    use FieldType::*;
    matches!((from, to), (Integer, Float) | (Boolean, Integer) | (Boolean, Float))
        || (matches!(to, Text | LongText | RichText) && from != EntityReference)
        || (from == Slug && to == Slug)
}

fn altered(entity: &str, old: &Field, new: &Field, aspect: FieldAspect) -> Hazard {
    let f = &new.id;
    let h = Hazard::new;
    match aspect {
        FieldAspect::Label | FieldAspect::Description => {
            h(C::MetadataOnly, S::Safe, format!("`{entity}.{f}`: label/description edited; no database change"))
        }
        FieldAspect::Indexed if new.indexed => h(C::IndexAdded, S::Safe, format!("index added on `{entity}.{f}`")),
        FieldAspect::Indexed => {
            h(C::IndexDropped, S::Warning, format!("index on `{entity}.{f}` is dropped: queries on it may slow down"))
        }
        FieldAspect::Type if is_widening(old.field_type, new.field_type) => h(
            C::TypeWidened,
            S::Warning,
            format!(
                "`{entity}.{f}` widens from {} to {}: every value fits",
                old.field_type.as_str(),
                new.field_type.as_str()
            ),
        ),
        FieldAspect::Type => h(
            C::TypeNarrowed,
            S::Breaking,
            format!(
                "`{entity}.{f}` changes from {} to {}: values that do not convert would be lost",
                old.field_type.as_str(),
                new.field_type.as_str()
            ),
        ),
        FieldAspect::Required if new.required => h(
            C::RequiredAdded,
            S::Warning,
            format!("`{entity}.{f}` becomes required: rows without a value would block the change"),
        ),
        FieldAspect::Unique if new.unique => h(
            C::UniqueAdded,
            S::Warning,
            format!("`{entity}.{f}` becomes unique: duplicate values would block the change"),
        ),
        FieldAspect::Required | FieldAspect::Unique | FieldAspect::Default => {
            h(C::ConstraintRelaxed, S::Safe, format!("`{entity}.{f}`: {} changed; no data affected", aspect.as_str()))
        }
        FieldAspect::Values => {
            let narrowed = match (&old.values, &new.values) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(o), Some(n)) => o.iter().any(|v| !n.contains(v)),
            };
            if narrowed {
                h(
                    C::AllowedValuesChanged,
                    S::Warning,
                    format!("`{entity}.{f}` allows fewer values: rows holding a removed value would block the change"),
                )
            } else {
                h(C::ConstraintRelaxed, S::Safe, format!("`{entity}.{f}` allows more values"))
            }
        }
        FieldAspect::Cardinality if !old.cardinality.is_single() && !new.cardinality.is_single() => {
            if bound(new.cardinality) < bound(old.cardinality) {
                h(
                    C::CardinalityChanged,
                    S::Warning,
                    format!("`{entity}.{f}` allows fewer values per row: rows holding more would block the change"),
                )
            } else {
                h(C::ConstraintRelaxed, S::Safe, format!("`{entity}.{f}` allows more values per row"))
            }
        }
        FieldAspect::Cardinality if new.cardinality.is_single() => h(
            C::CardinalityChanged,
            S::Breaking,
            format!("`{entity}.{f}` goes from many values to one: all but the first value of each row would be lost"),
        ),
        FieldAspect::Cardinality => h(
            C::CardinalityChanged,
            S::Warning,
            format!("`{entity}.{f}` goes from one value to many: values move to a child table"),
        ),
        FieldAspect::TargetEntity => h(
            C::TargetChanged,
            S::Breaking,
            format!(
                "`{entity}.{f}` now references `{}` instead of `{}`: existing references become invalid",
                new.target_entity.as_deref().unwrap_or("?"),
                old.target_entity.as_deref().unwrap_or("?")
            ),
        ),
    }
}
