//! The gate: a planned change is probed on the live data and graded again;
//! SAFE changes under the auto policy apply at once, the rest wait for a
//! person (or are turned down again, when a person declined the same text).

use super::{Turn, Worker};
use crate::engine::events::EventKind;
use crate::engine::now_rfc3339;
use crate::engine::snapshot::PendingChange;
use crate::kind::shown_text;
use crate::secrets::Redaction;
use crate::site::SiteFile;
use crate::site_plan::FileChange;
use crate::text_diff::text_diff;

impl Worker {
    /// The waiting change of `path`, if any, goes, announced with `why`.
    pub(super) fn supersede(&mut self, turn: &mut Turn, path: &str, why: &str) {
        if let Some(old) = self.files.supersede(path) {
            let message = format!("change {} superseded: {why}", old.id);
            self.emit(turn, EventKind::Superseded, path, Some(&old), None, message);
        }
    }

    /// SAFE changes apply at once under the auto policy; the rest wait for a
    /// person, and so does a change `behind` one that waits. Returns whether
    /// the change applied.
    pub(super) async fn decide(
        &mut self,
        turn: &mut Turn,
        planned: FileChange,
        redaction: &Redaction,
        behind: bool,
    ) -> bool {
        let path = planned.file.clone();
        self.supersede(turn, &path, "the file changed again before approval");
        let change = self.pending_change(planned, None, redaction).await;
        let auto = change.severity.auto_applies() && self.settings.auto_applies(&path, self.config.auto_apply_safe);
        if auto && !behind && !self.cluster.contested(&change) {
            // A failure is already recorded and announced by apply().
            self.apply(turn, change, "watcher", None).await.is_ok()
        } else {
            self.hold(turn, change);
            false
        }
    }

    /// `change` waits for a person, unless a person declined its text before
    /// (here, elsewhere, or before a restart).
    pub(super) fn hold(&mut self, turn: &mut Turn, change: PendingChange) {
        let declined = self.cluster.decline_of(&change.file, &change.to_hash).filter(|_| change.rollback_to.is_none());
        if let Some(decline) = declined.cloned() {
            self.turn_down(turn, &change, &decline);
            return;
        }
        let message = format!("{} change waits for approval: {}", change.severity, change.summary.join("; "));
        self.emit(turn, EventKind::Pending, &change.file.clone(), Some(&change), None, message);
        self.files.hold(change);
    }

    /// A planned change, probed on the live data, as it waits for a decision;
    /// `redaction` names the keys its text diff hides.
    pub(super) async fn pending_change(
        &mut self,
        planned: FileChange,
        rollback_to: Option<i64>,
        redaction: &Redaction,
    ) -> PendingChange {
        let path = planned.file.clone();
        let mut planned = planned;
        self.choose_path(&mut planned.plan).await;
        let mut probed = self.probed(&planned.plan).await;
        if let Some(old) = planned.old.as_ref().and_then(SiteFile::entity) {
            let new = planned.new.as_ref().and_then(SiteFile::entity);
            match crate::engine::legacy::impact::hazard(&self.store, old, new).await {
                Ok(Some(hazard)) => match probed.steps.first_mut() {
                    Some(step) => step.hazards.push(hazard),
                    // No database change (a `renamed_from` dropped, say), yet
                    // rows waiting in the legacy table would stop fitting.
                    None => probed.steps.push(crate::plan::Step::record(
                        "legacy rows not copied yet would no longer fit".into(),
                        vec![hazard],
                    )),
                },
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "could not read the legacy rows a change affects"),
            }
        }
        let hazards = probed.hazards();
        let headline = crate::diff::headline(planned.graded.items.iter().map(|i| &i.item), &hazards);
        let from_version = planned.old.as_ref().and_then(|_| self.versions.get(&path).copied());
        let graded: Vec<String> =
            hazards.iter().map(|h| format!("{} {} {}", h.severity, h.code.as_str(), h.message)).collect();
        let (from, rollback) = (format!("{from_version:?}"), format!("{rollback_to:?}"));
        let mut identity = vec![path.as_str(), &from, &planned.plan.binding.base_hash, &rollback];
        identity.push(&planned.plan.binding.target_hash);
        identity.extend(graded.iter().map(String::as_str));
        PendingChange {
            id: super::files::change_id(&identity),
            headline,
            entity: planned.subject().to_string(),
            severity: probed.severity(),
            hazards,
            from_version,
            from_hash: planned.plan.binding.base_hash.clone(),
            to_hash: planned.plan.binding.target_hash.clone(),
            created_at: now_rfc3339(),
            summary: planned.graded.items.iter().map(|i| i.item.summary()).collect(),
            rows: planned.graded.items.iter().filter_map(|i| i.item.row_diff()).collect(),
            // Secrets in configuration files never reach the diff view.
            text_diff: text_diff(
                &shown_text(&path, planned.old.as_ref().map(SiteFile::text).unwrap_or(""), redaction),
                &shown_text(&path, planned.new.as_ref().map(SiteFile::text).unwrap_or(""), redaction),
            ),
            new_file: planned.new,
            plan: planned.plan,
            file: path,
            rollback_to,
            origin: None,
            conflict: false,
            reason: None,
        }
    }

    /// Sets how `plan` applies, from the rows of the tables its online steps
    /// read in full and `hot_reload.online_threshold_rows`. A count that
    /// fails leaves the one-transaction path.
    async fn choose_path(&self, plan: &mut crate::plan::Plan) {
        let mut most = None;
        for table in plan.online_tables() {
            match self.store.rows_of(&table).await {
                Ok(n) => most = most.max(Some(n)),
                Err(e) => {
                    tracing::warn!(%table, error = %e, "could not count a table's rows; the change applies in one transaction");
                    return;
                }
            }
        }
        plan.choose_path(most, self.settings.online_threshold());
    }

    /// The plan re-graded on the live data; if a probe cannot run (the table is
    /// not what the history says), the static grading stands.
    async fn probed(&self, plan: &crate::plan::Plan) -> crate::plan::Plan {
        let mut probed = plan.clone();
        match self.store.probe(plan).await {
            Ok(counts) => probed.regrade(|p| counts.get(&p.sql).copied()),
            Err(e) => tracing::warn!(error = %e, "a probe failed; keeping the static grading"),
        }
        // Where a probe found something, what the database holds is shown too.
        for hazard in probed.steps.iter_mut().flat_map(|s| s.hazards.iter_mut()) {
            let Some(shows) = hazard.probe.as_ref().and_then(|p| p.shows.clone()) else { continue };
            if hazard.counted.unwrap_or(0) == 0 {
                continue;
            }
            match self.store.pool().fetch_json(&shows.sql, &[]).await {
                Ok(rows) => {
                    if let Some(row) = rows.first() {
                        hazard.message = format!("{}; {}", hazard.message, shows.describe(row));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not read the row a probe found"),
            }
        }
        probed
    }
}
