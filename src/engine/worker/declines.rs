//! The worker's side of declines kept in the database (see
//! [`crate::engine::declines`]): turning a change down, and following the
//! declines other instances recorded.

use super::{Turn, Worker};
use crate::engine::declines::Decline;
use crate::engine::events::{EngineEvent, EventKind};
use crate::engine::snapshot::PendingChange;
use crate::engine::{now_rfc3339, EngineError};
use crate::error::FileError;

impl Worker {
    /// Turns change `id` down: recorded in the database first (so every
    /// instance that plans the same text, and this one after a restart, shows
    /// it rejected), then here.
    pub(super) async fn decline_change(
        &mut self,
        turn: &mut Turn,
        id: u64,
        actor: &str,
        reason: Option<String>,
    ) -> Result<(), EngineError> {
        let found = self.files.pending_changes().chain(self.cluster.remote.values()).find(|c| c.id == id).cloned();
        let change = found.ok_or(EngineError::UnknownChange(id))?;
        let decline = Decline {
            file: change.file.clone(),
            to_hash: change.to_hash.clone(),
            actor: actor.to_string(),
            reason,
            rejected_at: now_rfc3339(),
        };
        self.store.cluster().record_decline(&decline).await?;
        self.cluster.declines.insert((decline.file.clone(), decline.to_hash.clone()), decline.clone());
        crate::engine::telemetry::not_applied(crate::engine::telemetry::NotApplied::Declined);
        self.turn_down(turn, &change, &decline);
        Ok(())
    }

    /// `change` leaves the waiting changes as `decline` says. This copy's own
    /// change leaves the file rejected here; another copy's just goes.
    pub(super) fn turn_down(&mut self, turn: &mut Turn, change: &PendingChange, decline: &Decline) {
        let message = decline.summary(change.id);
        match &change.origin {
            Some(_) => self.cluster.remote.retain(|_, c| c.id != change.id),
            None => {
                self.files.decline(&change.file, FileError::new(&change.file, (1, 1), None, message.clone()));
            }
        }
        let event = EngineEvent {
            actor: Some(decline.actor.clone()),
            ..self.journal.event(EventKind::Rejected, &change.file, Some(change), None, message)
        };
        self.journal.record(turn, event);
    }

    /// The declines in the database now: waiting changes whose text another
    /// instance turned down are turned down here too.
    pub(super) async fn follow_rejections(&mut self, turn: &mut Turn) {
        let rows = match self.store.cluster().declines().await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the declines; the next sync tries again");
                return;
            }
        };
        self.cluster.declines = rows.into_iter().map(|r| ((r.file.clone(), r.to_hash.clone()), r)).collect();
        let turned_down: Vec<(PendingChange, Decline)> = self
            .files
            .pending_changes()
            .chain(self.cluster.remote.values())
            .filter_map(|c| Some((c.clone(), self.cluster.decline_of(&c.file, &c.to_hash)?.clone())))
            .collect();
        for (change, decline) in turned_down {
            self.turn_down(turn, &change, &decline);
        }
    }
}
