//! Online phases whose instance died (docs/online-changes.md).
//!
//! The instance running a change's phases holds its table's lease (a
//! PostgreSQL session lock, ended by the server when the process dies) and
//! keeps a row in `marain_online_runs` with the approval it runs under. A row
//! whose lease nobody holds and that nobody wrote for a while was left by an
//! instance that died during the phases. Every instance looks for such rows;
//! the one whose claim wins (the row as it saw it) asks its own worker to
//! apply the change again under the recorded approval: when it plans the
//! very phases the dead run recorded (by their hash), it goes on from the
//! dead run's last recorded batch (`Store::run_phases`), else the phases
//! start over (each first clears what the dead run left); the cut-over
//! commits once.
//! If the change cannot be applied any more (the file changed, it was applied
//! meanwhile), what the dead run left is cleared instead.
//!
//! The task stops when the worker does (its queue closes).

use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;

use super::shared::Command;
use super::store::{Orphan, Store};

/// How often each instance looks for a dead instance's phases.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// How long a run must have gone unwritten before it counts as its
/// instance's (a live run writes after every batch, and five times a second
/// while paused; a claim writes too, so a claimed run is not claimed again
/// while the claimer's worker gets to it).
const STALE_AFTER: Duration = Duration::from_secs(5);

/// Starts looking for a dead instance's phases, when the store is PostgreSQL.
pub(super) fn watch(store: &Store, commands: &UnboundedSender<Command>) {
    if store.backend().free_lease().is_none() {
        return;
    }
    let (store, commands) = (store.clone(), commands.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = commands.closed() => {}
            _ = look(&store, &commands) => {}
        }
    });
}

async fn look(store: &Store, commands: &UnboundedSender<Command>) {
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        let orphans = match store.orphaned_runs(STALE_AFTER).await {
            Ok(orphans) => orphans,
            Err(e) => {
                tracing::debug!(error = %e, "could not look for a dead instance's online phases");
                continue;
            }
        };
        for orphan in orphans {
            if store.claim_run(&orphan).await.unwrap_or(false) {
                tokio::spawn(take_over(orphan, commands.clone()));
            }
        }
    }
}

/// Applies `orphan`'s change again on this instance, or clears what its dead
/// run left when that cannot be.
async fn take_over(orphan: Orphan, commands: UnboundedSender<Command>) {
    tracing::warn!(file = %orphan.file, change = orphan.change_id, approved_by = %orphan.approval.actor,
        "the instance running this change's online phases is gone; applying it here");
    let (reply, applied) = oneshot::channel();
    let approval = orphan.approval.clone();
    if commands.send(Command::Approve { id: orphan.change_id, approval, reply }).is_err() {
        return;
    }
    match applied.await {
        Ok(Ok(row)) => {
            tracing::info!(file = %orphan.file, version = row.version, "a dead instance's change applied here")
        }
        Ok(Err(e)) => {
            tracing::warn!(file = %orphan.file, error = %e, "a dead instance's change could not be applied here; clearing what its phases left");
            let _ = commands.send(Command::ClearPhases { table: orphan.table });
        }
        Err(_) => {}
    }
}
