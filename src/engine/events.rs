//! Events: one for every transition a file's change goes through.

use serde::{Deserialize, Serialize};

use crate::hazard::Severity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Detected,
    Rejected,
    Pending,
    Approved,
    Applied,
    Failed,
    Superseded,
    /// A rollback or recovery change applied: the file is an earlier version again.
    RolledBack,
    /// A rejected file is back to its applied version: nothing to fix any more.
    Cleared,
    /// An approved change waits for a table lock another session holds (who,
    /// and what it runs, in the message); it tries again by itself.
    Waiting,
    /// The move from the legacy JSON table: progress of a `run` (from the
    /// command line or the dashboard), a verify, a finish. `file` is the legacy
    /// table.
    Migration,
    /// Rows a data file wrote were changed or deleted by another writer since
    /// it applied (the message says which and how); `file` is the data file.
    Drifted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Detected => "detected",
            EventKind::Rejected => "rejected",
            EventKind::Pending => "pending",
            EventKind::Approved => "approved",
            EventKind::Applied => "applied",
            EventKind::Failed => "failed",
            EventKind::Superseded => "superseded",
            EventKind::RolledBack => "rolled_back",
            EventKind::Cleared => "cleared",
            EventKind::Waiting => "waiting",
            EventKind::Migration => "migration",
            EventKind::Drifted => "drifted",
        }
    }
}

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
