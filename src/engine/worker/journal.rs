//! The worker's events: numbered in order, written to the process log and to
//! `secure.log`, and kept in the [`Turn`](super::Turn) until its snapshot is
//! published.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::Turn;
use crate::engine::events::{EngineEvent, EventKind};
use crate::engine::now_rfc3339;
use crate::engine::secure_log::SecureLog;
use crate::engine::snapshot::PendingChange;
use crate::engine::store::Store;

pub(in crate::engine) struct Journal {
    secure_log: Option<SecureLog>,
    next_seq: u64,
    /// The newest line of `secure_log` handed to `anchor` to record.
    anchored: String,
    anchor: Arc<Anchor>,
}

/// Records the secure log's newest line in the database off the worker: a
/// write that waits (SQLite's write lock held by another session) must not
/// hold the worker up. One write at a time; a newer line replaces one not
/// written yet.
#[derive(Default)]
struct Anchor {
    /// The log's name and the newest line to record.
    next: Mutex<Option<(String, String)>>,
    writing: AtomicBool,
}

impl Anchor {
    fn record(self: &Arc<Self>, store: &Store, log: String, head: String) {
        *self.next.lock().expect("the anchor is never poisoned") = Some((log, head));
        if self.writing.swap(true, Ordering::SeqCst) {
            return;
        }
        let (anchor, store) = (self.clone(), store.clone());
        tokio::spawn(async move {
            loop {
                let next = anchor.next.lock().expect("the anchor is never poisoned").take();
                let Some((log, head)) = next else {
                    anchor.writing.store(false, Ordering::SeqCst);
                    // One recorded meanwhile, after the look above: go on.
                    let more = anchor.next.lock().expect("the anchor is never poisoned").is_some();
                    if more && !anchor.writing.swap(true, Ordering::SeqCst) {
                        continue;
                    }
                    return;
                };
                if let Err(e) = store.anchor_secure_log(&log, &head).await {
                    tracing::warn!(error = %e, "cannot record the secure log's newest line in the database");
                }
            }
        });
    }
}

impl Journal {
    pub fn new(secure_log: Option<SecureLog>) -> Self {
        Journal { secure_log, next_seq: 1, anchored: String::new(), anchor: Arc::default() }
    }

    /// Records the log's newest line now, once a write under way has ended:
    /// at shutdown, so the last lines written are vouched for.
    pub async fn anchor_now(&mut self, store: &Store) {
        let Some(log) = &self.secure_log else { return };
        for _ in 0..200 {
            if !self.anchor.writing.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        if log.head().is_empty() {
            return;
        }
        if let Err(e) = store.anchor_secure_log(&log.anchor_name(), log.head()).await {
            tracing::warn!(error = %e, "cannot record the secure log's newest line in the database");
        }
        self.anchored = log.head().to_string();
    }

    /// Has the log's newest line recorded in the database, off the worker
    /// (docs/security.md), unless it was already.
    pub fn anchor(&mut self, store: &Store) {
        let Some(log) = &self.secure_log else { return };
        if log.head().is_empty() || log.head() == self.anchored {
            return;
        }
        self.anchored = log.head().to_string();
        self.anchor.record(store, log.anchor_name(), self.anchored.clone());
    }

    /// A new event, numbered, not yet attributed to anyone.
    pub fn event(
        &mut self,
        kind: EventKind,
        file: &str,
        change: Option<&PendingChange>,
        version: Option<i64>,
        message: String,
    ) -> EngineEvent {
        let seq = self.next_seq;
        self.next_seq += 1;
        EngineEvent {
            seq,
            at: now_rfc3339(),
            kind,
            file: file.to_string(),
            change_id: change.map(|c| c.id),
            version,
            severity: change.map(|c| c.severity),
            actor: None,
            message,
        }
    }

    /// Writes `event` to the process log and to `secure.log`.
    pub fn log(&mut self, event: &EngineEvent) {
        tracing::info!(kind = event.kind.as_str(), file = %event.file, message = %event.message, "hot-reload");
        if let Some(log) = &mut self.secure_log {
            log.append(event);
        }
    }

    /// Logs `event` and keeps it for the end of the turn.
    pub fn record(&mut self, turn: &mut Turn, event: EngineEvent) {
        self.log(&event);
        turn.events.push(event);
    }

    /// An event attributed to the turn's actor, logged and kept for the end of the turn.
    pub fn emit(
        &mut self,
        turn: &mut Turn,
        kind: EventKind,
        file: &str,
        change: Option<&PendingChange>,
        version: Option<i64>,
        message: String,
    ) {
        let event = EngineEvent { actor: turn.actor.clone(), ..self.event(kind, file, change, version, message) };
        self.record(turn, event);
    }
}
