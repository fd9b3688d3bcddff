//! Files taken in from disk: read (unchanged bytes stop there), told behind,
//! parsed once, checked against the rules that span files as one batch, and
//! planned in stage and dependency order; each planned change then goes
//! through the gate (`gate.rs`).

use std::collections::{BTreeMap, BTreeSet};

use super::files::State;
use super::{Turn, Worker};
use crate::engine::events::EventKind;
use crate::engine::now_rfc3339;
use crate::engine::scan::{list_site_files, read_site_file};
use crate::engine::snapshot::Behind;
use crate::error::FileError;
use crate::hash::sha256_hex;
use crate::kind::is_site_path;
use crate::site::{Site, SiteFile};
use crate::site_plan::plan_files_in;

/// What one path turned out to be, before the batch check.
enum Read {
    /// Nothing to do for this path in this batch.
    Done,
    /// A candidate for the batch: the file as parsed, or `None` for a deletion.
    Candidate(Option<Box<SiteFile>>),
}

impl Worker {
    pub(super) async fn rescan(&mut self, turn: &mut Turn) {
        let mut paths: BTreeSet<String> = list_site_files(&self.config.site_root).into_iter().collect();
        paths.extend(self.applied.paths().cloned());
        // Every path known (read before, or with something to say) is read again;
        // what was read stays, and only real differences go on.
        paths.extend(self.files.paths().cloned());
        self.process(turn, paths).await;
        // What another instance applied meanwhile belongs to the applied state
        // the drift check compares with: its tables are not drift.
        if std::mem::take(&mut turn.resync) {
            self.sync(turn).await;
        }
        self.check_drift().await;
        turn.changed = true;
    }

    /// Handles a batch of possibly-changed paths, in dependency order.
    pub(super) async fn process(&mut self, turn: &mut Turn, paths: BTreeSet<String>) {
        self.reprocess(turn, paths, BTreeSet::new(), BTreeMap::new()).await
    }

    /// The files reported complete (renamed into place, closed after writing)
    /// that parse as they are, parsed: those go now, without the debounce. The
    /// rest wait for the debounced signal, so a file still being written is
    /// never rejected for being half there.
    pub(super) fn complete_files(&self, paths: BTreeSet<String>) -> BTreeMap<String, SiteFile> {
        paths
            .into_iter()
            .filter(|p| is_site_path(p))
            .filter_map(|p| {
                let text = read_site_file(&self.config.site_root, &p).ok()??;
                let file = SiteFile::parse(&p, &text).ok()?;
                Some((p, file))
            })
            .collect()
    }

    /// [`Self::process`], also checking the files of `recheck` against the
    /// applied state when their bytes on disk are what was last seen; `parsed`
    /// are files already read and parsed (found complete), taken as they were.
    pub(super) async fn reprocess(
        &mut self,
        turn: &mut Turn,
        mut paths: BTreeSet<String>,
        recheck: BTreeSet<String>,
        mut parsed: BTreeMap<String, SiteFile>,
    ) {
        if !self.root_present() {
            return;
        }
        let mut candidates: BTreeMap<String, Option<SiteFile>> = BTreeMap::new();
        paths.extend(self.files.waiting_on_others().cloned());
        paths.extend(recheck.iter().cloned());
        for path in paths.into_iter().filter(|p| is_site_path(p)) {
            let again = matches!(self.files.state(&path), State::WaitingOn(_)) || recheck.contains(&path);
            if let Read::Candidate(file) = self.read(turn, &path, again, parsed.remove(&path)) {
                candidates.insert(path, file.map(|f| *f));
            }
        }

        let candidate_site = self.validate_batch(turn, &mut candidates);
        let versions = &self.versions;
        let paths = candidates.keys().map(String::as_str);
        let changes = plan_files_in(self.store.dialect(), &self.applied, &candidate_site, paths, |file, short| {
            format!("v{}_{short}", versions.get(file).copied().unwrap_or(0) + 1)
        });
        let redaction = self.applied.redaction().union(&candidate_site.redaction());
        // A later stage's change to a subject whose earlier change waits (the
        // data filling a field that waits for approval) waits with it, when it
        // needs that change: on the applied site alone it would not pass.
        let mut waiting: BTreeSet<String> = BTreeSet::new();
        for change in changes {
            let subject = change.subject().to_string();
            let behind = waiting.contains(&subject) && !self.stands_alone(&change.file, change.new.as_ref());
            let applied = self.decide(turn, change, &redaction, behind).await;
            if !applied {
                waiting.insert(subject);
            }
        }
        self.files.last_sync = Some(now_rfc3339());
    }

    /// One path of a batch: read (or taken as `parsed`), compared with what was
    /// last seen there (`again`: look even when unchanged), told behind, and
    /// parsed. Files that do not parse, and secrets that do not resolve, are
    /// rejected here.
    fn read(&mut self, turn: &mut Turn, path: &str, again: bool, parsed: Option<SiteFile>) -> Read {
        let disk = match &parsed {
            Some(file) => Ok(Some(file.text().to_string())),
            None => read_site_file(&self.config.site_root, path),
        };
        let disk = match disk {
            Ok(d) => d,
            Err(e) => {
                self.files.forget(path);
                self.invalidate(turn, path, vec![e], None);
                return Read::Done;
            }
        };
        let disk_hash = disk.as_deref().map(|t| sha256_hex(t.as_bytes()));
        if self.files.seen(path) != Some(&disk_hash) {
            self.files.see(path, disk_hash.clone());
            self.emit(turn, EventKind::Detected, path, None, None, "file changed on disk".into());
        } else if !again {
            return Read::Done;
        }
        self.files.retry(path);
        if let Some(copy_version) = self.behind_version(path, disk_hash.as_deref()) {
            let applied_version = self.versions.get(path).copied().unwrap_or(0);
            let behind = Behind { file: path.to_string(), copy_version, applied_version };
            self.supersede(turn, path, &format!("{}: the copy here is behind", behind.summary()));
            if self.files.fall_behind(path, behind) {
                turn.changed = true;
            }
            return Read::Done;
        }
        if self.files.catch_up(path) {
            turn.changed = true;
        }
        if disk_hash.as_deref() == self.applied.hash_of(path) {
            if self.files.accept(path) {
                let message = "the file is back to its applied version; nothing to fix".to_string();
                self.emit(turn, EventKind::Cleared, path, None, None, message);
            }
            self.supersede(turn, path, "the file is back to its applied version");
            return Read::Done;
        }
        let Some(text) = disk else {
            self.files.accept(path);
            return Read::Candidate(None);
        };
        let file = match parsed.map(Ok).unwrap_or_else(|| SiteFile::parse(path, &text)) {
            Ok(file) => file,
            Err(errors) => {
                self.invalidate(turn, path, errors, Some(text));
                return Read::Done;
            }
        };
        if !file.kind().active_in(&file, &self.config.env) {
            // A file for another environment: watched, not applied.
            self.files.accept(path);
            return match self.applied.hash_of(path) {
                Some(_) => Read::Candidate(None),
                None => Read::Done,
            };
        }
        // A secret named by reference must resolve here before the file can apply.
        let unresolved = match file.config() {
            Some(c) => crate::engine::secret_refs::check(&self.config.secret_sources, path, &text, &c.doc.values),
            None => Vec::new(),
        };
        if !unresolved.is_empty() {
            self.invalidate(turn, path, unresolved, Some(text));
            return Read::Done;
        }
        self.files.accept(path);
        Read::Candidate(Some(Box::new(file)))
    }

    /// `path` does not validate: its waiting change goes, and the errors are
    /// announced unless it showed them already.
    pub(super) fn invalidate(&mut self, turn: &mut Turn, path: &str, errors: Vec<FileError>, source: Option<String>) {
        self.supersede(turn, path, "the file changed again and no longer validates");
        // A message may quote a value of the file: its secrets are hidden
        // before it is kept, shown or sent anywhere.
        let redaction = self.applied.redaction();
        let errors = match &source {
            Some(text) => crate::kind::shown_errors(path, text, errors, &redaction),
            None => errors,
        };
        let message = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        if self.files.invalidate(path, errors, source) {
            crate::engine::telemetry::not_applied(crate::engine::telemetry::NotApplied::Invalid);
            self.emit(turn, EventKind::Rejected, path, None, None, message);
        }
    }

    /// Whether `path` becoming `new` passes the cross-file rules on the
    /// applied site with only that file changed: it needs no other change.
    pub(super) fn stands_alone(&self, path: &str, new: Option<&SiteFile>) -> bool {
        let mut site = self.applied.clone();
        match new {
            Some(file) => site.insert_file(file.clone()),
            None => site.remove(path),
        }
        let path = path.to_string();
        site.check_changes(&self.applied, [&path]).is_empty()
    }

    /// Rejects the candidates that would break cross-file rules; returns the site
    /// the accepted ones produce. The copy of the applied site shares its maps,
    /// and the check looks only at what the candidates touch.
    fn validate_batch(&mut self, turn: &mut Turn, candidates: &mut BTreeMap<String, Option<SiteFile>>) -> Site {
        loop {
            let mut site = self.applied.clone();
            for (path, file) in candidates.iter() {
                match file {
                    Some(f) => site.insert_file(f.clone()),
                    None => site.remove(path),
                }
            }
            let errors = site.check_changes(&self.applied, candidates.keys());
            if errors.is_empty() || candidates.is_empty() {
                return site;
            }
            let mut blamed: BTreeMap<String, Vec<FileError>> = BTreeMap::new();
            let (own, others): (Vec<FileError>, Vec<FileError>) =
                errors.into_iter().partition(|e| candidates.contains_key(&e.file));
            for e in own {
                blamed.entry(e.file.clone()).or_default().push(e);
            }
            // Only when no changed file is at fault itself (held back, the rest
            // is checked again): an untouched file broke, and every change in
            // the batch is suspect.
            let untouched_broke = if blamed.is_empty() { others } else { Vec::new() };
            for e in untouched_broke {
                for path in candidates.keys() {
                    blamed.entry(path.clone()).or_default().push(FileError::new(
                        path,
                        (1, 1),
                        None,
                        format!("this change would leave {e}"),
                    ));
                }
            }
            let redaction = self.applied.redaction();
            for (path, errs) in blamed {
                let errs = match candidates.remove(&path).flatten() {
                    Some(file) => crate::kind::shown_errors(&path, file.text(), errs, &redaction),
                    None => errs,
                };
                self.supersede(turn, &path, "the file changed again and no longer validates");
                let message = errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                if self.files.wait_on_others(&path, errs) {
                    crate::engine::telemetry::not_applied(crate::engine::telemetry::NotApplied::Invalid);
                    self.emit(turn, EventKind::Rejected, &path, None, None, message);
                }
            }
        }
    }
}
