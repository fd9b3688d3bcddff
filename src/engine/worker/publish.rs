//! The snapshot readers see, derived from the worker's state: every live file
//! and every file with something to say, each shown in the one state it is
//! in, and the lists (pending, rejected, failed, behind) read off the same
//! states, so they cannot disagree.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::files::{Files, State};
use super::Worker;
use crate::engine::snapshot::{FileStatus, PendingChange, Snapshot};
use crate::site::Site;

/// The parts of a snapshot that the files' states give.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Shown {
    pub files: Vec<FileStatus>,
    pub pending: Vec<PendingChange>,
    pub rejected: Vec<crate::error::FileError>,
    pub failed: Vec<crate::error::FileError>,
    pub behind: Vec<crate::engine::snapshot::Behind>,
}

/// What `files` show over the applied site `applied` (live files, and files
/// with something to say; a deleted file drops out).
pub(super) fn shown(files: &Files, applied: &Site, versions: &std::collections::BTreeMap<String, i64>) -> Shown {
    let mut paths: BTreeSet<&String> = applied.paths().collect();
    paths.extend(files.states().filter(|(_, s)| **s != State::Applied).map(|(p, _)| p));
    let mut out = Shown::default();
    for path in paths {
        let state = files.state(path);
        out.files.push(FileStatus {
            path: path.clone(),
            entity: applied.subject_of(path).map(str::to_string),
            version: versions.get(path).copied(),
            hash: applied.hash_of(path).map(str::to_string),
            state: state.shown(),
        });
        match state {
            State::Pending(change) => out.pending.push((**change).clone()),
            State::Failed(error) => out.failed.push(error.clone()),
            State::Behind(behind) => out.behind.push(behind.clone()),
            _ => out.rejected.extend(state.rejected().iter().cloned()),
        }
    }
    out
}

impl Worker {
    pub(super) fn publish(&mut self) {
        let shown = shown(&self.files, &self.applied, &self.versions);
        let generation = self.shared.snapshot.load().generation + 1;
        self.shared.snapshot.store(Arc::new(Snapshot {
            generation,
            applied: Arc::new(self.applied.clone()),
            files: shown.files,
            pending: shown.pending.into_iter().chain(self.cluster.remote.values().cloned()).collect(),
            rejected: shown.rejected,
            failed: shown.failed,
            drift: self.drift.clone(),
            behind: shown.behind,
            settings: self.settings.clone(),
            rejected_sources: self.files.sources(),
            last_sync: self.files.last_sync.clone(),
        }));
    }
}
