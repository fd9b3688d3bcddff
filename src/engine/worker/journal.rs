//! The worker's events: numbered in order, written to the process log and to
//! `secure.log`, and kept in the [`Turn`](super::Turn) until its snapshot is
//! published.

use super::Turn;
use crate::engine::events::{EngineEvent, EventKind};
use crate::engine::now_rfc3339;
use crate::engine::secure_log::SecureLog;
use crate::engine::snapshot::PendingChange;

pub(in crate::engine) struct Journal {
    secure_log: Option<SecureLog>,
    next_seq: u64,
    /// The newest line of `secure_log` recorded in the database.
    anchored: String,
}

impl Journal {
    pub fn new(secure_log: Option<SecureLog>) -> Self {
        Journal { secure_log, next_seq: 1, anchored: String::new() }
    }

    /// The log's name and newest line, when the database has not recorded
    /// that line yet.
    pub fn unanchored(&self) -> Option<(String, String)> {
        let log = self.secure_log.as_ref()?;
        (!log.head().is_empty() && log.head() != self.anchored).then(|| (log.anchor_name(), log.head().to_string()))
    }

    /// The database recorded `head` as the log's newest line.
    pub fn anchored(&mut self, head: String) {
        self.anchored = head;
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
