//! Rollback and point-in-time recovery, planned: every file goes back to the text
//! of an earlier applied version, and whatever that brings back (a field, an
//! entity) is refilled from the backup tables the later versions made when they
//! dropped it. Plain functions: the engine gathers the texts and the backup names,
//! this decides the changes; `tests/restore_plan.rs` runs it without a database.

use std::collections::BTreeMap;

use crate::plan::PlanContext;
use crate::site::{Site, SiteFile};
use crate::site_plan::{plan_file_in, plan_sites_in, FileChange};
use crate::sql::Dialect;

/// Where one file goes back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreTarget {
    /// The applied version it returns to; 0 when the file did not exist then.
    pub version: i64,
    /// That version's text; `None` when the file is absent at that version.
    pub text: Option<String>,
    /// The backup tables the file's versions after `version` made and that still
    /// exist, oldest first: what refills the data those versions dropped.
    pub backups: Vec<String>,
}

/// A planned change that returns a file to `to_version`.
#[derive(Debug, Clone, PartialEq)]
pub struct Restore {
    pub change: FileChange,
    pub to_version: i64,
}

/// What to do with a target whose text is already the applied one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unchanged {
    /// Nothing to plan (point-in-time recovery: only differing files change).
    Skip,
    /// Plan an empty change anyway (a one-file rollback: approving it still
    /// rewrites the file on disk to that text, discarding an unapplied edit).
    Rewrite,
}

/// Plans every file of `targets` from the `applied` site back to its target, as
/// one batch in the order the database accepts, each with the steps that refill
/// its data from its backups. `next_version(file)` is the version each change
/// will be recorded as (it names the backups the change itself makes).
///
/// Fails, naming why, when a target text no longer parses or when the site the
/// targets make breaks a cross-file rule (a reference to an entity that is gone).
pub fn plan_restore(
    dialect: Dialect,
    applied: &Site,
    targets: &BTreeMap<String, RestoreTarget>,
    next_version: impl Fn(&str) -> i64,
    unchanged: Unchanged,
) -> Result<Vec<Restore>, String> {
    let mut site = applied.clone();
    for (path, target) in targets {
        match &target.text {
            Some(text) => site.insert_file(SiteFile::parse(path, text).map_err(|errors| {
                let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
                messages.join("; ")
            })?),
            None => site.remove(path),
        }
    }
    let problems = site.check();
    if !problems.is_empty() {
        return Err(problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "));
    }
    let tag = |file: &str, short: &str| format!("v{}_{short}", next_version(file));
    let mut changes = plan_sites_in(dialect, applied, &site, tag);
    if unchanged == Unchanged::Rewrite {
        let unplanned: Vec<&String> = targets.keys().filter(|p| !changes.iter().any(|c| &c.file == *p)).collect();
        for path in unplanned {
            let ctx = PlanContext::alone(dialect);
            changes.push(plan_file_in(path, applied.file(path).as_ref(), site.file(path).as_ref(), tag, &ctx));
        }
    }
    Ok(changes
        .into_iter()
        .filter_map(|mut change| {
            let target = targets.get(&change.file)?;
            // Each kind knows what its backups refill.
            if let Some(kind) = crate::kind::kind_of(&change.file) {
                let undone = crate::kind::Undone {
                    site: &site,
                    old: change.old.as_ref(),
                    new: change.new.as_ref(),
                    graded: &change.graded,
                    backups: &target.backups,
                };
                kind.refill(dialect, &undone, &mut change.plan);
            }
            Some(Restore { change, to_version: target.version })
        })
        .collect())
}
