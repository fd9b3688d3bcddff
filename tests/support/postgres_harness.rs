//! The same schema/data read-back as the SQLite harness, on the throw-away
//! PostgreSQL server of [`super::pg_server`], for the case table.

use std::collections::BTreeMap;

use marain::site::Site;
use sqlx::{Connection, PgConnection, Row};

#[allow(unused_imports)]
pub use super::pg_server::PgServer;
use super::sqlite_harness::{rows_by_key, seed_statements, Data, Seed};
use marain::plan::Dialect;

/// Runs statements in one transaction the way the store does; on failure the
/// transaction is rolled back and the error text returned.
pub async fn run(conn: &mut PgConnection, sql: &[String]) -> Result<(), String> {
    let mut tx = conn.begin().await.map_err(|e| e.to_string())?;
    for statement in sql {
        sqlx::query(statement).execute(&mut *tx).await.map_err(|e| format!("{statement}: {e}"))?;
    }
    tx.commit().await.map_err(|e| e.to_string())
}

async fn content_tables(conn: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname LIKE 'content\\_%' ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap()
}

/// Tables, columns (type, nullability, default), constraints by name with their
/// definition and validity, and indexes, order-independent.
pub async fn schema(conn: &mut PgConnection) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for table in content_tables(conn).await {
        let mut facts = Vec::new();
        for c in sqlx::query(
            "SELECT column_name::text, data_type::text, is_nullable::text, column_default::text \
             FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1",
        )
        .bind(&table)
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        {
            facts.push(format!(
                "column {} {} nullable={} default={:?}",
                c.get::<String, _>(0),
                c.get::<String, _>(1),
                c.get::<String, _>(2),
                c.get::<Option<String>, _>(3)
            ));
        }
        for c in sqlx::query(
            "SELECT conname::text, pg_get_constraintdef(oid), convalidated FROM pg_constraint \
             WHERE conrelid = (SELECT oid FROM pg_class WHERE relname = $1 AND relnamespace = 'public'::regnamespace)",
        )
        .bind(&table)
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        {
            facts.push(format!(
                "constraint {} {} validated={}",
                c.get::<String, _>(0),
                c.get::<String, _>(1),
                c.get::<bool, _>(2)
            ));
        }
        for i in sqlx::query(
            "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1",
        )
        .bind(&table)
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        {
            facts.push(format!("index {} {}", i.get::<String, _>(0), i.get::<String, _>(1)));
        }
        facts.sort();
        out.insert(table, facts);
    }
    out
}

/// Every content row, each value as PostgreSQL's text form, quoted (`NULL` for null).
pub async fn data(conn: &mut PgConnection) -> Data {
    let mut out = BTreeMap::new();
    for table in content_tables(conn).await {
        let cols: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(&table)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        let key = if cols.contains(&"id".to_string()) {
            "\"id\"".to_string()
        } else {
            "\"parent_id\" || '#' || \"delta\"".to_string()
        };
        let select: Vec<String> =
            cols.iter().map(|c| format!("COALESCE(quote_literal(\"{c}\"::text), 'NULL')")).collect();
        let rows = sqlx::query(&format!("SELECT {key}, {} FROM \"{table}\"", select.join(", ")))
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        out.insert(table, rows_by_key(&rows, &cols));
    }
    out
}

/// The same rows as the SQLite harness seeds, in PostgreSQL's literals. Foreign
/// keys are not enforced while seeding (rows may reference rows seeded later).
pub async fn seed(conn: &mut PgConnection, site: &Site, seed: &Seed) {
    sqlx::query("SET session_replication_role = replica").execute(&mut *conn).await.unwrap();
    for sql in seed_statements(site, seed, Dialect::Postgres) {
        sqlx::query(&sql).execute(&mut *conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    sqlx::query("SET session_replication_role = DEFAULT").execute(&mut *conn).await.unwrap();
}
