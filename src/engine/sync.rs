//! Several instances on one PostgreSQL database, kept in step.
//!
//! Every apply announces its history row with `NOTIFY` in its own transaction
//! (so only committed rows are announced). Each instance listens on a dedicated
//! connection and, on any notice from another instance, asks its worker to
//! [`Command::Sync`]: load every history row after the last one it has seen, and
//! take those versions as applied. Because the worker reads the rows themselves,
//! a notice is only a hint; a lost one does no harm once the next sync runs.
//!
//! Two things make a lost notice certain to be followed by a sync:
//! - when the listening connection drops, it is re-established and a sync
//!   follows (a listener that died silently was PostgREST's #3147 and #3778);
//! - a poll of the newest history id, every `hot_reload.sync_poll_ms` (or the
//!   command line's `sync_poll`, 5 s by default), catches what `LISTEN` cannot
//!   see at all (a pooler in transaction mode, a replica).
//!
//! Both tasks stop when the worker does (its queue closes).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use sqlx::postgres::PgListener;
use tokio::sync::mpsc::UnboundedSender;

use super::shared::Command;
use super::snapshot::Snapshot;
use super::store::{ChangeNotice, Store, CHANGES_CHANNEL};

/// Starts following the other instances, when the store is PostgreSQL.
pub(super) fn follow(
    store: &Store,
    commands: &UnboundedSender<Command>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    poll: Duration,
) {
    let Some(pool) = store.direct().postgres().cloned() else { return };
    let instance = store.instance().to_string();
    let (listen_commands, poll_commands) = (commands.clone(), commands.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = listen_commands.closed() => {}
            _ = listen(pool, instance, &listen_commands) => {}
        }
    });
    let store = store.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = poll_commands.closed() => {}
            _ = poll_head(store, &poll_commands, snapshot, poll) => {}
        }
    });
}

/// Asks the worker to sync; false once the worker has stopped.
fn sync(commands: &UnboundedSender<Command>, why: &'static str) -> bool {
    tracing::debug!(why, "syncing with the other instances");
    commands.send(Command::Sync).is_ok()
}

async fn listen(pool: sqlx::PgPool, instance: String, commands: &UnboundedSender<Command>) {
    let mut failures = 0u32;
    loop {
        let mut listener = match connect(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                failures += 1;
                let wait = Duration::from_millis(100 * u64::from(failures.min(50)));
                tracing::warn!(error = %e, retry_ms = wait.as_millis() as u64, "cannot listen for other instances' changes");
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        failures = 0;
        // Whatever happened while nobody listened: load it now.
        if !sync(commands, "listening (again)") {
            return;
        }
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    let from_us = serde_json::from_str::<ChangeNotice>(notification.payload())
                        .is_ok_and(|notice| notice.instance == instance);
                    if !from_us && !sync(commands, "another instance applied a change") {
                        return;
                    }
                }
                // The connection dropped and was re-established.
                Ok(None) => {
                    tracing::warn!("the listening connection was lost and re-established; reloading");
                    if !sync(commands, "listener reconnected") {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lost the listening connection");
                    break;
                }
            }
        }
    }
}

async fn connect(pool: &sqlx::PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANGES_CHANNEL).await?;
    Ok(listener)
}

/// Reads the newest history id every `hot_reload.sync_poll_ms` (as live now),
/// else every `default`.
async fn poll_head(
    store: Store,
    commands: &UnboundedSender<Command>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    default: Duration,
) {
    let mut seen = None;
    loop {
        let every = snapshot.load().settings.sync_poll_ms.map(Duration::from_millis).unwrap_or(default);
        tokio::time::sleep(every.max(Duration::from_millis(10))).await;
        match store.history().history_head().await {
            // The first reading syncs too: what was applied between this
            // instance's start and that reading would otherwise count as seen.
            Ok(head) if seen != Some(head) => {
                seen = Some(head);
                if !sync(commands, "the newest history id moved") {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the newest history id"),
        }
    }
}
