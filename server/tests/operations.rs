//! What operators run the server with: `/metrics`, `/healthz` and `/readyz`,
//! the OpenAPI document, and a graceful stop on SIGTERM. Over real HTTP, on
//! both backends.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use marain::engine::accounts::Role;
use serde_json::{json, Value};

mod support;
use support::in_process::{client_with, token, Server, USER};
use support::{Backend, Running};

/// The sum of the samples of `name` whose labels include every one of
/// `labels` (0 when there is none), from a Prometheus text exposition.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            (metric == name && labels.iter().all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\""))))
                .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

impl Server {
    fn root(&self) -> String {
        self.base.replace("/api/v1/hot-reload", "")
    }

    async fn scrape(&self, client: &reqwest::Client) -> (u16, String) {
        let resp = client.get(format!("{}/metrics", self.root())).send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn metrics(&self) -> String {
        let (code, text) = self.scrape(&self.client).await;
        assert_eq!(code, 200, "{text}");
        text
    }

    async fn probe(&self, path: &str) -> (u16, Value) {
        let resp = self.anonymous.get(format!("{}{path}", self.root())).send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// Polls `path` until it answers `code`; fails after 15 s.
    async fn probe_until(&self, path: &str, code: u16, why: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.probe(path).await.0 == code {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{path} never answered {code}: {why}");
    }
}

/// A webhook receiver that accepts every delivery.
async fn accepting_receiver() -> String {
    let receiver = axum::Router::new().route("/hook", axum::routing::post(|| async { axum::http::StatusCode::OK }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });
    format!("http://{addr}/hook")
}

async fn metrics_move_with_real_changes(backend: Backend) {
    let server = Server::start(backend).await;
    // Who may scrape: any role's token; nobody without one until
    // `api.metrics_from` names the address.
    let (code, _) = server.scrape(&server.anonymous).await;
    assert_eq!(code, 401, "metrics without a token");
    let viewer = client_with(&token(&server.db, "scraper", Role::Viewer).await);
    let (code, before) = server.scrape(&viewer).await;
    assert_eq!(code, 200, "a viewer's token reads the metrics");
    assert_eq!(sample(&before, "marain_pending_changes", &[]), 0.0, "{before}");
    assert_eq!(sample(&before, "marain_ready", &[]), 1.0, "{before}");
    assert!(before.contains("marain_build_info{version=\""), "{before}");

    let schema_safe = [("kind", "schema"), ("severity", "safe")];
    let applies = |text: &str| sample(text, "marain_applies_total", &schema_safe);
    let latencies = |text: &str| sample(text, "marain_save_to_applied_seconds_count", &[("severity", "safe")]);
    let invalid = |text: &str| sample(text, "marain_rejections_total", &[("reason", "invalid")]);
    let declined = |text: &str| sample(text, "marain_rejections_total", &[("reason", "declined")]);
    let created = |text: &str| sample(text, "marain_content_requests_total", &[("method", "POST"), ("status", "201")]);
    let missing = |text: &str| sample(text, "marain_content_requests_total", &[("method", "GET"), ("status", "404")]);
    let delivered = |text: &str| sample(text, "marain_webhook_deliveries_total", &[("outcome", "delivered")]);
    let failed = |text: &str| sample(text, "marain_webhook_deliveries_total", &[("outcome", "failed")]);

    // A SAFE change applied by itself, through a file saved on disk.
    let file = "schemas/user.schema.yaml";
    std::fs::write(server.site.join(file), format!("{USER}  - id: motto\n    type: text\n")).unwrap();
    server.wait_versions(file, 2).await;
    // An invalid file: rejected, and counted as a rejected file.
    std::fs::write(server.site.join("schemas/broken.schema.yaml"), "id: broken\nfields: [\n").unwrap();
    server.wait_until(|s| s["rejected"].as_array().is_some_and(|r| !r.is_empty())).await;
    // Content requests, answered 201 and 404.
    let content = server.base.replace("/hot-reload", "/entity/user");
    let resp = server.client.post(&content).json(&json!({"id": "u1", "username": "ann"})).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let resp = server.client.get(format!("{content}/nobody")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    // A BREAKING change waits; an open event stream is counted.
    std::fs::write(server.site.join(file), USER.replace("  - id: bio\n    type: long_text\n", "")).unwrap();
    let status = server.wait_until(|s| s["pending"].as_array().is_some_and(|p| !p.is_empty())).await;
    let stream = server.client.get(format!("{}/events", server.base)).send().await.unwrap();
    assert_eq!(stream.status().as_u16(), 200);

    let during = server.metrics().await;
    assert_eq!(sample(&during, "marain_pending_changes", &[]), 1.0, "{during}");
    assert_eq!(sample(&during, "marain_rejected_files", &[]), 1.0, "{during}");
    assert_eq!(sample(&during, "marain_event_streams", &[]), 1.0, "{during}");
    assert_eq!(sample(&during, "marain_drift", &[]), 0.0, "{during}");
    assert!(sample(&during, "marain_seconds_since_last_sync", &[]) >= 0.0, "{during}");
    // Counters are the process's (the other backend's test runs beside this
    // one): each moved by at least what this test did.
    assert!(applies(&during) >= applies(&before) + 1.0, "{during}");
    assert!(latencies(&during) >= latencies(&before) + 1.0, "save → applied observed: {during}");
    assert!(invalid(&during) >= invalid(&before) + 1.0, "{during}");
    assert!(created(&during) >= created(&before) + 1.0, "{during}");
    assert!(missing(&during) >= missing(&before) + 1.0, "{during}");
    drop(stream);

    // The person declines the change; webhooks deliver (and fail) as configured.
    let id = status["pending"][0]["id"].as_u64().unwrap();
    let (code, _) = server.post(&format!("/changes/{id}/reject"), json!({"reason": "not now"})).await;
    assert_eq!(code, 200);
    let hook = accepting_receiver().await;
    std::fs::create_dir_all(server.site.join("config")).unwrap();
    std::fs::write(
        server.site.join("config/config.hot_reload.yaml"),
        format!(
            "id: hot_reload\nvalues:\n  online_threshold_rows: 0\n  webhooks:\n    - url: {hook}\n    - url: \
             http://127.0.0.1:9/closed\n"
        ),
    )
    .unwrap();
    server.wait_versions("config/config.hot_reload.yaml", 1).await;
    std::fs::write(
        server.site.join("schemas/note.schema.yaml"),
        "id: note\nname: Note\nfields:\n  - id: body\n    type: text\n",
    )
    .unwrap();
    server.wait_versions("schemas/note.schema.yaml", 1).await;
    // An index on it: every table counts as big, so it is built online (on
    // SQLite, into a shadow table), and the phase is measured.
    std::fs::write(
        server.site.join("schemas/note.schema.yaml"),
        "id: note\nname: Note\nfields:\n  - id: body\n    type: text\n    indexed: true\n",
    )
    .unwrap();
    server.wait_versions("schemas/note.schema.yaml", 2).await;
    if backend == Backend::Postgres {
        // (The SQLite run beside this one shares the process's recorder.)
        let text = server.metrics().await;
        let phases = sample(&text, "marain_online_phase_seconds_count", &[("table", "content_note")]);
        assert!(phases >= 1.0, "the online phase was not measured: {text}");
        assert_eq!(sample(&text, "marain_online_phases_running", &[]), 0.0, "{text}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let text = server.metrics().await;
        if delivered(&text) >= 1.0 && failed(&text) >= 1.0 || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(delivered(&after) >= delivered(&before) + 1.0, "{after}");
    assert!(failed(&after) >= failed(&before) + 1.0, "{after}");
    assert!(declined(&after) >= declined(&before) + 1.0, "{after}");
    assert_eq!(sample(&after, "marain_pending_changes", &[]), 0.0, "{after}");
    assert_eq!(sample(&after, "marain_event_streams", &[]), 0.0, "the closed stream is no longer counted: {after}");

    // `api.metrics_from` lets this address scrape without a token.
    server.apply_api_config("  metrics_from: [\"127.0.0.1\"]\n").await;
    let (code, text) = server.scrape(&server.anonymous).await;
    assert_eq!(code, 200, "{text}");
    server.stop().await;
}

async fn readiness_follows_the_watcher_and_the_database(backend: Backend) {
    let server = Server::start(backend).await;
    assert_eq!(server.probe("/healthz").await, (200, json!({"status": "ok"})));
    assert_eq!(server.probe("/readyz").await, (200, json!({"status": "ok"})));

    // The site directory moved away: the watcher watches nothing, so not ready,
    // and the files that seem gone are not taken for deletions.
    let aside = server.site.with_file_name("site-aside");
    std::fs::rename(&server.site, &aside).unwrap();
    server.probe_until("/readyz", 503, "the site directory is gone").await;
    let (code, body) = server.probe("/readyz").await;
    assert_eq!((code, body), (503, json!({"status": "not ready"})), "no detail beyond ok or not");
    assert_eq!(server.probe("/healthz").await.0, 200, "the process still answers");
    // A rescan asked for meanwhile (as after a watcher error) reads nothing.
    let (code, _) = server.post("/reload", json!({})).await;
    assert_eq!(code, 202);
    let (_, status) = server.get("/status").await;
    assert_eq!(status["pending"], json!([]), "a missing directory is not every file deleted: {status}");
    // It comes back: ready again, and the new watcher sees the next save.
    std::fs::rename(&aside, &server.site).unwrap();
    server.probe_until("/readyz", 200, "the site directory is back").await;
    let file = "schemas/user.schema.yaml";
    std::fs::write(server.site.join(file), format!("{USER}  - id: motto\n    type: text\n")).unwrap();
    server.wait_versions(file, 2).await;

    // The database stops answering, then answers again. A SQLite database is a
    // file the process holds open, so only PostgreSQL can become unreachable.
    if backend == Backend::Postgres {
        let (address, options) = server.db.split_once('?').unwrap();
        let (host, name) = address.rsplit_once('/').unwrap();
        let admin = format!("{host}/postgres?{options}");
        let admin_store = marain::engine::Store::open(&admin).await.unwrap();
        admin_store.pool().execute(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"), &[]).await.unwrap();
        let terminate = format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'");
        admin_store.pool().execute(&terminate, &[]).await.unwrap();
        server.probe_until("/readyz", 503, "the database refuses connections").await;
        // The dashboard's calls say so with 503 too, not 500.
        let root = server.base.replace("/api/v1/hot-reload", "");
        let resp = server
            .client
            .post(format!("{root}/_sfn/audit"))
            .form(&Vec::<(String, String)>::new())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 503, "{}", resp.text().await.unwrap());
        admin_store.pool().execute(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"), &[]).await.unwrap();
        admin_store.close().await;
        server.probe_until("/readyz", 200, "the database answers again").await;
    }
    server.stop().await;
}

/// Every operation of the document, from the routes it was generated with.
fn operations(doc: &Value) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                found.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    found
}

/// The endpoints `docs/api.md` documents: its `### \`METHOD path\`` headings and
/// the rows of its tables that start with a method and path.
fn documented() -> BTreeSet<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md")).unwrap();
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let Some(start) = line.find('`') else { continue };
        if !(line.starts_with("### ") || line.starts_with("| ")) {
            continue;
        }
        let rest = &line[start + 1..];
        let Some(end) = rest.find('`') else { continue };
        let Some((method, path)) = rest[..end].split_once(' ') else { continue };
        if ["GET", "POST", "PUT", "DELETE", "PATCH"].contains(&method) {
            found.insert(format!("{method} {}", path.split('?').next().unwrap()));
        }
    }
    found
}

async fn the_openapi_document_describes_every_route(backend: Backend) {
    let server = Server::start(backend).await;
    // Readable without a token: it holds no data.
    let (code, doc) = server.probe("/api/v1/openapi.json").await;
    assert_eq!(code, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    let described = operations(&doc);
    assert_eq!(described, documented(), "docs/api.md and the OpenAPI document list the same endpoints");
    for must in ["GET /api/v1/hot-reload/status", "POST /api/v1/entity/{entity}", "GET /metrics", "GET /readyz"] {
        assert!(described.contains(must), "{must} missing from {described:?}");
    }
    // Each operation reaches a handler: never the catch-all's "no such API
    // endpoint", never 405.
    for operation in &described {
        let (method, path) = operation.split_once(' ').unwrap();
        let url = format!("{}{}", server.root(), path.replace("{entity}", "user").replace("{id}", "1"));
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = server.client.request(method, &url).json(&json!({})).send().await.unwrap();
        let code = resp.status().as_u16();
        assert_ne!(code, 405, "{operation}");
        if path.ends_with("/events") {
            assert_eq!(code, 200, "{operation}");
            continue;
        }
        let body = resp.text().await.unwrap();
        assert!(!body.contains("no such API endpoint"), "{operation} is not routed: {body}");
    }
    // Unknown paths still get the API's own 404.
    let (code, err) = server.get("/nothing-here").await;
    assert_eq!((code, err["error"]["code"].as_str()), (404, Some("not_found")));
    server.stop().await;
}

backend_tests!(
    metrics_move_with_real_changes,
    readiness_follows_the_watcher_and_the_database,
    the_openapi_document_describes_every_route,
);

/// `marain serve` on a site of `dir` holding the `user` schema, on a new
/// database of `backend`: the command, the site and the database's URL.
fn serve_user_site(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    backend: Backend,
) -> (Command, std::path::PathBuf, String) {
    let site = dir.join("site");
    std::fs::create_dir_all(site.join("schemas")).unwrap();
    std::fs::write(site.join("schemas/user.schema.yaml"), USER).unwrap();
    let db = rt.block_on(backend.prepare(dir));
    let mut command = Command::new(env!("CARGO_BIN_EXE_marain"));
    command.args(["serve", "--site"]).arg(&site).arg("--database").arg(&db).args(["--addr", "127.0.0.1:0", "--assets"]);
    command.arg(dir.join("assets")).arg("--secure-log").arg(dir.join("secure.log"));
    (command, site, db)
}

/// The server answers before the start-up reconciliation ends: `/healthz`
/// is 200, `/readyz` 503 saying what the start waits for, every page a 503
/// page saying the same; once the engine runs, ready. The start-up's apply
/// is held at a failpoint until the test lets it go, so the start is seen
/// whatever the machine's speed.
fn the_server_answers_while_the_engine_starts(backend: Backend) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut command, _, _) = serve_user_site(&rt, dir.path(), backend);
    let release = dir.path().join("release");
    command.env("MARAIN_FAILPOINT", "hold:after_ddl@1").env("MARAIN_FAILPOINT_RELEASE", &release);
    let server = Running::spawn_until(command, "listening on http://");
    let root = format!("http://{}", server.addr);
    server.wait_line("failpoint after_ddl reached; holding", Duration::from_secs(20));
    let get = |path: &str| {
        let resp = rt.block_on(reqwest::get(format!("{root}{path}"))).unwrap();
        let code = resp.status().as_u16();
        let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        (code, retry, rt.block_on(resp.text()).unwrap())
    };
    assert_eq!(get("/healthz").0, 200);
    let (code, retry, body) = get("/readyz");
    assert_eq!((code, retry.as_deref()), (503, Some("2")), "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], "starting");
    assert_eq!(body["waiting_for"], "reconciling 1 file with the database", "{body}");
    let (code, _, page) = get("/");
    assert_eq!(code, 503, "{page}");
    assert!(page.contains("Starting: reconciling 1 file with the database"), "{page}");
    let (code, _, _) = get("/api/v1/hot-reload/status");
    assert_eq!(code, 503, "nothing else is served while starting");
    // The sign-in page is: a person may type while the site reconciles. A
    // sign-in sent meanwhile comes back to it, saying why.
    let (code, _, page) = get("/login");
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("name=\"password\""), "{page}");
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = rt
        .block_on(
            no_redirects
                .post(format!("{root}/login"))
                .header("Origin", &root)
                .form(&[("username", "admin"), ("password", "whatever it is")])
                .send(),
        )
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(resp.headers()["location"], "/login?error=starting");

    std::fs::write(&release, "").unwrap();
    server.wait_line("dashboard on http://", Duration::from_secs(20));
    let (code, _, body) = get("/readyz");
    assert_eq!(code, 200, "{body}");
    assert_eq!(get("/login").0, 200);
}

#[test]
fn the_server_answers_while_the_engine_starts_sqlite() {
    the_server_answers_while_the_engine_starts(Backend::Sqlite)
}

#[test]
fn the_server_answers_while_the_engine_starts_postgres() {
    the_server_answers_while_the_engine_starts(Backend::Postgres)
}

/// SIGTERM: the apply under way finishes, event streams close, the process
/// stops taking requests and exits 0.
fn sigterm_finishes_the_apply_and_exits_cleanly(backend: Backend) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut command, site, db) = serve_user_site(&rt, dir.path(), backend);
    let secret = rt.block_on(token(&db, "ops", Role::Viewer));
    command
        .args(["--debounce-ms", "10"])
        // The second apply (the first is the start-up's) pauses after its DDL.
        .env("MARAIN_FAILPOINT", "pause:after_ddl@2");
    let server = Running::spawn(command);
    let root = format!("http://{}", server.addr);
    let client = client_with(&secret);
    let stream = rt.block_on(client.get(format!("{root}/api/v1/hot-reload/events")).send()).unwrap();
    assert_eq!(stream.status().as_u16(), 200);

    let file = "schemas/user.schema.yaml";
    std::fs::write(site.join(file), format!("{USER}  - id: motto\n    type: text\n")).unwrap();
    server.wait_line("failpoint after_ddl reached; pausing", Duration::from_secs(20));
    server.terminate();
    // The stream ends (not cut off by the process dying: it is read to its end).
    let ended = rt.block_on(async {
        let mut stream = stream;
        tokio::time::timeout(Duration::from_secs(15), async { while let Ok(Some(_)) = stream.chunk().await {} }).await
    });
    assert!(ended.is_ok(), "the event stream did not end");
    let status = server.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    // The apply that was under way committed: version 2 is in the history.
    let out = Command::new(env!("CARGO_BIN_EXE_marain"))
        .args(["history", "--database", &db, "--file", file])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.lines().any(|l| l.contains(" v2 ")), "version 2 is not in the history:\n{text}");
}

#[test]
fn sigterm_finishes_the_apply_and_exits_cleanly_sqlite() {
    sigterm_finishes_the_apply_and_exits_cleanly(Backend::Sqlite)
}

#[test]
fn sigterm_finishes_the_apply_and_exits_cleanly_postgres() {
    sigterm_finishes_the_apply_and_exits_cleanly(Backend::Postgres)
}
