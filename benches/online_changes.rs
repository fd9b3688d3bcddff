//! Schema changes to a big table while content traffic runs
//! (docs/online-changes.md): per backend and change, how long the apply took,
//! how long its cut-over transaction held the table, and the longest and 99th
//! percentile wait of a read and of a write of the changed entity and of a
//! read of another entity, with that reader's idle p99 beside it; the rate of
//! an online change's batches as it reports it (phases of 100,000 rows or
//! more), and the process's peak resident memory. A last row, "the copy by
//! hand", is what plain statements get for the writes a type change makes,
//! beside the same traffic and without the engine: the rows keyset-batched
//! into a table of `item`'s shape with its unique key and index in place
//! (the score converted) and the originals into a backup table. On SQLite,
//! whose index builds hold the one write lock, the online batches write the
//! same way, so this is their ceiling; on PostgreSQL the shadow table builds
//! its indexes after the copy, and the row shows what that saves.
//!
//! The engine runs in this process on a real site directory; the traffic goes
//! through the content API's service (three readers and a writer of `item`, a
//! reader of `user`) on the same runtime. The rows are made by the database
//! itself, outside the timing. Printed, never asserted: the machines are shared.
//!
//! `make bench-online`, or `cargo bench --bench online_changes`; ROWS=1000000
//! and BACKENDS=sqlite,postgres by default.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use marain::engine::{Approval, Coordinator, EngineConfig};
use marain::hash::sha256_hex;
use serde_json::{json, Map, Value as Json};

#[path = "../tests/support/pg_server.rs"]
mod pg_server;

const USER: &str = "id: user\nname: User\nfields:\n  - id: username\n    type: text\n";

/// `item` as each change leaves it, in order: (what changes, the file).
fn changes() -> Vec<(&'static str, String)> {
    let field = |id: &str, ty: &str, extra: &str| format!("  - id: {id}\n    type: {ty}\n{extra}");
    let item = |fields: &[String]| format!("id: item\nname: Item\nfields:\n{}", fields.concat());
    let code = field("code", "text", "");
    let unique = field("code", "text", "    unique: true\n");
    let score = field("score", "integer", "");
    let indexed = field("score", "integer", "    indexed: true\n");
    let widened = field("score", "float", "    indexed: true\n");
    let status = field("status", "text", "");
    let required = field("status", "text", "    required: true\n");
    let values = field("status", "text", "    required: true\n    values: [draft, live, archived]\n");
    let note = field("note", "text", "");
    vec![
        ("base", item(&[code.clone(), score.clone(), status.clone(), note.clone()])),
        ("indexed: true", item(&[code.clone(), indexed.clone(), status.clone(), note.clone()])),
        ("unique: true", item(&[unique.clone(), indexed.clone(), status.clone(), note.clone()])),
        ("required: true", item(&[unique.clone(), indexed.clone(), required.clone(), note.clone()])),
        ("values added", item(&[unique.clone(), indexed.clone(), values.clone(), note.clone()])),
        ("integer → float", item(&[unique.clone(), widened.clone(), values.clone(), note.clone()])),
        ("field dropped (backed up)", item(&[unique, widened, values])),
        // Empty: the change before is rolled back (the field refilled).
        ("drop rolled back", String::new()),
    ]
}

/// Latencies of one kind of request.
#[derive(Default)]
struct Waits {
    samples: Vec<Duration>,
    failures: usize,
    /// The first failure, to say what it was.
    first: Option<String>,
}

impl Waits {
    fn percentile(&mut self, p: f64) -> Duration {
        self.samples.sort();
        let at = ((self.samples.len() as f64 - 1.0) * p).round() as usize;
        self.samples.get(at).copied().unwrap_or_default()
    }

    fn show(&mut self) -> String {
        format!("{:>6.1} / {:>6.1}", ms(self.percentile(0.99)), ms(self.percentile(1.0)))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Peak resident memory of this process so far, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next());
    kib.and_then(|k| k.parse::<f64>().ok()).unwrap_or(0.0) / 1024.0
}

/// How many records the writer made, over every change: each gets a new id.
static WRITTEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Readers and a writer until `stop`; each returns what it saw, by role.
fn traffic(
    coordinator: &Coordinator,
    rows: u64,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<(&'static str, Waits)>> {
    let roles = ["item read", "item read", "item read", "item write", "user read"];
    roles
        .into_iter()
        .enumerate()
        .map(|(n, role)| {
            let content = coordinator.content().clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut waits = Waits::default();
                let mut i: u64 = n as u64 * 7919;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let started = Instant::now();
                    let outcome = match role {
                        "item read" => content.get("item", &format!("i{}", (i * 104_729) % rows + 1)).await,
                        "user read" => content.get("user", &format!("u{}", i % 1000 + 1)).await,
                        _ => {
                            let id = format!("w{}", WRITTEN.fetch_add(1, Ordering::Relaxed));
                            let input = json!({"id": id, "code": id, "status": "live"});
                            let input: Map<String, Json> = input.as_object().cloned().unwrap();
                            content.create("item", &input).await
                        }
                    };
                    waits.samples.push(started.elapsed());
                    if let Err(e) = outcome {
                        waits.failures += 1;
                        waits.first.get_or_insert_with(|| format!("{role}: {e}"));
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                (role, waits)
            })
        })
        .collect()
}

/// Waits for the change of `path` to `text` to be planned; returns its id.
async fn pending(coordinator: &Coordinator, path: &str, text: &str) -> u64 {
    let hash = sha256_hex(text.as_bytes());
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let snapshot = coordinator.snapshot();
        if let Some(change) = snapshot.pending.iter().find(|c| c.file == path && c.to_hash == hash) {
            return change.id;
        }
        assert!(Instant::now() < deadline, "{path} was never planned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn seed(coordinator: &Coordinator, rows: u64, postgres: bool) {
    let pool = coordinator.store().pool();
    let numbers = |n: u64| match postgres {
        true => format!("SELECT i FROM generate_series(1, {n}) AS i"),
        false => {
            format!("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) SELECT i FROM n")
        }
    };
    let users =
        format!("INSERT INTO content_user (id, username) SELECT 'u' || i, 'user ' || i FROM ({}) AS s", numbers(1000));
    let items = format!(
        "INSERT INTO content_item (id, code, score, status, note) SELECT 'i' || i, 'c' || i, i, \
         CASE WHEN i % 3 = 0 THEN 'draft' ELSE 'live' END, 'note ' || (i % 97) FROM ({}) AS s",
        numbers(rows)
    );
    for sql in [users, items] {
        pool.execute(&sql, &[]).await.unwrap();
    }
    if postgres {
        pool.execute("ANALYZE", &[]).await.unwrap();
    }
}

async fn run(backend: &str, rows: u64, url: String, dir: &Path) {
    let site = dir.join("site");
    std::fs::create_dir_all(site.join("schemas")).unwrap();
    std::fs::create_dir_all(site.join("config")).unwrap();
    // Every change waits for the bench to approve it while traffic runs.
    let hot_reload = "config/config.hot_reload.yaml";
    std::fs::write(site.join(hot_reload), "id: hot_reload\nvalues:\n  auto_apply: none\n").unwrap();
    let (stop_engine, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = EngineConfig::new(&site, url);
    let (coordinator, task) = Coordinator::start(config, async move {
        let _ = stopped.await;
    })
    .await
    .expect("the engine starts");
    while coordinator.history(Some(hot_reload), 1).await.unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = changes();
    let approve = |entity: &str| Approval { actor: "bench".into(), reason: None, confirm: Some(entity.into()) };
    for (entity, text) in [("user", USER), ("item", all[0].1.as_str())] {
        let path = format!("schemas/{entity}.schema.yaml");
        std::fs::write(site.join(&path), text).unwrap();
        let id = pending(&coordinator, &path, text).await;
        coordinator.approve(id, approve(entity)).await.unwrap();
    }
    let seeding = Instant::now();
    seed(&coordinator, rows, backend == "postgres").await;
    eprintln!("{backend}: {rows} rows made in {:.1} s", seeding.elapsed().as_secs_f64());

    // Idle: the other entity's reads with nothing changing.
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = traffic(&coordinator, rows, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut idle = Waits::default();
    for t in tasks {
        let (role, w) = t.await.unwrap();
        if role == "user read" {
            idle = w;
        }
    }
    let idle_p99 = ms(idle.percentile(0.99));

    println!(
        "| backend | change | path | apply s | cut-over ms | rows/s | item read p99 / max ms | item write p99 / max ms | \
         user read p99 / max ms (idle p99 {idle_p99:.1}) | failed requests | peak RSS MiB | batch rows/s | \
         cleared after s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (what, text) in all.iter().skip(1) {
        let file = "schemas/item.schema.yaml";
        let id = match text.is_empty() {
            false => {
                std::fs::write(site.join(file), text).unwrap();
                pending(&coordinator, file, text).await
            }
            true => {
                let head = coordinator.history(Some(file), 1).await.unwrap()[0].version;
                coordinator.rollback(file, head - 1, None).await.unwrap().id
            }
        };
        let path =
            coordinator.snapshot().pending.iter().find(|c| c.id == id).map(|c| c.plan.path.as_str()).unwrap_or("?");
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = traffic(&coordinator, rows, stop.clone());
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The batches' own rate, as the running change reports it.
        let watching = Arc::new(AtomicBool::new(true));
        let sampler = tokio::spawn({
            let (coordinator, watching) = (coordinator.clone(), watching.clone());
            async move {
                let mut best: f64 = 0.0;
                while watching.load(Ordering::Relaxed) {
                    for run in coordinator.online_runs().values().filter(|r| r.rows_done >= 100_000) {
                        best = best.max(run.rows_per_second);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                best
            }
        });
        let started = Instant::now();
        let applied = coordinator.approve(id, approve("item")).await;
        let apply = started.elapsed();
        watching.store(false, Ordering::Relaxed);
        let batch_rate = sampler.await.unwrap();
        let batch_rate = if batch_rate > 0.0 { format!("{batch_rate:.0}") } else { "–".into() };
        // What the old shape left is cleared after the approval returns
        // (SQLite: the retired table emptied in batches): traffic is measured
        // until it is gone.
        let clearing = Instant::now();
        while retired_tables(&coordinator).await > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let cleared = clearing.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        let (mut read, mut write, mut other) = (Waits::default(), Waits::default(), Waits::default());
        for t in tasks {
            let (role, w) = t.await.unwrap();
            let into = match role {
                "item read" => &mut read,
                "item write" => &mut write,
                _ => &mut other,
            };
            into.samples.extend(w.samples);
            into.failures += w.failures;
            if let Some(first) = w.first {
                eprintln!("{backend} {what}: {} failed, the first: {first}", w.failures);
            }
        }
        let cut_over = match &applied {
            Ok(row) => format!("{}", row.duration_ms),
            Err(e) => format!("failed: {e}"),
        };
        println!(
            "| {backend} | {what} | {path} | {:.2} | {cut_over} | {:.0} | {} | {} | {} | {} | {:.0} | {batch_rate} | \
             {:.2} |",
            apply.as_secs_f64(),
            rows as f64 / apply.as_secs_f64(),
            read.show(),
            write.show(),
            other.show(),
            read.failures + write.failures + other.failures,
            peak_rss_mib(),
            cleared.as_secs_f64(),
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = traffic(&coordinator, rows, stop.clone());
    let (copied, took) = copy_by_hand(&coordinator).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "| {backend} | the copy by hand (no engine) | – | {:.2} | – | {:.0} | | | | | | {:.0} | |",
        took.as_secs_f64(),
        copied as f64 / took.as_secs_f64(),
        copied as f64 / took.as_secs_f64(),
    );
    let _ = stop_engine.send(());
    task.await.unwrap();
    coordinator.store().close().await;
}

/// Copies `content_item` into a table of its shape with `score` converted to
/// a float, and `score`'s originals into a backup table, in keyset batches of
/// 10,000 rows, each its own transaction: the statements a SQLite type
/// change's batches run, without the engine around them (triggers, progress
/// rows, turns); returns the rows copied and the time taken.
async fn copy_by_hand(coordinator: &Coordinator) -> (i64, Duration) {
    use marain::engine::arg::Arg;
    let pool = coordinator.store().pool();
    let (float, begin) = match pool.dialect() {
        marain::plan::Dialect::Sqlite => ("REAL", "BEGIN IMMEDIATE"),
        marain::plan::Dialect::Postgres => ("DOUBLE PRECISION", "BEGIN"),
    };
    pool.execute("DROP TABLE IF EXISTS bench_copy", &[]).await.unwrap();
    let create = format!(
        "CREATE TABLE bench_copy (id TEXT PRIMARY KEY, code TEXT UNIQUE, score {float}, status TEXT NOT NULL \
         CHECK (status IN ('draft', 'live', 'archived')), note TEXT, created_at TIMESTAMP, updated_at TIMESTAMP)"
    );
    pool.execute(&create, &[]).await.unwrap();
    pool.execute("DROP TABLE IF EXISTS bench_backup", &[]).await.unwrap();
    pool.execute("CREATE TABLE bench_backup (id TEXT PRIMARY KEY, score BIGINT)", &[]).await.unwrap();
    pool.execute("CREATE INDEX bench_copy_score ON bench_copy (score)", &[]).await.unwrap();
    let next = "SELECT COUNT(*), COALESCE(MAX(id), '') FROM (SELECT id FROM content_item WHERE id > $1 ORDER BY id \
                LIMIT 10000) AS b";
    let copy = [
        "INSERT INTO bench_backup (id, score) SELECT id, score FROM content_item WHERE id > $1 AND id <= $2 \
         ON CONFLICT (id) DO NOTHING"
            .to_string(),
        format!(
            "INSERT INTO bench_copy (id, code, score, status, note, created_at, updated_at) SELECT id, code, \
             CAST(score AS {float}), status, note, created_at, updated_at FROM content_item WHERE id > $1 AND \
             id <= $2 ON CONFLICT (id) DO NOTHING"
        ),
    ];
    let mut conn = pool.acquire().await.unwrap();
    let (mut after, mut copied) = (String::new(), 0);
    let started = Instant::now();
    loop {
        conn.conn().execute(begin, &[]).await.unwrap();
        let (n, last): (i64, String) = conn.conn().fetch_one(next, &[Arg::Text(after.clone())]).await.unwrap();
        for statement in copy.iter().filter(|_| n > 0) {
            conn.conn().execute(statement, &[Arg::Text(after.clone()), Arg::Text(last.clone())]).await.unwrap();
        }
        conn.conn().execute("COMMIT", &[]).await.unwrap();
        if n == 0 {
            break;
        }
        (after, copied) = (last, copied + n);
    }
    let took = started.elapsed();
    drop(conn);
    for table in ["bench_copy", "bench_backup"] {
        pool.execute(&format!("DROP TABLE {table}"), &[]).await.unwrap();
    }
    (copied, took)
}

/// Tables an online change retired and has not dropped yet (SQLite's
/// `marain_retired_<entity>`; PostgreSQL retires none).
async fn retired_tables(coordinator: &Coordinator) -> i64 {
    let pool = coordinator.store().pool();
    let query = match pool.dialect() {
        marain::plan::Dialect::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'marain\\_retired\\_%' ESCAPE '\\'"
        }
        marain::plan::Dialect::Postgres => "SELECT 0::BIGINT",
    };
    let (n,): (i64,) = pool.fetch_one(query, &[]).await.unwrap();
    n
}

fn main() {
    let rows: u64 = std::env::var("ROWS").ok().and_then(|r| r.parse().ok()).unwrap_or(1_000_000);
    let backends = std::env::var("BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    for backend in backends.split(',') {
        let dir = tempfile::tempdir().unwrap();
        runtime.block_on(async {
            let server = (backend == "postgres").then(pg_server::PgServer::start);
            let url = match &server {
                Some(server) => {
                    server.database("bench").await;
                    server.url("bench")
                }
                None => format!("sqlite://{}", dir.path().join("marain.db").display()),
            };
            run(backend, rows, url, dir.path()).await;
        });
    }
}
