//! The coordinator: one task, one ordered queue. File events and approvals go in;
//! applied versions, pending changes and events come out.
//!
//! All state changes happen on the worker task, so there are no races between a
//! file event and an approval. Readers get the latest [`Snapshot`] through an
//! atomic pointer swap and never wait for the worker.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::events::{EngineEvent, EventKind};
use super::scan::{list_site_files, read_site_file};
use super::snapshot::{FileState, FileStatus, PendingChange, Snapshot};
use super::store::{Store, VersionRecord, VersionRow};
use super::watcher::{SiteWatcher, WatchSignal};
use super::{now_rfc3339, Approval, EngineConfig, EngineError};
use crate::error::FileError;
use crate::hash::sha256_hex;
use crate::hazard::Severity;
use crate::site::{is_site_path, Site, SiteFile};
use crate::site_plan::{plan_sites, FileChange};
use crate::text_diff::text_diff;

enum Command {
    Approve { id: u64, approval: Approval, reply: oneshot::Sender<Result<VersionRow, EngineError>> },
    Rescan { reply: oneshot::Sender<()> },
    Rollback { file: String, version: i64, reply: oneshot::Sender<Result<PendingChange, EngineError>> },
    Recover { at: String, reply: oneshot::Sender<Result<Vec<PendingChange>, EngineError>> },
    Reject { id: u64, actor: String, reason: Option<String>, reply: oneshot::Sender<Result<(), EngineError>> },
}

struct Shared {
    snapshot: ArcSwap<Snapshot>,
    /// Where every event is appended; the audit log reads it back.
    secure_log: Option<PathBuf>,
    /// Content requests hold it shared from schema lookup to their last query; an
    /// apply holds it exclusively from its first statement to the snapshot swap.
    /// So a request runs wholly before or wholly after a change, never across.
    schema_gate: Arc<tokio::sync::RwLock<()>>,
    events: broadcast::Sender<EngineEvent>,
    commands: mpsc::UnboundedSender<Command>,
    store: Store,
}

/// Which audit-log entries to show; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// A part of the file path.
    pub file: Option<String>,
    pub actor: Option<String>,
    /// An event kind (`applied`, `rejected`, …).
    pub kind: Option<String>,
}

/// A cheap, cloneable handle to the running engine.
#[derive(Clone)]
pub struct Coordinator {
    shared: Arc<Shared>,
}

impl Coordinator {
    /// Opens the store, reconciles the files on disk with the last applied
    /// versions (differences become changes, as if edited while the server was
    /// down), starts watching, and runs until `shutdown` resolves.
    pub async fn start(
        config: EngineConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(Coordinator, JoinHandle<()>), EngineError> {
        let store = Store::open(&config.database_url).await?;
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            secure_log: config.secure_log.clone(),
            schema_gate: Arc::new(tokio::sync::RwLock::new(())),
            events,
            commands,
            store: store.clone(),
        });
        let mut worker = Worker::new(config.clone(), store, shared.clone());
        if let Some(path) = &config.secure_log {
            let log = super::secure_log::SecureLog::open(path)
                .map_err(|source| EngineError::Io { path: path.display().to_string(), source })?;
            worker.secure_log = Some(log);
        }
        worker.load_applied().await?;
        worker.rescan().await;

        let (signal_tx, signal_rx) = mpsc::unbounded_channel();
        worker.debounce = worker.wanted_debounce();
        let watcher = SiteWatcher::start(&config.site_root, worker.debounce, signal_tx.clone())?;
        let task = tokio::spawn(worker.run(watcher, signal_tx, signal_rx, command_rx, shutdown));
        Ok((Coordinator { shared }, task))
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.snapshot.load_full()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.shared.events.subscribe()
    }

    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Applies pending change `id`. BREAKING changes need `approval.confirm` to
    /// name the entity; BLOCKED ones are refused.
    pub async fn approve(&self, id: u64, approval: Approval) -> Result<VersionRow, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Approve { id, approval, reply })?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Plans `file` back to its applied version `version`; the returned change
    /// waits for approval, and applying it restores dropped data from backups and
    /// rewrites the file.
    pub async fn rollback(&self, file: &str, version: i64) -> Result<PendingChange, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Rollback { file: file.to_string(), version, reply })?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Turns pending change `id` down: the file stays as it is on disk, shown as
    /// rejected with who and why, and the applied version stays live until the
    /// file changes again.
    pub async fn reject(&self, id: u64, actor: &str, reason: Option<String>) -> Result<(), EngineError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Reject { id, actor: actor.to_string(), reason, reply })?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Point-in-time recovery: plans every file back to the version it had at
    /// `at` (RFC 3339), as one batch in dependency order. Files created later are
    /// deleted. Each change waits for approval like any other; applied, they
    /// restore dropped data from backups and rewrite the files.
    pub async fn recover_to(&self, at: &str) -> Result<Vec<PendingChange>, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Recover { at: at.to_string(), reply })?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Re-reads every file now, as after a lost event.
    pub async fn rescan(&self) -> Result<(), EngineError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Rescan { reply })?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// Held by a content request for its whole duration: no change applies while
    /// it runs, so the schema it looked up stays the table's shape.
    pub async fn content_gate(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.shared.schema_gate.read().await
    }

    /// The live schema of entity `id`, taken once so a whole request sees one version.
    pub fn live_entity(&self, id: &str) -> Result<crate::model::EntitySchema, super::content::ContentError> {
        let snapshot = self.snapshot();
        let file = snapshot
            .applied
            .entity_file(id)
            .ok_or_else(|| super::content::ContentError::UnknownEntity(id.to_string()))?;
        Ok(file.entity.clone())
    }

    /// The audit log: events from `secure.log`, newest first, those matching
    /// every filter given (file, actor, kind), at most `limit`.
    pub async fn audit(&self, filter: AuditFilter, limit: usize) -> Result<Vec<EngineEvent>, EngineError> {
        let Some(path) = self.shared.secure_log.clone() else { return Ok(vec![]) };
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(EngineError::Io { path: path.display().to_string(), source }),
        };
        let matches = |e: &EngineEvent| {
            filter.file.as_ref().is_none_or(|f| e.file.contains(f.as_str()))
                && filter.actor.as_ref().is_none_or(|a| e.actor.as_deref() == Some(a.as_str()))
                && filter.kind.as_ref().is_none_or(|k| e.kind.as_str() == k)
        };
        Ok(text
            .lines()
            .rev()
            .filter_map(|line| serde_json::from_str::<EngineEvent>(line).ok())
            .filter(matches)
            .take(limit)
            .collect())
    }

    pub async fn history(&self, file: Option<&str>, limit: i64) -> Result<Vec<VersionRow>, EngineError> {
        Ok(self.shared.store.history(file, limit).await?)
    }

    fn send(&self, command: Command) -> Result<(), EngineError> {
        self.shared.commands.send(command).map_err(|_| EngineError::Stopped)
    }
}

/// The state only the worker task touches.
struct Worker {
    root: PathBuf,
    auto_apply_safe: bool,
    /// The command line's debounce; a `hot_reload` config's `debounce_ms` wins.
    default_debounce: std::time::Duration,
    /// The debounce the running watcher was started with.
    debounce: std::time::Duration,
    env: String,
    store: Store,
    shared: Arc<Shared>,
    applied: Site,
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
    next_change_id: u64,
    next_seq: u64,
    secure_log: Option<super::secure_log::SecureLog>,
    last_sync: Option<String>,
    /// Held while a batch applies: content requests wait for the whole batch and
    /// its one snapshot swap, instead of one swap per file.
    batch_gate: Option<tokio::sync::OwnedRwLockWriteGuard<()>>,
    /// Events of the signal or command being handled: sent once the snapshot
    /// that reflects them is published, so a client that refetches on an event
    /// never reads the state from before it.
    outbox: Option<Vec<EngineEvent>>,
    /// Who the events being emitted are attributed to.
    actor: Option<String>,
    /// What the applied configs set; recomputed only when a config file applies.
    settings: Arc<crate::live_config::LiveSettings>,
}

impl Worker {
    fn new(config: EngineConfig, store: Store, shared: Arc<Shared>) -> Self {
        Self {
            root: config.site_root,
            auto_apply_safe: config.auto_apply_safe,
            default_debounce: config.debounce,
            debounce: config.debounce,
            env: config.env,
            store,
            shared,
            applied: Site::default(),
            versions: BTreeMap::new(),
            pending: BTreeMap::new(),
            rejected: BTreeMap::new(),
            rejected_sources: BTreeMap::new(),
            failed: BTreeMap::new(),
            seen: BTreeMap::new(),
            waiting_on_others: BTreeSet::new(),
            drift: Vec::new(),
            next_change_id: 1,
            next_seq: 1,
            secure_log: None,
            last_sync: None,
            batch_gate: None,
            outbox: None,
            actor: None,
            settings: Arc::default(),
        }
    }

    async fn run(
        mut self,
        mut watcher: SiteWatcher,
        signal_tx: mpsc::UnboundedSender<WatchSignal>,
        mut signals: mpsc::UnboundedReceiver<WatchSignal>,
        mut commands: mpsc::UnboundedReceiver<Command>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            self.outbox = Some(Vec::new());
            tokio::select! {
                _ = &mut shutdown => break,
                Some(signal) = signals.recv() => {
                    // Drain what else is queued so a burst is handled as one batch.
                    let mut paths = BTreeSet::new();
                    let mut rescan = false;
                    for s in std::iter::once(signal).chain(std::iter::from_fn(|| signals.try_recv().ok())) {
                        match s {
                            WatchSignal::Paths(p) => paths.extend(p),
                            WatchSignal::Rescan => rescan = true,
                        }
                    }
                    if rescan { self.rescan().await } else { self.process(paths).await }
                }
                Some(command) = commands.recv() => match command {
                    Command::Approve { id, approval, reply } => {
                        self.actor = Some(approval.actor.clone());
                        let result = self.approve(id, approval).await;
                        self.actor = None;
                        let _ = reply.send(result);
                    }
                    Command::Rescan { reply } => {
                        self.rescan().await;
                        let _ = reply.send(());
                    }
                    Command::Rollback { file, version, reply } => {
                        let result = self.rollback(&file, version).await;
                        let _ = reply.send(result);
                    }
                    Command::Recover { at, reply } => {
                        let result = self.recover(&at).await;
                        let _ = reply.send(result);
                    }
                    Command::Reject { id, actor, reason, reply } => {
                        self.actor = Some(actor.clone());
                        let result = self.reject_change(id, &actor, reason);
                        self.actor = None;
                        let _ = reply.send(result);
                    }
                },
                else => break,
            }
            self.retune_watcher(&mut watcher, &signal_tx).await;
            let events = self.outbox.take().unwrap_or_default();
            // Every state change emits an event; no event, nothing to publish.
            if !events.is_empty() {
                self.publish();
            }
            for event in events {
                // No subscribers is fine: nobody is watching the dashboard.
                let _ = self.shared.events.send(event);
            }
        }
        tracing::debug!("coordinator stopped");
    }

    fn wanted_debounce(&self) -> std::time::Duration {
        self.settings.debounce_ms.map(std::time::Duration::from_millis).unwrap_or(self.default_debounce)
    }

    /// A `hot_reload.debounce_ms` change takes effect at once: the watcher is
    /// replaced, and a rescan covers any event that fell between the two.
    async fn retune_watcher(&mut self, watcher: &mut SiteWatcher, signals: &mpsc::UnboundedSender<WatchSignal>) {
        let wanted = self.wanted_debounce();
        if wanted == self.debounce {
            return;
        }
        match SiteWatcher::start(&self.root, wanted, signals.clone()) {
            Ok(fresh) => {
                *watcher = fresh;
                self.debounce = wanted;
                tracing::info!(debounce_ms = wanted.as_millis() as u64, "watcher debounce changed");
                self.rescan().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "could not restart the watcher with the new debounce; keeping the old one")
            }
        }
    }

    async fn load_applied(&mut self) -> Result<(), EngineError> {
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
        self.settings = Arc::new(crate::live_config::LiveSettings::from_site(&self.applied));
        Ok(())
    }

    async fn rescan(&mut self) {
        let mut paths: BTreeSet<String> = list_site_files(&self.root).into_iter().collect();
        paths.extend(self.applied.paths().cloned());
        paths.extend(self.seen.keys().cloned());
        paths.extend(self.pending.keys().cloned());
        // `seen` stays: every path is re-read, and only real differences go on.
        self.process(paths).await;
        match super::drift::detect(&self.store, &self.applied).await {
            Ok(drift) => {
                for d in drift.iter().filter(|d| !self.drift.contains(d)) {
                    tracing::warn!(table = %d.table, problem = %d.problem, "drift: the database differs from the files");
                }
                self.drift = drift;
            }
            Err(e) => tracing::error!(error = %e, "drift check failed"),
        }
        self.publish();
    }

    fn emit(
        &mut self,
        kind: EventKind,
        file: &str,
        change: Option<&PendingChange>,
        version: Option<i64>,
        message: String,
    ) {
        let event = EngineEvent {
            seq: self.next_seq,
            at: now_rfc3339(),
            kind,
            file: file.to_string(),
            change_id: change.map(|c| c.id),
            version,
            severity: change.map(|c| c.severity),
            actor: self.actor.clone(),
            message,
        };
        self.next_seq += 1;
        tracing::info!(kind = kind.as_str(), file, message = %event.message, "hot-reload");
        if let Some(log) = &mut self.secure_log {
            log.append(&event);
        }
        // No subscribers is fine: nobody is watching the dashboard.
        match &mut self.outbox {
            Some(outbox) => outbox.push(event),
            None => {
                let _ = self.shared.events.send(event);
            }
        }
    }

    fn publish(&mut self) {
        // Live files, and files with something to say; a deleted file drops out.
        let mut paths: BTreeSet<&String> = self.applied.paths().collect();
        paths.extend(self.pending.keys());
        paths.extend(self.rejected.keys());
        paths.extend(self.failed.keys());
        let files = paths
            .into_iter()
            .map(|p| FileStatus {
                path: p.clone(),
                entity: self.applied.subject_of(p).map(str::to_string),
                version: self.versions.get(p).copied(),
                hash: self.applied.hash_of(p).map(str::to_string),
                state: if self.rejected.contains_key(p) {
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
        self.shared.snapshot.store(Arc::new(Snapshot {
            applied: Arc::new(self.applied.clone()),
            files,
            pending: self.pending.values().cloned().collect(),
            rejected: self.rejected.values().flatten().cloned().collect(),
            failed: self.failed.values().cloned().collect(),
            drift: self.drift.clone(),
            settings: self.settings.clone(),
            rejected_sources: {
                self.rejected_sources.retain(|path, _| self.rejected.contains_key(path));
                self.rejected_sources.clone()
            },
            last_sync: self.last_sync.clone(),
        }));
    }

    fn reject(&mut self, path: &str, errors: Vec<FileError>) {
        self.supersede(path, "the file changed again and no longer validates");
        if self.rejected.get(path) == Some(&errors) {
            return;
        }
        let message = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        self.rejected.insert(path.to_string(), errors);
        self.emit(EventKind::Rejected, path, None, None, message);
    }

    fn reject_change(&mut self, id: u64, actor: &str, reason: Option<String>) -> Result<(), EngineError> {
        let change = self.pending.values().find(|c| c.id == id).cloned().ok_or(EngineError::UnknownChange(id))?;
        self.pending.remove(&change.file);
        let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
        let message = format!("change {id} was rejected by {actor}{why}; the applied version stays live");
        self.rejected.insert(change.file.clone(), vec![FileError::new(&change.file, (1, 1), None, message.clone())]);
        self.emit(EventKind::Rejected, &change.file, Some(&change), None, message);
        self.publish();
        Ok(())
    }

    fn supersede(&mut self, path: &str, why: &str) {
        if let Some(old) = self.pending.remove(path) {
            self.emit(EventKind::Superseded, path, Some(&old), None, format!("change {} superseded: {why}", old.id));
        }
    }

    /// Handles a batch of possibly-changed paths, in dependency order.
    async fn process(&mut self, mut paths: BTreeSet<String>) {
        let mut candidates: BTreeMap<String, Option<SiteFile>> = BTreeMap::new();
        paths.extend(self.waiting_on_others.iter().cloned());
        for path in paths.into_iter().filter(|p| is_site_path(p)) {
            let recheck = self.waiting_on_others.remove(&path);
            let disk = match read_site_file(&self.root, &path) {
                Ok(d) => d,
                Err(e) => {
                    self.seen.remove(&path);
                    self.reject(&path, vec![e]);
                    continue;
                }
            };
            let disk_hash = disk.as_deref().map(|t| sha256_hex(t.as_bytes()));
            if self.seen.get(&path) != Some(&disk_hash) {
                self.seen.insert(path.clone(), disk_hash.clone());
                self.emit(EventKind::Detected, &path, None, None, "file changed on disk".into());
            } else if !recheck {
                continue;
            }
            self.failed.remove(&path);
            if disk_hash.as_deref() == self.applied.hash_of(&path) {
                if self.rejected.remove(&path).is_some() {
                    let message = "the file is back to its applied version; nothing to fix".to_string();
                    self.emit(EventKind::Cleared, &path, None, None, message);
                }
                self.supersede(&path, "the file is back to its applied version");
                continue;
            }
            match disk {
                None => {
                    self.rejected.remove(&path);
                    candidates.insert(path, None);
                }
                Some(text) => match SiteFile::parse(&path, &text) {
                    // Another environment's configuration: watched, not applied.
                    Ok(SiteFile::Config(c)) if !c.is_active(&self.env) => {
                        self.rejected.remove(&path);
                        if self.applied.hash_of(&path).is_some() {
                            candidates.insert(path, None);
                        }
                    }
                    Ok(file) => {
                        self.rejected.remove(&path);
                        candidates.insert(path, Some(file));
                    }
                    Err(errors) => {
                        self.rejected_sources.insert(path.clone(), text);
                        self.reject(&path, errors)
                    }
                },
            }
        }

        let candidate_site = self.validate_batch(&mut candidates);
        let versions = &self.versions;
        let changes = plan_sites(&self.applied, &candidate_site, |file, short| {
            format!("v{}_{short}", versions.get(file).copied().unwrap_or(0) + 1)
        });
        if changes.len() > 1 {
            self.batch_gate = Some(self.shared.schema_gate.clone().write_owned().await);
        }
        for change in changes {
            self.gate(change).await;
        }
        self.last_sync = Some(now_rfc3339());
        // A batch that applied anything published nothing yet (it held the gate).
        if let Some(gate) = self.batch_gate.take() {
            self.publish();
            drop(gate);
        }
    }

    /// Rejects the candidates that would break cross-file rules; returns the site
    /// the accepted ones produce.
    fn validate_batch(&mut self, candidates: &mut BTreeMap<String, Option<SiteFile>>) -> Site {
        loop {
            let mut site = self.applied.clone();
            for (path, file) in candidates.iter() {
                match file {
                    Some(f) => site.insert_file(f.clone()),
                    None => {
                        site.remove(path);
                    }
                }
            }
            let errors = site.check();
            if errors.is_empty() || candidates.is_empty() {
                return site;
            }
            let mut blamed: BTreeMap<String, Vec<FileError>> = BTreeMap::new();
            for e in errors {
                if candidates.contains_key(&e.file) {
                    blamed.entry(e.file.clone()).or_default().push(e);
                } else {
                    // An untouched file broke: every change in the batch is suspect.
                    for path in candidates.keys() {
                        blamed.entry(path.clone()).or_default().push(FileError::new(
                            path,
                            (1, 1),
                            None,
                            format!("this change would leave {e}"),
                        ));
                    }
                }
            }
            for (path, errs) in blamed {
                candidates.remove(&path);
                self.waiting_on_others.insert(path.clone());
                self.reject(&path, errs);
            }
        }
    }

    /// SAFE changes apply at once under the auto policy; the rest wait.
    async fn gate(&mut self, planned: FileChange) {
        let path = planned.file.clone();
        self.supersede(&path, "the file changed again before approval");
        let change = self.pending_change(planned, None).await;
        if change.severity.auto_applies() && self.settings.auto_applies(&path, self.auto_apply_safe) {
            // A failure is already recorded and announced by apply().
            let _ = self.apply(change, "watcher", None).await;
        } else {
            self.hold(change);
        }
    }

    fn hold(&mut self, change: PendingChange) {
        let message = format!("{} change waits for approval: {}", change.severity, change.summary.join("; "));
        self.emit(EventKind::Pending, &change.file.clone(), Some(&change), None, message);
        self.pending.insert(change.file.clone(), change);
    }

    /// A planned change, probed on the live data, as it waits for a decision.
    async fn pending_change(&mut self, planned: FileChange, rollback_to: Option<i64>) -> PendingChange {
        let path = planned.file.clone();
        let probed = self.probed(&planned.plan).await;
        let change = PendingChange {
            id: self.next_change_id,
            entity: planned.subject().to_string(),
            severity: probed.severity(),
            hazards: probed.hazards(),
            from_version: planned.old.as_ref().and_then(|_| self.versions.get(&path).copied()),
            from_hash: planned.plan.binding.base_hash.clone(),
            to_hash: planned.plan.binding.target_hash.clone(),
            created_at: now_rfc3339(),
            summary: planned.graded.items.iter().map(|i| i.item.summary()).collect(),
            text_diff: text_diff(
                planned.old.as_ref().map(SiteFile::text).unwrap_or(""),
                planned.new.as_ref().map(SiteFile::text).unwrap_or(""),
            ),
            new_file: planned.new,
            plan: planned.plan,
            file: path,
            rollback_to,
        };
        self.next_change_id += 1;
        change
    }

    /// Plans `file` back to its applied version `version`, refilling from backups
    /// what that brings back; the change waits for approval like any other.
    async fn rollback(&mut self, file: &str, version: i64) -> Result<PendingChange, EngineError> {
        let target = self
            .store
            .version(file, version)
            .await?
            .ok_or_else(|| EngineError::UnknownVersion { file: file.to_string(), version })?;
        let invalid = |reason: String| EngineError::InvalidRollback { file: file.to_string(), version, reason };
        let target_file = match &target.yaml {
            Some(text) => Some(SiteFile::parse(file, text).map_err(|e| invalid(format!("{e:?}")))?),
            None => None,
        };
        let mut site = self.applied.clone();
        match &target_file {
            Some(f) => site.insert_file(f.clone()),
            None => site.remove(file),
        }
        let problems = site.check();
        if !problems.is_empty() {
            let reasons: Vec<String> = problems.iter().map(ToString::to_string).collect();
            return Err(invalid(reasons.join("; ")));
        }
        let next = self.versions.get(file).copied().unwrap_or(0) + 1;
        let mut planned =
            crate::site_plan::plan_file(file, self.applied.file(file).as_ref(), target_file.as_ref(), |_, short| {
                format!("v{next}_{short}")
            });
        let backups = self.store.backups_after(file, version).await?;
        let items: Vec<_> = planned.graded.items.iter().map(|i| i.item.clone()).collect();
        crate::restore::add_restore_steps(&mut planned.plan, &items, &backups);

        self.supersede(file, "a rollback was requested");
        let change = self.pending_change(planned, Some(version)).await;
        self.hold(change.clone());
        self.publish();
        Ok(change)
    }

    async fn recover(&mut self, at: &str) -> Result<Vec<PendingChange>, EngineError> {
        use time::format_description::well_known::Rfc3339;
        let invalid = |reason: String| EngineError::InvalidRecovery { at: at.to_string(), reason };
        let cutoff =
            time::OffsetDateTime::parse(at, &Rfc3339).map_err(|e| invalid(format!("not an RFC 3339 time: {e}")))?;
        // The newest version of each file applied at or before the cutoff.
        let mut then: BTreeMap<String, i64> = BTreeMap::new();
        let mut ever: BTreeSet<String> = BTreeSet::new();
        for (file, version, applied_at, _) in self.store.applied_versions().await? {
            if time::OffsetDateTime::parse(&applied_at, &Rfc3339).is_ok_and(|t| t <= cutoff) {
                then.insert(file.clone(), version);
            }
            ever.insert(file);
        }
        let mut target = self.applied.clone();
        for file in &ever {
            let text = match then.get(file) {
                Some(v) => self.store.version(file, *v).await?.and_then(|row| row.yaml),
                None => None,
            };
            match text {
                Some(text) => target.insert_file(SiteFile::parse(file, &text).map_err(|e| invalid(format!("{e:?}")))?),
                None => target.remove(file),
            }
        }
        let problems = target.check();
        if !problems.is_empty() {
            return Err(invalid(problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")));
        }
        let next: BTreeMap<String, i64> =
            ever.iter().map(|f| (f.clone(), self.versions.get(f).copied().unwrap_or(0) + 1)).collect();
        let planned = plan_sites(&self.applied, &target, |file, short| {
            format!("v{}_{short}", next.get(file).copied().unwrap_or(1))
        });
        let mut changes = Vec::new();
        for mut change in planned {
            let version = then.get(&change.file).copied().unwrap_or(0);
            let backups = self.store.backups_after(&change.file, version).await?;
            let items: Vec<_> = change.graded.items.iter().map(|i| i.item.clone()).collect();
            crate::restore::add_restore_steps(&mut change.plan, &items, &backups);
            self.supersede(&change.file, "a point-in-time recovery was requested");
            let pending = self.pending_change(change, Some(version)).await;
            self.hold(pending.clone());
            changes.push(pending);
        }
        self.publish();
        Ok(changes)
    }

    /// Makes the file on disk say what was just applied: temp file, fsync, rename.
    fn rewrite_file(&mut self, path: &str, text: Option<&str>) -> Result<(), EngineError> {
        let full = self.root.join(path);
        let write_err = |source| EngineError::Write { path: path.to_string(), source };
        match text {
            Some(text) => {
                if let Some(dir) = full.parent() {
                    std::fs::create_dir_all(dir).map_err(write_err)?;
                }
                let tmp = full
                    .with_file_name(format!(".{}.marain-tmp", full.file_name().unwrap_or_default().to_string_lossy()));
                let mut f = std::fs::File::create(&tmp).map_err(write_err)?;
                std::io::Write::write_all(&mut f, text.as_bytes()).map_err(write_err)?;
                f.sync_all().map_err(write_err)?;
                std::fs::rename(&tmp, &full).map_err(write_err)?;
                self.seen.insert(path.to_string(), Some(sha256_hex(text.as_bytes())));
            }
            None => {
                match std::fs::remove_file(&full) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(write_err(e)),
                    _ => {}
                }
                self.seen.insert(path.to_string(), None);
            }
        }
        Ok(())
    }

    /// The plan re-graded on the live data; if a probe cannot run (the table is
    /// not what the history says), the static grading stands.
    async fn probed(&self, plan: &crate::plan::Plan) -> crate::plan::Plan {
        let mut probed = plan.clone();
        match self.store.probe(plan).await {
            Ok(counts) => probed.regrade(|p| counts.get(&p.sql).copied()),
            Err(e) => tracing::warn!(error = %e, "a probe failed; keeping the static grading"),
        }
        probed
    }

    async fn approve(&mut self, id: u64, approval: Approval) -> Result<VersionRow, EngineError> {
        let change = self.pending.values().find(|c| c.id == id).cloned().ok_or(EngineError::UnknownChange(id))?;
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
            self.process(BTreeSet::from([change.file.clone()])).await;
            return Err(EngineError::Stale { id, file: change.file });
        }
        self.pending.remove(&change.file);
        self.emit(EventKind::Approved, &change.file, Some(&change), None, format!("approved by {}", approval.actor));
        let file = change.file.clone();
        let result = self.apply(change, &approval.actor, approval.reason).await;
        if let Err(EngineError::Store(super::store::StoreError::SeverityRose { .. })) = &result {
            // The data moved under the approval: grade it afresh for a new decision.
            self.seen.remove(&file);
            self.process(BTreeSet::from([file])).await;
        }
        self.publish();
        result
    }

    async fn apply(
        &mut self,
        change: PendingChange,
        actor: &str,
        reason: Option<String>,
    ) -> Result<VersionRow, EngineError> {
        let previous_actor = self.actor.replace(actor.to_string());
        let result = self.apply_as(change, actor, reason).await;
        self.actor = previous_actor;
        result
    }

    async fn apply_as(
        &mut self,
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
        // Within a batch the batch holds the gate and publishes once at its end.
        let own_gate = match self.batch_gate {
            Some(_) => None,
            None => Some(self.shared.schema_gate.clone().write_owned().await),
        };
        match self.store.apply(&change.plan, change.severity, record).await {
            Ok(row) => {
                self.store.failpoints().reach("after_commit");
                self.versions.insert(change.file.clone(), row.version);
                match &change.new_file {
                    Some(file) => self.applied.insert_file(file.clone()),
                    None => self.applied.remove(&change.file),
                }
                if crate::config::is_config_path(&change.file) {
                    self.settings = Arc::new(crate::live_config::LiveSettings::from_site(&self.applied));
                }
                if let Some(gate) = own_gate {
                    self.publish();
                    drop(gate);
                }
                if change.rollback_to.is_some() {
                    // The database already holds the change; the file follows it. A
                    // failure here leaves the file differing from what is applied,
                    // which the next file event or rescan turns into a change.
                    if let Err(e) = self.rewrite_file(&change.file, change.new_text()) {
                        tracing::error!(error = %e, "rolled back in the database but could not rewrite the file");
                    }
                }
                let message = match change.rollback_to {
                    Some(v) => format!("version {} applied: rolled back to version {v}", row.version),
                    None => {
                        format!("version {} applied ({}): {}", row.version, change.severity, change.summary.join("; "))
                    }
                };
                self.emit(EventKind::Applied, &change.file, Some(&change), Some(row.version), message);
                if let Some(to) = change.rollback_to {
                    let message = format!("{} is version {to} again (applied as version {})", change.file, row.version);
                    self.emit(EventKind::RolledBack, &change.file, Some(&change), Some(row.version), message);
                }
                Ok(row)
            }
            Err(e) => {
                tracing::error!(file = %change.file, error = %e, "applying a change failed; the transaction was rolled back");
                let message =
                    format!("applying change {} failed and was rolled back: {}", change.id, public_reason(&e));
                self.failed.insert(change.file.clone(), FileError::new(&change.file, (1, 1), None, message.clone()));
                self.emit(EventKind::Failed, &change.file, Some(&change), None, message);
                Err(e.into())
            }
        }
    }
}

/// The part of a store error an operator can act on, without internals.
fn public_reason(e: &super::store::StoreError) -> String {
    use super::store::StoreError;
    match e {
        StoreError::Statement { source, .. } => source
            .as_database_error()
            .map(|d| d.message().to_string())
            .unwrap_or_else(|| "the database refused a statement".into()),
        StoreError::ForeignKeys(n) => format!("{n} rows would reference missing rows"),
        e @ StoreError::SeverityRose { .. } => e.to_string(),
        _ => "the database is unavailable".into(),
    }
}
