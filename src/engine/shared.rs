//! What the engine's handle ([`Coordinator`](super::Coordinator)) and its one
//! worker task share: the queue's items, and the state both reach (the published
//! snapshot, the event channel, the store, the schema lock). Neither owns the
//! other's module, so the two stay one-directional.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::content::ContentService;
use super::events::EngineEvent;
use super::snapshot::{LockWait, PendingChange, Snapshot};
use super::store::{Store, VersionRow};
use super::{Approval, EngineError};

/// What the worker is asked to do; each carries where its answer goes.
pub enum Command {
    Approve {
        id: u64,
        approval: Approval,
        reply: oneshot::Sender<Result<VersionRow, EngineError>>,
    },
    Rescan {
        reply: oneshot::Sender<()>,
    },
    Rollback {
        file: String,
        version: i64,
        reason: Option<String>,
        reply: oneshot::Sender<Result<PendingChange, EngineError>>,
    },
    Recover {
        at: String,
        reply: oneshot::Sender<Result<Vec<PendingChange>, EngineError>>,
    },
    Reject {
        id: u64,
        actor: String,
        reason: Option<String>,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Take what other instances applied (see `sync`).
    Sync,
    /// A content write reached rows of `entity` that data files hold: check
    /// those rows for drift.
    CheckRows {
        entity: String,
    },
    /// Send an event that reports, changing no state (the legacy move's
    /// progress); `audit` appends it to `secure.log` too.
    Announce {
        kind: super::events::EventKind,
        file: String,
        actor: Option<String>,
        message: String,
        audit: bool,
    },
}

/// What the handle and the worker share: the published snapshot, the event
/// channel, the queue's sending end, the store and the schema lock.
pub struct Shared {
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// Where every event is appended; the audit log reads it back.
    pub secure_log: Option<PathBuf>,
    /// Content requests hold it shared for their whole duration; an apply holds
    /// it exclusively from its first statement to the snapshot swap. So a
    /// request runs wholly before or wholly after a change, never across.
    pub schema_lock: Arc<tokio::sync::RwLock<()>>,
    pub events: broadcast::Sender<EngineEvent>,
    pub commands: mpsc::UnboundedSender<Command>,
    /// A legacy `run` started from the dashboard is under way in this process.
    pub migrating: std::sync::atomic::AtomicBool,
    pub store: Store,
    pub content: ContentService,
    /// Readiness flags the worker keeps (see `health`).
    pub health: super::health::Health,
    /// Applies in flight that wait for a table lock, by file (see [`LockWait`]).
    pub lock_waits: ArcSwap<BTreeMap<String, LockWait>>,
}
