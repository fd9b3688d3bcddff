//! Marain hot-reload: YAML files as the single source of truth for a running CMS.
//!
//! The crate root is the pure core — `parse → validate → diff → grade → plan` — as
//! plain, deterministic functions with no I/O, no clock and no async runtime, so it
//! compiles to wasm32 and every result can be snapshot-tested. The `engine` feature
//! adds [`engine`], the I/O shell (watcher, store, coordinator) around it.

pub mod config;
pub mod content;
pub mod diff;
pub mod error;
pub mod grade;
pub mod hash;
pub mod hazard;
pub mod kind;
pub mod legacy;
pub mod live_config;
pub mod locate;
pub mod model;
pub mod plan;
pub mod plural;
pub mod probe;
pub mod records;
pub mod restore;
pub mod secrets;
pub mod site;
pub mod site_plan;
pub mod sql;
pub mod suggest;
pub mod text_diff;
pub mod validate;
pub mod wire;
pub mod yaml;

#[cfg(feature = "engine")]
pub mod engine;

pub use diff::{diff_entities, ChangeItem, ConfigChange, EntityChange, FieldAspect};
pub use error::{ErrorKind, FileError};
pub use grade::{grade, GradedChange, GradedItem};
pub use hazard::{Hazard, HazardCode, Severity};
pub use model::{Cardinality, EntitySchema, Field, FieldType, Literal};
pub use plan::{plan_change, Plan, PlanBinding, Step};
pub use site::{SchemaFile, Site};
pub use wire::{EventKind, FileState};
