//! The worker's side of several instances on one database: taking in what the
//! other instances applied (see [`crate::engine::sync`] for how it is noticed),
//! following a rollback applied elsewhere, and telling a copy that is behind
//! from a new proposal.

use std::collections::BTreeSet;

use super::{Turn, Worker};
use crate::engine::events::{EngineEvent, EventKind};
use crate::engine::scan::{read_site_file, write_site_file};
use crate::engine::SiteLayout;
use crate::hash::sha256_hex;
use crate::site::SiteFile;

impl Worker {
    /// Takes in the versions other instances applied since the last sync: the
    /// applied state follows the history, their pending twins here are dropped,
    /// each is announced as applied, and the files are checked again against
    /// the new applied state.
    pub(super) async fn sync(&mut self, turn: &mut Turn) {
        let rows = match self.store.history().history_after(self.cluster.synced_id).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "cannot read what other instances applied; the next sync tries again");
                return;
            }
        };
        let mut touched = BTreeSet::new();
        for row in rows {
            self.cluster.synced_id = self.cluster.synced_id.max(row.id);
            if self.versions.get(&row.file).is_some_and(|known| *known >= row.version) {
                continue;
            }
            let rolled_back_from = self.applied.hash_of(&row.file).map(str::to_string);
            let returns_to_earlier = self.cluster.version_of_text(&row.file, &row.hash).is_some();
            self.versions.insert(row.file.clone(), row.version);
            self.cluster.text_applied(&row.file, &row.hash, row.version);
            if returns_to_earlier {
                self.follow_rollback(&row.file, rolled_back_from.as_deref(), row.yaml.as_deref());
            }
            match row.yaml.as_deref().map(|text| SiteFile::parse(&row.file, text)) {
                Some(Ok(file)) => self.applied.insert_file(file),
                Some(Err(errors)) => {
                    tracing::error!(file = %row.file, ?errors, "a version another instance applied does not parse here")
                }
                None => self.applied.remove(&row.file),
            }
            if let Some(change) = self.files.settle_elsewhere(&row.file) {
                self.cluster.applied_elsewhere(change.id, &row.file, row.version);
            }
            crate::engine::telemetry::synced(&row.applied_at);
            let message = format!("version {} applied by {} on another instance", row.version, row.actor);
            let event = self.journal.event(EventKind::Applied, &row.file, None, Some(row.version), message);
            let event = EngineEvent { actor: Some(row.actor.clone()), severity: Some(row.severity), ..event };
            self.journal.record(turn, event);
            touched.insert(row.file);
        }
        if !touched.is_empty() && !self.drift.is_empty() {
            // Drift found before these versions arrived may be nothing but them.
            self.check_drift().await;
        }
        if !touched.is_empty() {
            if touched.iter().any(|f| crate::kind::feeds_live_settings(f)) {
                self.settings = self.live_settings();
            }
            turn.changed = true;
            self.reprocess(turn, BTreeSet::new(), touched, Default::default()).await;
        }
        self.follow_rejections(turn).await;
        self.load_remote(turn).await;
    }

    /// Another instance rolled `file` back to earlier text: a copy here that
    /// still holds the text rolled back from is rewritten, so the files stay the
    /// truth on every host. A copy that holds anything else is left alone (it is
    /// someone's edit, or a copy behind).
    pub(super) fn follow_rollback(&mut self, file: &str, rolled_back_from: Option<&str>, text: Option<&str>) {
        let Ok(disk) = read_site_file(&self.config.site_root, file) else { return };
        let disk_hash = disk.as_deref().map(|t| sha256_hex(t.as_bytes()));
        if disk_hash.is_none() || disk_hash.as_deref() != rolled_back_from {
            return;
        }
        match write_site_file(&self.config.site_root, file, text) {
            Ok(()) => {
                self.files.see(file, text.map(|t| sha256_hex(t.as_bytes())));
                tracing::info!(file, "rolled back on another instance; this copy follows");
            }
            Err(e) => {
                tracing::error!(file, error = %e, "rolled back on another instance, but this copy could not be rewritten")
            }
        }
    }

    /// The applied version this copy's text was, when it is an older one and
    /// each instance has its own copy: such a copy is behind, not a proposal.
    pub(super) fn behind_version(&self, path: &str, disk_hash: Option<&str>) -> Option<i64> {
        if self.config.site_layout != SiteLayout::PerInstance {
            return None;
        }
        let version = self.cluster.version_of_text(path, disk_hash?)?;
        (Some(version) < self.versions.get(path).copied()).then_some(version)
    }
}
