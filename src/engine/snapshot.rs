//! What readers see: an immutable picture of the engine, swapped whole after
//! every transition so no reader ever sees half a change.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::FileError;
use crate::hazard::{Hazard, Severity};
use crate::plan::Plan;
use crate::site::{Site, SiteFile};
use crate::text_diff::DiffLine;

/// A planned change to one file, waiting for a person (or about to be applied).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingChange {
    pub id: u64,
    pub file: String,
    /// The entity the file defines (the old one when the file is deleted): what a
    /// BREAKING approval must type to confirm.
    pub entity: String,
    pub severity: Severity,
    pub hazards: Vec<Hazard>,
    /// The applied version it starts from; `None` for a new file.
    pub from_version: Option<i64>,
    /// Hash of the applied file it was planned from ("" for none): approval is
    /// refused if the applied state has moved on.
    pub from_hash: String,
    /// Hash of the file it brings in ("" when the file was deleted).
    pub to_hash: String,
    pub created_at: String,
    /// What the change does, in words, e.g. "field `body` removed · 1 value
    /// backed up" (`diff::headline`).
    #[serde(default)]
    pub headline: String,
    /// One line per change item, e.g. `- field article.body (text, optional)`.
    pub summary: Vec<String>,
    pub text_diff: Vec<DiffLine>,
    /// The rows a change to reference data writes or deletes, field by field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<crate::records::RowDiff>,
    /// As statically graded: `severity` and `hazards` above are after probes, and
    /// the apply probes again inside its transaction.
    pub plan: Plan,
    /// The file as it will be applied, parsed once when planned; `None` when the
    /// change deletes the file.
    pub new_file: Option<SiteFile>,
    /// Set for a rollback: the version it returns to. Applying it rewrites the
    /// file on disk, so the files stay the source of truth.
    pub rollback_to: Option<i64>,
    /// The instance whose copy proposes it, when that is another instance (each
    /// instance having its own copy); `None` for this instance's own.
    #[serde(default)]
    pub origin: Option<String>,
    /// Copies of the site propose different texts for this file: nothing
    /// applies by itself, and approving one supersedes the others.
    #[serde(default)]
    pub conflict: bool,
    /// Why it was asked for (a rollback's reason): recorded when it applies,
    /// unless the approval gives its own.
    #[serde(default)]
    pub reason: Option<String>,
}

pub use crate::wire::FileState;

/// An apply in flight that waits for a table lock another session holds. Kept
/// beside the snapshot, not in it: it is progress, not state, and changes
/// between the snapshots of one turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockWait {
    pub file: String,
    /// How many attempts gave up so far.
    pub attempt: u32,
    /// `pid … (application, state) running: query` of each session holding a
    /// lock on a content table.
    pub holders: Vec<String>,
}

impl LockWait {
    /// `waiting for a table lock (attempt 2): pid 31 (report, idle in transaction) running: …`.
    pub fn summary(&self) -> String {
        let who = match self.holders.is_empty() {
            true => "held by another session".to_string(),
            false => self.holders.join("; "),
        };
        format!("waiting for a table lock (attempt {}): {who}", self.attempt)
    }
}

/// This instance's copy of a file is an older applied version than the one the
/// database has: the host has not been updated yet. Never proposed as a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Behind {
    pub file: String,
    /// The applied version this copy's text is.
    pub copy_version: i64,
    /// The version applied now.
    pub applied_version: i64,
}

impl Behind {
    /// `this copy is v3; v4 is applied`.
    pub fn summary(&self) -> String {
        format!("this copy is v{}; v{} is applied", self.copy_version, self.applied_version)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileStatus {
    pub path: String,
    pub entity: Option<String>,
    /// The newest applied version; `None` if nothing was ever applied.
    pub version: Option<i64>,
    pub hash: Option<String>,
    pub state: FileState,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// How many snapshots the engine has published before this one: it grows by
    /// one per turn of the worker that changed anything (a batch of files, an
    /// approval), so a reader can tell whether the state moved.
    pub generation: u64,
    pub applied: Arc<Site>,
    pub files: Vec<FileStatus>,
    pub pending: Vec<PendingChange>,
    /// Files whose newest content could not be accepted; the applied version stays live.
    pub rejected: Vec<FileError>,
    /// Files whose change was approved but failed to apply (rolled back).
    pub failed: Vec<FileError>,
    /// Where the database no longer matches the applied files (checked at start-up
    /// and on every rescan); reported, never repaired behind anyone's back.
    pub drift: Vec<super::drift::Drift>,
    /// Files whose copy here is an older applied version (per-instance copies).
    pub behind: Vec<Behind>,
    pub last_sync: Option<String>,
    /// What the applied configs set for the running server (log level, rate
    /// limit, CORS, hot-reload policy); consumers read it per request.
    pub settings: Arc<crate::live_config::LiveSettings>,
    /// The text of each rejected file as read, so the error can be shown in place.
    pub rejected_sources: std::collections::BTreeMap<String, String>,
}

impl PendingChange {
    /// The text to record and write; `None` when the change deletes the file.
    pub fn new_text(&self) -> Option<&str> {
        self.new_file.as_ref().map(SiteFile::text)
    }
}

impl Snapshot {
    pub fn in_sync(&self) -> bool {
        self.pending.is_empty()
            && self.rejected.is_empty()
            && self.failed.is_empty()
            && self.drift.is_empty()
            && self.behind.is_empty()
    }
}
