//! File saved → change applied → SSE event received, for SAFE one-field edits,
//! on the demo site and on generated sites of 1,000 schemas and 1,000 configs
//! whose schemas reference nothing (`independent`), one common entity (`star`)
//! or the one before (`chain`, 1,000 long). Each save is timed twice: renamed
//! into place (how editors and deployment tools save) and written in place.
//! Clients read the content API throughout: their p99 latency while reloads
//! happen is compared with a quiet period, and failures are counted. Start-up is
//! timed on an empty database (every table created) and a warm one, with the
//! real binary's peak RSS when it is built (`MARAIN_BIN`, else
//! `target/release/marain`). A restart picking up the same edit is timed too.
//! Each site runs on SQLite and on a throw-away PostgreSQL
//! (`BACKENDS=sqlite,postgres`); `SITES=demo,independent,star,chain` chooses sites.
//!
//! On PostgreSQL, a second instance B runs on the same database and site with a
//! debounce of a minute, so it learns of each change only from A's notification:
//! the time from A's `applied` event to B's is commit on A → event on B.
//!
//! `make bench` (release) or `cargo bench -p marain-server --bench reload_latency`
//! (EDITS=200, RESTARTS=3, READERS=4 by default) prints p50/p90/p99.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use marain_server::cli::ServeArgs;
use tokio::sync::oneshot;

#[path = "../../tests/support/generated.rs"]
mod generated;
#[path = "../../tests/support/pg_server.rs"]
mod pg_server;

use generated::Topology;

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
        direct_database: None,
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
        secrets_dir: None,
        secret_env_prefix: marain::engine::secret_refs::DEFAULT_ENV_PREFIX.into(),
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

/// 1,000 schemas shaped by `topology` and 1,000 configs; the edited entity is
/// in the middle (on the chain: 500 entities below it, 499 above).
fn generated_site(topology: Topology, root: &Path) -> String {
    std::fs::create_dir_all(root.join("schemas")).unwrap();
    std::fs::create_dir_all(root.join("config")).unwrap();
    for (path, text) in generated::site_texts(topology, 1000, 1000) {
        std::fs::write(root.join(path), text).unwrap();
    }
    "e500".into()
}

/// How a save reaches the disk.
#[derive(Clone, Copy)]
enum Save {
    /// Written beside the file and renamed over it.
    Rename,
    /// Truncated and written where it is.
    InPlace,
}

/// The edited file gains one optional field per edit: a SAFE `ADD COLUMN`.
fn edit(root: &Path, entity: &str, n: usize, save: Save) {
    let path = root.join(format!("schemas/{entity}.schema.yaml"));
    let text = generated::with_field(&std::fs::read_to_string(&path).unwrap(), n);
    match save {
        Save::InPlace => std::fs::write(path, text).unwrap(),
        Save::Rename => {
            let tmp = path.with_file_name(format!(".{entity}.schema.yaml.tmp"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(tmp, path).unwrap();
        }
    }
}

/// A client sending `token` with every request.
fn authed(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    reqwest::Client::builder().default_headers(headers).build().unwrap()
}

/// What the readers saw: each request's latency, and how many failed.
#[derive(Default)]
struct Reads {
    latencies: std::sync::Mutex<Vec<Duration>>,
    failed: AtomicU64,
}

/// `readers` clients reading the content API in a loop until `running` clears.
fn readers(
    client: &reqwest::Client,
    base: &str,
    entity: &str,
    readers: usize,
    running: Arc<AtomicBool>,
) -> (Arc<Reads>, Vec<tokio::task::JoinHandle<()>>) {
    let reads = Arc::new(Reads::default());
    let tasks = (0..readers)
        .map(|_| {
            let (client, url) = (client.clone(), format!("{base}/api/v1/entity/{entity}?limit=5"));
            let (running, reads) = (running.clone(), reads.clone());
            tokio::spawn(async move {
                while running.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match client.get(&url).timeout(Duration::from_secs(5)).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            reads.latencies.lock().unwrap().push(t.elapsed());
                        }
                        _ => {
                            reads.failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        })
        .collect();
    (reads, tasks)
}

/// Stops the readers and reports what they saw; returns their p99.
async fn stop_readers(
    name: &str,
    running: Arc<AtomicBool>,
    (reads, tasks): (Arc<Reads>, Vec<tokio::task::JoinHandle<()>>),
) -> Duration {
    running.store(false, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let mut latencies = std::mem::take(&mut *reads.latencies.lock().unwrap());
    report(name, &mut latencies);
    println!("  {:<40} {} ok, {} failed", "", latencies.len(), reads.failed.load(Ordering::Relaxed));
    latencies.sort();
    percentile(&latencies, 0.99)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, samples: &mut [Duration]) -> Duration {
    samples.sort();
    if samples.is_empty() {
        println!("  {name:<40} no samples");
        return Duration::ZERO;
    }
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

/// The real binary, when built: start-up is measured on it, with its peak RSS.
fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("MARAIN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/marain"));
    path.is_file().then_some(path)
}

/// Starts the real binary on `root` and `db`, waits until it is in sync, and
/// returns the time that took and its peak RSS in MiB.
async fn start_binary(bin: &Path, root: &Path, db: &str, client: &reqwest::Client, log: &Path) -> (Duration, f64) {
    let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let t = Instant::now();
    let mut child = std::process::Command::new(bin)
        .args(["serve", "--site"])
        .arg(root)
        .args(["--database", db, "--addr", &addr.to_string(), "--secure-log"])
        .arg(log)
        .env("MARAIN_ADMIN_PASSWORD", "bench password, long enough")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_in_sync(client, &format!("http://{addr}")).await;
    let took = t.elapsed();
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    child.kill().unwrap();
    child.wait().unwrap();
    (took, kib / 1024.0)
}

struct Options {
    edits: usize,
    restarts: usize,
    readers: usize,
}

async fn run(name: &str, build: &dyn Fn(&Path) -> String, options: &Options, backend: Backend) {
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
        let token = store.accounts().create_token("bench", marain::engine::accounts::Role::Viewer).await.unwrap();
        store.close().await;
        token
    };
    let client = authed(&token);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;

    match binary() {
        Some(bin) => {
            let (first, first_rss) = start_binary(&bin, &root, &db, &client, &log).await;
            println!("  first start (creates every table)        {:>8.0} ms  peak RSS {first_rss:>6.1} MiB", ms(first));
            let (warm, warm_rss) = start_binary(&bin, &root, &db, &client, &log).await;
            println!("  start with everything applied            {:>8.0} ms  peak RSS {warm_rss:>6.1} MiB", ms(warm));
        }
        None => {
            let t = Instant::now();
            let server = start(&root, &db, addr, 25, log.clone()).await;
            wait_in_sync(&client, &base).await;
            println!("  first start (creates every table)        {:>8.0} ms  (in process)", ms(t.elapsed()));
            stop(server).await;
        }
    }
    let t = Instant::now();
    let mut server = start(&root, &db, addr, 25, log.clone()).await;
    wait_in_sync(&client, &base).await;
    println!("  start in process, everything applied     {:>8.0} ms", ms(t.elapsed()));

    // Content reads with nothing else going on, for comparison.
    let running = Arc::new(AtomicBool::new(true));
    let quiet = readers(&client, &base, &entity, options.readers, running.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let quiet_p99 = stop_readers("content reads, quiet", running, quiet).await;

    // Hot reload: save, then wait for the applied event on the SSE stream.
    let running = Arc::new(AtomicBool::new(true));
    let busy = readers(&client, &base, &entity, options.readers, running.clone());
    let mut stream = client.get(format!("{base}/api/v1/hot-reload/events")).send().await.unwrap();
    let mut buffer = String::new();
    let mut n = 0;
    let mut per_style = Vec::new();
    for (style, save) in [("rename", Save::Rename), ("in place", Save::InPlace)] {
        let mut hot = Vec::with_capacity(options.edits);
        for _ in 0..options.edits {
            let t = Instant::now();
            edit(&root, &entity, n, save);
            n += 1;
            wait_applied(&mut stream, &mut buffer, &file).await;
            hot.push(t.elapsed());
        }
        per_style.push(report(&format!("save ({style}) → SSE applied"), &mut hot));
    }
    drop(stream);
    let busy_p99 = stop_readers("content reads during reloads", running, busy).await;
    println!(
        "  read p99 during reloads / quiet          {:.2}× ({:.2} ms / {:.2} ms)",
        busy_p99.as_secs_f64() / quiet_p99.as_secs_f64().max(1e-9),
        ms(busy_p99),
        ms(quiet_p99)
    );

    // Restart: stop, save, start, wait until the edit is applied and served.
    if options.restarts > 0 {
        let mut restart = Vec::with_capacity(options.restarts);
        for _ in 0..options.restarts {
            let t = Instant::now();
            stop(server).await;
            edit(&root, &entity, n, Save::Rename);
            n += 1;
            server = start(&root, &db, addr, 25, log.clone()).await;
            wait_in_sync(&client, &base).await;
            restart.push(t.elapsed());
        }
        let restart_p50 = report("restart (stop → save → start → in sync)", &mut restart);
        println!(
            "  restart p50 / rename save p50            {:.1}×",
            restart_p50.as_secs_f64() / per_style[0].as_secs_f64()
        );
    }

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
        let mut sync = Vec::with_capacity(options.edits);
        for _ in 0..options.edits {
            edit(&root, &entity, n, Save::Rename);
            n += 1;
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
    let number = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let options =
        Options { edits: number("EDITS", 200), restarts: number("RESTARTS", 3), readers: number("READERS", 4) };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let backends = std::env::var("BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let sites = std::env::var("SITES").unwrap_or_else(|_| "demo,independent,star,chain".into());
    let wanted = |list: &str, key: &str| list.split(',').any(|b| b.trim() == key);
    println!(
        "build: {} (set MARAIN_BIN for start-up on the real binary: {})",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        binary().map(|b| b.display().to_string()).unwrap_or_else(|| "not built".into())
    );
    rt.block_on(async {
        for (label, key, backend) in
            [("SQLite", "sqlite", Backend::Sqlite), ("PostgreSQL", "postgres", Backend::Postgres)]
        {
            if !wanted(&backends, key) {
                continue;
            }
            if wanted(&sites, "demo") {
                run(&format!("demo site (examples/site), {label}"), &demo_site, &options, backend).await;
            }
            for topology in [Topology::Independent, Topology::Star, Topology::Chain] {
                if wanted(&sites, topology.name()) {
                    let name = format!("generated: 1,000 schemas ({}) + 1,000 configs, {label}", topology.name());
                    run(&name, &|root| generated_site(topology, root), &options, backend).await;
                }
            }
        }
    });
}
