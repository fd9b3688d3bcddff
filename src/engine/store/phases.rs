//! The online path's phases (docs/online-changes.md): work on a live table
//! that runs before a change's cut-over transaction, each statement on its
//! own, under a lease on the entity that one instance holds at a time.

use std::time::Duration;

use super::history::head_hash;
use super::{Store, StoreError};
use crate::engine::arg::Arg;
use crate::engine::database::Pooled;
use crate::hash::sha256_hex;
use crate::plan::{Phase, Plan};

/// One table's lease on its online phases: a session of its own holding the
/// backend's lock. Given back by [`Lease::release`]; dropped without that (a
/// panic, a cancelled task), its connection is closed, which ends the lease.
pub struct Lease {
    conn: Option<Pooled>,
    give_back: Vec<(String, Vec<Arg>)>,
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

/// The lock key of `table`'s lease: the first eight bytes of its hash.
fn lease_key(table: &str) -> i64 {
    let hex = sha256_hex(format!("marain online {table}").as_bytes());
    u64::from_str_radix(&hex[..16], 16).map(|k| k as i64).unwrap_or_default()
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
        let mut conn = self.pool.acquire().await?;
        for (sql, args) in &take {
            if let Err(e) = conn.conn().execute(sql, args).await {
                conn.detach();
                return Err(e.into());
            }
        }
        Ok(Lease { conn: Some(conn), give_back })
    }

    /// Runs `plan`'s phases on the lease's session, each statement on its
    /// own, after what an unfinished earlier run left is reset. Refused at
    /// once if `file`'s applied head is no longer the plan's base. When a
    /// phase fails, every phase is reset (the old schema stays as it was).
    /// `starting(n, phase)` is told as the `n`-th phase (from 1) starts.
    pub async fn run_phases(
        &self,
        lease: &mut Lease,
        plan: &Plan,
        file: &str,
        mut starting: impl FnMut(usize, &Phase),
    ) -> Result<(), StoreError> {
        // The phases and their cut-over count as one apply for the failpoints.
        self.failpoints.begin_apply();
        let conn = lease.conn.as_mut().expect("a lease holds its connection until released");
        if head_hash(&mut conn.conn(), file).await? != plan.binding.base_hash {
            return Err(StoreError::HeadMoved { file: file.to_string() });
        }
        let phases = plan.phases();
        let table = plan.online_tables().into_iter().next().unwrap_or_default();
        for (n, phase) in phases.iter().enumerate() {
            starting(n + 1, phase);
            let started = std::time::Instant::now();
            let _running = crate::engine::telemetry::phase_started(&table);
            let ran = async {
                for statement in phase.reset.iter().chain(&phase.sql) {
                    conn.conn()
                        .execute(statement, &[])
                        .await
                        .map_err(|source| StoreError::Statement { statement: statement.clone(), source })?;
                }
                for statement in &phase.batches {
                    // Each batch is a transaction of its own: writes interleave.
                    loop {
                        let taken: Result<(i64,), _> = conn.conn().fetch_one(statement, &[]).await;
                        match taken.map_err(|source| StoreError::Statement { statement: statement.clone(), source })? {
                            (0,) => break,
                            _ => self.failpoints.reach("after_batch"),
                        }
                    }
                }
                Ok::<(), StoreError>(())
            }
            .await;
            if let Err(e) = ran {
                for statement in phases.iter().flat_map(|p| &p.reset) {
                    if let Err(reset) = conn.conn().execute(statement, &[]).await {
                        tracing::warn!(%file, %statement, error = %reset, "could not clear what a failed phase left");
                    }
                }
                return Err(e);
            }
            tracing::info!(%file, phase = %phase.summary, ms = started.elapsed().as_millis() as u64, "online phase done");
            self.failpoints.reach("after_phase");
        }
        self.failpoints.reach("before_cut_over");
        Ok(())
    }

    /// Clears what online phases cut short by a crash left on content tables
    /// (docs/online-changes.md); returns the statements it ran. At start-up:
    /// a table whose lease another instance holds is running its phases now,
    /// and is left alone.
    pub async fn clear_unfinished_phases(&self) -> Result<Vec<String>, StoreError> {
        let Some(query) = self.backend().unfinished_phases_query() else { return Ok(Vec::new()) };
        let found: Vec<(String, String)> = self.pool.fetch_all(query, &[]).await?;
        let mut ran = Vec::new();
        let mut tables: Vec<&str> = found.iter().map(|(t, _)| t.as_str()).collect();
        tables.dedup();
        for table in tables {
            let lease = match self.lease(table, Duration::from_millis(LEFT_ALONE_AFTER_MS)).await {
                Ok(lease) => lease,
                Err(e) if e.is_lock_timeout() => continue,
                Err(e) => return Err(e),
            };
            for (_, statement) in found.iter().filter(|(t, _)| t == table) {
                tracing::warn!(%statement, "clearing what an online change cut short left");
                let cleared = self.pool.execute(statement, &[]).await;
                cleared.map_err(|source| StoreError::Statement { statement: statement.clone(), source })?;
                ran.push(statement.clone());
            }
            lease.release().await;
        }
        Ok(ran)
    }
}
