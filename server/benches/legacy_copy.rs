//! `marain legacy run` and `verify` on a generated legacy `content` table of
//! one 10-field type (every scalar field type), on SQLite and on a throw-away
//! PostgreSQL: rows copied per second, the same for `verify`, and a second
//! `run` over rows already copied (what resuming costs). The rows are made by
//! the database itself (a recursive CTE, `generate_series`), outside the timing.
//!
//! `make bench-legacy` or `cargo bench -p marain-server --bench legacy_copy`;
//! ROWS=1000000, BATCH=1000 (rows per transaction) and BACKENDS=sqlite,postgres
//! by default.

use std::time::Instant;

use marain::engine::legacy::{self, LegacySource, RunOptions};
use marain::engine::Store;
use marain::sql::Dialect;

#[path = "../../tests/support/pg_server.rs"]
mod pg_server;

/// The allocator the `marain` binary uses, so the figures are the command's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ITEM: &str = "id: item\nname: Item\nfields:
  - id: title
    type: text
    required: true
  - id: summary
    type: long_text
  - id: slug
    type: slug
  - id: quantity
    type: integer
  - id: price
    type: float
  - id: active
    type: boolean
  - id: published
    type: datetime
  - id: status
    type: text
    values: [draft, live]
  - id: rank
    type: integer
  - id: note
    type: text
";

/// The legacy table with `rows` rows of type `item`, made by the database.
async fn generate(store: &Store, rows: u64) {
    let sql = match store.dialect() {
        Dialect::Sqlite => vec![
            "CREATE TABLE content (id TEXT PRIMARY KEY, entity_type TEXT, data JSON, created_at TIMESTAMP, updated_at TIMESTAMP)".to_string(),
            format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) \
                 INSERT INTO content SELECT printf('i%08d', i), 'item', json_object(\
                 'title', 'Item ' || i, 'summary', 'A longer text about item ' || i, 'slug', 'item-' || i, \
                 'quantity', i % 1000, 'price', i * 0.25, 'active', json(CASE WHEN i % 2 = 0 THEN 'true' ELSE 'false' END), \
                 'published', '2025-03-01T10:00:00Z', 'status', CASE WHEN i % 3 = 0 THEN 'draft' ELSE 'live' END, \
                 'rank', i, 'note', 'n' || (i % 97)), '2025-01-02 03:04:05', '2025-01-02 03:04:05' FROM n"
            ),
        ],
        Dialect::Postgres => vec![
            "CREATE TABLE content (id TEXT PRIMARY KEY, entity_type TEXT, data JSONB, created_at TIMESTAMP, updated_at TIMESTAMP)".to_string(),
            format!(
                "INSERT INTO content SELECT 'i' || lpad(i::text, 8, '0'), 'item', jsonb_build_object(\
                 'title', 'Item ' || i, 'summary', 'A longer text about item ' || i, 'slug', 'item-' || i, \
                 'quantity', i % 1000, 'price', i * 0.25, 'active', i % 2 = 0, \
                 'published', '2025-03-01T10:00:00Z', 'status', CASE WHEN i % 3 = 0 THEN 'draft' ELSE 'live' END, \
                 'rank', i, 'note', 'n' || (i % 97)), '2025-01-02 03:04:05', '2025-01-02 03:04:05' \
                 FROM generate_series(1, {rows}) AS i"
            ),
            "ANALYZE content".to_string(),
        ],
    };
    for statement in sql {
        store.pool().execute(&statement, &[]).await.unwrap();
    }
}

async fn bench(backend: &str, db: &str, rows: u64) {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("schemas")).unwrap();
    std::fs::write(site.join("schemas/item.schema.yaml"), ITEM).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = marain::engine::EngineConfig::new(&site, db);
    let (engine, task) = marain::engine::Coordinator::start(config, async move {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    stop.send(()).unwrap();
    task.await.unwrap();
    engine.store().close().await;

    let store = Store::open(db).await.unwrap();
    let started = Instant::now();
    generate(&store, rows).await;
    eprintln!("{backend}: {rows} legacy rows generated in {:.1} s", started.elapsed().as_secs_f64());
    let source = LegacySource::open(&store, None, "content").await.unwrap();
    let applied = store.history().applied_site().await.unwrap();
    let batch_size = std::env::var("BATCH").ok().and_then(|b| b.parse().ok()).unwrap_or(1000);
    let options = RunOptions { batch_size, ..RunOptions::default() };

    let started = Instant::now();
    let progress = legacy::run(&store, &source, &applied, &options, &mut |_| {}).await.unwrap();
    let run = started.elapsed().as_secs_f64();
    assert_eq!(progress["item"].copied, rows as i64, "{progress:?}");

    let started = Instant::now();
    legacy::run(&store, &source, &applied, &options, &mut |_| {}).await.unwrap();
    let again = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let report = legacy::verify(&store, &source, &applied).await.unwrap();
    let verify = started.elapsed().as_secs_f64();
    assert!(report.passed(), "{:?}", &report.differences[..report.differences.len().min(5)]);

    let per_second = |secs: f64| rows as f64 / secs;
    println!(
        "{backend:8} {rows} rows of 10 fields: run {run:.1} s = {:.0} rows/s; run again (all copied) {again:.1} s = {:.0} rows/s; verify {verify:.1} s = {:.0} rows/s",
        per_second(run),
        per_second(again),
        per_second(verify)
    );
    store.close().await;
}

#[tokio::main]
async fn main() {
    let rows: u64 = std::env::var("ROWS").ok().and_then(|r| r.parse().ok()).unwrap_or(1_000_000);
    let backends = std::env::var("BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    for backend in backends.split(',') {
        match backend {
            "sqlite" => {
                let dir = tempfile::tempdir().unwrap();
                let db = format!("sqlite://{}", dir.path().join("bench.db").display());
                bench("sqlite", &db, rows).await;
            }
            "postgres" => {
                let server = pg_server::PgServer::start();
                let db = server.fresh_database().await;
                bench("postgres", &db, rows).await;
            }
            other => panic!("unknown backend {other}; use sqlite and/or postgres"),
        }
    }
}
