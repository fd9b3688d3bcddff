//! Planning a whole site: every file that differs between two sites, in an order
//! the database accepts.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::config::diff_configs;
use crate::diff::diff_entities;
use crate::grade::{grade, GradedChange};
use crate::hazard::Severity;
use crate::plan::{plan_change, plan_config, Plan, PlanBinding};
use crate::site::{Site, SiteFile};

/// One file's change between two sites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileChange {
    pub file: String,
    pub old: Option<SiteFile>,
    pub new: Option<SiteFile>,
    pub graded: GradedChange,
    pub plan: Plan,
}

impl FileChange {
    pub fn severity(&self) -> Severity {
        self.plan.severity()
    }

    /// The entity or config the file defines, the old one for a deletion.
    pub fn subject(&self) -> &str {
        self.new.as_ref().or(self.old.as_ref()).map(SiteFile::subject).unwrap_or("")
    }
}

/// Plans every file whose hash differs between `old` and `new`. Creations and
/// edits come in `new`'s dependency order (referenced entities first), deletions
/// after them in reverse `old` order (referring entities dropped first).
/// `backup_tag(file, short_hash)` names the backups a file's plan may create.
pub fn plan_sites(old: &Site, new: &Site, backup_tag: impl Fn(&str, &str) -> String) -> Vec<FileChange> {
    let paths: BTreeSet<&str> = old.paths().chain(new.paths()).map(String::as_str).collect();
    let changed: Vec<&str> = paths.into_iter().filter(|p| old.hash_of(p) != new.hash_of(p)).collect();
    let new_order = new.dependency_order();
    let old_order = old.dependency_order();
    let rank = |path: &str| -> (usize, usize) {
        match (new.get(path), old.get(path)) {
            (Some(f), _) => (0, new_order.iter().position(|id| *id == f.entity.id).unwrap_or(usize::MAX)),
            (None, Some(f)) => (1, usize::MAX - old_order.iter().position(|id| *id == f.entity.id).unwrap_or(0)),
            // Configuration files: no SQL, no order among them.
            (None, None) => (0, usize::MAX),
        }
    };
    let mut ordered = changed;
    ordered.sort_by_key(|p| rank(p));
    ordered
        .into_iter()
        .map(|path| plan_file(path, old.file(path).as_ref(), new.file(path).as_ref(), &backup_tag))
        .collect()
}

/// Plans one file from `old` to `new` (either may be absent).
pub fn plan_file(
    path: &str,
    old: Option<&SiteFile>,
    new: Option<&SiteFile>,
    backup_tag: impl Fn(&str, &str) -> String,
) -> FileChange {
    let is_config = old.or(new).is_some_and(|f| f.config().is_some());
    let graded = if is_config {
        grade(diff_configs(
            old.and_then(SiteFile::config).map(|c| &c.doc),
            new.and_then(SiteFile::config).map(|c| &c.doc),
        ))
    } else {
        grade(diff_entities(old.and_then(SiteFile::entity), new.and_then(SiteFile::entity)))
    };
    let base_hash = old.map(|f| f.hash().to_string()).unwrap_or_default();
    let target_hash = new.map(|f| f.hash().to_string()).unwrap_or_default();
    let short = if target_hash.is_empty() { &base_hash } else { &target_hash };
    let binding = PlanBinding { backup_tag: backup_tag(path, &short[..short.len().min(8)]), base_hash, target_hash };
    let plan = if is_config {
        plan_config(&graded, binding)
    } else {
        plan_change(old.and_then(SiteFile::entity), new.and_then(SiteFile::entity), &graded, binding)
    };
    FileChange { file: path.to_string(), old: old.cloned(), new: new.cloned(), graded, plan }
}
