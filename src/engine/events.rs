//! Events: one for every transition a file's change goes through.

use serde::{Deserialize, Serialize};

use crate::hazard::Severity;

pub use crate::wire::EventKind;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineEvent {
    /// Strictly increasing within a process, so a client can spot gaps.
    pub seq: u64,
    pub at: String,
    pub kind: EventKind,
    pub file: String,
    pub change_id: Option<u64>,
    pub version: Option<i64>,
    pub severity: Option<Severity>,
    /// Who caused it: the approver, the rejecter, `watcher` for changes applied
    /// by themselves; none for what the file system did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    pub message: String,
}
