//! The online phases running now, one row per changed file in
//! `marain_online_runs` (docs/online-changes.md): the instance running them
//! writes its progress after every batch and reads back what an approver
//! asked (pause, resume, abort) from any instance.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::engine::arg::Arg;
use crate::engine::Approval;
use crate::hash::sha256_hex;

/// Where a run of online phases stands, as the control requests set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Running,
    /// Between two batches, until resumed or aborted.
    Paused,
    /// Stops at the next batch or phase: what the phases made is cleared and
    /// the change waits for approval again.
    Aborting,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Aborting => "aborting",
        }
    }

    fn parse(text: &str) -> RunState {
        match text {
            "paused" => RunState::Paused,
            "aborting" => RunState::Aborting,
            _ => RunState::Running,
        }
    }
}

/// What an approver asks of a running change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunControl {
    Pause,
    Resume,
    Abort,
}

impl RunControl {
    /// The state it sets, and the states it may be set from.
    fn transition(self) -> (RunState, &'static str) {
        match self {
            RunControl::Pause => (RunState::Paused, "'running'"),
            RunControl::Resume => (RunState::Running, "'paused'"),
            RunControl::Abort => (RunState::Aborting, "'running', 'paused'"),
        }
    }
}

/// How far one change's online phases are: what the change card and the
/// status show while they run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnlineRun {
    pub file: String,
    pub change_id: u64,
    pub table: String,
    pub state: RunState,
    /// Who paused or aborted it.
    pub state_by: Option<String>,
    /// From 1; `phases + 1` once the phases are done and the cut-over runs.
    pub phase: usize,
    pub phases: usize,
    pub summary: String,
    /// Rows the current phase's batches took so far.
    pub rows_done: i64,
    /// The rows the change was planned on, when counted.
    pub rows_total: Option<i64>,
    /// The current phase's rate so far (0 before its first batch).
    pub rows_per_second: f64,
    /// At that rate, how long the current phase still takes.
    pub seconds_left: Option<f64>,
    /// The batches rest longer than asked, because content requests slowed
    /// down since the phases began.
    pub slowed: bool,
}

impl OnlineRun {
    /// "phase 2 of 4: … — 340000 of 1000000 rows, 160000 rows/s, about 4 s left".
    pub fn describe(&self) -> String {
        let mut text = match self.phase > self.phases {
            true => "the phases are done; the cut-over runs".to_string(),
            false => format!("online phase {} of {}: {}", self.phase, self.phases, self.summary),
        };
        if self.rows_done > 0 {
            match self.rows_total {
                Some(total) => text.push_str(&format!(" — {} of about {total} rows", self.rows_done)),
                None => text.push_str(&format!(" — {} rows", self.rows_done)),
            }
            text.push_str(&format!(", {:.0} rows/s", self.rows_per_second));
            if let Some(left) = self.seconds_left {
                text.push_str(&format!(", about {left:.0} s left"));
            }
        }
        if self.slowed {
            text.push_str(" (slowed: content requests slowed down)");
        }
        match (self.state, &self.state_by) {
            (RunState::Running, _) => {}
            (state, Some(by)) => text.push_str(&format!("; {} by {by}", state.as_str())),
            (state, None) => text.push_str(&format!("; {}", state.as_str())),
        }
        text
    }
}

/// A run whose instance died, and the approval it ran under.
#[derive(Debug, Clone)]
pub struct Orphan {
    pub file: String,
    pub change_id: u64,
    pub table: String,
    pub approval: Approval,
    updated_at: i64,
}

/// Where a dead instance's run of the same phases stood at its last
/// recorded batch: the run taking it over goes on from there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Resume {
    /// The phase it was in, from 1 (the ones before are done);
    /// `phases + 1` when only the cut-over was left.
    pub phase: usize,
    /// Within that phase, once its statements ran: the batch query it ran
    /// last (an index into the phase's `batches`) and the last key it
    /// committed. `None`: the phase starts over.
    pub at: Option<(usize, String)>,
    /// The rows the phase's batches had taken.
    pub rows_done: i64,
}

/// What a dead instance's run says of itself.
#[derive(sqlx::FromRow)]
struct OrphanRow {
    file: String,
    change_id: String,
    table_name: String,
    approved_by: String,
    reason: Option<String>,
    confirm: Option<String>,
    updated_at: i64,
}

/// A row of `marain_online_runs`.
#[derive(sqlx::FromRow)]
struct RecordedRun {
    file: String,
    change_id: String,
    table_name: String,
    state: String,
    state_by: Option<String>,
    phase: i64,
    phases: i64,
    summary: String,
    rows_done: i64,
    rows_total: Option<i64>,
    phase_started_at: i64,
    updated_at: i64,
}

impl OnlineRun {
    /// Sets the rate and the time left from `rows` (of `rows_done`; fewer
    /// when a run went on from a dead instance's) taken in `secs`.
    pub(super) fn timed(&mut self, rows: i64, secs: f64) {
        self.rows_per_second = if secs > 0.0 { rows as f64 / secs } else { 0.0 };
        let rate = self.rows_per_second;
        self.seconds_left = self
            .rows_total
            .filter(|_| rate > 0.0 && self.rows_done > 0)
            .map(|total| (total - self.rows_done).max(0) as f64 / rate);
    }
}

impl From<RecordedRun> for OnlineRun {
    fn from(r: RecordedRun) -> Self {
        let secs = (r.updated_at - r.phase_started_at) as f64 / 1000.0;
        let mut run = OnlineRun {
            file: r.file,
            change_id: r.change_id.parse().unwrap_or_default(),
            table: r.table_name,
            state: RunState::parse(&r.state),
            state_by: r.state_by,
            phase: usize::try_from(r.phase).unwrap_or_default(),
            phases: usize::try_from(r.phases).unwrap_or_default(),
            summary: r.summary,
            rows_done: r.rows_done,
            rows_total: r.rows_total,
            rows_per_second: 0.0,
            seconds_left: None,
            slowed: false,
        };
        run.timed(run.rows_done, secs);
        run
    }
}

/// The lock key of `table`'s lease: the first eight bytes of its hash.
pub(super) fn lease_key(table: &str) -> i64 {
    let hex = sha256_hex(format!("marain online {table}").as_bytes());
    u64::from_str_radix(&hex[..16], 16).map(|k| k as i64).unwrap_or_default()
}

impl Store {
    /// The database's clock in milliseconds, as SQL: instances compare these
    /// times with one another, so no process's own clock writes them.
    fn now_ms_sql(&self) -> &'static str {
        self.backend().now_sql().1
    }

    /// Records that `run`'s phases start (replacing what a killed run of the
    /// same file left), planned as `plan_hash` says.
    pub(super) async fn run_started(
        &self,
        run: &OnlineRun,
        approval: &Approval,
        plan_hash: &str,
    ) -> Result<(), StoreError> {
        self.pool.execute("DELETE FROM marain_online_runs WHERE file = $1", &[run.file.as_str().into()]).await?;
        let sql = format!(
            "INSERT INTO marain_online_runs (file, change_id, table_name, phase, phases, summary, rows_total, \
             started_at, phase_started_at, updated_at, approved_by, reason, confirm, plan_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, {now}, {now}, {now}, $8, $9, $10, $11)",
            now = self.now_ms_sql()
        );
        let args = [
            run.file.as_str().into(),
            run.change_id.to_string().into(),
            run.table.as_str().into(),
            Arg::Int(run.phase as i64),
            Arg::Int(run.phases as i64),
            run.summary.as_str().into(),
            run.rows_total.map_or(Arg::Null, Arg::Int),
            approval.actor.as_str().into(),
            approval.reason.as_deref().map_or(Arg::Null, Arg::from),
            approval.confirm.as_deref().map_or(Arg::Null, Arg::from),
            plan_hash.into(),
        ];
        self.pool.execute(&sql, &args).await?;
        Ok(())
    }

    /// Where the run of `file` recorded by a dead instance stood, when it ran
    /// the same change with the same phases (`plan_hash`): the caller holds
    /// the table's lease, so nobody else runs it, and start-up, which clears
    /// a dead run's leftovers under the same lease, forgets its record as it
    /// does. A record is only ever left with its phases' work in place: a
    /// run that resets its phases forgets its record first.
    pub(super) async fn resumable(
        &self,
        file: &str,
        change_id: u64,
        plan_hash: &str,
    ) -> Result<Option<Resume>, StoreError> {
        let sql = "SELECT CAST(phase AS BIGINT), CAST(batch AS BIGINT), after_key, rows_done \
                   FROM marain_online_runs WHERE file = $1 AND change_id = $2 AND plan_hash = $3";
        let args = [file.into(), change_id.to_string().into(), plan_hash.into()];
        let row: Option<(i64, Option<i64>, Option<String>, i64)> = self.pool.fetch_optional(sql, &args).await?;
        Ok(row.and_then(|(phase, batch, after, rows_done)| {
            let phase = usize::try_from(phase).ok().filter(|p| *p >= 1)?;
            let at = match (batch.and_then(|b| usize::try_from(b).ok()), after) {
                (Some(batch), Some(after)) => Some((batch, after)),
                _ => None,
            };
            let rows_done = if at.is_some() { rows_done } else { 0 };
            Some(Resume { phase, at, rows_done })
        }))
    }

    /// Records that this instance now runs `file`'s phases, resumed: its
    /// current phase's clock starts again.
    pub(super) async fn run_resumed(&self, file: &str) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE marain_online_runs SET phase_started_at = {now}, updated_at = {now} WHERE file = $1",
            now = self.now_ms_sql()
        );
        self.pool.execute(&sql, &[file.into()]).await?;
        Ok(())
    }

    /// Writes how far `run` is (with `at`, its current phase's last batch
    /// query and key) and reads back what was asked of it since.
    pub(super) async fn run_progress(
        &self,
        run: &OnlineRun,
        at: Option<&(usize, String)>,
    ) -> Result<(RunState, Option<String>), StoreError> {
        let sql = format!(
            "UPDATE marain_online_runs SET phase_started_at = CASE WHEN phase = $2 THEN phase_started_at \
             ELSE {now} END, phase = $2, summary = $3, rows_done = $4, batch = CAST($5 AS INTEGER), after_key = $6, \
             updated_at = {now} WHERE file = $1 RETURNING state, state_by",
            now = self.now_ms_sql()
        );
        let args = [
            run.file.as_str().into(),
            Arg::Int(run.phase as i64),
            run.summary.as_str().into(),
            Arg::Int(run.rows_done),
            // As text whether set or not: a statement keeps the parameter
            // types it was first prepared with.
            at.map_or(Arg::Null, |(batch, _)| Arg::Text(batch.to_string())),
            at.map_or(Arg::Null, |(_, after)| Arg::Text(after.clone())),
        ];
        let row: Option<(String, Option<String>)> = self.pool.fetch_optional(&sql, &args).await?;
        Ok(row.map_or((RunState::Running, None), |(state, by)| (RunState::parse(&state), by)))
    }

    /// Every run recorded, as far as it was at its last batch, on whichever
    /// instance runs it (the rate from its phase's start to then).
    pub async fn recorded_runs(&self) -> Result<Vec<OnlineRun>, StoreError> {
        let sql = "SELECT file, change_id, table_name, state, state_by, CAST(phase AS BIGINT) AS phase, \
                   CAST(phases AS BIGINT) AS phases, summary, rows_done, rows_total, phase_started_at, updated_at \
                   FROM marain_online_runs ORDER BY file";
        let rows: Vec<RecordedRun> = self.pool.fetch_all(sql, &[]).await?;
        Ok(rows.into_iter().map(OnlineRun::from).collect())
    }

    /// The runs whose instance died: their table's lease is free and they
    /// were last written `stale_after` ago or more (a run writes after every
    /// batch and holds the lease throughout; a claim writes too). None where
    /// no phase runs.
    pub async fn orphaned_runs(&self, stale_after: Duration) -> Result<Vec<Orphan>, StoreError> {
        let Some((take, give_back)) = self.backend().free_lease() else { return Ok(Vec::new()) };
        let stale = Arg::Int(i64::try_from(stale_after.as_millis()).unwrap_or(i64::MAX));
        let sql = format!(
            "SELECT file, change_id, table_name, approved_by, reason, confirm, updated_at \
             FROM marain_online_runs WHERE updated_at <= {} - $1 ORDER BY file",
            self.now_ms_sql()
        );
        let rows: Vec<OrphanRow> = self.pool.fetch_all(&sql, &[stale]).await?;
        let mut orphans = Vec::new();
        let mut conn = self.direct.acquire().await?;
        for OrphanRow { file, change_id, table_name: table, approved_by: actor, reason, confirm, updated_at } in rows {
            let key = Arg::Int(lease_key(&table));
            let (free,): (bool,) = conn.conn().fetch_one(take, std::slice::from_ref(&key)).await?;
            if free {
                // Given back at once; if that fails, the connection is
                // closed rather than pooled holding a table's lease.
                let given: Result<(bool,), _> = conn.conn().fetch_one(give_back, &[key]).await;
                if let Err(e) = given {
                    conn.detach();
                    return Err(e.into());
                }
                let approval = Approval { actor, reason, confirm };
                let change_id = change_id.parse().unwrap_or_default();
                orphans.push(Orphan { file, change_id, table, approval, updated_at });
            }
        }
        Ok(orphans)
    }

    /// Claims `orphan` for this instance, unless another did since it was
    /// seen; `true` when this instance is the one to apply it again.
    pub async fn claim_run(&self, orphan: &Orphan) -> Result<bool, StoreError> {
        // The time it had is `stale_after` old or more: the claim writes another.
        let sql = format!(
            "UPDATE marain_online_runs SET updated_at = {} WHERE file = $1 AND updated_at = $2",
            self.now_ms_sql()
        );
        let args = [orphan.file.as_str().into(), Arg::Int(orphan.updated_at)];
        Ok(self.pool.execute(&sql, &args).await? > 0)
    }

    /// `file`'s run is over (applied, failed or aborted); `false` when its
    /// record could not be cleared.
    pub async fn run_ended(&self, file: &str) -> bool {
        let ended = self.pool.execute("DELETE FROM marain_online_runs WHERE file = $1", &[file.into()]).await;
        if let Err(e) = &ended {
            tracing::warn!(%file, error = %e, "could not clear the record of an online run");
        }
        ended.is_ok()
    }

    /// Asks `file`'s running phases, on whichever instance runs them, to
    /// pause, resume or abort; `false` when none runs in a state that allows
    /// it (none at all, already at the cut-over, or already so).
    pub async fn control_run(&self, file: &str, control: RunControl, by: &str) -> Result<bool, StoreError> {
        let (to, from) = control.transition();
        let sql = format!(
            "UPDATE marain_online_runs SET state = $2, state_by = $3 WHERE file = $1 AND phase <= phases \
             AND state IN ({from})"
        );
        let changed = self.pool.execute(&sql, &[file.into(), to.as_str().into(), by.into()]).await?;
        Ok(changed > 0)
    }

    /// Forgets the runs of tables in `tables` (cleared at start-up: their
    /// lease was free, so no instance runs them).
    pub(super) async fn forget_runs(&self, table: &str) -> Result<(), StoreError> {
        self.pool.execute("DELETE FROM marain_online_runs WHERE table_name = $1", &[table.into()]).await?;
        Ok(())
    }

    /// The tables whose runs are recorded.
    pub(super) async fn recorded_run_tables(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> =
            self.pool.fetch_all("SELECT DISTINCT table_name FROM marain_online_runs ORDER BY 1", &[]).await?;
        Ok(rows.into_iter().map(|(t,)| t).collect())
    }
}
