//! Readiness: what `GET /readyz` asks of the engine. Ready means the start-up
//! reconciliation has finished, the watcher watches the site directory, and
//! the database answers. Each part turns back to ready by itself when what
//! it depends on recovers (the worker restarts a watcher whose directory came
//! back; the pool reconnects).

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
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

/// How far the engine's start has come: the server listens before the
/// start-up reconciliation, and says what it is waiting for (`/readyz`, the
/// page it serves meanwhile) until [`Starting::done`].
#[derive(Debug, Default)]
pub struct Starting {
    stage: AtomicU8,
    files: AtomicUsize,
}

const OPENING: u8 = 0;
const LOADING: u8 = 1;
const RECONCILING: u8 = 2;
const STARTED: u8 = 3;

impl Starting {
    pub(super) fn loading(&self) {
        self.stage.store(LOADING, Ordering::SeqCst);
    }

    pub(super) fn reconciling(&self, files: usize) {
        self.files.store(files, Ordering::SeqCst);
        self.stage.store(RECONCILING, Ordering::SeqCst);
    }

    pub(super) fn started(&self) {
        self.stage.store(STARTED, Ordering::SeqCst);
    }

    /// Whether the start has finished (the engine is running).
    pub fn done(&self) -> bool {
        self.stage.load(Ordering::SeqCst) == STARTED
    }

    /// What the start is doing now, for a person.
    pub fn waiting_for(&self) -> String {
        match self.stage.load(Ordering::SeqCst) {
            OPENING => "opening the database".into(),
            LOADING => "loading the applied versions".into(),
            RECONCILING => format!(
                "reconciling {} with the database",
                crate::plural::count(self.files.load(Ordering::SeqCst) as i64, "file", "files")
            ),
            _ => "nothing".into(),
        }
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
