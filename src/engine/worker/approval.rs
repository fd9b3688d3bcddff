//! A person's approval: the rules every approval meets ([`approvable`]), then
//! this copy's change or another copy's proposal applied, and what waited on
//! it looked at again.

use std::collections::{BTreeMap, BTreeSet};

use super::{Turn, Worker};
use crate::engine::events::EventKind;
use crate::engine::snapshot::PendingChange;
use crate::engine::store::{StoreError, VersionRow};
use crate::engine::{Approval, EngineError};
use crate::hazard::Severity;

/// The rules an approval meets, whichever copy proposed the change: BLOCKED
/// is refused, BREAKING needs the entity typed to confirm, and a change
/// planned from another applied text than `applied_hash` is stale.
pub(super) fn approvable(change: &PendingChange, approval: &Approval, applied_hash: &str) -> Result<(), EngineError> {
    let (id, file) = (change.id, change.file.clone());
    if change.severity >= Severity::Blocked {
        return Err(EngineError::NotApprovable { id, file, severity: change.severity });
    }
    if change.severity == Severity::Breaking && approval.confirm.as_deref().map(str::trim) != Some(&change.entity) {
        return Err(EngineError::ConfirmationRequired { id, expected: change.entity.clone() });
    }
    if applied_hash != change.plan.binding.base_hash {
        return Err(EngineError::Stale { id, file });
    }
    Ok(())
}

impl Worker {
    /// The waiting change `id`: this copy's, or another copy's proposal.
    fn waiting_change(&self, id: u64) -> Result<PendingChange, EngineError> {
        let found = self.files.pending_changes().chain(self.cluster.remote.values()).find(|c| c.id == id);
        found.cloned().ok_or_else(|| match self.cluster.went_elsewhere(id) {
            Some((file, version)) => EngineError::AlreadyApplied { id, file: file.clone(), version: *version },
            None => EngineError::UnknownChange(id),
        })
    }

    pub(super) async fn approve(
        &mut self,
        turn: &mut Turn,
        id: u64,
        approval: Approval,
    ) -> Result<VersionRow, EngineError> {
        let change = self.waiting_change(id)?;
        let applied_hash = self.applied.hash_of(&change.file).unwrap_or_default().to_string();
        let verdict = approvable(&change, &approval, &applied_hash);
        if change.origin.is_some() {
            return self.approve_remote(turn, change, approval, verdict).await;
        }
        if let Err(e) = verdict {
            if matches!(e, EngineError::Stale { .. }) {
                self.files.supersede(&change.file);
                self.files.forget(&change.file);
                self.process(turn, BTreeSet::from([change.file.clone()])).await;
            }
            return Err(e);
        }
        if let Some(first) = self.waits_for(&change) {
            return Err(EngineError::WaitsFor { id, file: change.file, first });
        }
        self.files.supersede(&change.file);
        let file = change.file.clone();
        let result = self.approved(turn, change, approval).await;
        match &result {
            Err(EngineError::Store(StoreError::SeverityRose { .. })) => {
                // The data moved under the approval: grade it afresh for a new decision.
                self.files.forget(&file);
                self.process(turn, BTreeSet::from([file])).await;
            }
            Ok(_) => {
                self.follow(turn, &file).await;
                // Files rejected because of this one (a deletion others referred
                // to, a reference to what it creates) may go through now.
                if self.files.waiting_on_others().next().is_some() {
                    self.process(turn, BTreeSet::new()).await;
                }
            }
            _ => {}
        }
        result
    }

    /// Approves what another instance's copy proposes: applied here like any
    /// change (the database is shared); this copy of the file is then checked
    /// again (it is behind, or a proposal of its own planned afresh).
    async fn approve_remote(
        &mut self,
        turn: &mut Turn,
        change: PendingChange,
        approval: Approval,
        verdict: Result<(), EngineError>,
    ) -> Result<VersionRow, EngineError> {
        match verdict {
            Err(e @ (EngineError::NotApprovable { .. } | EngineError::ConfirmationRequired { .. })) => return Err(e),
            Err(e) => {
                self.cluster.remote.retain(|_, c| c.id != change.id);
                turn.resync = true;
                return Err(e);
            }
            Ok(()) => self.cluster.remote.retain(|_, c| c.id != change.id),
        }
        let file = change.file.clone();
        let result = self.approved(turn, change, approval).await;
        self.reprocess(turn, BTreeSet::new(), BTreeSet::from([file]), BTreeMap::new()).await;
        result
    }

    /// An approval that met the rules: announced, then applied.
    async fn approved(
        &mut self,
        turn: &mut Turn,
        change: PendingChange,
        approval: Approval,
    ) -> Result<VersionRow, EngineError> {
        let message = format!("approved by {}", approval.actor);
        self.emit(turn, EventKind::Approved, &change.file, Some(&change), None, message);
        let reason = approval.reason.or_else(|| change.reason.clone());
        self.apply(turn, change, &approval.actor, reason).await
    }

    /// The waiting change of an earlier stage, to the same subject, that
    /// `change` needs (without it, `change` would not pass on the applied
    /// site): a data change waits for the schema change adding its field.
    fn waits_for(&self, change: &PendingChange) -> Option<String> {
        let first = self.files.pending_changes().find(|c| {
            c.id != change.id && c.entity == change.entity && Self::stage(&c.file) < Self::stage(&change.file)
        })?;
        (!self.stands_alone(&change.file, change.new_file.as_ref())).then(|| first.file.clone())
    }

    /// After `file`'s change applied by approval: the changes of a later
    /// stage to the same subject, which waited with it (see `decide`), are
    /// planned afresh on what is applied now, and decided like any change
    /// (SAFE ones apply, as they would have in its batch).
    async fn follow(&mut self, turn: &mut Turn, file: &str) {
        let Some(subject) = self.applied.subject_of(file).map(str::to_string) else { return };
        let behind: BTreeSet<String> = self
            .files
            .pending_changes()
            .filter(|c| c.entity == subject && Self::stage(&c.file) > Self::stage(file) && c.rollback_to.is_none())
            .map(|c| c.file.clone())
            .collect();
        if behind.is_empty() {
            return;
        }
        for path in &behind {
            self.files.forget(path);
        }
        self.process(turn, behind).await;
    }
}
