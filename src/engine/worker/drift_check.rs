//! The worker's side of drift (see [`crate::engine::drift`]): the tables
//! compared with the applied state on every rescan, and the rows data files
//! hold compared after a write reached them.

use std::collections::BTreeSet;

use super::{Turn, Worker};
use crate::engine::drift::{detect, detect_rows, Drift};
use crate::engine::events::EventKind;

impl Worker {
    /// Compares the database's tables with the applied state.
    pub(super) async fn check_drift(&mut self) {
        match detect(&self.store, &self.applied).await {
            Ok(drift) => {
                for d in drift.iter().filter(|d| !self.drift.contains(d)) {
                    tracing::warn!(table = %d.table, problem = %d.problem, "drift: the database differs from the files");
                }
                self.drift = drift;
            }
            Err(e) => tracing::error!(error = %e, "drift check failed"),
        }
    }

    /// Checks the rows of `entity` that data files hold, replacing what the
    /// last check found for them; what is new is announced (`drifted`), so
    /// the dashboard shows it at once.
    pub(super) async fn check_rows(&mut self, turn: &mut Turn, entity: &str) {
        let files: BTreeSet<String> = self.applied.data_files_of(entity).map(|f| f.path.clone()).collect();
        match detect_rows(&self.store, &self.applied, entity).await {
            Ok(found) => {
                let new: Vec<Drift> = found.iter().filter(|d| !self.drift.contains(d)).cloned().collect();
                let before = self.drift.len();
                self.drift.retain(|d| d.file.as_ref().is_none_or(|f| !files.contains(f)));
                turn.changed |= self.drift.len() != before || !found.is_empty();
                self.drift.extend(found);
                for d in new {
                    tracing::warn!(table = %d.table, problem = %d.problem, "drift: a row differs from its data file");
                    let file = d.file.clone().unwrap_or_default();
                    self.emit(turn, EventKind::Drifted, &file, None, None, d.problem);
                }
            }
            Err(e) => tracing::error!(error = %e, "drift check of rows failed"),
        }
    }
}
