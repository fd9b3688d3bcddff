//! What the engine's handle ([`Coordinator`](super::Coordinator)) and its one
//! worker task share: the queue's items, and the state both reach (the published
//! snapshot, the event channel, the store, the schema locks). Neither owns the
//! other's module, so the two stay one-directional.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::content::ContentService;
use super::events::EngineEvent;
use super::legacy::LegacySource;
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
    Decline {
        id: u64,
        actor: String,
        reason: Option<String>,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Take what other instances applied (see `sync`).
    Sync,
    /// What an operator asks for that changes state other than files (see
    /// `worker/operator.rs`).
    Operator(Operation),
    /// Clear what online phases left on `table` when the instance running
    /// them died and its change could not be applied again (see `takeover`).
    ClearPhases {
        table: String,
    },
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

impl Command {
    /// A `migration` event by `actor` announcing a step of the legacy move,
    /// appended to `secure.log` too.
    pub fn legacy_move(table: &str, actor: &str, message: String) -> Command {
        Command::Announce {
            kind: super::events::EventKind::LegacyMove,
            file: table.to_string(),
            actor: Some(actor.to_string()),
            message,
            audit: true,
        }
    }
}

/// The operator's requests that change state other than the files: backups
/// pruned, a session ended, a token revoked, the legacy move started or
/// finished. Through the queue like every state change, so none runs across
/// an apply. `actor` is who asked.
pub enum Operation {
    PruneBackups {
        older_than_days: u32,
        reply: oneshot::Sender<Result<Vec<String>, EngineError>>,
    },
    EndSession {
        handle: String,
        actor: String,
        reply: oneshot::Sender<Result<bool, EngineError>>,
    },
    RevokeToken {
        name: String,
        actor: String,
        reply: oneshot::Sender<Result<bool, EngineError>>,
    },
    /// Starts a legacy `run` from `source` in this process; its progress comes
    /// as `migration` events.
    StartLegacyMove {
        source: LegacySource,
        actor: String,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Renames the legacy table of `source` and ends the move; the handle has
    /// verified it first, off the queue (`legacy::ready_to_finish`).
    FinishLegacyMove {
        source: LegacySource,
        actor: String,
        reply: oneshot::Sender<Result<String, EngineError>>,
    },
}

/// What the handle and the worker share: the published snapshot, the event
/// channel, the queue's sending end, the store and the schema locks.
pub struct Shared {
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// Where every event is appended; the audit log reads it back.
    pub secure_log: Option<PathBuf>,
    /// One lock per entity: content requests hold their entity's shared for
    /// their whole duration; an apply holds those of the entities it changes
    /// exclusively from its cut-over to the snapshot swap. So a request runs
    /// wholly before or wholly after a change to its entity, never across,
    /// and a change to one entity never holds up another's requests.
    pub schema_locks: Arc<super::schema_locks::SchemaLocks>,
    pub events: broadcast::Sender<EngineEvent>,
    pub commands: mpsc::UnboundedSender<Command>,
    /// A legacy `run` started from the dashboard is under way in this process.
    pub legacy_running: std::sync::atomic::AtomicBool,
    pub store: Store,
    pub content: ContentService,
    /// Readiness flags the worker keeps (see `health`).
    pub health: super::health::Health,
    /// Applies in flight that wait for a table lock, by file (see [`LockWait`]).
    pub lock_waits: ArcSwap<BTreeMap<String, LockWait>>,
    /// The online phases this instance runs now, by file, as far as they are.
    pub online_runs: ArcSwap<BTreeMap<String, super::store::OnlineRun>>,
    /// How long content requests take lately; online phases slow down when
    /// it rises.
    pub content_latency: Arc<super::content_latency::ContentLatency>,
    /// Who holds this process's webhook leases: the instance's name and this
    /// start's id (`<name>/<id>`), so an operator can tell whose they are.
    pub lease_holder: String,
    /// What the watcher and the worker still have to do about the files (see
    /// [`Activity`](super::activity::Activity)).
    pub activity: Arc<super::activity::Activity>,
}
