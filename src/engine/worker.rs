//! The worker: the one task that owns the engine's mutable state. It takes file
//! batches and commands off the coordinator's queue, one at a time, and moves
//! each file through its states ([`files::State`], one per file; the table of
//! moves is in ARCHITECTURE.md). Planning is the core's; reading and writing
//! files is `scan`'s; gathering rollback targets is `recovery`'s. What is left
//! here is the queue and the state machine, in parts:
//!
//! - `intake.rs`: files read from disk, validated, batched and planned;
//! - `gate.rs`: a planned change probed, then applied by itself or held;
//! - `approval.rs`: a person's approval (this copy's change or another's);
//! - `apply.rs`: one change applied, and the state following it;
//! - `restore.rs`: rollback and point-in-time recovery;
//! - `drift_check.rs`, `publish.rs`, `journal.rs`: what is reported;
//! - `cluster.rs`, `sync.rs`, `proposals.rs`, `declines.rs`: other instances;
//! - `site_root.rs`: the site directory itself;
//! - `operator.rs`: what an operator asks for beyond the files (backups
//!   pruned, sessions ended, tokens revoked, the legacy move started and finished).
//!
//! Each item taken off the queue is one [`Turn`]: the events it emits are sent
//! only after the one snapshot that reflects them is published, so a client that
//! refetches on an event never reads the state from before it.

mod apply;
mod approval;
mod cluster;
mod declines;
mod drift_check;
mod files;
mod gate;
mod intake;
mod journal;
mod operator;
mod proposals;
mod publish;
mod restore;
mod site_root;
mod sync;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::events::{EngineEvent, EventKind};
use super::secure_log::SecureLog;
use super::shared::{Command, Shared};
use super::store::Store;
use super::watcher::Signals;
use super::watcher::{SiteWatcher, WatchSignal};
use super::{EngineConfig, EngineError};
use crate::live_config::LiveSettings;
use crate::site::{Site, SiteFile};

/// The context of one item off the queue, passed down explicitly.
#[derive(Default)]
pub(super) struct Turn {
    /// Who the events are attributed to (the approver, the decliner); `None`
    /// for what the file system did.
    actor: Option<String>,
    /// Emitted events, sent once the snapshot that reflects them is published.
    events: Vec<EngineEvent>,
    /// The schema locks of the entities the turn's applies changed, each taken
    /// at its change's cut-over and all held until the turn's snapshot is
    /// published: a request for one of them waits for the batch, requests for
    /// any other entity do not wait at all.
    locks: super::schema_locks::Held,
    /// Something changed that no event announces (drift found by a rescan).
    changed: bool,
    /// Another instance moved a file's applied head under an apply: load what
    /// it applied before the turn ends.
    resync: bool,
    /// Online changes applied this turn whose retire phases run once the
    /// turn's snapshot is out and its schema locks are let go, each with its
    /// table's lease.
    retiring: Vec<Retiring>,
}

/// An applied online change whose retire phases are left to run.
pub(super) struct Retiring {
    lease: crate::engine::store::Lease,
    plan: crate::plan::Plan,
    file: String,
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
    store: Store,
    shared: Arc<Shared>,
    journal: journal::Journal,
    applied: Site,
    /// What the applied configs set; recomputed only when a config file applies.
    settings: Arc<LiveSettings>,
    /// Newest applied version number of every file ever applied, deleted ones too.
    versions: BTreeMap<String, i64>,
    /// Every path looked at: what was read there, and its one state.
    files: files::Files,
    drift: Vec<super::drift::Drift>,
    cluster: cluster::Cluster,
}

/// The watcher the run loop owns, with the debounce it was started with.
struct Watching {
    watcher: SiteWatcher,
    debounce: Duration,
    signals: Signals,
    /// While a site directory that came back is still being filled: when it
    /// counts as settled (pushed on by each event), and is taken in.
    settling: Option<tokio::time::Instant>,
}

/// Where the worker's inputs come from.
pub(super) struct Inputs {
    pub watcher: SiteWatcher,
    pub signal_tx: Signals,
    pub signals: mpsc::UnboundedReceiver<WatchSignal>,
    pub commands: mpsc::UnboundedReceiver<Command>,
}

impl Worker {
    pub fn new(config: &EngineConfig, store: Store, shared: Arc<Shared>, secure_log: Option<SecureLog>) -> Self {
        Self {
            config: config.clone(),
            store,
            shared,
            journal: journal::Journal::new(secure_log),
            applied: Site::default(),
            settings: Arc::default(),
            versions: BTreeMap::new(),
            files: files::Files::default(),
            drift: Vec::new(),
            cluster: cluster::Cluster::default(),
        }
    }

    /// What the applied configs set, with secrets named by reference resolved.
    fn live_settings(&self) -> Arc<LiveSettings> {
        Arc::new(super::secret_refs::resolved(&self.config.secret_sources, self.applied.live_settings()))
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
        self.cluster.synced_id = self.store.history().history_head().await?;
        for (file, version, hash) in self.store.history().version_hashes().await? {
            self.cluster.text_applied(&file, &hash, version);
        }
        for r in self.store.cluster().declines().await? {
            self.cluster.declines.insert((r.file.clone(), r.to_hash.clone()), r);
        }
        for row in self.store.history().latest_versions().await? {
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
        super::index_names::rename_legacy(&self.store, &self.applied).await?;
        self.store.clear_unfinished_phases(None).await?;
        Ok(())
    }

    /// Start-up: every file on disk against the applied state, as one turn.
    pub async fn reconcile(&mut self) {
        let mut turn = Turn::default();
        self.rescan(&mut turn).await;
        self.end(turn).await;
    }

    pub async fn run(mut self, inputs: Inputs, shutdown: impl Future<Output = ()>) {
        let Inputs { watcher, signal_tx, mut signals, mut commands } = inputs;
        let mut watching = Watching { watcher, debounce: self.wanted_debounce(), signals: signal_tx, settling: None };
        tokio::pin!(shutdown);
        // Paths removed or renamed away, and when to look at them again.
        let mut gone: BTreeMap<String, tokio::time::Instant> = BTreeMap::new();
        let mut root_check = tokio::time::interval(site_root::CHECK_EVERY);
        root_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            watching.signals.activity().set_timers(!gone.is_empty() || watching.settling.is_some());
            let next_gone = gone.values().min().copied();
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep_until(next_gone.unwrap_or_else(tokio::time::Instant::now)), if next_gone.is_some() => {
                    // A site directory replaced meanwhile is taken in whole once
                    // it settles; the paths it lost are not deletions one by one.
                    if watching.settling.is_some() || !watching.watcher.intact(&self.config.site_root) {
                        gone.clear();
                        continue;
                    }
                    let now = tokio::time::Instant::now();
                    let due: BTreeSet<String> = gone.iter().filter(|(_, at)| **at <= now).map(|(p, _)| p.clone()).collect();
                    gone.retain(|p, _| !due.contains(p));
                    let mut turn = Turn::default();
                    self.process(&mut turn, due).await;
                    self.end(turn).await;
                }
                _ = tokio::time::sleep_until(watching.settling.unwrap_or_else(tokio::time::Instant::now)), if watching.settling.is_some() => {
                    self.settled(&mut watching).await;
                }
                Some(signal) = signals.recv() => {
                    if watching.settling.is_some() || !watching.watcher.intact(&self.config.site_root) {
                        // The directory was replaced, or is still being filled:
                        // the rescan once it is quiet takes in everything.
                        drop(signal);
                        let mut dropped = 1;
                        while signals.try_recv().is_ok() {
                            dropped += 1;
                        }
                        watching.signals.activity().handled(dropped);
                        match watching.settling {
                            Some(_) => watching.settling = Some(tokio::time::Instant::now() + site_root::settle_period(watching.debounce)),
                            None => self.check_root(&mut watching).await,
                        }
                        continue;
                    }
                    // Drain what else is queued so a burst is handled as one batch.
                    let mut paths = BTreeSet::new();
                    let mut complete = BTreeSet::new();
                    let mut rescan = false;
                    let mut taken = 0;
                    for s in std::iter::once(signal).chain(std::iter::from_fn(|| signals.try_recv().ok())) {
                        taken += 1;
                        match s {
                            WatchSignal::Paths(p) => paths.extend(p),
                            WatchSignal::Complete(p) => complete.extend(p),
                            WatchSignal::Gone(p) => {
                                let at = tokio::time::Instant::now() + watching.debounce;
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
                        let parsed = self.complete_files(complete);
                        paths.extend(parsed.keys().cloned());
                        self.reprocess(&mut turn, paths, BTreeSet::new(), parsed).await
                    }
                    self.end(turn).await;
                    watching.signals.activity().handled(taken);
                }
                Some(command) = commands.recv() => self.command(command).await,
                _ = root_check.tick() => self.check_root(&mut watching).await,
                else => break,
            }
            self.retune_watcher(&mut watching).await;
        }
        // The log's last lines are recorded before the process goes.
        self.journal.anchor_now(&self.store).await;
        tracing::debug!("coordinator stopped");
    }

    /// One command as one turn; its answer goes out after the turn's snapshot
    /// is published, so the caller's next read sees what it did.
    async fn command(&mut self, command: Command) {
        match command {
            Command::Approve { id, approval, reply } => {
                let mut turn = Turn::by(&approval.actor);
                let result = self.approve(&mut turn, id, approval).await;
                let retiring = self.close(turn).await;
                let _ = reply.send(result);
                self.retire(retiring).await;
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
            Command::Decline { id, actor, reason, reply } => {
                let mut turn = Turn::by(&actor);
                let result = self.decline_change(&mut turn, id, &actor, reason).await;
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
            Command::Operator(operation) => self.operate(operation).await,
            Command::ClearPhases { table } => match self.store.clear_unfinished_phases(Some(&table)).await {
                Ok(ran) => tracing::info!(%table, statements = ran.len(), "cleared what a dead instance's phases left"),
                Err(e) => tracing::warn!(%table, error = %e, "could not clear what a dead instance's phases left"),
            },
            Command::Announce { kind, file, actor, message, audit } => {
                let mut event = self.journal.event(kind, &file, None, None, message);
                event.actor = actor;
                if audit {
                    self.journal.log(&event);
                }
                let _ = self.shared.events.send(event);
            }
        }
    }

    /// Ends a turn, first taking in what another instance applied if an apply
    /// of this turn found the head moved (a few rounds at most: each round only
    /// re-plans files whose head moved again meanwhile).
    async fn end(&mut self, turn: Turn) {
        let retiring = self.close(turn).await;
        self.retire(retiring).await;
    }

    /// Ends a turn as `end` does, but leaves its online changes' retire
    /// phases to the caller: an approval is answered as soon as the new
    /// schema is live, before what the old shape left is cleared.
    async fn close(&mut self, mut turn: Turn) -> Vec<Retiring> {
        for _ in 0..3 {
            if !std::mem::take(&mut turn.resync) {
                break;
            }
            self.sync(&mut turn).await;
        }
        self.publish_proposals().await;
        self.mark_conflicts();
        let retiring = std::mem::take(&mut turn.retiring);
        self.finish(turn);
        // So cutting the log's tail shows in `marain history verify`.
        self.journal.anchor(&self.store);
        retiring
    }

    /// Runs the retire phases of changes whose new schema is live and whose
    /// turn is finished: what the old shape left is cleared beside live
    /// traffic, each with its table's lease, which is let go after.
    async fn retire(&mut self, retiring: Vec<Retiring>) {
        let pace = crate::engine::store::Pace { rows: self.settings.batch_rows(), pause: self.settings.batch_pause() };
        for Retiring { mut lease, plan, file } in retiring {
            self.store.retire(&mut lease, &plan, &file, pace).await;
            lease.release().await;
        }
    }

    /// Ends a turn: publishes the one snapshot that reflects it (if anything
    /// changed), lets go of the schema locks, then sends the turn's events.
    fn finish(&mut self, turn: Turn) {
        if !turn.events.is_empty() || turn.changed || !turn.locks.is_empty() {
            self.publish();
        }
        drop(turn.locks);
        for event in turn.events {
            // No subscribers is fine: nobody is watching the dashboard.
            let _ = self.shared.events.send(event);
        }
    }

    /// A `hot_reload.debounce_ms` change takes effect at once: the watcher is
    /// replaced, and a rescan covers any event that fell between the two.
    async fn retune_watcher(&mut self, watching: &mut Watching) {
        let wanted = self.wanted_debounce();
        if wanted == watching.debounce {
            return;
        }
        match SiteWatcher::start(&self.config.site_root, wanted, watching.signals.clone()) {
            Ok(fresh) => {
                watching.watcher = fresh;
                watching.debounce = wanted;
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

    /// Emits an event attributed to the turn's actor.
    fn emit(
        &mut self,
        turn: &mut Turn,
        kind: EventKind,
        file: &str,
        change: Option<&super::snapshot::PendingChange>,
        version: Option<i64>,
        message: String,
    ) {
        self.journal.emit(turn, kind, file, change, version, message);
    }

    /// The stage of the kind of `path` in a batch (schemas before config before data).
    fn stage(path: &str) -> u8 {
        crate::kind::kind_of(path).map(|k| k.stage()).unwrap_or(u8::MAX)
    }
}
