//! What the worker knows of the other instances that share its database: the
//! newest history row it took in, every text each file was applied as (to tell
//! a copy that is behind from a new proposal), what the other copies propose,
//! what this copy's proposals were last published as, and the standing
//! declines. One value, so the single-instance path reads as such.

use std::collections::BTreeMap;

use crate::engine::declines::Decline;
use crate::engine::snapshot::PendingChange;

/// How many changes applied elsewhere are remembered for a late approval.
const APPLIED_ELSEWHERE_KEPT: usize = 1000;

#[derive(Default)]
pub(in crate::engine) struct Cluster {
    /// The newest history row taken in; a sync loads the rows after it.
    pub synced_id: i64,
    /// Pending changes another instance applied first (change id → file and
    /// version), so approving one here says so instead of "no such change".
    applied_elsewhere: BTreeMap<u64, (String, i64)>,
    /// Every text each file has been applied as: file → hash → newest version
    /// with that hash.
    texts_applied: BTreeMap<String, BTreeMap<String, i64>>,
    /// What other instances' copies propose, planned here: (file, instance) →
    /// change (per-instance copies).
    pub remote: BTreeMap<(String, String), PendingChange>,
    /// What this copy's proposals were last published as: file → text hash.
    pub proposed: BTreeMap<String, String>,
    /// Standing declines, from the database: (file, text hash) → who and why.
    pub declines: BTreeMap<(String, String), Decline>,
}

impl Cluster {
    /// `file` was applied as the text hashed `hash`, as `version`.
    pub fn text_applied(&mut self, file: &str, hash: &str, version: i64) {
        self.texts_applied.entry(file.to_string()).or_default().insert(hash.to_string(), version);
    }

    /// The newest version `file` was applied as with the text hashed `hash`.
    pub fn version_of_text(&self, file: &str, hash: &str) -> Option<i64> {
        self.texts_applied.get(file)?.get(hash).copied()
    }

    /// Change `id` waited here, and another instance applied `file` as `version` first.
    pub fn applied_elsewhere(&mut self, id: u64, file: &str, version: i64) {
        self.applied_elsewhere.insert(id, (file.to_string(), version));
        while self.applied_elsewhere.len() > APPLIED_ELSEWHERE_KEPT {
            self.applied_elsewhere.pop_first();
        }
    }

    /// Where change `id` went, if another instance applied its file first.
    pub fn went_elsewhere(&self, id: u64) -> Option<&(String, i64)> {
        self.applied_elsewhere.get(&id)
    }

    /// The standing decline of `file`'s text hashed `to_hash`.
    pub fn decline_of(&self, file: &str, to_hash: &str) -> Option<&Decline> {
        self.declines.get(&(file.to_string(), to_hash.to_string()))
    }

    /// Whether another copy proposes other text for the file of `change`: then
    /// neither applies by itself.
    pub fn contested(&self, change: &PendingChange) -> bool {
        self.remote.iter().any(|((file, _), other)| *file == change.file && other.to_hash != change.to_hash)
    }
}
