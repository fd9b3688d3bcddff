//! The worker's side of proposals shared between instances with a copy of the
//! site each (see [`crate::engine::proposals`]): publishing what this copy
//! proposes, planning what the other copies propose, and marking a file that
//! copies propose different texts for as a conflict.

use std::collections::{BTreeMap, BTreeSet};

use super::{Turn, Worker};
use crate::engine::events::EventKind;
use crate::engine::proposals::Proposal;
use crate::engine::snapshot::PendingChange;
use crate::engine::SiteLayout;
use crate::site::SiteFile;
use crate::site_plan::{plan_files_in, FileChange};

impl Worker {
    fn shares_proposals(&self) -> bool {
        self.config.site_layout == SiteLayout::PerInstance
    }

    /// Makes `marain_proposals` say what this copy proposes now: the changes
    /// waiting here for files of this copy (not rollbacks, which a person asked
    /// for here). Only what differs from the last publish is written; a failed
    /// write is tried again at the end of the next turn.
    pub(super) async fn publish_proposals(&mut self) {
        if !self.shares_proposals() {
            return;
        }
        let desired: BTreeMap<&String, &PendingChange> =
            self.files.pending_changes().filter(|c| c.rollback_to.is_none()).map(|c| (&c.file, c)).collect();
        let upserts: Vec<Proposal> = desired
            .iter()
            .filter(|(file, change)| self.cluster.proposed.get(**file) != Some(&change.to_hash))
            .map(|(file, change)| Proposal {
                file: (*file).clone(),
                instance: self.config.instance_name.clone(),
                base_hash: change.from_hash.clone(),
                to_hash: change.to_hash.clone(),
                text: change.new_text().map(str::to_string),
                proposed_at: change.created_at.clone(),
            })
            .collect();
        let withdrawn: Vec<String> =
            self.cluster.proposed.keys().filter(|f| !desired.contains_key(f)).cloned().collect();
        if upserts.is_empty() && withdrawn.is_empty() {
            return;
        }
        match self.store.cluster().publish_proposals(&self.config.instance_name, &upserts, &withdrawn).await {
            Ok(()) => {
                for file in &withdrawn {
                    self.cluster.proposed.remove(file);
                }
                for p in upserts {
                    self.cluster.proposed.insert(p.file, p.to_hash);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot share this copy's proposals; trying again next turn"),
        }
    }

    /// Loads what the other instances' copies propose and plans each against
    /// the applied state here, so it shows (and can be approved) here too. A
    /// proposal whose text is applied already is dropped; one planned before and
    /// unchanged is kept with its id.
    pub(super) async fn load_remote(&mut self, turn: &mut Turn) {
        if !self.shares_proposals() {
            return;
        }
        let proposals = match self.store.cluster().proposals_except(&self.config.instance_name).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the other instances' proposals");
                return;
            }
        };
        let mut previous = std::mem::take(&mut self.cluster.remote);
        for p in proposals {
            let key = (p.file.clone(), p.instance.clone());
            let applied_hash = self.applied.hash_of(&p.file).unwrap_or_default().to_string();
            if p.to_hash == applied_hash {
                continue;
            }
            if let Some(kept) = previous.remove(&key).filter(|c| c.to_hash == p.to_hash && c.from_hash == applied_hash)
            {
                self.cluster.remote.insert(key, kept);
                continue;
            }
            if self.cluster.decline_of(&p.file, &p.to_hash).is_some() {
                continue;
            }
            let Some((planned, redaction)) = self.plan_proposal(&p) else { continue };
            let mut change = self.pending_change(planned, None, &redaction).await;
            change.origin = Some(p.instance.clone());
            let message = format!(
                "{} change proposed by the copy on {} waits for approval: {}",
                change.severity,
                p.instance,
                change.summary.join("; ")
            );
            self.emit(turn, EventKind::Pending, &p.file, Some(&change), None, message);
            self.cluster.remote.insert(key, change);
        }
        for ((file, instance), gone) in previous {
            let message = format!("change {} superseded: the copy on {instance} no longer proposes it", gone.id);
            self.emit(turn, EventKind::Superseded, &file, Some(&gone), None, message);
        }
        turn.changed = true;
    }

    /// `p` planned against the applied state, if its text is valid with the
    /// rest of the applied site, and the keys its diff hides.
    fn plan_proposal(&self, p: &Proposal) -> Option<(FileChange, crate::secrets::Redaction)> {
        let mut site = self.applied.clone();
        match &p.text {
            Some(text) => site.insert_file(SiteFile::parse(&p.file, text).ok()?),
            None => site.remove(&p.file),
        }
        if !site.check_changes(&self.applied, [&p.file]).is_empty() {
            tracing::warn!(file = %p.file, instance = %p.instance, "another instance's proposal does not fit the site applied here");
            return None;
        }
        let versions = &self.versions;
        let planned = plan_files_in(self.store.dialect(), &self.applied, &site, [p.file.as_str()], |file, short| {
            format!("v{}_{short}", versions.get(file).copied().unwrap_or(0) + 1)
        })
        .into_iter()
        .find(|c| c.file == p.file)?;
        Some((planned, self.applied.redaction().union(&site.redaction())))
    }

    /// Marks every waiting change of a file that copies propose different texts
    /// for as a conflict, and clears the mark where that is over.
    pub(super) fn mark_conflicts(&mut self) {
        let mut texts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for c in self.files.pending_changes().chain(self.cluster.remote.values()) {
            texts.entry(c.file.clone()).or_default().insert(c.to_hash.clone());
        }
        let conflicted = |c: &PendingChange| texts.get(&c.file).is_some_and(|t| t.len() > 1);
        self.files.edit_pending(|c| c.conflict = conflicted(c));
        for c in self.cluster.remote.values_mut() {
            c.conflict = conflicted(c);
        }
    }
}
