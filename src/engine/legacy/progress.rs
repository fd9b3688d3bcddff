//! What a legacy `run` is told and what it reports: its options, and the
//! counts per legacy type that `marain_legacy` keeps and the dashboard shows.
//! Shared by the run (`copy.rs`) and the move's record (`transition.rs`), which
//! otherwise know nothing of each other.

use std::collections::BTreeMap;

/// How `run` copies.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Rows per transaction.
    pub batch_size: usize,
    /// Keep the keys no field takes in `marain_legacy_extra` instead of leaving
    /// such rows in the legacy table.
    pub keep_unmapped: bool,
    /// While the move is under way, content API writes also update the legacy
    /// rows (so an old Marain process still reading them sees every change).
    pub dual_write: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self { batch_size: 1000, keep_unmapped: false, dual_write: true }
    }
}

/// Where one legacy type stands.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TypeProgress {
    /// The entity its rows go to.
    pub entity: String,
    /// Rows of this type in the legacy table.
    pub total: i64,
    /// Rows the typed table has (copied now or before).
    pub copied: i64,
    /// Rows that do not fit, with their reasons in `marain_legacy_misfits`.
    pub misfits: i64,
    /// Rows not looked at yet, or waiting for the rows they reference.
    pub waiting: i64,
}

/// Every type's progress, by legacy `entity_type`.
pub type Progress = BTreeMap<String, TypeProgress>;
