//! Applying a plan: one transaction that re-reads the file's applied head,
//! runs the probes again, runs the SQL and appends the history row, serialised
//! across processes (SQLite's `BEGIN IMMEDIATE` on the kept writer connection,
//! PostgreSQL's advisory lock under a `lock_timeout`); and the upkeep
//! statements run the same way.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::history::{chain_head, head_hash, insert_row, row_hash};
use super::{announce, ChangeNotice, Store, StoreError, VersionRecord, VersionRow, VersionStatus, APPLY_LOCK_KEY};
use crate::engine::database::{Conn, Tx};
use crate::hazard::Probe;
use crate::hazard::Severity;
use crate::plan::{Plan, PlanPath};

impl Store {
    /// Counts what each of `plan`'s probes asks, on the live data.
    pub async fn probe(&self, plan: &Plan) -> Result<BTreeMap<String, i64>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        run_probes(&mut conn.conn(), plan, &[]).await
    }

    /// Runs `plan` (as statically graded) and appends its history row in one
    /// transaction; returns the row. Inside the transaction the file's applied
    /// head is read again (another instance may have moved it) and the probes run
    /// again: the change is refused if the head is no longer the plan's base, or
    /// if the data now grades it above `approved`.
    ///
    /// On PostgreSQL the transaction gives up waiting for any lock after
    /// `lock_timeout` (the error then says so, [`StoreError::is_lock_timeout`],
    /// and the caller may try again later), so the readers queued behind its
    /// lock request never wait longer than that.
    pub async fn apply(
        &self,
        plan: &Plan,
        approved: Severity,
        record: VersionRecord,
        lock_timeout: Duration,
    ) -> Result<VersionRow, StoreError> {
        let started = Instant::now();
        if plan.phases().is_empty() {
            // An online plan's phases counted it already.
            self.failpoints.begin_apply();
        }
        let _one_at_a_time = self.apply_lock.lock().await;
        let backend = self.backend();
        let mut conn = self.writer.acquire().await?;
        let mut settings = backend.around_apply(plan);
        if self.failpoints.full("apply") {
            settings.extend(backend.no_room());
        }
        let file = record.file.clone();
        for (before, _) in &settings {
            conn.conn().execute(before, &[]).await?;
        }
        let result = async {
            let mut tx = conn.begin_with(backend.begin_writing()).await?;
            for (sql, args) in backend.serialise(APPLY_LOCK_KEY, Some(lock_timeout)) {
                tx.conn().execute(&sql, &args).await?;
            }
            self.apply_in(tx, plan, approved, record, started).await
        }
        .await;
        let result = result.map_err(|e| match e.database_code() {
            Some(code) if backend.disk_full(&code) => {
                tracing::error!(%file, error = %e, "the database's disk is full; the change was rolled back");
                StoreError::DiskFull { file }
            }
            _ => e,
        });
        for (_, after) in &settings {
            if let Err(e) = conn.conn().execute(after, &[]).await {
                // A connection lost during the apply: whatever the apply's
                // outcome, it stands; the connection is not used again.
                tracing::warn!(error = %e, "the apply's connection could not be set back; closing it");
                conn.close().await;
                return result;
            }
        }
        result
    }

    /// The id of `file`'s history row `version` with `hash`, if it is there:
    /// how an apply whose commit went unanswered finds out whether it happened.
    async fn committed(&self, file: &str, version: i64, hash: &str) -> Result<Option<i64>, StoreError> {
        let rows: Vec<(i64,)> = self
            .pool
            .fetch_all(
                "SELECT id FROM marain_history WHERE file = $1 AND version = $2 AND hash = $3",
                &[file.into(), version.into(), hash.into()],
            )
            .await?;
        Ok(rows.first().map(|(id,)| *id))
    }

    /// Who holds locks on content tables right now, besides Marain's own
    /// connections: `pid … (application, state) running: query`, for the log
    /// line of an apply that had to wait.
    pub async fn lock_holders(&self) -> Result<Vec<String>, StoreError> {
        let Some(query) = self.backend().lock_holders_query() else { return Ok(Vec::new()) };
        let rows: Vec<(i32, String, String, String)> = self.pool.fetch_all(query, &[]).await?;
        Ok(rows
            .into_iter()
            .map(|(pid, app, state, query)| format!("pid {pid} ({app}, {state}) running: {query}"))
            .collect())
    }

    /// Runs `statements` in one transaction, serialised with every apply (the
    /// SQLite writer; PostgreSQL's apply lock): upkeep of names, not a change
    /// of any file, so no history row.
    pub async fn run_upkeep(&self, statements: &[String]) -> Result<(), StoreError> {
        let backend = self.backend();
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin_with(backend.begin_writing()).await?;
        let mut conn = tx.conn();
        for (sql, args) in backend.serialise(APPLY_LOCK_KEY, None) {
            conn.execute(&sql, &args).await?;
        }
        for sql in statements {
            conn.execute(sql, &[]).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The body of an apply, in an open transaction that serialises applies.
    async fn apply_in(
        &self,
        mut tx: Tx<'_>,
        plan: &Plan,
        approved: Severity,
        record: VersionRecord,
        started: Instant,
    ) -> Result<VersionRow, StoreError> {
        let mut conn = tx.conn();
        let head = head_hash(&mut conn, &record.file).await?;
        if head != plan.binding.base_hash {
            return Err(StoreError::HeadMoved { file: record.file });
        }
        // On the online path, what the phases validated needs no scan here.
        let settled = plan.settled_by_phases(approved);
        let skip: Vec<Probe> = settled.iter().map(|(p, _)| p.clone()).collect();
        let counts = run_probes(&mut conn, plan, &skip).await?;
        let mut plan = plan.clone();
        let taken_as = |p: &Probe| settled.iter().find(|(s, _)| s == p).and_then(|(_, n)| *n);
        plan.regrade(|p| counts.get(&p.sql).copied().or_else(|| taken_as(p)));
        let now = plan.severity();
        if now > approved {
            let reasons = plan.hazards().into_iter().filter(|h| h.severity > approved).map(|h| h.message);
            return Err(StoreError::SeverityRose { approved, now, reasons: reasons.collect::<Vec<_>>().join("; ") });
        }
        for step in &plan.steps {
            for statement in step.cut_over(plan.path) {
                conn.execute(statement, &[])
                    .await
                    .map_err(|source| StoreError::Statement { statement: statement.clone(), source })?;
                if step.fills_backup(statement) {
                    self.failpoints.reach("after_backup");
                }
            }
        }
        self.failpoints.reach("after_ddl");
        // An online rebuild needs no check: its shadow table was filled with
        // keys on, and holds the very ids of the table it replaces.
        if plan.foreign_keys_off && plan.path == PlanPath::Transaction {
            let broken: Vec<(String,)> = conn.fetch_all("SELECT \"table\" FROM pragma_foreign_key_check", &[]).await?;
            let broken = broken.into_iter().filter(|(table,)| !plan.dangling.contains(table)).count();
            if broken > 0 {
                return Err(StoreError::ForeignKeys(broken));
            }
        }
        let (prev_row_hash, last_version) = chain_head(&mut conn, &record.file).await?;
        // When it was applied, by the database's clock: what recovery to a
        // moment compares, whichever instance applied it.
        let (applied_at,): (String,) = conn.fetch_one(self.backend().now_sql().0, &[]).await?;
        self.failpoints.reach("before_history");
        let row = VersionRow {
            id: 0,
            file: record.file,
            version: last_version + 1,
            hash: record.hash,
            yaml: record.yaml,
            severity: plan.severity(),
            hazards: plan.hazards(),
            sql: plan.sql(),
            rollback_sql: plan.rollback_sql(),
            backups: plan.backups(),
            status: VersionStatus::Applied,
            actor: record.actor,
            reason: record.reason,
            applied_at,
            duration_ms: started.elapsed().as_millis() as i64,
        };
        let id = insert_row(&mut conn, &row, &prev_row_hash).await?;
        conn.execute(
            "INSERT INTO marain_history_head AS h (singleton, row_id, row_hash, rows) VALUES (1, $1, $2, 1) \
             ON CONFLICT (singleton) DO UPDATE SET row_id = excluded.row_id, row_hash = excluded.row_hash, \
             rows = h.rows + 1",
            &[id.into(), row_hash(&prev_row_hash, &row).into()],
        )
        .await?;
        // A version of the file is live now: earlier refusals of it are moot.
        conn.execute("DELETE FROM marain_rejections WHERE file = $1", &[(&row.file).into()]).await?;
        let notice = ChangeNotice { instance: self.instance.clone(), id, file: row.file.clone(), version: row.version };
        announce(&mut conn, &notice).await?;
        self.failpoints.reach("before_commit");
        let commit = tx.commit().await;
        if commit.is_ok() && !self.failpoints.lost("commit_answer") {
            return Ok(VersionRow { id, ..row });
        }
        // No answer to the COMMIT (the connection was lost): the change is in
        // the database whole or not at all, and the history, read on another
        // connection, says which.
        let (file, version) = (row.file.clone(), row.version);
        match self.committed(&file, version, &row.hash).await {
            Ok(Some(id)) => {
                tracing::warn!(%file, version, "the answer to the commit was lost; the history shows the change applied");
                Ok(VersionRow { id, ..row })
            }
            Ok(None) => {
                tracing::warn!(%file, error = ?commit.err(), "the commit went unanswered; the history shows nothing applied");
                Err(StoreError::NotCommitted { file })
            }
            Err(e) => {
                tracing::error!(%file, error = %e, "the commit went unanswered and the history cannot be read");
                Err(e)
            }
        }
    }
}

/// How long the `attempt`-th retry after a lock timeout waits: doubling from
/// 100 ms, at most 2 s, with up to a quarter of jitter so that instances that
/// met the same lock do not come back in step.
pub fn lock_backoff(attempt: u32) -> Duration {
    let base = 100u64.saturating_mul(1 << attempt.min(5)).min(2000);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let jitter = u64::from(nanos) % (base / 4 + 1);
    Duration::from_millis(base + jitter)
}

/// Counts what each of `plan`'s probes asks, but those in `skip`.
async fn run_probes(conn: &mut Conn<'_>, plan: &Plan, skip: &[Probe]) -> Result<BTreeMap<String, i64>, StoreError> {
    let mut counts = BTreeMap::new();
    for probe in plan.probes().into_iter().filter(|p| !skip.contains(p)) {
        let (n,): (i64,) = conn
            .fetch_one(&probe.sql, &[])
            .await
            .map_err(|source| StoreError::Statement { statement: probe.sql.clone(), source })?;
        counts.insert(probe.sql, n);
    }
    Ok(counts)
}
