//! Planning a whole site: every file that differs between two sites, in an order
//! the database accepts.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::diff::diff_entities;
use crate::grade::{grade, GradedChange};
use crate::hazard::Severity;
use crate::plan::{plan_change, Plan, PlanBinding};
use crate::site::{SchemaFile, Site};

/// One file's change between two sites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileChange {
    pub file: String,
    pub old: Option<SchemaFile>,
    pub new: Option<SchemaFile>,
    pub graded: GradedChange,
    pub plan: Plan,
}

impl FileChange {
    pub fn severity(&self) -> Severity {
        self.plan.severity()
    }

    /// The entity the file defines, the old one for a deletion.
    pub fn entity(&self) -> &str {
        self.new.as_ref().or(self.old.as_ref()).map(|f| f.entity.id.as_str()).unwrap_or("")
    }
}

/// Plans every file whose hash differs between `old` and `new`. Creations and
/// edits come in `new`'s dependency order (referenced entities first), deletions
/// after them in reverse `old` order (referring entities dropped first).
/// `backup_tag(file, short_hash)` names the backups a file's plan may create.
pub fn plan_sites(old: &Site, new: &Site, backup_tag: impl Fn(&str, &str) -> String) -> Vec<FileChange> {
    let paths: BTreeSet<&str> = old.files().chain(new.files()).map(|f| f.path.as_str()).collect();
    let changed: Vec<&str> =
        paths.into_iter().filter(|p| old.get(p).map(|f| &f.hash) != new.get(p).map(|f| &f.hash)).collect();
    let new_order = new.dependency_order();
    let old_order = old.dependency_order();
    let rank = |path: &str| -> (usize, usize) {
        match (new.get(path), old.get(path)) {
            (Some(f), _) => (0, new_order.iter().position(|id| *id == f.entity.id).unwrap_or(usize::MAX)),
            (None, Some(f)) => (1, usize::MAX - old_order.iter().position(|id| *id == f.entity.id).unwrap_or(0)),
            (None, None) => (2, 0),
        }
    };
    let mut ordered = changed;
    ordered.sort_by_key(|p| rank(p));
    ordered.into_iter().map(|path| plan_file(path, old.get(path), new.get(path), &backup_tag)).collect()
}

/// Plans one file from `old` to `new` (either may be absent).
pub fn plan_file(
    path: &str,
    old: Option<&SchemaFile>,
    new: Option<&SchemaFile>,
    backup_tag: impl Fn(&str, &str) -> String,
) -> FileChange {
    let graded = grade(diff_entities(old.map(|f| &f.entity), new.map(|f| &f.entity)));
    let base_hash = old.map(|f| f.hash.clone()).unwrap_or_default();
    let target_hash = new.map(|f| f.hash.clone()).unwrap_or_default();
    let short = if target_hash.is_empty() { &base_hash } else { &target_hash };
    let binding = PlanBinding { backup_tag: backup_tag(path, &short[..short.len().min(8)]), base_hash, target_hash };
    let plan = plan_change(old.map(|f| &f.entity), new.map(|f| &f.entity), &graded, binding);
    FileChange { file: path.to_string(), old: old.cloned(), new: new.cloned(), graded, plan }
}
