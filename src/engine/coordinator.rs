//! The coordinator: the engine's handle. It owns one ordered queue; file events
//! and commands (approve, reject, rollback, recover, rescan) go in, and the one
//! [`Worker`](super::worker) task takes them out in order, so there are no races
//! between a file event and an approval. Readers get the latest [`Snapshot`]
//! through an atomic pointer swap and never wait for the worker.

use std::future::Future;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::content::ContentService;
use super::events::EngineEvent;
use super::health::{database_answers, Readiness};
use super::legacy::{self, transition, LegacySource, MigrationView, VerifyReport};
use super::secure_log::{read_audit, AuditFilter};
use super::shared::{Command, Shared};
use super::snapshot::{PendingChange, Snapshot};
use super::store::{BackupInfo, Store, VersionRow};
use super::watcher::SiteWatcher;
use super::worker::Worker;
use super::{Approval, EngineConfig, EngineError};

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
        let (events, _) = broadcast::channel(config.event_buffer.max(1));
        let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
        let schema_lock = Arc::new(tokio::sync::RwLock::new(()));
        let shared = Arc::new(Shared {
            content: ContentService::new(store.clone(), snapshot.clone(), schema_lock.clone(), {
                let commands = commands.clone();
                Arc::new(move |entity: &str| {
                    let _ = commands.send(Command::CheckRows { entity: entity.to_string() });
                })
            }),
            snapshot,
            secure_log: config.secure_log.clone(),
            schema_lock,
            events,
            commands,
            store: store.clone(),
            lock_waits: ArcSwap::default(),
            migrating: std::sync::atomic::AtomicBool::new(false),
            health: super::health::Health::default(),
        });
        let secure_log = match &config.secure_log {
            Some(path) => Some(
                super::secure_log::SecureLog::open(path)
                    .map_err(|source| EngineError::Io { path: path.display().to_string(), source })?,
            ),
            None => None,
        };
        if config.site_layout == super::SiteLayout::PerInstance {
            // What this copy proposes is looked at afresh below.
            store.withdraw_proposals(&config.instance_name).await?;
        }
        let mut worker = Worker::new(&config, store, shared.clone(), secure_log);
        worker.load_applied().await?;
        worker.reconcile().await;

        let (signal_tx, signal_rx) = mpsc::unbounded_channel();
        let watcher = SiteWatcher::start(&config.site_root, worker.wanted_debounce(), signal_tx.clone())?;
        shared.health.set_watching(true);
        shared.health.set_reconciled();
        super::sync::follow(&shared.store, &shared.commands, shared.snapshot.clone(), config.sync_poll);
        super::migration_feed::follow(&shared.store, &shared.commands);
        let task = tokio::spawn(worker.run(watcher, signal_tx, signal_rx, command_rx, shutdown));
        Ok((Coordinator { shared }, task))
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.snapshot.load_full()
    }

    /// Approved changes waiting for a table lock right now, by file.
    pub fn lock_waits(&self) -> Arc<std::collections::BTreeMap<String, super::snapshot::LockWait>> {
        self.shared.lock_waits.load_full()
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

    /// The audit log: events from `secure.log`, newest first, those matching
    /// every filter given (file, actor, kind), at most `limit`.
    pub async fn audit(&self, filter: AuditFilter, limit: usize) -> Result<Vec<EngineEvent>, EngineError> {
        let Some(path) = &self.shared.secure_log else { return Ok(vec![]) };
        read_audit(path, &filter, limit)
            .await
            .map_err(|source| EngineError::Io { path: path.display().to_string(), source })
    }

    pub async fn history(&self, file: Option<&str>, limit: i64) -> Result<Vec<VersionRow>, EngineError> {
        Ok(self.shared.store.history(file, limit).await?)
    }

    /// Every backup table of dropped data, with its rows (`None` once pruned).
    pub async fn backups(&self) -> Result<Vec<BackupInfo>, EngineError> {
        Ok(self.shared.store.backups().await?)
    }

    /// Drops the backups of versions applied more than `older_than_days` ago.
    pub async fn prune_backups(&self, older_than_days: u32) -> Result<Vec<String>, EngineError> {
        /// A century: anything longer is a typo, and refused rather than obeyed.
        const MAX_DAYS: u32 = 36_500;
        if older_than_days > MAX_DAYS {
            let (given, max) = (u64::from(older_than_days), u64::from(MAX_DAYS));
            return Err(EngineError::OutOfRange { what: "older_than_days", given, max });
        }
        Ok(self.shared.store.prune_backups(older_than_days).await?)
    }

    /// Every live dashboard session, most recently used first.
    pub async fn signed_in(&self) -> Result<Vec<super::signed_in::SignedIn>, EngineError> {
        Ok(self.shared.store.signed_in().await?)
    }

    /// Ends the session with `handle` (its next request is signed out); `actor`
    /// is who asked. False when there was none.
    pub async fn end_session(&self, handle: &str, actor: &str) -> Result<bool, EngineError> {
        let ended = self.shared.store.end_session(handle).await?;
        if ended {
            tracing::warn!(%actor, session = &handle[..handle.len().min(12)], "a session was ended from the dashboard");
        }
        Ok(ended)
    }

    /// Every API token, without secrets.
    pub async fn tokens(&self) -> Result<Vec<super::accounts::TokenInfo>, EngineError> {
        Ok(self.shared.store.tokens().await?)
    }

    /// Revokes the token `name` at once; `actor` is who asked. False when there
    /// was none.
    pub async fn revoke_token(&self, name: &str, actor: &str) -> Result<bool, EngineError> {
        let revoked = self.shared.store.revoke_token(name).await?;
        if revoked {
            tracing::warn!(%actor, token = %name, "an API token was revoked from the dashboard");
        }
        Ok(revoked)
    }

    /// The legacy moves recorded in this database, the rows that do not fit,
    /// and the table a move could start from (docs/legacy.md).
    pub async fn migration(&self) -> Result<MigrationView, EngineError> {
        let store = &self.shared.store;
        let moves = transition::statuses(store).await?;
        let misfits = transition::misfits(store, 200).await?;
        let startable = match moves.is_empty() {
            true => LegacySource::open(store, None, legacy::DEFAULT_TABLE).await.ok().map(|s| s.table().to_string()),
            false => None,
        };
        Ok(MigrationView { moves, misfits, startable })
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
    pub async fn start_migration(&self, actor: &str) -> Result<(), EngineError> {
        use std::sync::atomic::Ordering;
        let source = self.legacy_source().await?;
        if self.shared.migrating.swap(true, Ordering::SeqCst) {
            return Err(legacy::LegacyError::NotReady("a run is under way already".into()).into());
        }
        self.announce(source.table(), actor, format!("legacy `{}`: copying started", source.table()));
        let (engine, actor) = (self.clone(), actor.to_string());
        tokio::spawn(async move {
            let site = engine.snapshot().applied.clone();
            let store = &engine.shared.store;
            let result = legacy::run(store, &source, &site, &legacy::RunOptions::default(), &mut |_| {}).await;
            engine.shared.migrating.store(false, Ordering::SeqCst);
            let message = match result {
                Ok(progress) => {
                    let left: i64 = progress.values().map(|p| p.misfits + p.waiting).sum();
                    let copied: i64 = progress.values().map(|p| p.copied).sum();
                    format!(
                        "legacy `{}`: run ended, {} copied, {left} left behind",
                        source.table(),
                        crate::plural::count(copied, "row", "rows")
                    )
                }
                Err(e) => {
                    tracing::error!(error = %e, "legacy run failed");
                    format!("legacy `{}`: run failed: {}", source.table(), e.public_message())
                }
            };
            engine.announce(source.table(), &actor, message);
        });
        Ok(())
    }

    /// `marain legacy verify`; `actor` is who asked.
    pub async fn verify_migration(&self, actor: &str) -> Result<VerifyReport, EngineError> {
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

    /// `marain legacy finish`: returns the legacy table's new name.
    pub async fn finish_migration(&self, actor: &str) -> Result<String, EngineError> {
        let source = self.legacy_source().await?;
        let site = self.snapshot().applied.clone();
        let (renamed, _) = legacy::finish(&self.shared.store, &source, &site).await?;
        self.announce(source.table(), actor, format!("legacy `{}`: finished; kept as `{renamed}`", source.table()));
        Ok(renamed)
    }

    /// A `migration` event by `actor`, appended to `secure.log` too.
    fn announce(&self, table: &str, actor: &str, message: String) {
        let _ = self.send(Command::Announce {
            kind: super::events::EventKind::Migration,
            file: table.to_string(),
            actor: Some(actor.to_string()),
            message,
            audit: true,
        });
    }

    fn send(&self, command: Command) -> Result<(), EngineError> {
        self.shared.commands.send(command).map_err(|_| EngineError::Stopped)
    }

    /// Claims the webhook delivery named `key` for this instance; true when it
    /// is this instance's to send (see [`super::deliveries`]).
    pub async fn claim_delivery(&self, key: &str) -> Result<bool, EngineError> {
        Ok(self.shared.store.claim_delivery(key).await?)
    }

    /// Deletes webhook claims older than a day; returns how many.
    pub async fn prune_delivery_claims(&self) -> Result<u64, EngineError> {
        Ok(self.shared.store.prune_delivery_claims().await?)
    }
}
