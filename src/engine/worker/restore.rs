//! Rollback and point-in-time recovery: the targets read from the history
//! (`recovery`), planned by the core (`restore`), and held for approval like
//! any change; applying one rewrites the file (`apply.rs`).

use super::{Turn, Worker};
use crate::engine::recovery;
use crate::engine::snapshot::PendingChange;
use crate::engine::EngineError;
use crate::live_config::system_redaction;
use crate::restore::{plan_restore, Restore, Unchanged};
use crate::site::SiteFile;

impl Worker {
    /// Plans `file` back to its applied version `version`; the change waits for
    /// approval like any other.
    pub(super) async fn rollback(
        &mut self,
        turn: &mut Turn,
        file: &str,
        version: i64,
        reason: Option<String>,
    ) -> Result<PendingChange, EngineError> {
        let invalid = |reason: String| EngineError::InvalidRollback { file: file.to_string(), version, reason };
        let targets = recovery::rollback_target(&self.store, file, version).await?;
        let restores =
            plan_restore(self.store.dialect(), &self.applied, &targets, |f| self.next_version(f), Unchanged::Rewrite)
                .map_err(invalid)?;
        let mut changes = self.hold_restores(turn, restores, "a rollback was requested", reason.clone()).await;
        // `Unchanged::Rewrite` plans the one target even when it is applied already.
        let change = changes.pop().ok_or_else(|| invalid("nothing to plan".into()))?;
        Ok(change)
    }

    /// Every file back to its version at `at`, one pending change per file.
    pub(super) async fn recover(&mut self, turn: &mut Turn, at: &str) -> Result<Vec<PendingChange>, EngineError> {
        let targets = recovery::recovery_targets(&self.store, at).await?;
        let restores =
            plan_restore(self.store.dialect(), &self.applied, &targets, |f| self.next_version(f), Unchanged::Skip)
                .map_err(|reason| EngineError::InvalidRecovery { at: at.to_string(), reason })?;
        Ok(self.hold_restores(turn, restores, "a point-in-time recovery was requested", None).await)
    }

    /// The version the next apply of `file` will be recorded as.
    fn next_version(&self, file: &str) -> i64 {
        self.versions.get(file).copied().unwrap_or(0) + 1
    }

    /// Each restore held as a waiting change, with `reason` recorded when it applies.
    async fn hold_restores(
        &mut self,
        turn: &mut Turn,
        restores: Vec<Restore>,
        why: &str,
        reason: Option<String>,
    ) -> Vec<PendingChange> {
        let mut changes = Vec::with_capacity(restores.len());
        for restore in restores {
            self.supersede(turn, &restore.change.file, why);
            // The restored text hides what the applied site or the restored file names.
            let restored = restore.change.new.iter().filter_map(SiteFile::config).filter(|c| c.doc.id == "system");
            let redaction = restored.fold(self.applied.redaction(), |r, c| r.union(&system_redaction(&c.doc.values)));
            let mut change = self.pending_change(restore.change, Some(restore.to_version), &redaction).await;
            change.reason = reason.clone();
            self.hold(turn, change.clone());
            changes.push(change);
        }
        changes
    }
}
