//! File kinds: the extension point of the pipeline. Each kind of site file
//! (entity schemas, configuration, reference data) is one [`FileKind`], which
//! owns for its files which paths it claims, parsing and validation, the rules
//! that span files, diffing, grading and planning, and what a rollback needs
//! to refill. The rest of the pipeline (the site, the batch planner, restore,
//! the engine, the CLI and the dashboard) asks the kind; none of it lists the
//! kinds. `docs/file-kinds.md` walks through adding one.

mod config;
pub mod data;
pub mod file;
mod schema;

use crate::error::FileError;
use crate::grade::GradedChange;
use crate::plan::{Dialect, Plan, PlanBinding, PlanContext};
use crate::secrets::Redaction;
use crate::site::{CheckScope, Site, SiteFile, DEFAULT_ENV};

pub use config::ConfigKind;
pub use data::DataKind;
pub use schema::SchemaKind;

/// One kind of site file. Implementations are stateless values; the registry
/// [`KINDS`] holds one of each.
pub trait FileKind: Sync {
    /// Its name in metrics, logs and messages (`schema`, `config`, `data`).
    fn name(&self) -> &'static str;

    /// The directory under the site root its files live in (walked recursively).
    fn directory(&self) -> &'static str;

    /// Its files' paths, for people: `schemas/*.schema.yaml`.
    fn pattern(&self) -> &'static str;

    /// Whether `path` (relative to the site root, `/`-separated) is one of its files.
    fn claims(&self, path: &str) -> bool;

    /// When its files run in a batch: lower stages first. Schemas (0) come
    /// before configuration (1), which comes before data (2), so a field and
    /// the data that fills it land in one save.
    fn stage(&self) -> u8;

    /// Parses and validates `text` on its own (file:line:column errors).
    fn parse(&self, path: &str, text: &str) -> Result<SiteFile, Vec<FileError>>;

    /// Whether the parsed file applies in environment `env` (configuration
    /// files may be written for one environment); other kinds always apply.
    fn active_in(&self, _file: &SiteFile, _env: &str) -> bool {
        true
    }

    /// The rules that span files, for the files `scope` names (the whole site
    /// for a full check, what a batch touches for an incremental one).
    fn check(&self, site: &Site, scope: &CheckScope) -> Vec<FileError>;

    /// Diffs, grades and plans one of its files from `old` to `new` (either
    /// may be absent) in the setting `ctx` describes.
    fn plan(
        &self,
        old: Option<&SiteFile>,
        new: Option<&SiteFile>,
        binding: PlanBinding,
        ctx: &PlanContext,
    ) -> (GradedChange, Plan);

    /// Adds to `plan` (the change taking the file back) the steps that refill
    /// what `undone` brings back from the backups the undone versions made,
    /// giving a step of `plan` an online form where the refill has one. None
    /// by default: a kind whose files hold no rows (configuration) needs only
    /// its text back.
    fn refill(&self, _dialect: Dialect, _undone: &Undone, _plan: &mut Plan) {}

    /// Whether applying one of its files changes the live settings (log
    /// level, rate limits, the auto-apply policy …), so the engine rebuilds them.
    fn feeds_live_settings(&self) -> bool {
        false
    }

    /// The text of one of its files as people may see it (secrets redacted).
    fn shown(&self, text: &str, _redaction: &Redaction) -> String {
        text.to_string()
    }

    /// The errors of one of its files (`text`) as people may see them: the
    /// secrets their messages quote hidden.
    fn shown_errors(&self, _text: &str, errors: Vec<FileError>, _redaction: &Redaction) -> Vec<FileError> {
        errors
    }
}

/// A change that takes a file back to an earlier text, as a rollback or a
/// recovery plans it: what its kind's [`FileKind::refill`] works from.
pub struct Undone<'a> {
    /// The site as the restore leaves it.
    pub site: &'a Site,
    pub old: Option<&'a SiteFile>,
    pub new: Option<&'a SiteFile>,
    pub graded: &'a GradedChange,
    /// The backup tables the undone versions made and that still exist, oldest first.
    pub backups: &'a [String],
}

/// Every kind, in stage order. Adding a kind is adding it here.
pub static KINDS: [&dyn FileKind; 3] = [&SchemaKind, &ConfigKind, &DataKind];

/// The kind that claims `path`, if any.
pub fn kind_of(path: &str) -> Option<&'static dyn FileKind> {
    KINDS.iter().copied().find(|k| k.claims(path))
}

/// Every kind's pattern, for the message that refuses a path none claims.
pub fn patterns() -> String {
    let all: Vec<&str> = KINDS.iter().map(|k| k.pattern()).collect();
    all.join(", ")
}

/// Whether applying `path` changes the live settings ([`FileKind::feeds_live_settings`]).
pub fn feeds_live_settings(path: &str) -> bool {
    kind_of(path).is_some_and(|k| k.feeds_live_settings())
}

/// Is `path` a file the site is made of (does some kind claim it)?
pub fn is_site_path(path: &str) -> bool {
    kind_of(path).is_some()
}

/// The errors of site file `path` (text `text`) as people may see them: the
/// secrets their messages quote hidden ([`FileKind::shown_errors`]).
pub fn shown_errors(path: &str, text: &str, errors: Vec<FileError>, redaction: &Redaction) -> Vec<FileError> {
    match kind_of(path) {
        Some(kind) if !errors.is_empty() => kind.shown_errors(text, errors, redaction),
        _ => errors,
    }
}

/// The text of site file `path` as people may see it: secrets redacted as its
/// kind redacts them ([`FileKind::shown`]).
pub fn shown_text(path: &str, text: &str, redaction: &Redaction) -> String {
    match kind_of(path) {
        Some(kind) => kind.shown(text, redaction),
        None => text.to_string(),
    }
}

impl SiteFile {
    /// Parses `text` as whichever kind of file `path` names.
    pub fn parse(path: &str, text: &str) -> Result<Self, Vec<FileError>> {
        match kind_of(path) {
            Some(kind) => kind.parse(path, text),
            None => Err(vec![FileError::new(path, (1, 1), None, format!("not a site file ({})", patterns()))]),
        }
    }

    /// The kind the file is of.
    pub fn kind(&self) -> &'static dyn FileKind {
        kind_of(self.path()).expect("a parsed file's path is claimed by its kind")
    }
}

impl Site {
    /// Every kind's cross-file rules over the whole site: ids are unique, a
    /// rename hint names an entity no file defines any more, references name
    /// defined entities, no two entities need one database name, records fit
    /// their entity. Errors are reported against the file that breaks the rule
    /// (for a reference, the referencing file, naming the file expected).
    pub fn check(&self) -> Vec<FileError> {
        self.check_scope(&self.whole_scope())
    }

    /// [`Site::check`] for a site that was `before` and changed at `paths`: the
    /// errors the change carries or causes, at a cost that depends on what the
    /// change touches (its files, the entities they define or defined, and the
    /// files referring to those), not on the size of the site. When `before`
    /// passed [`Site::check`], this finds every error [`Site::check`] would.
    pub fn check_changes<'a>(
        &'a self,
        before: &'a Site,
        paths: impl IntoIterator<Item = &'a String>,
    ) -> Vec<FileError> {
        self.check_scope(&self.scope_of_changes(before, paths))
    }

    fn check_scope(&self, scope: &CheckScope) -> Vec<FileError> {
        KINDS.iter().flat_map(|kind| kind.check(self, scope)).collect()
    }

    /// Builds a site from files for the default environment, returning it with
    /// the problems of the files that had to be left out.
    pub fn from_texts<'a>(texts: impl IntoIterator<Item = (&'a str, &'a str)>) -> (Site, Vec<FileError>) {
        Self::from_texts_for(DEFAULT_ENV, texts)
    }

    /// Builds a site for environment `env`: files for other environments are
    /// checked but left out. The problems' messages hide the secrets they
    /// quote ([`shown_errors`]), as the site's `system` config names them.
    pub fn from_texts_for<'a>(
        env: &str,
        texts: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> (Site, Vec<FileError>) {
        let mut site = Site::default();
        let mut refused = Vec::new();
        for (path, text) in texts {
            match SiteFile::parse(path, text) {
                Ok(f) if !f.kind().active_in(&f, env) => {}
                Ok(f) => site.insert_file(f),
                Err(e) => refused.push((path, text, e)),
            }
        }
        let redaction = site.redaction();
        let mut errors: Vec<FileError> =
            refused.into_iter().flat_map(|(path, text, e)| shown_errors(path, text, e, &redaction)).collect();
        // Each file's secrets found once for all of its errors, which keep
        // their order.
        let mut by_file: std::collections::BTreeMap<String, Vec<(usize, FileError)>> = Default::default();
        for (n, e) in site.check().into_iter().enumerate() {
            by_file.entry(e.file.clone()).or_default().push((n, e));
        }
        let mut checked: Vec<(usize, FileError)> = Vec::new();
        for (file, numbered) in by_file {
            let text = site.file(&file).map(|f| f.text().to_string()).unwrap_or_default();
            let (order, errs): (Vec<usize>, Vec<FileError>) = numbered.into_iter().unzip();
            checked.extend(order.into_iter().zip(shown_errors(&file, &text, errs, &redaction)));
        }
        checked.sort_by_key(|(n, _)| *n);
        errors.extend(checked.into_iter().map(|(_, e)| e));
        (site, errors)
    }
}

/// A file name editors and tools make beside real files (`.article.yaml.swp`):
/// no kind claims a hidden file.
pub(crate) fn hidden(path: &str) -> bool {
    path.rsplit('/').next().unwrap_or("").starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_has_at_most_one_kind() {
        let paths = [
            "schemas/article.schema.yaml",
            "config/config.system.yaml",
            "data/category/main.yaml",
            "data/category/nested/more.yaml",
            "schemas/notes.txt",
            "data/main.yaml",
        ];
        for path in paths {
            let claims: Vec<&str> = KINDS.iter().filter(|k| k.claims(path)).map(|k| k.name()).collect();
            assert!(claims.len() <= 1, "{path} is claimed by {claims:?}");
        }
        assert_eq!(kind_of("data/category/main.yaml").map(|k| k.name()), Some("data"));
        assert!(kind_of("data/main.yaml").is_none(), "a data file sits in its entity's directory");
        assert!(kind_of("data/category/nested/more.yaml").is_none(), "one directory level: the entity");
        assert!(kind_of("data/category/.main.yaml").is_none());
    }

    #[test]
    fn stages_follow_the_registry_order() {
        let stages: Vec<u8> = KINDS.iter().map(|k| k.stage()).collect();
        let mut sorted = stages.clone();
        sorted.sort();
        assert_eq!(stages, sorted);
    }
}
