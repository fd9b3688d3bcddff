//! One change applied: the store's transaction (retried with backoff while a
//! table lock is held elsewhere), then the worker's state following it, and
//! the events that say so.

use std::time::Duration;

use super::{Turn, Worker};
use crate::engine::events::{EngineEvent, EventKind};
use crate::engine::scan::write_site_file;
use crate::engine::shared::Command;
use crate::engine::snapshot::{LockWait, PendingChange};
use crate::engine::store::{
    lock_backoff, Lease, OnlineRun, Pace, PhaseRun, RunState, StoreError, VersionRecord, VersionRow, BRIEF_WAIT,
    LOCK_ATTEMPTS,
};
use crate::engine::{Approval, EngineError};
use crate::error::FileError;
use crate::hash::sha256_hex;

impl Worker {
    /// Applies `change` on behalf of `actor`: one transaction with its history
    /// row, then the in-memory state follows. The turn's snapshot is published
    /// before the schema locks this takes are released.
    pub(super) async fn apply(
        &mut self,
        turn: &mut Turn,
        change: PendingChange,
        actor: &str,
        reason: Option<String>,
    ) -> Result<VersionRow, EngineError> {
        let record = VersionRecord {
            file: change.file.clone(),
            hash: change.to_hash.clone(),
            yaml: change.new_text().map(str::to_string),
            actor: actor.to_string(),
            reason,
        };
        let mut attempt = 0;
        // The entities the plan's SQL names (constraint names read as table
        // names included), kept to those that exist before or after it.
        let defined = |e: &String| {
            self.applied.entity_file(e).is_some()
                || change.new_file.as_ref().and_then(|f| f.entity()).is_some_and(|n| n.id == *e)
        };
        let mut entities: std::collections::BTreeSet<String> =
            change.plan.entities().into_iter().filter(defined).collect();
        entities.insert(change.entity.clone());
        // The online phases first, beside live traffic: no schema lock yet.
        // They run once; a cut-over that meets a lock is retried with their
        // lease held and what they made kept up to date by its triggers.
        let phased = loop {
            match self.phases(&change, actor, record.reason.clone()).await {
                Err(e) if e.is_lock_timeout() && attempt + 1 < LOCK_ATTEMPTS => {
                    attempt += 1;
                    self.wait_for_lock(&change, attempt).await;
                }
                other => break other,
            }
        };
        let result = match phased {
            Err(e) => {
                // Stopped (failed, aborted) or never started: forgotten here
                // too (the store forgot it as it let go of the lease).
                if !change.plan.phases().is_empty() {
                    self.run_over(&change.file).await;
                }
                Err(e)
            }
            Ok(lease) => {
                let cut_over = loop {
                    let taken = self.shared.schema_locks.write(&mut turn.locks, entities.iter().cloned()).await;
                    let lock_timeout = match lease.is_some() && attempt + 2 < LOCK_ATTEMPTS {
                        // An online cut-over waits briefly: readers queue
                        // behind a waiting ALTER, so a long wait would be the
                        // very stall the phases avoided. Its last tries wait
                        // the full timeout, past which PostgreSQL cancels an
                        // autovacuum in the way (`deadlock_timeout`).
                        true => self.lock_timeout().min(BRIEF_WAIT),
                        false => self.lock_timeout(),
                    };
                    let applied = self.store.apply(&change.plan, change.severity, record.clone(), lock_timeout).await;
                    match applied {
                        Err(e) if e.is_lock_timeout() && attempt + 1 < LOCK_ATTEMPTS => {
                            attempt += 1;
                            // Content requests for its entities go on while
                            // this waits; none is held longer than one lock
                            // timeout. (Those of the turn's earlier changes
                            // stay held: their snapshot is not out yet.)
                            turn.locks.release(&taken);
                            self.wait_for_lock(&change, attempt).await;
                        }
                        other => break other,
                    }
                };
                if let Some(mut lease) = lease {
                    if cut_over.is_err() {
                        // Not applied: the old schema stays, without the
                        // phases' triggers, shadow column or constraints.
                        self.store.reset_phases(&mut lease, &change.plan, &change.file).await;
                    }
                    // Forgotten while the lease is held: a recorded run with a
                    // free lease is a dead instance's (`takeover`).
                    self.run_over(&change.file).await;
                    match cut_over.is_ok() && !change.plan.retire_phases().is_empty() {
                        true => turn.retiring.push(super::Retiring {
                            lease,
                            plan: change.plan.clone(),
                            file: change.file.clone(),
                        }),
                        false => lease.release().await,
                    }
                }
                cut_over
            }
        };
        if attempt > 0 {
            self.shared.lock_waits.rcu(|waits| {
                let mut waits = (**waits).clone();
                waits.remove(&change.file);
                waits
            });
        }
        match result {
            Ok(row) => {
                self.applied_ok(turn, &change, actor, &row);
                Ok(row)
            }
            Err(e @ StoreError::HeadMoved { .. }) => {
                // Not a failure: another instance applied this file first. Its
                // version is loaded before the turn ends, and the file re-planned.
                tracing::info!(file = %change.file, "another instance applied this file first");
                turn.resync = true;
                Err(e.into())
            }
            Err(e @ (StoreError::NotCommitted { .. } | StoreError::DiskFull { .. })) if change.origin.is_none() => {
                // Known not to have happened (the history says so), and for a
                // passing cause: the change waits again for a person.
                let message = format!("{}; the change waits again", e.public_message());
                let again = self.journal.event(EventKind::Pending, &change.file, Some(&change), None, message);
                self.journal.record(turn, EngineEvent { actor: Some(actor.to_string()), ..again });
                self.files.hold(change);
                Err(e.into())
            }
            Err(e @ StoreError::Aborted { .. }) if change.origin.is_none() => {
                // Asked for: the old schema stays live and the change waits
                // for a person again, as before its approval.
                let message = format!("{}; the change waits for approval again", e.public_message());
                let again = self.journal.event(EventKind::Pending, &change.file, Some(&change), None, message);
                self.journal.record(turn, EngineEvent { actor: Some(actor.to_string()), ..again });
                self.files.hold(change);
                Err(e.into())
            }
            Err(e) => {
                tracing::error!(file = %change.file, error = %e, "applying a change failed; the transaction was rolled back");
                let message = format!("applying change {} failed: {}", change.id, e.public_message());
                self.files.fail(&change.file, FileError::new(&change.file, (1, 1), None, message.clone()));
                crate::engine::telemetry::not_applied(crate::engine::telemetry::NotApplied::Failed);
                let failed = self.journal.event(EventKind::Failed, &change.file, Some(&change), None, message);
                self.journal.record(turn, EngineEvent { actor: Some(actor.to_string()), ..failed });
                Err(e.into())
            }
        }
    }

    /// The lock timeout an apply runs under: `hot_reload.lock_timeout_ms`, or
    /// the command line's.
    fn lock_timeout(&self) -> Duration {
        self.settings.lock_timeout_ms.map(Duration::from_millis).unwrap_or(self.config.lock_timeout)
    }

    /// Runs `change`'s online phases under its table's lease, when it takes
    /// the online path; returns the lease, held until the cut-over is done.
    async fn phases(
        &mut self,
        change: &PendingChange,
        actor: &str,
        reason: Option<String>,
    ) -> Result<Option<Lease>, StoreError> {
        let Some(table) = change.plan.online_tables().into_iter().next().filter(|_| !change.plan.phases().is_empty())
        else {
            return Ok(None);
        };
        let mut lease = self.store.lease(&table, self.lock_timeout()).await?;
        tracing::info!(file = %change.file, %table, rows = ?change.plan.table_rows, "running the change's online phases");
        let approval = Approval { actor: actor.to_string(), reason, confirm: Some(change.entity.clone()) };
        let run = PhaseRun {
            change_id: change.id,
            file: &change.file,
            pace: Pace { rows: self.settings.batch_rows(), pause: self.settings.batch_pause() },
            latency: &self.shared.content_latency,
            approval: &approval,
        };
        let (journal, events, runs) = (&mut self.journal, &self.shared.events, &self.shared.online_runs);
        let mut logged = (0, RunState::Running);
        // How far the phases are goes out mid-turn, like a lock wait: it
        // reports progress and changes no state a snapshot holds. The log
        // takes each phase and each pause, not every batch.
        let report = |progress: &OnlineRun| {
            crate::engine::telemetry::online_progress(progress);
            runs.rcu(|runs| {
                let mut runs = (**runs).clone();
                runs.insert(progress.file.clone(), progress.clone());
                runs
            });
            let event = journal.event(EventKind::Progress, &change.file, Some(change), None, progress.describe());
            if logged != (progress.phase, progress.state) {
                logged = (progress.phase, progress.state);
                journal.log(&event);
            }
            let _ = events.send(event);
        };
        let Err(refused) = self.store.run_phases(&mut lease, &change.plan, run, report).await else {
            return Ok(Some(lease));
        };
        lease.release().await;
        match refused {
            // A phase the data refused (a duplicate, a NULL written since the
            // approval): the probes say what, as the cut-over's would have.
            e @ (StoreError::Statement { .. } | StoreError::Disproved { .. }) => {
                Err(self.rose(change).await.unwrap_or(e))
            }
            e => Err(e),
        }
    }

    /// `file`'s online phases are over, whichever way: forgotten here, in the
    /// database and in the gauges.
    async fn run_over(&self, file: &str) {
        self.store.run_ended(file).await;
        let mut gone = None;
        self.shared.online_runs.rcu(|runs| {
            let mut runs = (**runs).clone();
            gone = runs.remove(file);
            runs
        });
        if let Some(run) = gone {
            crate::engine::telemetry::online_over(&run.table);
        }
    }

    /// What the live data grades `change` now, as the refusal an apply gives
    /// when that is worse than what was approved; `None` when it is not.
    async fn rose(&self, change: &PendingChange) -> Option<StoreError> {
        let counts = self.store.probe(&change.plan).await.ok()?;
        let mut plan = change.plan.clone();
        plan.regrade(|p| counts.get(&p.sql).copied());
        let (approved, now) = (change.severity, plan.severity());
        let reasons = plan.hazards().into_iter().filter(|h| h.severity > approved).map(|h| h.message);
        let reasons = reasons.collect::<Vec<_>>().join("; ");
        (now > approved).then_some(StoreError::SeverityRose { approved, now, reasons })
    }

    /// After the `attempt`-th lock timeout: says who holds the table, then
    /// backs off.
    async fn wait_for_lock(&mut self, change: &PendingChange, attempt: u32) {
        let holders = self.store.lock_holders().await.unwrap_or_default();
        let wait = lock_backoff(attempt);
        tracing::warn!(file = %change.file, attempt, wait_ms = wait.as_millis() as u64, holders = ?holders, "a table the change needs is locked by another session; trying again");
        self.announce_wait(change, LockWait { file: change.file.clone(), attempt, holders });
        tokio::time::sleep(wait).await;
    }

    /// `change` was committed as `row`: the applied state, the file's state
    /// and (for a rollback) the file on disk follow, and it is announced.
    fn applied_ok(&mut self, turn: &mut Turn, change: &PendingChange, actor: &str, row: &VersionRow) {
        self.store.failpoints().reach("after_commit");
        self.versions.insert(change.file.clone(), row.version);
        self.cluster.text_applied(&change.file, &row.hash, row.version);
        self.cluster.declines.retain(|(file, _), _| *file != change.file);
        match &change.new_file {
            Some(file) => self.applied.insert_file(file.clone()),
            None => self.applied.remove(&change.file),
        }
        if change.origin.is_none() {
            // This copy's change (or a rollback asked for here): whatever the file showed is over.
            self.files.settle(&change.file);
        }
        if crate::kind::feeds_live_settings(&change.file) {
            self.settings = self.live_settings();
        }
        // The rows data files hold may differ now (a data file wrote them
        // again, a schema change moved them): checked in a turn of its own,
        // after this one is announced, off the save's path.
        let rows_held = self.applied.data_files_of(&change.entity).next().is_some();
        if rows_held || self.drift.iter().any(|d| d.file.as_deref() == Some(change.file.as_str())) {
            let _ = self.shared.commands.send(Command::CheckRows { entity: change.entity.clone() });
        }
        if let Some(to) = change.rollback_to {
            // The database already holds the change; the file follows it. When
            // it cannot be rewritten, the two disagree, and the file says so
            // until it is saved again (the later text is not planned again
            // meanwhile: its bytes are what was last seen).
            let text = change.new_text();
            match write_site_file(&self.config.site_root, &change.file, text) {
                Ok(()) => self.files.see(&change.file, text.map(|t| sha256_hex(t.as_bytes()))),
                Err(e) => {
                    tracing::error!(file = %change.file, error = %e, "rolled back in the database but could not rewrite the file");
                    let message = format!(
                        "rolled back to version {to} in the database, but the file could not be rewritten ({e}): it \
                         still holds the later text; save version {to}'s text (`marain history`) or the text to apply"
                    );
                    self.files.fail(&change.file, FileError::new(&change.file, (1, 1), None, message.clone()));
                    let failed = self.journal.event(EventKind::Failed, &change.file, Some(change), None, message);
                    self.journal.record(turn, EngineEvent { actor: Some(actor.to_string()), ..failed });
                }
            }
        }
        let message = match change.rollback_to {
            Some(v) => format!("version {} applied: rolled back to version {v}", row.version),
            None => format!("version {} applied ({}): {}", row.version, change.severity, change.summary.join("; ")),
        };
        let saved = match (&change.new_file, change.rollback_to) {
            (Some(_), None) => {
                std::fs::metadata(self.config.site_root.join(&change.file)).and_then(|m| m.modified()).ok()
            }
            _ => None,
        };
        crate::engine::telemetry::applied(&change.file, change.severity, saved);
        let by = Some(actor.to_string());
        let applied = self.journal.event(EventKind::Applied, &change.file, Some(change), Some(row.version), message);
        self.journal.record(turn, EngineEvent { actor: by.clone(), ..applied });
        if let Some(to) = change.rollback_to {
            let message = format!("{} is version {to} again (applied as version {})", change.file, row.version);
            let back =
                self.journal.event(EventKind::RolledBack, &change.file, Some(change), Some(row.version), message);
            self.journal.record(turn, EngineEvent { actor: by, ..back });
        }
    }

    /// Shows that `change` waits for a lock, at once rather than at the end of
    /// the turn: the card and the event stream say who holds it while the wait
    /// lasts. The one event sent mid-turn; it reports progress and changes no
    /// state a snapshot holds.
    fn announce_wait(&mut self, change: &PendingChange, wait: LockWait) {
        let message = wait.summary();
        self.shared.lock_waits.rcu(|waits| {
            let mut waits = (**waits).clone();
            waits.insert(wait.file.clone(), wait.clone());
            waits
        });
        let event = self.journal.event(EventKind::Waiting, &change.file, Some(change), None, message);
        self.journal.log(&event);
        let _ = self.shared.events.send(event);
    }
}
