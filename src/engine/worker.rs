//! The worker: the one task that owns the engine's mutable state. It takes file
//! batches and commands off the coordinator's queue, one at a time, and moves
//! each file through its states (detected → rejected | pending | applied |
//! failed). Planning is the core's; reading and writing files is `scan`'s;
//! gathering rollback targets is `recovery`'s. What is left here is the queue
//! and the state machine.
//!
//! Each item taken off the queue is one [`Turn`]: the events it emits are sent
//! only after the one snapshot that reflects them is published, so a client that
//! refetches on an event never reads the state from before it.

mod proposals;
mod rejections;
mod site_root;
mod sync;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, OwnedRwLockWriteGuard};

use super::events::{EngineEvent, EventKind};
use super::rejections::Rejection;
use super::scan::{list_site_files, read_site_file, write_site_file};
use super::secure_log::SecureLog;
use super::shared::{Command, Shared};
use super::snapshot::{FileState, FileStatus, LockWait, PendingChange, Snapshot};
use super::store::{lock_backoff, Store, StoreError, VersionRecord, VersionRow, LOCK_ATTEMPTS};
use super::watcher::{SiteWatcher, WatchSignal};
use super::{now_rfc3339, recovery, Approval, EngineConfig, EngineError};
use crate::error::FileError;
use crate::hash::sha256_hex;
use crate::hazard::Severity;
use crate::kind::is_site_path;
use crate::kind::shown_text;
use crate::live_config::{system_redaction, LiveSettings};
use crate::restore::{plan_restore, Restore, Unchanged};
use crate::secrets::Redaction;
use crate::site::{Site, SiteFile};
use crate::site_plan::{plan_files_in, FileChange};
use crate::text_diff::text_diff;

/// The context of one item off the queue, passed down explicitly.
#[derive(Default)]
struct Turn {
    /// Who the events are attributed to (the approver, the rejecter); `None`
    /// for what the file system did.
    actor: Option<String>,
    /// Emitted events, sent once the snapshot that reflects them is published.
    events: Vec<EngineEvent>,
    /// Taken by the first apply of the turn and held until its snapshot is
    /// published: content requests wait for the whole batch, not each file.
    schema_lock: Option<OwnedRwLockWriteGuard<()>>,
    /// Something changed that no event announces (drift found by a rescan).
    changed: bool,
    /// Another instance moved a file's applied head under an apply: load what
    /// it applied before the turn ends.
    resync: bool,
}

impl Turn {
    fn by(actor: &str) -> Self {
        Turn { actor: Some(actor.to_string()), ..Turn::default() }
    }
}

/// The state only the worker task touches.
pub(super) struct Worker {
    /// How the engine was started: the site root, the environment, the command
    /// line's auto-apply policy and debounce (the `hot_reload` config refines both).
    config: EngineConfig,
    /// The debounce the running watcher was started with.
    debounce: Duration,
    store: Store,
    shared: Arc<Shared>,
    secure_log: Option<SecureLog>,
    applied: Site,
    /// What the applied configs set; recomputed only when a config file applies.
    settings: Arc<LiveSettings>,
    /// Newest applied version number of every file ever applied, deleted ones too.
    versions: BTreeMap<String, i64>,
    pending: BTreeMap<String, PendingChange>,
    rejected: BTreeMap<String, Vec<FileError>>,
    /// The text of files rejected as unparsable, for showing the error in place.
    rejected_sources: BTreeMap<String, String>,
    failed: BTreeMap<String, FileError>,
    /// Hash of what was last read from disk per path (`None`: absent), so an
    /// event that leaves a file's bytes unchanged costs one read and nothing more.
    seen: BTreeMap<String, Option<String>>,
    /// Files rejected because of another file (a reference to an entity that is
    /// missing, a deletion others depend on): re-checked with every batch, so they
    /// go through as soon as the other file arrives.
    waiting_on_others: BTreeSet<String>,
    drift: Vec<super::drift::Drift>,
    last_sync: Option<String>,
    next_change_id: u64,
    next_seq: u64,
    /// Snapshots published so far.
    generation: u64,
    /// The newest history row this worker has taken in; a sync loads the rows after it.
    synced_id: i64,
    /// Pending changes another instance applied first (change id → file and
    /// version), so approving one here says so instead of "no such change".
    applied_elsewhere: BTreeMap<u64, (String, i64)>,
    /// Every text each file has been applied as: file → hash → newest version
    /// with that hash. Tells a copy that is behind from a new proposal.
    texts_applied: BTreeMap<String, BTreeMap<String, i64>>,
    /// Files whose copy here is an older applied version (per-instance copies).
    behind: BTreeMap<String, super::snapshot::Behind>,
    /// What other instances' copies propose, planned here: (file, instance) →
    /// change (per-instance copies).
    remote: BTreeMap<(String, String), PendingChange>,
    /// What this copy's proposals were last published as: file → text hash.
    proposed: BTreeMap<String, String>,
    /// Standing rejections, from the database: (file, text hash) → who and why.
    rejections: BTreeMap<(String, String), Rejection>,
}

/// How many changes applied elsewhere are remembered for a late approval.
const APPLIED_ELSEWHERE_KEPT: usize = 1000;

impl Worker {
    pub fn new(config: &EngineConfig, store: Store, shared: Arc<Shared>, secure_log: Option<SecureLog>) -> Self {
        Self {
            config: config.clone(),
            debounce: config.debounce,
            store,
            shared,
            secure_log,
            applied: Site::default(),
            settings: Arc::default(),
            versions: BTreeMap::new(),
            pending: BTreeMap::new(),
            rejected: BTreeMap::new(),
            rejected_sources: BTreeMap::new(),
            failed: BTreeMap::new(),
            seen: BTreeMap::new(),
            waiting_on_others: BTreeSet::new(),
            drift: Vec::new(),
            last_sync: None,
            next_change_id: 1,
            next_seq: 1,
            generation: 0,
            synced_id: 0,
            applied_elsewhere: BTreeMap::new(),
            texts_applied: BTreeMap::new(),
            behind: BTreeMap::new(),
            remote: BTreeMap::new(),
            proposed: BTreeMap::new(),
            rejections: BTreeMap::new(),
        }
    }

    /// What the applied configs set, with secrets named by reference resolved.
    fn live_settings(&self) -> Arc<LiveSettings> {
        Arc::new(super::secret_refs::resolved(self.applied.live_settings()))
    }

    /// The debounce the watcher should run with: a `hot_reload.debounce_ms`
    /// config wins over the command line's.
    pub fn wanted_debounce(&self) -> Duration {
        self.settings.debounce_ms.map(Duration::from_millis).unwrap_or(self.config.debounce)
    }

    /// The applied state, as the history's newest versions say.
    pub async fn load_applied(&mut self) -> Result<(), EngineError> {
        // Read first: a row committed between the two reads is loaded again by
        // the next sync, and skipped there as known.
        self.synced_id = self.store.history_head().await?;
        for (file, version, hash) in self.store.version_hashes().await? {
            self.texts_applied.entry(file).or_default().insert(hash, version);
        }
        for r in self.store.rejections().await? {
            self.rejections.insert((r.file.clone(), r.to_hash.clone()), r);
        }
        for row in self.store.latest_versions().await? {
            self.versions.insert(row.file.clone(), row.version);
            let Some(text) = &row.yaml else { continue };
            match SiteFile::parse(&row.file, text) {
                Ok(file) => self.applied.insert_file(file),
                Err(errors) => {
                    tracing::error!(file = %row.file, ?errors, "an applied version no longer parses; treating the file as new")
                }
            }
        }
        self.settings = self.live_settings();
        self.debounce = self.wanted_debounce();
        super::index_names::rename_legacy(&self.store, &self.applied).await?;
        Ok(())
    }

    /// Start-up: every file on disk against the applied state, as one turn.
    pub async fn reconcile(&mut self) {
        let mut turn = Turn::default();
        self.rescan(&mut turn).await;
        self.end(turn).await;
    }

    pub async fn run(
        mut self,
        mut watcher: SiteWatcher,
        signal_tx: mpsc::UnboundedSender<WatchSignal>,
        mut signals: mpsc::UnboundedReceiver<WatchSignal>,
        mut commands: mpsc::UnboundedReceiver<Command>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        // Paths removed or renamed away, and when to look at them again.
        let mut gone: BTreeMap<String, tokio::time::Instant> = BTreeMap::new();
        let mut root_check = tokio::time::interval(site_root::CHECK_EVERY);
        root_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next_gone = gone.values().min().copied();
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep_until(next_gone.unwrap_or_else(tokio::time::Instant::now)), if next_gone.is_some() => {
                    let now = tokio::time::Instant::now();
                    let due: BTreeSet<String> = gone.iter().filter(|(_, at)| **at <= now).map(|(p, _)| p.clone()).collect();
                    gone.retain(|p, _| !due.contains(p));
                    let mut turn = Turn::default();
                    self.process(&mut turn, due).await;
                    self.end(turn).await;
                }
                Some(signal) = signals.recv() => {
                    // Drain what else is queued so a burst is handled as one batch.
                    let mut paths = BTreeSet::new();
                    let mut complete = BTreeSet::new();
                    let mut rescan = false;
                    for s in std::iter::once(signal).chain(std::iter::from_fn(|| signals.try_recv().ok())) {
                        match s {
                            WatchSignal::Paths(p) => paths.extend(p),
                            WatchSignal::Complete(p) => complete.extend(p),
                            WatchSignal::Gone(p) => {
                                let at = tokio::time::Instant::now() + self.debounce;
                                gone.extend(p.into_iter().map(|p| (p, at)));
                            }
                            WatchSignal::Rescan => rescan = true,
                        }
                    }
                    let mut turn = Turn::default();
                    if rescan {
                        self.rescan(&mut turn).await
                    } else {
                        complete.retain(|p| !paths.contains(p));
                        let texts = self.complete_texts(complete);
                        paths.extend(texts.keys().cloned());
                        self.reprocess(&mut turn, paths, BTreeSet::new(), texts).await
                    }
                    self.end(turn).await;
                }
                Some(command) = commands.recv() => self.command(command).await,
                _ = root_check.tick() => self.check_root(&mut watcher, &signal_tx).await,
                else => break,
            }
            self.retune_watcher(&mut watcher, &signal_tx).await;
        }
        tracing::debug!("coordinator stopped");
    }

    /// One command as one turn; its answer goes out after the turn's snapshot
    /// is published, so the caller's next read sees what it did.
    async fn command(&mut self, command: Command) {
        match command {
            Command::Approve { id, approval, reply } => {
                let mut turn = Turn::by(&approval.actor);
                let result = self.approve(&mut turn, id, approval).await;
                self.end(turn).await;
                let _ = reply.send(result);
            }
            Command::Rescan { reply } => {
                let mut turn = Turn::default();
                self.rescan(&mut turn).await;
                self.end(turn).await;
                let _ = reply.send(());
            }
            Command::Rollback { file, version, reason, reply } => {
                let mut turn = Turn::default();
                let result = self.rollback(&mut turn, &file, version, reason).await;
                self.end(turn).await;
                let _ = reply.send(result);
            }
            Command::Recover { at, reply } => {
                let mut turn = Turn::default();
                let result = self.recover(&mut turn, &at).await;
                self.end(turn).await;
                let _ = reply.send(result);
            }
            Command::Reject { id, actor, reason, reply } => {
                let mut turn = Turn::by(&actor);
                let result = self.reject_change(&mut turn, id, &actor, reason).await;
                self.end(turn).await;
                let _ = reply.send(result);
            }
            Command::Sync => {
                let mut turn = Turn::default();
                self.sync(&mut turn).await;
                self.end(turn).await;
            }
            Command::CheckRows { entity } => {
                let mut turn = Turn::default();
                self.check_rows(&mut turn, &entity).await;
                self.end(turn).await;
            }
            Command::Announce { kind, file, actor, message, audit } => {
                let mut event = self.event(kind, &file, None, None, message);
                event.actor = actor;
                if audit {
                    self.log_event(&event);
                }
                let _ = self.shared.events.send(event);
            }
        }
    }

    /// Ends a turn, first taking in what another instance applied if an apply
    /// of this turn found the head moved (a few rounds at most: each round only
    /// re-plans files whose head moved again meanwhile).
    async fn end(&mut self, mut turn: Turn) {
        for _ in 0..3 {
            if !std::mem::take(&mut turn.resync) {
                break;
            }
            self.sync(&mut turn).await;
        }
        self.publish_proposals().await;
        self.mark_conflicts();
        self.finish(turn);
    }

    /// Ends a turn: publishes the one snapshot that reflects it (if anything
    /// changed), opens the schema lock, then sends the turn's events.
    fn finish(&mut self, turn: Turn) {
        if !turn.events.is_empty() || turn.changed || turn.schema_lock.is_some() {
            self.publish();
        }
        drop(turn.schema_lock);
        for event in turn.events {
            // No subscribers is fine: nobody is watching the dashboard.
            let _ = self.shared.events.send(event);
        }
    }

    /// A `hot_reload.debounce_ms` change takes effect at once: the watcher is
    /// replaced, and a rescan covers any event that fell between the two.
    async fn retune_watcher(&mut self, watcher: &mut SiteWatcher, signals: &mpsc::UnboundedSender<WatchSignal>) {
        let wanted = self.wanted_debounce();
        if wanted == self.debounce {
            return;
        }
        match SiteWatcher::start(&self.config.site_root, wanted, signals.clone()) {
            Ok(fresh) => {
                *watcher = fresh;
                self.debounce = wanted;
                tracing::info!(debounce_ms = wanted.as_millis() as u64, "watcher debounce changed");
                let mut turn = Turn::default();
                self.rescan(&mut turn).await;
                self.end(turn).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "could not restart the watcher with the new debounce; keeping the old one")
            }
        }
    }

    async fn rescan(&mut self, turn: &mut Turn) {
        let mut paths: BTreeSet<String> = list_site_files(&self.config.site_root).into_iter().collect();
        paths.extend(self.applied.paths().cloned());
        paths.extend(self.seen.keys().cloned());
        paths.extend(self.pending.keys().cloned());
        // `seen` stays: every path is re-read, and only real differences go on.
        self.process(turn, paths).await;
        // What another instance applied meanwhile belongs to the applied state
        // the drift check compares with: its tables are not drift.
        if std::mem::take(&mut turn.resync) {
            self.sync(turn).await;
        }
        self.check_drift().await;
        turn.changed = true;
    }

    /// Compares the database's tables with the applied state (see `drift`).
    pub(super) async fn check_drift(&mut self) {
        match super::drift::detect(&self.store, &self.applied).await {
            Ok(drift) => {
                for d in drift.iter().filter(|d| !self.drift.contains(d)) {
                    tracing::warn!(table = %d.table, problem = %d.problem, "drift: the database differs from the files");
                }
                self.drift = drift;
            }
            Err(e) => tracing::error!(error = %e, "drift check failed"),
        }
    }

    /// Checks the rows of `entity` that data files hold (see `drift`),
    /// replacing what the last check found for them; what is new is announced
    /// (`drifted`), so the dashboard shows it at once.
    async fn check_rows(&mut self, turn: &mut Turn, entity: &str) {
        let files: BTreeSet<String> = self.applied.data_files_of(entity).map(|f| f.path.clone()).collect();
        match super::drift::detect_rows(&self.store, &self.applied, entity).await {
            Ok(found) => {
                let new: Vec<super::drift::Drift> = found.iter().filter(|d| !self.drift.contains(d)).cloned().collect();
                let before = self.drift.len();
                self.drift.retain(|d| d.file.as_ref().is_none_or(|f| !files.contains(f)));
                turn.changed |= self.drift.len() != before || !found.is_empty();
                self.drift.extend(found);
                for d in new {
                    tracing::warn!(table = %d.table, problem = %d.problem, "drift: a row differs from its data file");
                    let file = d.file.clone().unwrap_or_default();
                    self.emit(turn, EventKind::Drifted, &file, None, None, d.problem);
                }
            }
            Err(e) => tracing::error!(error = %e, "drift check of rows failed"),
        }
    }

    /// Emits an event attributed to the turn's actor.
    fn emit(
        &mut self,
        turn: &mut Turn,
        kind: EventKind,
        file: &str,
        change: Option<&PendingChange>,
        version: Option<i64>,
        message: String,
    ) {
        let event = EngineEvent { actor: turn.actor.clone(), ..self.event(kind, file, change, version, message) };
        self.record(turn, event);
    }

    /// A new event, numbered, not yet attributed to anyone.
    fn event(
        &mut self,
        kind: EventKind,
        file: &str,
        change: Option<&PendingChange>,
        version: Option<i64>,
        message: String,
    ) -> EngineEvent {
        let seq = self.next_seq;
        self.next_seq += 1;
        EngineEvent {
            seq,
            at: now_rfc3339(),
            kind,
            file: file.to_string(),
            change_id: change.map(|c| c.id),
            version,
            severity: change.map(|c| c.severity),
            actor: None,
            message,
        }
    }

    /// Shows that `change` waits for a lock, at once rather than at the end of
    /// the turn: the card and the event stream say who holds it while the wait
    /// lasts. The one event sent mid-turn; it reports progress and changes no
    /// state a snapshot holds.
    fn announce_wait(&mut self, change: &PendingChange, wait: LockWait) {
        let message = wait.summary();
        self.shared.lock_waits.rcu(|waits| {
            let mut waits = (**waits).clone();
            waits.insert(wait.file.clone(), wait.clone());
            waits
        });
        let event = self.event(EventKind::Waiting, &change.file, Some(change), None, message);
        self.log_event(&event);
        let _ = self.shared.events.send(event);
    }

    /// Logs `event`, appends it to `secure.log`, and keeps it for the end of the turn.
    fn record(&mut self, turn: &mut Turn, event: EngineEvent) {
        self.log_event(&event);
        turn.events.push(event);
    }

    /// Writes `event` to the process log and to `secure.log`.
    fn log_event(&mut self, event: &EngineEvent) {
        tracing::info!(kind = event.kind.as_str(), file = %event.file, message = %event.message, "hot-reload");
        if let Some(log) = &mut self.secure_log {
            log.append(event);
        }
    }

    fn publish(&mut self) {
        // Live files, and files with something to say; a deleted file drops out.
        let mut paths: BTreeSet<&String> = self.applied.paths().collect();
        paths.extend(self.pending.keys());
        paths.extend(self.rejected.keys());
        paths.extend(self.failed.keys());
        paths.extend(self.behind.keys());
        let files = paths
            .into_iter()
            .map(|p| FileStatus {
                path: p.clone(),
                entity: self.applied.subject_of(p).map(str::to_string),
                version: self.versions.get(p).copied(),
                hash: self.applied.hash_of(p).map(str::to_string),
                state: if self.behind.contains_key(p) {
                    FileState::Behind
                } else if self.rejected.contains_key(p) {
                    FileState::Rejected
                } else if self.failed.contains_key(p) {
                    FileState::Failed
                } else if self.pending.contains_key(p) {
                    FileState::Pending
                } else {
                    FileState::InSync
                },
            })
            .collect();
        self.rejected_sources.retain(|path, _| self.rejected.contains_key(path));
        self.generation += 1;
        self.shared.snapshot.store(Arc::new(Snapshot {
            generation: self.generation,
            applied: Arc::new(self.applied.clone()),
            files,
            pending: self.pending.values().chain(self.remote.values()).cloned().collect(),
            rejected: self.rejected.values().flatten().cloned().collect(),
            failed: self.failed.values().cloned().collect(),
            drift: self.drift.clone(),
            behind: self.behind.values().cloned().collect(),
            settings: self.settings.clone(),
            rejected_sources: self.rejected_sources.clone(),
            last_sync: self.last_sync.clone(),
        }));
    }

    fn reject(&mut self, turn: &mut Turn, path: &str, errors: Vec<FileError>) {
        self.supersede(turn, path, "the file changed again and no longer validates");
        if self.rejected.get(path) == Some(&errors) {
            return;
        }
        let message = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        self.rejected.insert(path.to_string(), errors);
        super::telemetry::rejected(super::telemetry::Rejection::Invalid);
        self.emit(turn, EventKind::Rejected, path, None, None, message);
    }

    fn supersede(&mut self, turn: &mut Turn, path: &str, why: &str) {
        if let Some(old) = self.pending.remove(path) {
            let message = format!("change {} superseded: {why}", old.id);
            self.emit(turn, EventKind::Superseded, path, Some(&old), None, message);
        }
    }

    /// Handles a batch of possibly-changed paths, in dependency order.
    async fn process(&mut self, turn: &mut Turn, paths: BTreeSet<String>) {
        self.reprocess(turn, paths, BTreeSet::new(), BTreeMap::new()).await
    }

    /// The texts of files reported complete (renamed into place, closed after
    /// writing) that parse as they are: those go now, without the debounce.
    /// The rest wait for the debounced signal, so a file still being written is
    /// never rejected for being half there.
    fn complete_texts(&self, paths: BTreeSet<String>) -> BTreeMap<String, String> {
        paths
            .into_iter()
            .filter(|p| is_site_path(p))
            .filter_map(|p| {
                let text = read_site_file(&self.config.site_root, &p).ok()??;
                SiteFile::parse(&p, &text).is_ok().then_some((p, text))
            })
            .collect()
    }

    /// [`Self::process`], also checking the files of `recheck` against the
    /// applied state when their bytes on disk are what was last seen; `texts`
    /// are files already read (and found complete), taken as they were read.
    async fn reprocess(
        &mut self,
        turn: &mut Turn,
        mut paths: BTreeSet<String>,
        recheck: BTreeSet<String>,
        mut texts: BTreeMap<String, String>,
    ) {
        if !self.root_present() {
            return;
        }
        let mut candidates: BTreeMap<String, Option<SiteFile>> = BTreeMap::new();
        paths.extend(self.waiting_on_others.iter().cloned());
        paths.extend(recheck.iter().cloned());
        for path in paths.into_iter().filter(|p| is_site_path(p)) {
            let recheck = self.waiting_on_others.remove(&path) || recheck.contains(&path);
            let read = match texts.remove(&path) {
                Some(text) => Ok(Some(text)),
                None => read_site_file(&self.config.site_root, &path),
            };
            let disk = match read {
                Ok(d) => d,
                Err(e) => {
                    self.seen.remove(&path);
                    self.reject(turn, &path, vec![e]);
                    continue;
                }
            };
            let disk_hash = disk.as_deref().map(|t| sha256_hex(t.as_bytes()));
            if self.seen.get(&path) != Some(&disk_hash) {
                self.seen.insert(path.clone(), disk_hash.clone());
                self.emit(turn, EventKind::Detected, &path, None, None, "file changed on disk".into());
            } else if !recheck {
                continue;
            }
            self.failed.remove(&path);
            if let Some(copy_version) = self.behind_version(&path, disk_hash.as_deref()) {
                let applied_version = self.versions.get(&path).copied().unwrap_or(0);
                let behind = super::snapshot::Behind { file: path.clone(), copy_version, applied_version };
                self.rejected.remove(&path);
                self.supersede(turn, &path, &format!("{}: the copy here is behind", behind.summary()));
                if self.behind.insert(path.clone(), behind).is_none() {
                    turn.changed = true;
                }
                continue;
            }
            if self.behind.remove(&path).is_some() {
                turn.changed = true;
            }
            if disk_hash.as_deref() == self.applied.hash_of(&path) {
                if self.rejected.remove(&path).is_some() {
                    let message = "the file is back to its applied version; nothing to fix".to_string();
                    self.emit(turn, EventKind::Cleared, &path, None, None, message);
                }
                self.supersede(turn, &path, "the file is back to its applied version");
                continue;
            }
            match disk {
                None => {
                    self.rejected.remove(&path);
                    candidates.insert(path, None);
                }
                Some(text) => match SiteFile::parse(&path, &text) {
                    // A file for another environment: watched, not applied.
                    Ok(file) if !file.kind().active_in(&file, &self.config.env) => {
                        self.rejected.remove(&path);
                        if self.applied.hash_of(&path).is_some() {
                            candidates.insert(path, None);
                        }
                    }
                    Ok(file) => {
                        // A secret named by reference must resolve here before the file can apply.
                        let unresolved = match file.config() {
                            Some(c) => super::secret_refs::check(&path, &text, &c.doc.values),
                            None => Vec::new(),
                        };
                        if !unresolved.is_empty() {
                            self.reject(turn, &path, unresolved);
                            continue;
                        }
                        self.rejected.remove(&path);
                        candidates.insert(path, Some(file));
                    }
                    Err(errors) => {
                        self.rejected_sources.insert(path.clone(), text);
                        self.reject(turn, &path, errors)
                    }
                },
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
        self.last_sync = Some(now_rfc3339());
    }

    /// Whether `path` becoming `new` passes the cross-file rules on the
    /// applied site with only that file changed: it needs no other change.
    fn stands_alone(&self, path: &str, new: Option<&SiteFile>) -> bool {
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
            for (path, errs) in blamed {
                candidates.remove(&path);
                self.waiting_on_others.insert(path.clone());
                self.reject(turn, &path, errs);
            }
        }
    }

    /// The gate: SAFE changes apply at once under the auto policy; the rest wait
    /// for a person, and so does a change `behind` one that waits. Returns
    /// whether the change applied.
    async fn decide(&mut self, turn: &mut Turn, planned: FileChange, redaction: &Redaction, behind: bool) -> bool {
        let path = planned.file.clone();
        self.supersede(turn, &path, "the file changed again before approval");
        let change = self.pending_change(planned, None, redaction).await;
        let auto = change.severity.auto_applies() && self.settings.auto_applies(&path, self.config.auto_apply_safe);
        if auto && !behind && !self.contested(&change) {
            // A failure is already recorded and announced by apply().
            self.apply(turn, change, "watcher", None).await.is_ok()
        } else {
            self.hold(turn, change);
            false
        }
    }

    fn hold(&mut self, turn: &mut Turn, change: PendingChange) {
        let key = (change.file.clone(), change.to_hash.clone());
        if let Some(rejection) = self.rejections.get(&key).filter(|_| change.rollback_to.is_none()).cloned() {
            // Turned down before (here, elsewhere, or before a restart).
            self.turn_down(turn, &change, &rejection);
            return;
        }
        let message = format!("{} change waits for approval: {}", change.severity, change.summary.join("; "));
        self.emit(turn, EventKind::Pending, &change.file.clone(), Some(&change), None, message);
        self.pending.insert(change.file.clone(), change);
    }

    /// A planned change, probed on the live data, as it waits for a decision;
    /// `redaction` names the keys its text diff hides.
    async fn pending_change(
        &mut self,
        planned: FileChange,
        rollback_to: Option<i64>,
        redaction: &Redaction,
    ) -> PendingChange {
        let path = planned.file.clone();
        let mut probed = self.probed(&planned.plan).await;
        if let Some(old) = planned.old.as_ref().and_then(SiteFile::entity) {
            let new = planned.new.as_ref().and_then(SiteFile::entity);
            match super::legacy::impact::hazard(&self.store, old, new).await {
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
        let change = PendingChange {
            id: self.next_change_id,
            headline,
            entity: planned.subject().to_string(),
            severity: probed.severity(),
            hazards,
            from_version: planned.old.as_ref().and_then(|_| self.versions.get(&path).copied()),
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
        };
        self.next_change_id += 1;
        change
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

    /// Plans `file` back to its applied version `version`; the change waits for
    /// approval like any other.
    async fn rollback(
        &mut self,
        turn: &mut Turn,
        file: &str,
        version: i64,
        reason: Option<String>,
    ) -> Result<PendingChange, EngineError> {
        let invalid = |reason: String| EngineError::InvalidRollback { file: file.to_string(), version, reason };
        let targets = recovery::rollback_target(&self.store, file, version).await?;
        let restores =
            plan_restore(self.store.dialect(), &self.applied, &targets, |f| self.next_version(f), Unchanged::Rewrite)
                .map_err(invalid)?;
        let mut changes = self.hold_restores(turn, restores, "a rollback was requested").await;
        // `Unchanged::Rewrite` plans the one target even when it is applied already.
        let mut change = changes.pop().ok_or_else(|| invalid("nothing to plan".into()))?;
        change.reason = reason;
        if let Some(waiting) = self.pending.get_mut(file) {
            waiting.reason = change.reason.clone();
        }
        Ok(change)
    }

    /// Every file back to its version at `at`, one pending change per file.
    async fn recover(&mut self, turn: &mut Turn, at: &str) -> Result<Vec<PendingChange>, EngineError> {
        let targets = recovery::recovery_targets(&self.store, at).await?;
        let restores =
            plan_restore(self.store.dialect(), &self.applied, &targets, |f| self.next_version(f), Unchanged::Skip)
                .map_err(|reason| EngineError::InvalidRecovery { at: at.to_string(), reason })?;
        Ok(self.hold_restores(turn, restores, "a point-in-time recovery was requested").await)
    }

    /// The version the next apply of `file` will be recorded as.
    fn next_version(&self, file: &str) -> i64 {
        self.versions.get(file).copied().unwrap_or(0) + 1
    }

    async fn hold_restores(&mut self, turn: &mut Turn, restores: Vec<Restore>, why: &str) -> Vec<PendingChange> {
        let mut changes = Vec::with_capacity(restores.len());
        for restore in restores {
            self.supersede(turn, &restore.change.file, why);
            // The restored text hides what the applied site or the restored file names.
            let restored = restore.change.new.iter().filter_map(SiteFile::config).filter(|c| c.doc.id == "system");
            let redaction = restored.fold(self.applied.redaction(), |r, c| r.union(&system_redaction(&c.doc.values)));
            let change = self.pending_change(restore.change, Some(restore.to_version), &redaction).await;
            self.hold(turn, change.clone());
            changes.push(change);
        }
        changes
    }

    async fn approve(&mut self, turn: &mut Turn, id: u64, approval: Approval) -> Result<VersionRow, EngineError> {
        let found = self.pending.values().chain(self.remote.values()).find(|c| c.id == id).cloned();
        let Some(change) = found else {
            return Err(match self.applied_elsewhere.get(&id) {
                Some((file, version)) => EngineError::AlreadyApplied { id, file: file.clone(), version: *version },
                None => EngineError::UnknownChange(id),
            });
        };
        if change.origin.is_some() {
            return self.approve_remote(turn, change, approval).await;
        }
        if change.severity >= Severity::Blocked {
            return Err(EngineError::NotApprovable { id, file: change.file, severity: change.severity });
        }
        if change.severity == Severity::Breaking && approval.confirm.as_deref().map(str::trim) != Some(&change.entity) {
            return Err(EngineError::ConfirmationRequired { id, expected: change.entity });
        }
        let applied_hash = self.applied.hash_of(&change.file).unwrap_or_default().to_string();
        if applied_hash != change.plan.binding.base_hash {
            self.pending.remove(&change.file);
            self.seen.remove(&change.file);
            self.process(turn, BTreeSet::from([change.file.clone()])).await;
            return Err(EngineError::Stale { id, file: change.file });
        }
        if let Some(first) = self.waits_for(&change) {
            return Err(EngineError::WaitsFor { id, file: change.file, first });
        }
        self.pending.remove(&change.file);
        let message = format!("approved by {}", approval.actor);
        self.emit(turn, EventKind::Approved, &change.file, Some(&change), None, message);
        let file = change.file.clone();
        let reason = approval.reason.or_else(|| change.reason.clone());
        let result = self.apply(turn, change, &approval.actor, reason).await;
        match &result {
            Err(EngineError::Store(StoreError::SeverityRose { .. })) => {
                // The data moved under the approval: grade it afresh for a new decision.
                self.seen.remove(&file);
                self.process(turn, BTreeSet::from([file])).await;
            }
            Ok(_) => {
                self.follow(turn, &file).await;
                // Files rejected because of this one (a deletion others referred
                // to, a reference to what it creates) may go through now.
                if !self.waiting_on_others.is_empty() {
                    self.process(turn, BTreeSet::new()).await;
                }
            }
            _ => {}
        }
        result
    }

    /// The waiting change of an earlier stage, to the same subject, that
    /// `change` needs (without it, `change` would not pass on the applied
    /// site): a data change waits for the schema change adding its field.
    fn waits_for(&self, change: &PendingChange) -> Option<String> {
        let stage = |path: &str| crate::kind::kind_of(path).map(|k| k.stage()).unwrap_or(u8::MAX);
        let first = self
            .pending
            .values()
            .find(|c| c.id != change.id && c.entity == change.entity && stage(&c.file) < stage(&change.file))?;
        (!self.stands_alone(&change.file, change.new_file.as_ref())).then(|| first.file.clone())
    }

    /// After `file`'s change applied by approval: the changes of a later
    /// stage to the same subject, which waited with it (see `decide`), are
    /// planned afresh on what is applied now, and decided like any change
    /// (SAFE ones apply, as they would have in its batch).
    async fn follow(&mut self, turn: &mut Turn, file: &str) {
        let Some(subject) = self.applied.subject_of(file).map(str::to_string) else { return };
        let stage = |path: &str| crate::kind::kind_of(path).map(|k| k.stage()).unwrap_or(u8::MAX);
        let behind: BTreeSet<String> = self
            .pending
            .values()
            .filter(|c| c.entity == subject && stage(&c.file) > stage(file) && c.rollback_to.is_none())
            .map(|c| c.file.clone())
            .collect();
        if behind.is_empty() {
            return;
        }
        for path in &behind {
            self.seen.remove(path);
        }
        self.process(turn, behind).await;
    }

    /// Approves what another instance's copy proposes: applied here like any
    /// change (the database is shared); this copy of the file is then checked
    /// again (it is behind, or a proposal of its own planned afresh).
    async fn approve_remote(
        &mut self,
        turn: &mut Turn,
        change: PendingChange,
        approval: Approval,
    ) -> Result<VersionRow, EngineError> {
        let id = change.id;
        if change.severity >= Severity::Blocked {
            return Err(EngineError::NotApprovable { id, file: change.file, severity: change.severity });
        }
        if change.severity == Severity::Breaking && approval.confirm.as_deref().map(str::trim) != Some(&change.entity) {
            return Err(EngineError::ConfirmationRequired { id, expected: change.entity });
        }
        self.remote.retain(|_, c| c.id != id);
        let applied_hash = self.applied.hash_of(&change.file).unwrap_or_default().to_string();
        if applied_hash != change.plan.binding.base_hash {
            turn.resync = true;
            return Err(EngineError::Stale { id, file: change.file });
        }
        let message = format!("approved by {}", approval.actor);
        self.emit(turn, EventKind::Approved, &change.file, Some(&change), None, message);
        let file = change.file.clone();
        let reason = approval.reason.or_else(|| change.reason.clone());
        let result = self.apply(turn, change, &approval.actor, reason).await;
        self.reprocess(turn, BTreeSet::new(), BTreeSet::from([file]), BTreeMap::new()).await;
        result
    }

    /// Applies `change` on behalf of `actor`: one transaction with its history
    /// row, then the in-memory state follows. The turn's snapshot is published
    /// before the schema lock this takes is released.
    async fn apply(
        &mut self,
        turn: &mut Turn,
        change: PendingChange,
        actor: &str,
        reason: Option<String>,
    ) -> Result<VersionRow, EngineError> {
        let record = VersionRecord {
            file: change.file.clone(),
            hash: change.to_hash.clone(),
            yaml: change.new_text().map(str::to_string),
            actor: actor.to_string(),
            reason,
            applied_at: now_rfc3339(),
        };
        let by = Some(actor.to_string());
        let mut attempt = 0;
        let result = loop {
            if turn.schema_lock.is_none() {
                turn.schema_lock = Some(self.shared.schema_lock.clone().write_owned().await);
            }
            let lock_timeout =
                self.settings.lock_timeout_ms.map(Duration::from_millis).unwrap_or(self.config.lock_timeout);
            match self.store.apply(&change.plan, change.severity, record.clone(), lock_timeout).await {
                Err(e) if e.is_lock_timeout() && attempt + 1 < LOCK_ATTEMPTS => {
                    attempt += 1;
                    // Content requests go on while this waits; none is held longer than one lock timeout.
                    turn.schema_lock = None;
                    let holders = self.store.lock_holders().await.unwrap_or_default();
                    let wait = lock_backoff(attempt);
                    tracing::warn!(file = %change.file, attempt, wait_ms = wait.as_millis() as u64, holders = ?holders, "a table the change needs is locked by another session; trying again");
                    self.announce_wait(&change, LockWait { file: change.file.clone(), attempt, holders });
                    tokio::time::sleep(wait).await;
                }
                other => break other,
            }
        };
        if attempt > 0 {
            self.shared.lock_waits.rcu(|waits| {
                let mut waits = (**waits).clone();
                waits.remove(&change.file);
                waits
            });
        }
        match result {
            Ok(row) => {
                self.store.failpoints().reach("after_commit");
                self.versions.insert(change.file.clone(), row.version);
                self.texts_applied.entry(change.file.clone()).or_default().insert(row.hash.clone(), row.version);
                self.rejections.retain(|(file, _), _| *file != change.file);
                match &change.new_file {
                    Some(file) => self.applied.insert_file(file.clone()),
                    None => self.applied.remove(&change.file),
                }
                if crate::kind::feeds_live_settings(&change.file) {
                    self.settings = self.live_settings();
                }
                // The rows data files hold may differ now (a data file wrote them
                // again, a schema change moved them): checked in a turn of its
                // own, after this one is announced, off the save's path.
                let rows_held = self.applied.data_files_of(&change.entity).next().is_some();
                if rows_held || self.drift.iter().any(|d| d.file.as_deref() == Some(change.file.as_str())) {
                    let _ = self.shared.commands.send(Command::CheckRows { entity: change.entity.clone() });
                }
                if change.rollback_to.is_some() {
                    // The database already holds the change; the file follows it. A
                    // failure here leaves the file differing from what is applied,
                    // which the next file event or rescan turns into a change.
                    let text = change.new_text();
                    match write_site_file(&self.config.site_root, &change.file, text) {
                        Ok(()) => {
                            self.seen.insert(change.file.clone(), text.map(|t| sha256_hex(t.as_bytes())));
                        }
                        Err(e) => {
                            tracing::error!(file = %change.file, error = %e, "rolled back in the database but could not rewrite the file")
                        }
                    }
                }
                let message = match change.rollback_to {
                    Some(v) => format!("version {} applied: rolled back to version {v}", row.version),
                    None => {
                        format!("version {} applied ({}): {}", row.version, change.severity, change.summary.join("; "))
                    }
                };
                let saved = match (&change.new_file, change.rollback_to) {
                    (Some(_), None) => {
                        std::fs::metadata(self.config.site_root.join(&change.file)).and_then(|m| m.modified()).ok()
                    }
                    _ => None,
                };
                super::telemetry::applied(&change.file, change.severity, saved);
                let applied = self.event(EventKind::Applied, &change.file, Some(&change), Some(row.version), message);
                self.record(turn, EngineEvent { actor: by.clone(), ..applied });
                if let Some(to) = change.rollback_to {
                    let message = format!("{} is version {to} again (applied as version {})", change.file, row.version);
                    let back =
                        self.event(EventKind::RolledBack, &change.file, Some(&change), Some(row.version), message);
                    self.record(turn, EngineEvent { actor: by, ..back });
                }
                Ok(row)
            }
            Err(e @ StoreError::HeadMoved { .. }) => {
                // Not a failure: another instance applied this file first. Its
                // version is loaded before the turn ends, and the file re-planned.
                tracing::info!(file = %change.file, "another instance applied this file first");
                turn.resync = true;
                Err(e.into())
            }
            Err(e) => {
                tracing::error!(file = %change.file, error = %e, "applying a change failed; the transaction was rolled back");
                let message = format!("applying change {} failed: {}", change.id, e.public_message());
                self.failed.insert(change.file.clone(), FileError::new(&change.file, (1, 1), None, message.clone()));
                super::telemetry::rejected(super::telemetry::Rejection::Failed);
                let failed = self.event(EventKind::Failed, &change.file, Some(&change), None, message);
                self.record(turn, EngineEvent { actor: by, ..failed });
                Err(e.into())
            }
        }
    }
}
