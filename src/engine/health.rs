//! Readiness: what `GET /readyz` asks of the engine. Ready means the start-up
//! reconciliation has finished, the watcher watches the site directory, and
//! the database answers. Each part turns back to ready by itself when what
//! it depends on recovers (the worker restarts a watcher whose directory came
//! back; the pool reconnects).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::store::Store;

/// How long the database may take to answer `SELECT 1` before it counts as
/// unreachable: well under the probe timeouts orchestrators use (1 s–10 s).
pub const DATABASE_ANSWERS_WITHIN: Duration = Duration::from_secs(2);

/// The flags the worker keeps and readiness reads.
#[derive(Debug, Default)]
pub struct Health {
    watching: AtomicBool,
    reconciled: AtomicBool,
}

impl Health {
    pub(super) fn set_watching(&self, watching: bool) {
        let was = self.watching.swap(watching, Ordering::SeqCst);
        match (was, watching) {
            (true, false) => tracing::error!("the site directory is gone; nothing is planned until it is back"),
            (false, true) => tracing::debug!("watching the site directory"),
            _ => {}
        }
    }

    pub(super) fn set_reconciled(&self) {
        self.reconciled.store(true, Ordering::SeqCst);
    }

    pub fn watching(&self) -> bool {
        self.watching.load(Ordering::SeqCst)
    }

    pub fn reconciled(&self) -> bool {
        self.reconciled.load(Ordering::SeqCst)
    }
}

/// Each part of readiness, for the log and for tests; `/readyz` says only
/// whether all hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    pub reconciled: bool,
    pub watching: bool,
    pub database: bool,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.reconciled && self.watching && self.database
    }
}

/// The database answers a trivial query within [`DATABASE_ANSWERS_WITHIN`].
pub async fn database_answers(store: &Store) -> bool {
    match tokio::time::timeout(DATABASE_ANSWERS_WITHIN, store.pool().execute("SELECT 1", &[])).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the database does not answer");
            false
        }
        Err(_) => {
            tracing::warn!("readiness: the database did not answer within 2 s");
            false
        }
    }
}
