//! Moving an existing Marain install's content from the legacy JSON table
//! (`content(id, entity_type, data, created_at, updated_at)`) into the typed
//! tables: `marain legacy plan | infer | run | verify | finish`, and the content
//! API's behaviour while both exist. What users do and see is `docs/legacy.md`;
//! the rules a row is read by are the core's [`crate::legacy`].
//!
//! - `source.rs` — the legacy table (in the site's database or another one) and
//!   its rows, read in id order, a batch at a time.
//! - `transition.rs` — the `marain_legacy` row that says a move is under way, and
//!   what the content API does meanwhile (reads fall back, writes reach both).
//! - `copy.rs` — `run`: batches of one transaction each, resumable, idempotent.
//! - `progress.rs` — a run's options and its counts per legacy type.
//! - `verify.rs` — every copied value against the JSON it came from; `finish`.
//! - `report.rs` — `plan` and `infer`: what a run would do, written nowhere.
//! - `impact.rs` — what a schema change does to the rows not copied yet.

use std::collections::BTreeMap;

use crate::engine::store::StoreError;
use crate::legacy::infer::entity_id;
use crate::model::EntitySchema;
use crate::site::Site;

mod copy;
pub mod impact;
mod progress;
mod report;
mod source;
pub mod transition;
mod verify;

pub use copy::run;
pub use progress::{Progress, RunOptions, TypeProgress};
pub use report::{infer, plan, PlanReport, TypeReport};
pub use source::LegacySource;
pub use transition::{MisfitRow, MoveStatus, Transition, TransitionView};
pub use verify::{finish, ready_to_finish, retire, verify, VerifyReport};

/// What the dashboard's Migration page shows: every move recorded, the rows
/// that do not fit (the first few hundred), and the legacy table a move could
/// start from when none is recorded yet.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LegacyMoveView {
    pub moves: Vec<MoveStatus>,
    pub misfits: Vec<MisfitRow>,
    pub startable: Option<String>,
}

/// The legacy table's usual name.
pub const DEFAULT_TABLE: &str = "content";

#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    #[error("no legacy table `{table}` with columns id, entity_type and data in {database}")]
    NoTable { table: String, database: String },
    #[error("`{table}` is not a table name a legacy install uses (letters, digits and _ only)")]
    BadTableName { table: String },
    #[error("the legacy database: {0}")]
    Source(sqlx::Error),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("entity `{entity}` (legacy entity_type `{entity_type}`) is not applied in this database; start `marain serve` on the site (and approve its change) first")]
    NotApplied { entity_type: String, entity: String },
    #[error("cannot finish: {0}")]
    NotReady(String),
}

impl LegacyError {
    /// What kind of failure this is, for every interface.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            LegacyError::NoTable { .. } => ErrorKind::NotFound,
            LegacyError::BadTableName { .. } => ErrorKind::Invalid,
            LegacyError::NotApplied { .. } | LegacyError::NotReady(_) => ErrorKind::Conflict,
            LegacyError::Store(e) => e.kind(),
            LegacyError::Source(_) => ErrorKind::Unavailable,
        }
    }

    /// The message a person may see: never the database's own text.
    pub fn public_message(&self) -> String {
        match self {
            LegacyError::Store(e) => e.public_message(),
            LegacyError::Source(_) => "the legacy table could not be read; the server log has the details".into(),
            other => other.to_string(),
        }
    }
}

impl From<sqlx::Error> for LegacyError {
    fn from(e: sqlx::Error) -> Self {
        LegacyError::Store(StoreError::Sql(e))
    }
}

/// Which entity each legacy `entity_type` goes to: the entity of that id, or of
/// the identifier `marain legacy infer` makes of it. Types without one are left
/// out (the reports list them).
pub fn entities_for<'s>(site: &'s Site, types: &[String]) -> BTreeMap<String, &'s EntitySchema> {
    types
        .iter()
        .filter_map(|t| {
            let file = site.entity_file(t).or_else(|| site.entity_file(&entity_id(t)))?;
            Some((t.clone(), &file.entity))
        })
        .collect()
}

/// The legacy types in the order their entities must be filled: a type whose
/// rows reference another type's comes after it (cycles and self references
/// are legal; rows whose targets are not copied yet wait for a later round).
pub fn fill_order(site: &Site, entities: &BTreeMap<String, &EntitySchema>) -> Vec<String> {
    let order = site.dependency_order_of(entities.values().map(|e| e.id.as_str()));
    let mut types = Vec::new();
    for id in order {
        types.extend(entities.iter().filter(|(_, e)| e.id == id).map(|(t, _)| t.clone()));
    }
    types
}
