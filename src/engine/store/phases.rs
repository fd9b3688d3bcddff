//! The online path's phases (docs/online-changes.md): work on a live table
//! that runs before a change's cut-over transaction, each statement on its
//! own, under a lease on the entity that one instance holds at a time.

use std::time::{Duration, Instant};

use super::apply::lock_backoff;
use super::history::head_hash;
use super::online_runs::{lease_key, OnlineRun, Resume, RunState};
use super::{Store, StoreError, LOCK_ATTEMPTS};
use crate::engine::arg::Arg;
use crate::engine::content_latency::{slow_down, ContentLatency};
use crate::engine::database::Pooled;
use crate::engine::Approval;
use crate::hash::sha256_hex;
use crate::plan::{Phase, Plan};

/// One table's lease on its online phases: a session of its own holding the
/// backend's lock. Given back by [`Lease::release`]; dropped without that (a
/// panic, a cancelled task), its connection is closed, which ends the lease.
pub struct Lease {
    conn: Option<Pooled>,
    give_back: Vec<(String, Vec<Arg>)>,
    /// How long the session waits for a lock (a batch for a row a client
    /// writes, a constraint's validation for an autovacuum).
    lock_timeout: Duration,
}

impl Lease {
    pub async fn release(mut self) {
        let Some(mut conn) = self.conn.take() else { return };
        for (sql, args) in &self.give_back {
            if let Err(e) = conn.conn().execute(sql, args).await {
                tracing::warn!(error = %e, "an online lease could not be given back; closing its connection");
                conn.close().await;
                return;
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.detach();
        }
    }
}

/// How a phase's batches are paced (`hot_reload.online_batch_rows` and
/// `online_batch_pause_ms`): each batch query takes `rows` as its `$1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    pub rows: u64,
    pub pause: Duration,
}

/// Who a run of phases is for, and how it paces its batches.
pub struct PhaseRun<'a> {
    pub change_id: u64,
    pub file: &'a str,
    pub pace: Pace,
    /// How long content requests take lately: the batches rest longer when
    /// it rises (`content_latency::slow_down`).
    pub latency: &'a ContentLatency,
    /// What was approved, recorded so that another instance can apply the
    /// change again if this one dies during the phases.
    pub approval: &'a Approval,
}

/// How long a phase's statement waits for its table's lock before it lets go
/// and tries again (all but its last two tries; see `Store::briefly`).
pub const BRIEF_WAIT: Duration = Duration::from_millis(50);

/// Whether `statement`, waiting for its table's lock, makes the table's
/// readers queue behind it: every DDL statement of a phase but those built to
/// run beside traffic (`… CONCURRENTLY`, `VALIDATE CONSTRAINT`, `VACUUM`,
/// whose locks readers and writers pass; a concurrent build cut short would
/// also leave an invalid index that a plain retry trips on).
fn queues_readers(statement: &str) -> bool {
    !(statement.contains(" CONCURRENTLY ")
        || statement.contains(" VALIDATE CONSTRAINT ")
        || statement.starts_with("VACUUM "))
}

/// The error of `statement` failing.
fn failed(statement: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |source| StoreError::Statement { statement: statement.to_string(), source }
}

/// How often paused phases look whether they were resumed or aborted.
const PAUSED_POLL: Duration = Duration::from_millis(200);

/// How often `report` is told of batches at most.
const REPORT_EVERY: Duration = Duration::from_millis(500);

/// A run's progress as it goes: the record, and the clocks its rate and its
/// reports are measured by.
struct Progress {
    run: OnlineRun,
    /// The current phase's batch query that ran last and the last key it
    /// committed (recorded, so a run taken over goes on from there).
    at: Option<(usize, String)>,
    /// Rows of the current phase taken before this instance ran it (by a
    /// dead instance whose run this one goes on with): not in the rate.
    rows_before: i64,
    phase_started: Instant,
    reported: Instant,
}

impl Progress {
    fn new(run: OnlineRun) -> Self {
        Progress { run, at: None, rows_before: 0, phase_started: Instant::now(), reported: Instant::now() }
    }

    fn start(&mut self, phase: usize, summary: &str) {
        self.run.phase = phase;
        self.run.summary = summary.to_string();
        self.run.rows_done = 0;
        self.run.rows_per_second = 0.0;
        self.run.seconds_left = None;
        self.run.slowed = false;
        self.at = None;
        self.rows_before = 0;
        self.phase_started = Instant::now();
    }

    /// The current phase goes on where a dead instance's run left it.
    fn resumed(&mut self, resume: &Resume) {
        self.at = resume.at.clone();
        self.run.rows_done = resume.rows_done;
        self.rows_before = resume.rows_done;
    }

    fn took(&mut self, batch: usize, rows: i64, last: &str, slowed: bool) {
        self.at = Some((batch, last.to_string()));
        self.run.rows_done += rows;
        self.run.slowed = slowed;
        // The rate of this instance's batches.
        let here = self.run.rows_done - self.rows_before;
        self.run.timed(here, self.phase_started.elapsed().as_secs_f64());
    }

    /// Whether a report is due by the clock (and so counts as made).
    fn due(&mut self) -> bool {
        let due = self.reported.elapsed() >= REPORT_EVERY;
        if due {
            self.reported = Instant::now();
        }
        due
    }
}

/// What identifies a plan's phases: a run is only resumed by one planned
/// with the very same statements.
fn phases_hash(phases: &[&Phase]) -> String {
    sha256_hex(serde_json::to_string(phases).unwrap_or_default().as_bytes())
}

/// How long start-up waits for a table's lease before it takes the table
/// for one another instance is working on.
const LEFT_ALONE_AFTER_MS: u64 = 200;

impl Store {
    /// How many rows `table` holds now.
    pub async fn rows_of(&self, table: &str) -> Result<i64, StoreError> {
        let sql = format!("SELECT COUNT(*) FROM {}", self.dialect().table(table));
        let (n,): (i64,) = self.pool.fetch_one(&sql, &[]).await?;
        Ok(n)
    }

    /// Takes `table`'s lease, waiting for another instance's phases to end
    /// (as long as `lock_timeout`: the error then says it is a lock timeout).
    pub async fn lease(&self, table: &str, lock_timeout: Duration) -> Result<Lease, StoreError> {
        let (take, give_back) = self.backend().lease(lease_key(table), lock_timeout);
        let mut conn = self.direct.acquire().await?;
        for (sql, args) in &take {
            if let Err(e) = conn.conn().execute(sql, args).await {
                conn.detach();
                return Err(e.into());
            }
        }
        Ok(Lease { conn: Some(conn), give_back, lock_timeout })
    }

    /// Runs `plan`'s phases on the lease's session, each statement on its
    /// own, after what an unfinished earlier run left is reset. Refused at
    /// once if `run.file`'s applied head is no longer the plan's base. When a
    /// phase fails or is aborted, every phase is reset (the old schema stays
    /// as it was). Between batches it writes how far it is to
    /// `marain_online_runs`, heeds a pause or an abort asked there, rests as
    /// `run.pace` says and longer while content requests are slow. `report`
    /// is told how far the phases are as each starts, at most twice a second
    /// during batches, when paused or resumed, and as the cut-over is next.
    pub async fn run_phases(
        &self,
        lease: &mut Lease,
        plan: &Plan,
        run: PhaseRun<'_>,
        mut report: impl FnMut(&OnlineRun),
    ) -> Result<(), StoreError> {
        // The phases and their cut-over count as one apply for the failpoints.
        self.failpoints.begin_apply();
        let conn = lease.conn.as_mut().expect("a lease holds its connection until released");
        if head_hash(&mut conn.conn(), run.file).await? != plan.binding.base_hash {
            return Err(StoreError::HeadMoved { file: run.file.to_string() });
        }
        let phases = plan.phases();
        let plan_hash = phases_hash(&phases);
        let mut progress = Progress::new(OnlineRun {
            file: run.file.to_string(),
            change_id: run.change_id,
            table: plan.online_tables().into_iter().next().unwrap_or_default(),
            state: RunState::Running,
            state_by: None,
            phase: 1,
            phases: phases.len(),
            summary: phases.first().map(|p| p.summary.clone()).unwrap_or_default(),
            rows_done: 0,
            rows_total: plan.table_rows,
            rows_per_second: 0.0,
            seconds_left: None,
            slowed: false,
        });
        // A dead instance's run of these very phases goes on from its last
        // recorded batch; anything else starts over.
        let resume = self.resumable(run.file, run.change_id, &plan_hash).await?;
        match &resume {
            Some(resume) => {
                tracing::warn!(file = %run.file, phase = resume.phase, rows = resume.rows_done,
                    after = ?resume.at.as_ref().map(|(_, key)| key), "going on with a dead instance's online phases from its last batch");
                self.run_resumed(run.file).await?;
            }
            None => self.run_started(&progress.run, run.approval, &plan_hash).await?,
        }
        let ran = self.each_phase(lease, &phases, resume.as_ref(), &run, &mut progress, &mut report).await;
        if let Err(e) = ran {
            self.reset_phases(lease, plan, run.file).await;
            return Err(e);
        }
        progress.start(phases.len() + 1, "cut-over");
        self.run_progress(&progress.run, None).await?;
        report(&progress.run);
        self.failpoints.reach("before_cut_over");
        Ok(())
    }

    /// Runs `plan`'s retire phases once its cut-over committed and the
    /// schema locks are let go (docs/online-changes.md), on the lease's
    /// session: their statements and their batches of `pace.rows`, without
    /// progress or steering (the change is applied; only clearing what the
    /// old shape left remains). A failure is logged, not returned: what is
    /// left is cleared at start-up.
    pub async fn retire(&self, lease: &mut Lease, plan: &Plan, file: &str, pace: Pace) {
        let phases = plan.retire_phases();
        if phases.is_empty() {
            return;
        }
        self.failpoints.reach("after_cut_over");
        let Some(conn) = lease.conn.as_mut() else { return };
        for phase in phases {
            let started = Instant::now();
            let ran = async {
                for statement in &phase.sql {
                    conn.conn().execute(statement, &[]).await.map_err(failed(statement))?;
                }
                for query in &phase.batches {
                    let mut after = String::new();
                    loop {
                        let (rows, last) = self.batch(conn, query, &phase.batch_writes, pace.rows, &after).await?;
                        if rows == 0 {
                            break;
                        }
                        after = last;
                        if !pace.pause.is_zero() {
                            tokio::time::sleep(pace.pause).await;
                        }
                    }
                }
                Ok::<_, StoreError>(())
            }
            .await;
            let ms = started.elapsed().as_millis() as u64;
            match ran {
                Ok(()) => tracing::info!(%file, phase = %phase.summary, ms, "online phase after the cut-over done"),
                Err(e) => {
                    tracing::warn!(%file, phase = %phase.summary, error = %e, "what a change's cut-over left could not be cleared; start-up clears it");
                    return;
                }
            }
        }
    }

    /// Clears everything `plan`'s phases make (each phase's reset), on the
    /// lease's session: after a phase failed or was aborted, or when the
    /// cut-over did not commit, so that nothing of the change (a trigger, a
    /// shadow column, a constraint) stays on the table under the old schema.
    /// The run's record goes first: a record whose phases' work is gone
    /// would be resumed by the instance taking it over. If the record cannot
    /// be cleared, the work stays with it (start-up clears both).
    pub async fn reset_phases(&self, lease: &mut Lease, plan: &Plan, file: &str) {
        if !self.run_ended(file).await {
            tracing::warn!(%file, "an online change's phases are left as they are, with their record; start-up clears them");
            return;
        }
        let Some(conn) = lease.conn.as_mut() else { return };
        let mut statements: Vec<String> = plan.phases().iter().flat_map(|p| p.reset.clone()).collect();
        // And what a reset cannot say only if it is there (SQLite cannot drop
        // a column `IF EXISTS`): what the backend finds unfinished on the
        // plan's tables, which under the lease is this change's.
        if let Some(query) = self.backend().unfinished_phases_query() {
            let tables = plan.online_tables();
            match conn.conn().fetch_all::<(String, String)>(query, &[]).await {
                Ok(found) => statements.extend(found.into_iter().filter(|(t, _)| tables.contains(t)).map(|(_, s)| s)),
                Err(e) => tracing::warn!(%file, error = %e, "could not look for what an unfinished change left"),
            }
        }
        for statement in &statements {
            if let Err(reset) = conn.conn().execute(statement, &[]).await {
                tracing::warn!(%file, %statement, error = %reset, "could not clear what an unfinished change's phases left");
            }
        }
    }

    async fn each_phase(
        &self,
        lease: &mut Lease,
        phases: &[&Phase],
        resume: Option<&Resume>,
        run: &PhaseRun<'_>,
        progress: &mut Progress,
        report: &mut impl FnMut(&OnlineRun),
    ) -> Result<(), StoreError> {
        let lock_timeout = lease.lock_timeout;
        let conn = lease.conn.as_mut().expect("a lease holds its connection until released");
        let before = run.latency.recent();
        for (n, phase) in phases.iter().enumerate() {
            // A dead instance's run did the phases before the one it was in,
            // and that one's statements if it had begun its batches.
            let from = resume.filter(|r| r.phase == n + 1).and_then(|r| r.at.as_ref().map(|_| r));
            if resume.is_some_and(|r| r.phase > n + 1) {
                continue;
            }
            progress.start(n + 1, &phase.summary);
            if let Some(resume) = from {
                progress.resumed(resume);
            }
            self.checkpoint(progress, report, true).await?;
            let started = Instant::now();
            let _running = crate::engine::telemetry::phase_started(&progress.run.table);
            let ran_before = from.is_some();
            for statement in phase.reset.iter().chain(&phase.sql).filter(|_| !ran_before) {
                match queues_readers(statement) {
                    true => self.briefly(conn, statement, lock_timeout).await?,
                    false => {
                        let ran = conn.conn().execute(statement, &[]).await;
                        ran.map_err(|source| StoreError::Statement { statement: statement.clone(), source })?;
                    }
                }
            }
            let (first, mut after) = from.and_then(|r| r.at.clone()).unwrap_or_default();
            for (b, statement) in phase.batches.iter().enumerate().skip(first) {
                if b > first {
                    after.clear();
                }
                // Each batch is a transaction of its own: writes interleave.
                loop {
                    let batch = Instant::now();
                    let (rows, last) = self.batch(conn, statement, &phase.batch_writes, run.pace.rows, &after).await?;
                    if rows == 0 {
                        break;
                    }
                    after = last;
                    self.failpoints.reach("after_batch");
                    let slower = slow_down(before, run.latency.recent(), batch.elapsed());
                    progress.took(b, rows, &after, slower.is_some());
                    self.checkpoint(progress, report, false).await?;
                    let rest = run.pace.pause + slower.unwrap_or_default();
                    if !rest.is_zero() {
                        tokio::time::sleep(rest).await;
                    }
                }
            }
            for proof in &phase.proofs {
                let counted: Result<(i64,), _> = conn.conn().fetch_one(proof, &[]).await;
                let (found,) = counted.map_err(|source| StoreError::Statement { statement: proof.clone(), source })?;
                if found > 0 {
                    return Err(StoreError::Disproved { statement: proof.clone(), found });
                }
            }
            let ms = started.elapsed().as_millis() as u64;
            tracing::info!(file = %run.file, phase = %phase.summary, rows = progress.run.rows_done, ms, "online phase done");
            self.failpoints.reach("after_phase");
        }
        Ok(())
    }

    /// One batch of `query`: the next `rows` rows after key `after`, as
    /// (rows taken, last key). With `writes` (SQLite), the query only finds
    /// them and the writes, in the same transaction, write them.
    async fn batch(
        &self,
        conn: &mut Pooled,
        query: &str,
        writes: &[String],
        rows: u64,
        after: &str,
    ) -> Result<(i64, String), StoreError> {
        let args = [Arg::Int(rows as i64), Arg::Text(after.to_string())];
        if writes.is_empty() {
            return conn.conn().fetch_one(query, &args).await.map_err(failed(query));
        }
        let _turn = self.write_turn().await;
        conn.conn().execute(self.backend().begin_writing(), &[]).await?;
        let written = async {
            let (taken, last): (i64, String) = conn.conn().fetch_one(query, &args).await.map_err(failed(query))?;
            if taken > 0 {
                let args = [args[0].clone(), args[1].clone(), Arg::Text(last.clone())];
                for write in writes {
                    conn.conn().execute(write, &args).await.map_err(failed(write))?;
                }
            }
            Ok::<_, StoreError>((taken, last))
        }
        .await;
        let end = if written.is_ok() { "COMMIT" } else { "ROLLBACK" };
        conn.conn().execute(end, &[]).await?;
        written
    }

    /// Runs one of a phase's statements on the lease's session, waiting at
    /// most `BRIEF_WAIT` for the table's lock: one that takes a strong lock
    /// (`ADD COLUMN`, `ADD CONSTRAINT … NOT VALID`) makes every later reader
    /// of the table queue behind it while it waits, so it lets go and tries
    /// again with backoff instead. Its last two tries wait the session's full
    /// `lock_timeout`, past which PostgreSQL cancels an autovacuum in the way.
    async fn briefly(&self, conn: &mut Pooled, statement: &str, lock_timeout: Duration) -> Result<(), StoreError> {
        let set = |wait| self.backend().lock_timeout_statement(wait);
        let mut attempt = 0;
        loop {
            let wait = match attempt + 2 < LOCK_ATTEMPTS {
                true => lock_timeout.min(BRIEF_WAIT),
                false => lock_timeout,
            };
            if let Some(sql) = set(wait) {
                conn.conn().execute(&sql, &[]).await?;
            }
            let ran = conn.conn().execute(statement, &[]).await;
            if let Some(sql) = set(lock_timeout) {
                conn.conn().execute(&sql, &[]).await?;
            }
            let error = match ran {
                Ok(_) => return Ok(()),
                Err(source) => StoreError::Statement { statement: statement.to_string(), source },
            };
            attempt += 1;
            if !error.is_lock_timeout() || attempt >= LOCK_ATTEMPTS {
                return Err(error);
            }
            tracing::debug!(%statement, attempt, "a phase's statement met a lock; trying again");
            tokio::time::sleep(lock_backoff(attempt)).await;
        }
    }

    /// Writes how far the phases are and heeds what was asked: waits while
    /// paused, stops when aborted. `report` is told at once when `now` or
    /// when the state changed, else at most twice a second.
    async fn checkpoint(
        &self,
        progress: &mut Progress,
        report: &mut impl FnMut(&OnlineRun),
        now: bool,
    ) -> Result<(), StoreError> {
        let mut told = false;
        loop {
            let (state, by) = self.run_progress(&progress.run, progress.at.as_ref()).await?;
            let changed = state != progress.run.state;
            progress.run.state = state;
            progress.run.state_by = by;
            // While paused, only a change of course is worth telling.
            if (now && !told) || changed || (state == RunState::Running && progress.due()) {
                report(&progress.run);
                told = true;
            }
            match state {
                RunState::Running => return Ok(()),
                RunState::Paused => tokio::time::sleep(PAUSED_POLL).await,
                RunState::Aborting => {
                    let by = progress.run.state_by.clone().unwrap_or_else(|| "an approver".into());
                    return Err(StoreError::Aborted { file: progress.run.file.clone(), by });
                }
            }
        }
    }

    /// Clears what online phases cut short by a crash left on content tables
    /// (docs/online-changes.md); returns the statements it ran. At start-up:
    /// a table whose lease another instance holds is running its phases now,
    /// and is left alone.
    pub async fn clear_unfinished_phases(&self, only: Option<&str>) -> Result<Vec<String>, StoreError> {
        let found: Vec<(String, String)> = match self.backend().unfinished_phases_query() {
            Some(query) => self.pool.fetch_all(query, &[]).await?,
            None => Vec::new(),
        };
        let mut ran = Vec::new();
        let recorded = self.recorded_run_tables().await?;
        let mut tables: Vec<&str> =
            found.iter().map(|(t, _)| t.as_str()).chain(recorded.iter().map(String::as_str)).collect();
        tables.sort_unstable();
        tables.dedup();
        tables.retain(|t| only.is_none_or(|only| *t == only));
        for table in tables {
            let lease = match self.lease(table, Duration::from_millis(LEFT_ALONE_AFTER_MS)).await {
                Ok(lease) => lease,
                Err(e) if e.is_lock_timeout() => continue,
                Err(e) => return Err(e),
            };
            for (_, statement) in found.iter().filter(|(t, _)| t == table) {
                tracing::warn!(%statement, "clearing what an online change cut short left");
                let cleared = self.direct.execute(statement, &[]).await;
                cleared.map_err(|source| StoreError::Statement { statement: statement.clone(), source })?;
                ran.push(statement.clone());
            }
            self.forget_runs(table).await?;
            lease.release().await;
        }
        Ok(ran)
    }
}
