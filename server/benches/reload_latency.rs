//! File saved → change applied → SSE event received, for SAFE edits, on the demo
//! site and on a generated 1,000 + 1,000-file site; in the same run, the time a
//! server restart takes to pick up the same kind of edit. A client reads the
//! content API throughout and counts failed requests in each phase. Each site
//! runs on SQLite and on a throw-away PostgreSQL (`BACKENDS=sqlite,postgres`).
//!
//! On PostgreSQL, a second instance B runs on the same database and site with a
//! debounce of a minute, so it learns of each change only from A's notification:
//! the time from A's `applied` event to B's is commit on A → event on B.
//!
//! `cargo bench -p marain-server --bench reload_latency` (EDITS=200, RESTARTS=5 by
//! default) prints p50/p90/p99 and the ratio.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use marain_server::cli::ServeArgs;
use tokio::sync::oneshot;

#[path = "../../tests/support/pg_server.rs"]
mod pg_server;

struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

async fn start(site: &Path, db: &str, addr: SocketAddr, debounce_ms: u64, log: PathBuf) -> Running {
    let listener = loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => break l,
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    };
    let args = ServeArgs {
        site: site.to_path_buf(),
        database: db.to_string(),
        addr,
        assets: site.join("no-assets"),
        event_buffer: 1024,
        debounce_ms,
        env: "dev".into(),
        secure_log: Some(log),
        admin_password: Some("bench password, long enough".into()),
        secure_cookies: false,
        sync_poll_ms: 5000,
        lock_timeout_ms: 2000,
        site_layout: marain_server::cli::SiteLayoutArg::Shared,
        instance_name: None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(marain_server::serve::serve(listener, args, async move {
        let _ = stopped.await;
    }));
    Running { stop, task }
}

async fn stop(server: Running) {
    let _ = server.stop.send(());
    server.task.await.unwrap().unwrap();
}

fn schema(id: &str) -> String {
    format!("id: {id}\nname: Entity {id}\nfields:\n  - id: title\n    type: text\n    required: true\n  - id: body\n    type: long_text\n  - id: views\n    type: integer\n")
}

fn demo_site(root: &Path) -> String {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/site");
    for sub in ["schemas", "config"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
        for e in std::fs::read_dir(repo.join(sub)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), root.join(sub).join(e.file_name())).unwrap();
        }
    }
    "article".into()
}

fn big_site(root: &Path) -> String {
    std::fs::create_dir_all(root.join("schemas")).unwrap();
    std::fs::create_dir_all(root.join("config")).unwrap();
    for i in 0..1000 {
        std::fs::write(root.join(format!("schemas/e{i}.schema.yaml")), schema(&format!("e{i}"))).unwrap();
        std::fs::write(
            root.join(format!("config/config.c{i}.yaml")),
            format!(
                "id: c{i}\nprovider: bench\nvalues:\n  enabled: true\n  limit: {i}\n  nested: {{a: 1, b: [x, y]}}\n"
            ),
        )
        .unwrap();
    }
    "e0".into()
}

/// The edited file gains one optional field per edit: a SAFE `ADD COLUMN`.
fn edit(root: &Path, entity: &str, n: usize) {
    let path = root.join(format!("schemas/{entity}.schema.yaml"));
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("  - id: bench_{n}\n    type: text\n"));
    std::fs::write(path, text).unwrap();
}

/// A client sending `token` with every request.
fn authed(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    reqwest::Client::builder().default_headers(headers).build().unwrap()
}

/// Reads the content API in a loop until `running` clears; counts failures.
fn reader(
    client: reqwest::Client,
    base: String,
    entity: String,
    running: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while running.load(Ordering::Relaxed) {
            match client
                .get(format!("{base}/api/v1/entity/{entity}?limit=5"))
                .timeout(Duration::from_secs(5))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::Relaxed),
                _ => failed.fetch_add(1, Ordering::Relaxed),
            };
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, samples: &mut [Duration]) -> Duration {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  {name:<40} n={:<4} p50 {:>8.2} ms  p90 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms",
        samples.len(),
        ms(percentile(samples, 0.5)),
        ms(percentile(samples, 0.9)),
        ms(percentile(samples, 0.99)),
        ms(*samples.last().unwrap())
    );
    percentile(samples, 0.5)
}

async fn wait_applied(stream: &mut reqwest::Response, buffer: &mut String, file: &str) {
    loop {
        if let Some(at) = buffer.find("\n\n") {
            let event: String = buffer.drain(..at + 2).collect();
            if event.contains("\"kind\":\"applied\"") && event.contains(&format!("\"file\":\"{file}\"")) {
                return;
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(30), stream.chunk()).await.expect("event within 30 s");
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap().expect("stream open")));
    }
}

async fn wait_in_sync(client: &reqwest::Client, base: &str) {
    loop {
        if let Ok(r) = client.get(format!("{base}/api/v1/hot-reload/status")).send().await {
            let v: serde_json::Value = r.json().await.unwrap();
            if v["in_sync"] == true {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Where a run's database lives.
#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
}

async fn database(backend: Backend, dir: &Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.join("marain.db").display()),
        Backend::Postgres => pg_server::PgServer::shared().fresh_database().await,
    }
}

async fn run(name: &str, build: fn(&Path) -> String, edits: usize, restarts: usize, backend: Backend) {
    println!("{name}");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("site");
    let db = database(backend, dir.path()).await;
    let log = dir.path().join("secure.log");
    let entity = build(&root);
    let file = format!("schemas/{entity}.schema.yaml");
    let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let base = format!("http://{addr}");
    let token = {
        let store = marain::engine::Store::open(&db).await.unwrap();
        let token = store.create_token("bench", marain::engine::accounts::Role::Viewer).await.unwrap();
        store.close().await;
        token
    };
    let client = authed(&token);

    let t = Instant::now();
    let server = start(&root, &db, addr, 25, log.clone()).await;
    wait_in_sync(&client, &base).await;
    println!("  first start (creates every table)        {:>8.0} ms", t.elapsed().as_secs_f64() * 1000.0);
    stop(server).await;
    let t = Instant::now();
    let mut server = start(&root, &db, addr, 25, log.clone()).await;
    wait_in_sync(&client, &base).await;
    println!("  start with everything applied            {:>8.0} ms", t.elapsed().as_secs_f64() * 1000.0);

    // Hot reload: save, then wait for the applied event on the SSE stream.
    let (running, ok, failed) =
        (Arc::new(AtomicBool::new(true)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = reader(client.clone(), base.clone(), entity.clone(), running.clone(), ok.clone(), failed.clone());
    let mut stream = client.get(format!("{base}/api/v1/hot-reload/events")).send().await.unwrap();
    let mut buffer = String::new();
    let mut hot = Vec::with_capacity(edits);
    for n in 0..edits {
        let t = Instant::now();
        edit(&root, &entity, n);
        wait_applied(&mut stream, &mut buffer, &file).await;
        hot.push(t.elapsed());
    }
    drop(stream);
    running.store(false, Ordering::Relaxed);
    load.await.unwrap();
    let hot_p50 = report("hot reload (save → SSE applied)", &mut hot);
    println!(
        "  content reads during hot reloads         {} ok, {} failed",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );

    // Restart: stop, save, start, wait until the edit is applied and served.
    let (running, ok, failed) =
        (Arc::new(AtomicBool::new(true)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = reader(client.clone(), base.clone(), entity.clone(), running.clone(), ok.clone(), failed.clone());
    let mut restart = Vec::with_capacity(restarts);
    for n in 0..restarts {
        let t = Instant::now();
        stop(server).await;
        edit(&root, &entity, edits + n);
        server = start(&root, &db, addr, 25, log.clone()).await;
        wait_in_sync(&client, &base).await;
        restart.push(t.elapsed());
    }
    running.store(false, Ordering::Relaxed);
    load.await.unwrap();
    let restart_p50 = report("restart (stop → save → start → in sync)", &mut restart);
    println!(
        "  content reads during restarts            {} ok, {} failed",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    println!("  restart p50 / hot reload p50             {:.1}×", restart_p50.as_secs_f64() / hot_p50.as_secs_f64());

    if backend == Backend::Postgres {
        // B: the same database and site, a debounce of a minute, so only A's
        // notification can tell it about A's changes.
        let addr_b: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let base_b = format!("http://{addr_b}");
        let other = start(&root, &db, addr_b, 60_000, dir.path().join("secure-b.log")).await;
        wait_in_sync(&client, &base_b).await;
        let mut on_a = client.get(format!("{base}/api/v1/hot-reload/events")).send().await.unwrap();
        let mut on_b = client.get(format!("{base_b}/api/v1/hot-reload/events")).send().await.unwrap();
        let (mut buffer_a, mut buffer_b) = (String::new(), String::new());
        let mut sync = Vec::with_capacity(edits);
        for n in 0..edits {
            edit(&root, &entity, edits + restarts + n);
            let (a, b) = tokio::join!(
                async {
                    wait_applied(&mut on_a, &mut buffer_a, &file).await;
                    Instant::now()
                },
                async {
                    wait_applied(&mut on_b, &mut buffer_b, &file).await;
                    Instant::now()
                }
            );
            sync.push(b.saturating_duration_since(a));
        }
        report("commit on A → event on B (NOTIFY)", &mut sync);
        stop(other).await;
    }
    stop(server).await;
}

fn main() {
    let edits = std::env::var("EDITS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let restarts = std::env::var("RESTARTS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let backends = std::env::var("BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    rt.block_on(async {
        for (label, key, backend) in
            [("SQLite", "sqlite", Backend::Sqlite), ("PostgreSQL", "postgres", Backend::Postgres)]
        {
            if !backends.split(',').any(|b| b.trim() == key) {
                continue;
            }
            run(&format!("demo site (examples/site), {label}"), demo_site, edits, restarts, backend).await;
            let big = format!("generated site: 1,000 schemas + 1,000 configs, {label}");
            run(&big, big_site, edits, restarts, backend).await;
        }
    });
}
