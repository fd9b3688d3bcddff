//! The coordinator: the engine's handle. It owns one ordered queue; file events
//! and commands (approve, reject, rollback, recover, rescan) go in, and the one
//! worker task takes them out in order, so there are no races between a file
//! event and an approval (`start.rs` sets the two up; neither imports the other). Readers get the latest [`Snapshot`]
//! through an atomic pointer swap and never wait for the worker.

use std::sync::Arc;

use tokio::sync::{broadcast, oneshot};

use super::content::ContentService;
use super::events::EngineEvent;
use super::health::{database_answers, Readiness};
use super::legacy::{self, transition, LegacyMoveView, LegacySource, VerifyReport};
use super::secure_log::{read_audit, AuditFilter};
use super::shared::{Command, Operation, Shared};
use super::snapshot::{PendingChange, Snapshot};
use super::store::{BackupInfo, OnlineRun, RunControl, Store, VersionRow};
use super::{Approval, EngineError};

/// A cheap, cloneable handle to the running engine.
#[derive(Clone)]
pub struct Coordinator {
    shared: Arc<Shared>,
}

impl Coordinator {
    /// The handle on an engine whose worker runs elsewhere (see `start.rs`).
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Coordinator { shared }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.snapshot.load_full()
    }

    /// Approved changes waiting for a table lock right now, by file.
    pub fn lock_waits(&self) -> Arc<std::collections::BTreeMap<String, super::snapshot::LockWait>> {
        self.shared.lock_waits.load_full()
    }

    /// The online phases this instance runs right now, by file, as far as
    /// they are (docs/online-changes.md).
    pub fn online_runs(&self) -> Arc<std::collections::BTreeMap<String, OnlineRun>> {
        self.shared.online_runs.load_full()
    }

    /// The online phases running now on any instance, by file: this
    /// instance's as they are, the others' as far as they were at their last
    /// batch (`marain_online_runs`). When the database cannot be read, this
    /// instance's only.
    pub async fn online_runs_everywhere(&self) -> Arc<std::collections::BTreeMap<String, OnlineRun>> {
        let here = self.online_runs();
        if self.shared.store.backend().free_lease().is_none() {
            // No phase runs on this backend: nothing to read.
            return here;
        }
        match self.shared.store.recorded_runs().await {
            Ok(recorded) if recorded.iter().any(|r| !here.contains_key(&r.file)) => {
                let mut all = (*here).clone();
                for run in recorded {
                    all.entry(run.file.clone()).or_insert(run);
                }
                Arc::new(all)
            }
            Ok(_) => here,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the online runs of other instances");
                here
            }
        }
    }

    /// Asks the online phases of pending change `id` to pause, resume or
    /// abort, on whichever instance runs them: straight to the database, not
    /// through the worker's queue (the worker is busy running them). They
    /// heed it at their next batch or phase; an abort clears what they made
    /// and the change waits for approval again.
    pub async fn control_online(&self, id: u64, control: RunControl, actor: &str) -> Result<(), EngineError> {
        let snapshot = self.snapshot();
        let change = snapshot.pending.iter().find(|c| c.id == id).ok_or(EngineError::UnknownChange(id))?;
        if self.shared.store.control_run(&change.file, control, actor).await? {
            tracing::info!(file = %change.file, id, ?control, %actor, "online phases asked to change course");
            return Ok(());
        }
        let asked = match control {
            RunControl::Pause => "paused",
            RunControl::Resume => "resumed",
            RunControl::Abort => "aborted",
        };
        Err(EngineError::NotRunning { id, file: change.file.clone(), asked })
    }

    /// The entities a change is cutting over right now (or about to): their
    /// content requests wait for it; every other entity's go on.
    pub fn changing(&self) -> Vec<String> {
        self.shared.schema_locks.changing()
    }

    /// Whether the engine can do its work now: reconciled, watching, and the
    /// database answering (asked afresh on every call).
    pub async fn readiness(&self) -> Readiness {
        Readiness {
            reconciled: self.shared.health.reconciled(),
            watching: self.shared.health.watching(),
            database: database_answers(&self.shared.store).await,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.shared.events.subscribe()
    }

    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// The content API: records of the typed tables, validated against the
    /// schema live at the instant of each request.
    pub fn content(&self) -> &ContentService {
        &self.shared.content
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
    /// `reason` is recorded with the version the rollback applies as, unless
    /// the approval gives its own.
    pub async fn rollback(
        &self,
        file: &str,
        version: i64,
        reason: Option<String>,
    ) -> Result<PendingChange, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Rollback { file: file.to_string(), version, reason, reply })?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Turns pending change `id` down: the file stays as it is on disk, shown as
    /// rejected with who and why, and the applied version stays live until the
    /// file changes again.
    pub async fn decline(&self, id: u64, actor: &str, reason: Option<String>) -> Result<(), EngineError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Decline { id, actor: actor.to_string(), reason, reply })?;
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

    /// Returns once nothing more will come of what is on disk now: every file
    /// event the watcher saw has passed its debounce, been handled, and no
    /// removed path or refilled directory waits on a timer. A file written just
    /// before the call is covered: the wait lasts at least one debounce.
    /// (Commands are answered by their own replies and are not waited for.)
    pub async fn quiet(&self) {
        let since = std::time::Instant::now();
        let activity = &self.shared.activity;
        while let Some(next) = activity.quiet_at(since, std::time::Instant::now()) {
            tokio::time::sleep_until(next.into()).await;
        }
    }

    /// The debounce the running watcher uses (a `hot_reload.debounce_ms` change
    /// takes effect when the watcher restarts with it).
    pub fn debounce(&self) -> std::time::Duration {
        self.shared.activity.debounce()
    }

    /// The audit log: events from `secure.log`, newest first, those matching
    /// every filter given (file, actor, kind), at most `limit`.
    pub async fn audit(&self, filter: AuditFilter, limit: usize) -> Result<Vec<EngineEvent>, EngineError> {
        let Some(path) = &self.shared.secure_log else { return Ok(vec![]) };
        read_audit(path, &filter, limit)
            .await
            .map_err(|source| EngineError::Io { path: path.display().to_string(), source })
    }

    pub async fn history(&self, file: Option<&str>, limit: i64) -> Result<Vec<VersionRow>, EngineError> {
        Ok(self.shared.store.history().rows(file, limit).await?)
    }

    /// Every backup table of dropped data, with its rows (`None` once pruned).
    pub async fn backups(&self) -> Result<Vec<BackupInfo>, EngineError> {
        Ok(self.shared.store.history().backups().await?)
    }

    /// Drops the backups of versions applied more than `older_than_days` ago.
    pub async fn prune_backups(&self, older_than_days: u32) -> Result<Vec<String>, EngineError> {
        self.ask(|reply| Operation::PruneBackups { older_than_days, reply }).await
    }

    /// Every live dashboard session, most recently used first.
    pub async fn signed_in(&self) -> Result<Vec<super::signed_in::SignedIn>, EngineError> {
        Ok(self.shared.store.accounts().signed_in().await?)
    }

    /// Ends the session with `handle` (its next request is signed out); `actor`
    /// is who asked. False when there was none.
    pub async fn end_session(&self, handle: &str, actor: &str) -> Result<bool, EngineError> {
        let (handle, actor) = (handle.to_string(), actor.to_string());
        self.ask(|reply| Operation::EndSession { handle, actor, reply }).await
    }

    /// Every API token, without secrets.
    pub async fn tokens(&self) -> Result<Vec<super::accounts::TokenInfo>, EngineError> {
        Ok(self.shared.store.accounts().tokens().await?)
    }

    /// Revokes the token `name` at once; `actor` is who asked. False when there
    /// was none.
    pub async fn revoke_token(&self, name: &str, actor: &str) -> Result<bool, EngineError> {
        let (name, actor) = (name.to_string(), actor.to_string());
        self.ask(|reply| Operation::RevokeToken { name, actor, reply }).await
    }

    /// The legacy moves recorded in this database, the rows that do not fit,
    /// and the table a move could start from (docs/legacy.md).
    pub async fn legacy_move(&self) -> Result<LegacyMoveView, EngineError> {
        let store = &self.shared.store;
        let moves = transition::statuses(store).await?;
        let misfits = transition::misfits(store, 200).await?;
        let startable = match moves.is_empty() {
            true => LegacySource::open(store, None, legacy::DEFAULT_TABLE).await.ok().map(|s| s.table().to_string()),
            false => None,
        };
        Ok(LegacyMoveView { moves, misfits, startable })
    }

    /// The legacy table the dashboard's actions work on: the newest move's,
    /// else the usual `content`.
    async fn legacy_source(&self) -> Result<LegacySource, EngineError> {
        let store = &self.shared.store;
        let moves = transition::statuses(store).await?;
        let table = moves.iter().find(|m| m.same_database && m.finished_at.is_none()).map(|m| m.legacy_table.clone());
        let table = table.unwrap_or_else(|| legacy::DEFAULT_TABLE.to_string());
        Ok(LegacySource::open(store, None, &table).await?)
    }

    /// Starts `marain legacy run` with the default options in this process;
    /// its progress comes as `migration` events. `actor` is who asked.
    pub async fn start_legacy_move(&self, actor: &str) -> Result<(), EngineError> {
        let (source, actor) = (self.legacy_source().await?, actor.to_string());
        self.ask(|reply| Operation::StartLegacyMove { source, actor, reply }).await
    }

    /// `marain legacy verify`; `actor` is who asked.
    pub async fn verify_legacy_move(&self, actor: &str) -> Result<VerifyReport, EngineError> {
        let source = self.legacy_source().await?;
        let site = self.snapshot().applied.clone();
        let report = legacy::verify(&self.shared.store, &source, &site).await?;
        let outcome = match report.passed() {
            true => "verify passed".to_string(),
            false => format!(
                "verify found {}",
                crate::plural::count(report.differences.len() as i64, "difference", "differences")
            ),
        };
        self.announce(source.table(), actor, format!("legacy `{}`: {outcome}", source.table()));
        Ok(report)
    }

    /// `marain legacy finish`: returns the legacy table's new name. The
    /// verify that must pass first reads every row, so it runs here, off the
    /// queue; the rename goes through it.
    pub async fn finish_legacy_move(&self, actor: &str) -> Result<String, EngineError> {
        let source = self.legacy_source().await?;
        let site = self.snapshot().applied.clone();
        legacy::ready_to_finish(&self.shared.store, &source, &site).await?;
        let actor = actor.to_string();
        self.ask(|reply| Operation::FinishLegacyMove { source, actor, reply }).await
    }

    /// A `migration` event by `actor`, appended to `secure.log` too.
    fn announce(&self, table: &str, actor: &str, message: String) {
        let _ = self.send(Command::legacy_move(table, actor, message));
    }

    /// Sends `operation` (made with its reply's sender) and waits for the answer.
    async fn ask<T>(
        &self,
        operation: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> Operation,
    ) -> Result<T, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Operator(operation(reply)))?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    fn send(&self, command: Command) -> Result<(), EngineError> {
        self.shared.commands.send(command).map_err(|_| EngineError::Stopped)
    }
    /// Adds the delivery of an event to a webhook (see `deliveries`); true
    /// when this call added it. Off the queue: the outbox is the database's,
    /// shared with every instance, and decides nothing about files.
    pub async fn enqueue_delivery(&self, key: &str, url: &str, kind: &str, body: &str) -> Result<bool, EngineError> {
        Ok(self.shared.store.cluster().enqueue_delivery(key, url, kind, body).await?)
    }

    /// Leases up to `limit` due webhook deliveries to this instance.
    pub async fn lease_deliveries(
        &self,
        limit: i64,
        lease_secs: i64,
    ) -> Result<Vec<super::deliveries::Delivery>, EngineError> {
        Ok(self.shared.store.cluster().lease_deliveries(&self.shared.lease_holder, limit, lease_secs).await?)
    }

    /// A leased delivery reached its hook.
    pub async fn delivered(&self, key: &str) -> Result<(), EngineError> {
        Ok(self.shared.store.cluster().delivered(key, &self.shared.lease_holder).await?)
    }

    /// A leased delivery failed: tried again in `retry_ms`, or given up.
    pub async fn delivery_failed(&self, key: &str, retry_ms: Option<i64>) -> Result<(), EngineError> {
        Ok(self.shared.store.cluster().delivery_failed(key, &self.shared.lease_holder, retry_ms).await?)
    }

    /// Deletes webhook deliveries done more than a day ago.
    pub async fn prune_deliveries(&self) -> Result<u64, EngineError> {
        Ok(self.shared.store.cluster().prune_deliveries().await?)
    }
}
