//! What an operator asks for that changes state other than the files (see
//! [`Operation`]): taken off the one queue like every state change, so none
//! runs across an apply, and each is written to the process log with who
//! asked. The legacy run itself is long: it is started here, runs as a task of
//! its own beside the worker, and reports through `Command::Announce`.

use std::sync::atomic::Ordering;

use super::Worker;
use crate::engine::legacy::{self, LegacySource};
use crate::engine::shared::{Command, Operation};
use crate::engine::EngineError;

/// A century: anything longer is a typo, and refused rather than obeyed.
const MAX_PRUNE_DAYS: u32 = 36_500;

impl Worker {
    pub(super) async fn operate(&mut self, operation: Operation) {
        match operation {
            Operation::PruneBackups { older_than_days, reply } => {
                let _ = reply.send(self.prune_backups(older_than_days).await);
            }
            Operation::EndSession { handle, actor, reply } => {
                let ended = self.store.accounts().end_session(&handle).await.map_err(EngineError::from);
                if matches!(ended, Ok(true)) {
                    let session = &handle[..handle.len().min(12)];
                    tracing::warn!(%actor, session, "a session was ended from the dashboard");
                }
                let _ = reply.send(ended);
            }
            Operation::RevokeToken { name, actor, reply } => {
                let revoked = self.store.accounts().revoke_token(&name).await.map_err(EngineError::from);
                if matches!(revoked, Ok(true)) {
                    tracing::warn!(%actor, token = %name, "an API token was revoked from the dashboard");
                }
                let _ = reply.send(revoked);
            }
            Operation::StartLegacyMove { source, actor, reply } => {
                let _ = reply.send(self.start_legacy_move(source, actor));
            }
            Operation::FinishLegacyMove { source, actor, reply } => {
                let renamed = legacy::retire(&self.store, &source).await.map_err(EngineError::from);
                if let Ok(renamed) = &renamed {
                    let message = format!("legacy `{}`: finished; kept as `{renamed}`", source.table());
                    self.announce_legacy_move(source.table(), &actor, message);
                }
                let _ = reply.send(renamed);
            }
        }
    }

    /// Drops the backups of versions applied more than `older_than_days` ago.
    async fn prune_backups(&self, older_than_days: u32) -> Result<Vec<String>, EngineError> {
        if older_than_days > MAX_PRUNE_DAYS {
            let (given, max) = (u64::from(older_than_days), u64::from(MAX_PRUNE_DAYS));
            return Err(EngineError::OutOfRange { what: "older_than_days", given, max });
        }
        Ok(self.store.history().prune_backups(older_than_days).await?)
    }

    /// Starts `marain legacy run` with the default options on the applied
    /// site, as a task beside the worker; one at a time in this process.
    fn start_legacy_move(&self, source: LegacySource, actor: String) -> Result<(), EngineError> {
        if self.shared.legacy_running.swap(true, Ordering::SeqCst) {
            return Err(legacy::LegacyError::NotReady("a run is under way already".into()).into());
        }
        self.announce_legacy_move(source.table(), &actor, format!("legacy `{}`: copying started", source.table()));
        let (shared, site) = (self.shared.clone(), self.applied.clone());
        tokio::spawn(async move {
            let result = legacy::run(&shared.store, &source, &site, &legacy::RunOptions::default(), &mut |_| {}).await;
            shared.legacy_running.store(false, Ordering::SeqCst);
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
            let _ = shared.commands.send(Command::legacy_move(source.table(), &actor, message));
        });
        Ok(())
    }

    /// A `migration` event by `actor`, appended to `secure.log` too; sent as
    /// the queue's next item, like the run's own reports.
    fn announce_legacy_move(&self, table: &str, actor: &str, message: String) {
        let _ = self.shared.commands.send(Command::legacy_move(table, actor, message));
    }
}
