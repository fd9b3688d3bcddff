//! Planning a whole site: every file that differs between two sites, in an order
//! the database accepts.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::grade::GradedChange;
use crate::hazard::Severity;
use crate::kind::kind_of;
use crate::plan::{Dialect, ForeignKey, Plan, PlanBinding, PlanContext};
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

/// Plans every file whose hash differs between `old` and `new`, kind by kind in
/// stage order ([`crate::kind::FileKind::stage`]: schemas, then configuration,
/// then data). Within a kind, creations and edits come in `new`'s dependency
/// order of their subjects (referenced entities first), deletions after them
/// in reverse `old` order (referring entities dropped first).
/// `backup_tag(file, short_hash)` names the backups a file's plan may create.
pub fn plan_sites(old: &Site, new: &Site, backup_tag: impl Fn(&str, &str) -> String) -> Vec<FileChange> {
    plan_sites_in(Dialect::Sqlite, old, new, backup_tag)
}

/// [`plan_sites`] for `dialect`.
pub fn plan_sites_in(
    dialect: Dialect,
    old: &Site,
    new: &Site,
    backup_tag: impl Fn(&str, &str) -> String,
) -> Vec<FileChange> {
    let paths: BTreeSet<&str> = old.paths().chain(new.paths()).map(String::as_str).collect();
    let changed: BTreeSet<&str> = paths.into_iter().filter(|p| old.hash_of(p) != new.hash_of(p)).collect();
    plan_files_in(dialect, old, new, changed, backup_tag)
}

/// [`plan_sites_in`] when the caller knows which files may differ (`paths`; the
/// ones whose hash is the same are left out): the engine's batches. Its cost
/// depends on those files and the entities they touch, not on the size of the
/// sites; the order is the dependency order among the changed entities alone,
/// which is all the database needs (every other table exists before and after).
pub fn plan_files_in<'a>(
    dialect: Dialect,
    old: &Site,
    new: &Site,
    paths: impl IntoIterator<Item = &'a str>,
    backup_tag: impl Fn(&str, &str) -> String,
) -> Vec<FileChange> {
    let changed: Vec<&str> = paths.into_iter().filter(|p| old.hash_of(p) != new.hash_of(p)).collect();
    let ids_in = |site: &Site| -> BTreeSet<String> {
        changed.iter().filter_map(|p| site.subject_of(p)).map(str::to_string).collect()
    };
    let position = |order: Vec<String>| -> BTreeMap<String, usize> { order.into_iter().zip(0..).collect() };
    let (new_ids, old_ids) = (ids_in(new), ids_in(old));
    let new_order = position(new.dependency_order_of(new_ids.iter().map(String::as_str)));
    let old_order = position(old.dependency_order_of(old_ids.iter().map(String::as_str)));
    // Subjects that are no entity (config ids) have no order among them.
    let rank = |path: &str| -> (u8, usize, usize) {
        let stage = kind_of(path).map(|k| k.stage()).unwrap_or(u8::MAX);
        match (new.subject_of(path), old.subject_of(path)) {
            (Some(id), _) => (stage, 0, new_order.get(id).copied().unwrap_or(usize::MAX)),
            (None, Some(id)) => (stage, 1, usize::MAX - old_order.get(id).copied().unwrap_or(0)),
            (None, None) => (stage, 0, usize::MAX),
        }
    };
    let mut ordered = changed;
    ordered.sort_by_cached_key(|p| rank(p));

    let entity_at = |site: &Site, path: &str| site.schema_file(path).map(|f| f.entity.id.clone());
    let renames: BTreeMap<String, String> = ordered
        .iter()
        .filter_map(|p| {
            let (from, to) = (entity_at(old, p)?, new.schema_file(p)?);
            (to.entity.renamed_from.as_deref() == Some(from.as_str()) && to.entity.id != from)
                .then(|| (from, to.entity.id.clone()))
        })
        .collect();
    // Entities whose table is gone once its file's plan has run (not renamed).
    let dropped: Vec<Option<String>> = ordered
        .iter()
        .map(|p| entity_at(old, p).filter(|id| entity_at(new, p).as_ref() != Some(id) && !renames.contains_key(id)))
        .collect();
    // A batch that changes `system.redact_keys` hides what either list names.
    let redaction = old.redaction().union(&new.redaction());
    // Entities whose tables exist at this point of the batch: the old site's,
    // less what the batch has dropped so far, plus what it has created.
    let (mut created, mut gone) = (BTreeSet::<String>::new(), BTreeSet::<String>::new());
    let mut waiting: Vec<ForeignKey> = Vec::new();
    let mut out = Vec::with_capacity(ordered.len());
    for (i, path) in ordered.iter().enumerate() {
        let (was, will_be) = (entity_at(old, path), entity_at(new, path));
        let exists = |id: &str| created.contains(id) || (!gone.contains(id) && old.entity_file(id).is_some());
        let mut ctx = PlanContext {
            dialect,
            existing: &exists,
            waiting: Vec::new(),
            referrers_dropped_later: Vec::new(),
            renames: &renames,
            redaction: &redaction,
            site: new,
        };
        if let Some(t) = will_be.as_ref().filter(|t| !exists(t)) {
            let (now, later) = waiting.into_iter().partition(|fk| fk.target() == t);
            ctx.waiting = now;
            waiting = later;
        }
        if let Some(x) = &dropped[i] {
            for y in dropped[i + 1..].iter().flatten().filter(|y| *y != x) {
                let Some(yf) = old.entity_file(y) else { continue };
                ctx.referrers_dropped_later.extend(
                    yf.entity
                        .fields
                        .iter()
                        .filter(|f| f.target_entity.as_ref() == Some(x))
                        .map(|f| ForeignKey { entity: y.clone(), field: f.clone() }),
                );
            }
        }
        let change = plan_file_in(path, old.file(path).as_ref(), new.file(path).as_ref(), &backup_tag, &ctx);
        waiting.extend(change.plan.deferred.iter().cloned());
        if let Some(x) = was.filter(|x| will_be.as_ref() != Some(x)) {
            created.remove(&x);
            gone.insert(x);
        }
        if let Some(y) = will_be {
            gone.remove(&y);
            created.insert(y);
        }
        out.push(change);
    }
    out
}

/// Plans one file from `old` to `new` (either may be absent), for SQLite.
pub fn plan_file(
    path: &str,
    old: Option<&SiteFile>,
    new: Option<&SiteFile>,
    backup_tag: impl Fn(&str, &str) -> String,
) -> FileChange {
    plan_file_in(path, old, new, backup_tag, &PlanContext::alone(Dialect::Sqlite))
}

/// Plans one file from `old` to `new` in the setting `ctx` describes.
pub fn plan_file_in(
    path: &str,
    old: Option<&SiteFile>,
    new: Option<&SiteFile>,
    backup_tag: impl Fn(&str, &str) -> String,
    ctx: &PlanContext,
) -> FileChange {
    let kind = old.or(new).map(SiteFile::kind).or_else(|| kind_of(path)).expect("a planned file has a kind");
    let base_hash = old.map(|f| f.hash().to_string()).unwrap_or_default();
    let target_hash = new.map(|f| f.hash().to_string()).unwrap_or_default();
    let short = if target_hash.is_empty() { &base_hash } else { &target_hash };
    let binding = PlanBinding { backup_tag: backup_tag(path, &short[..short.len().min(8)]), base_hash, target_hash };
    let (graded, plan) = kind.plan(old, new, binding, ctx);
    FileChange { file: path.to_string(), old: old.cloned(), new: new.cloned(), graded, plan }
}
