//! One interface over the real databases the case table runs on.

#![allow(async_fn_in_trait)]

use std::collections::BTreeMap;

use marain::plan::{Dialect, Plan};
use marain::site::Site;
use sqlx::{PgConnection, SqliteConnection};

use super::sqlite_harness::{Data, Seed};
use super::{postgres_harness as pg, sqlite_harness as lite};

pub trait CaseDb {
    /// Runs statements in one transaction; the error text on failure. Keys of
    /// `dangling` tables may point at dropped tables (SQLite only).
    async fn run(&mut self, sql: &[String], foreign_keys_off: bool, dangling: &[String]) -> Result<(), String>;
    /// Runs statements each on its own, outside a transaction (an online
    /// plan's phases); the error text on failure.
    async fn run_each(&mut self, sql: &[String]) -> Result<(), String>;
    /// Runs the batch query `sql` once, with `rows` as its `$1` and `after`
    /// as its `$2`, then `writes` over its rows (`$2` to `$3`, its last key)
    /// in the same transaction: the rows it took and its last key.
    async fn batch(&mut self, sql: &str, writes: &[String], rows: i64, after: &str) -> Result<(i64, String), String>;
    /// Runs a phase's batch query `sql` again and again, each time after the
    /// last key the one before answered, until it takes no row.
    async fn repeat(&mut self, sql: &str, writes: &[String], rows: i64) -> Result<(), String> {
        let mut after = String::new();
        loop {
            match self.batch(sql, writes, rows, &after).await? {
                (0, _) => return Ok(()),
                (_, last) => after = last,
            }
        }
    }
    /// Runs `plan`'s cut-over as the store does: in one transaction, between
    /// the settings its backend puts around an apply.
    async fn cut_over(&mut self, plan: &Plan) -> Result<(), String> {
        let around = marain::engine::backend::of(plan.dialect).around_apply(plan);
        for (before, _) in &around {
            self.run_each(&[before.to_string()]).await?;
        }
        let ran = self.run(&plan.cut_over_sql(), plan.foreign_keys_off, &plan.dangling).await;
        for (_, after) in &around {
            self.run_each(&[after.to_string()]).await?;
        }
        ran
    }
    /// Whether the database file is whole, where the database can say
    /// (SQLite's `integrity_check`: an online cut-over writes its schema table).
    async fn whole(&mut self) -> Result<(), String> {
        Ok(())
    }
    async fn schema(&mut self) -> BTreeMap<String, Vec<String>>;
    async fn data(&mut self) -> Data;
    async fn seed(&mut self, site: &Site, seed: &Seed);
    /// A probe's single integer.
    async fn count(&mut self, sql: &str) -> Result<i64, String>;
}

impl CaseDb for SqliteConnection {
    async fn run(&mut self, sql: &[String], foreign_keys_off: bool, dangling: &[String]) -> Result<(), String> {
        lite::run_leaving(self, sql, foreign_keys_off, dangling).await
    }
    async fn run_each(&mut self, sql: &[String]) -> Result<(), String> {
        for statement in sql {
            sqlx::query(statement).execute(&mut *self).await.map_err(|e| format!("{statement}: {e}"))?;
        }
        Ok(())
    }
    async fn batch(&mut self, sql: &str, writes: &[String], rows: i64, after: &str) -> Result<(i64, String), String> {
        use sqlx::Connection;
        let mut tx = self.begin().await.map_err(|e| e.to_string())?;
        let batch = sqlx::query_as(sql).bind(rows).bind(after);
        let (taken, last): (i64, String) = batch.fetch_one(&mut *tx).await.map_err(|e| format!("{sql}: {e}"))?;
        if taken > 0 {
            for write in writes {
                let query = sqlx::query(write).bind(rows).bind(after).bind(&last);
                query.execute(&mut *tx).await.map_err(|e| format!("{write}: {e}"))?;
            }
        }
        tx.commit().await.map_err(|e| e.to_string())?;
        Ok((taken, last))
    }
    async fn whole(&mut self) -> Result<(), String> {
        let found: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&mut *self).await.unwrap();
        match found.as_slice() {
            [ok] if ok == "ok" => Ok(()),
            _ => Err(format!("the database is not whole: {found:?}")),
        }
    }
    async fn schema(&mut self) -> BTreeMap<String, Vec<String>> {
        lite::schema(self).await
    }
    async fn data(&mut self) -> Data {
        lite::data(self).await
    }
    async fn seed(&mut self, site: &Site, seed: &Seed) {
        lite::seed(self, site, seed).await
    }
    async fn count(&mut self, sql: &str) -> Result<i64, String> {
        sqlx::query_scalar(sql).fetch_one(self).await.map_err(|e| format!("probe {sql}: {e}"))
    }
}

impl CaseDb for PgConnection {
    async fn run(&mut self, sql: &[String], _: bool, _: &[String]) -> Result<(), String> {
        pg::run(self, sql).await
    }
    async fn run_each(&mut self, sql: &[String]) -> Result<(), String> {
        for statement in sql {
            sqlx::query(statement).execute(&mut *self).await.map_err(|e| format!("{statement}: {e}"))?;
        }
        Ok(())
    }
    /// A PostgreSQL batch writes in its own query (`writes` is empty).
    async fn batch(&mut self, sql: &str, writes: &[String], rows: i64, after: &str) -> Result<(i64, String), String> {
        assert!(writes.is_empty(), "a PostgreSQL batch writes in its query");
        let batch = sqlx::query_as(sql).bind(rows).bind(after);
        batch.fetch_one(&mut *self).await.map_err(|e| format!("{sql}: {e}"))
    }
    async fn schema(&mut self) -> BTreeMap<String, Vec<String>> {
        pg::schema(self).await
    }
    async fn data(&mut self) -> Data {
        pg::data(self).await
    }
    async fn seed(&mut self, site: &Site, seed: &Seed) {
        pg::seed(self, site, seed).await
    }
    async fn count(&mut self, sql: &str) -> Result<i64, String> {
        sqlx::query_scalar(sql).fetch_one(self).await.map_err(|e| format!("probe {sql}: {e}"))
    }
}

/// Creates `site` from nothing, as a fresh start would.
pub async fn build_in(db: &mut impl CaseDb, dialect: Dialect, site: &Site) {
    for change in lite::plan_in(dialect, &Site::default(), site) {
        db.run(&change.plan.sql(), change.plan.foreign_keys_off, &[]).await.unwrap();
    }
}
