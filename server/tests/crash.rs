//! `kill -9` at every step of an apply, on the real binary: after a restart the
//! database, the history and the in-memory state agree, nothing is applied twice,
//! and no acknowledged change is lost.
//!
//! Each run creates a site, stores rows, then approves a BREAKING change (a field
//! dropped, its values backed up) with `MARAIN_FAILPOINT=<point>@2` set: the second
//! apply stops at `<point>`, announces it on stderr, and is killed with SIGKILL.
//!
//! On PostgreSQL a second instance runs beside the one that dies: it carries on
//! (takes in the committed change, or applies the uncommitted one itself), and
//! the dead one, restarted, agrees with it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

mod support;

use support::instance::approver_client;
use support::{Backend, Running};

use serde_json::{json, Value};

const RUNS: usize = 20;
const V1: &str = "id: user\nname: User\nfields:\n  - id: username\n    type: text\n    required: true\n  - id: bio\n    type: long_text\n";
const V2: &str = "id: user\nname: User\nfields:\n  - id: username\n    type: text\n    required: true\n";
const FILE: &str = "schemas/user.schema.yaml";

/// A running `marain serve` and the base URL of its API.
struct Server {
    process: Running,
    base: String,
}

impl Server {
    fn start(dir: &Path, db: &str, failpoint: Option<&str>) -> Server {
        Self::start_logging(dir, db, failpoint, "secure.log", &[])
    }

    /// [`Server::start`] with its own secure log `log` in `dir` (every instance
    /// keeps its own: one log is one chain).
    fn start_logging(dir: &Path, db: &str, failpoint: Option<&str>, log: &str, env: &[(&str, &str)]) -> Server {
        Self::start_command(Command::new(env!("CARGO_BIN_EXE_marain")), dir, db, failpoint, log, env)
    }

    /// [`Server::start`] as a user whom file modes bind. Run as root (as CI
    /// does), the tests' own process reads every file whatever its mode, so the
    /// server runs as `nobody` through `setpriv`, and `dir` is handed to it.
    fn start_unprivileged(dir: &Path, db: &str) -> Server {
        let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
        if !root {
            return Self::start(dir, db, None);
        }
        let status = Command::new("chown").args(["-R", "65534:65534"]).arg(dir).status().unwrap();
        assert!(status.success(), "chown of the test directory failed");
        let mut command = Command::new("setpriv");
        command.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(env!("CARGO_BIN_EXE_marain"));
        Self::start_command(command, dir, db, None, "secure.log", &[])
    }

    fn start_command(
        mut command: Command,
        dir: &Path,
        db: &str,
        failpoint: Option<&str>,
        log: &str,
        env: &[(&str, &str)],
    ) -> Server {
        command
            .args(["serve", "--site"])
            .arg(dir.join("site"))
            .arg("--database")
            .arg(db)
            .args(["--addr", "127.0.0.1:0", "--debounce-ms", "10", "--secure-log"])
            .arg(dir.join(log))
            .arg("--assets")
            .arg(dir.join("assets"))
            .env_remove("MARAIN_FAILPOINT")
            // Where a `hold:` failpoint waits to be let go.
            .env("MARAIN_FAILPOINT_RELEASE", dir.join("release"));
        if let Some(point) = failpoint {
            command.env("MARAIN_FAILPOINT", format!("{point}@2"));
        }
        command.envs(env.iter().copied());
        let process = Running::spawn(command);
        let base = format!("http://{}/api/v1", process.addr);
        Server { process, base }
    }

    /// Waits for an output line containing `needle`.
    fn wait_output(&self, needle: &str) {
        self.process.wait_line(needle, Duration::from_secs(20));
    }

    /// SIGKILL.
    fn kill(self) {
        self.process.kill();
    }
}

async fn status(client: &reqwest::Client, base: &str) -> Option<Value> {
    client.get(format!("{base}/hot-reload/status")).send().await.ok()?.json().await.ok()
}

async fn wait_status(client: &reqwest::Client, base: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..400 {
        if let Some(s) = status(client, base).await {
            if done(&s) {
                return s;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("status never reached the expected state: {:?}", status(client, base).await);
}

async fn approve_pending(client: &reqwest::Client, base: &str) -> reqwest::Result<reqwest::Response> {
    let s = wait_status(client, base, |s| !s["pending"].as_array().unwrap().is_empty()).await;
    let id = s["pending"][0]["id"].as_u64().unwrap();
    client
        .post(format!("{base}/hot-reload/changes/{id}/approve"))
        .json(&json!({"reason": "slimming", "confirm": "user"}))
        .send()
        .await
}

async fn versions(client: &reqwest::Client, base: &str) -> Vec<Value> {
    let url = format!("{base}/hot-reload/history?file_path={FILE}");
    let history: Value = client.get(url).send().await.unwrap().json().await.unwrap();
    history["versions"].as_array().unwrap().clone()
}

/// A temporary directory holding a site whose one file is `text`.
fn site_with(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("site/schemas")).unwrap();
    std::fs::write(dir.path().join("site").join(FILE), text).unwrap();
    dir
}

/// Stores users `u0`… through the content API, each with a bio.
/// A site of `schema` where every table counts as big (every change takes
/// the online path), its database on `backend`, and `marain serve` on it
/// stopping at `failpoint` (applies 1 and 2 are the entity and the config:
/// an online change is the third), once in sync.
async fn online_site(
    schema: &str,
    backend: Backend,
    failpoint: &str,
) -> (tempfile::TempDir, String, reqwest::Client, Server) {
    let dir = site_with(schema);
    let config = dir.path().join("site/config/config.hot_reload.yaml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, "id: hot_reload\nvalues:\n  online_threshold_rows: 0\n").unwrap();
    let db = backend.prepare(dir.path()).await;
    let client = approver_client(&db).await;
    let server = Server::start_logging(dir.path(), &db, None, "secure.log", &[("MARAIN_FAILPOINT", failpoint)]);
    wait_status(&client, &server.base, |s| s["in_sync"] == json!(true)).await;
    (dir, db, client, server)
}

/// Approves the change waiting on `server` and kills the server (`kill -9`)
/// as it reaches failpoint `point`: the approval never answers.
async fn approve_until_killed(server: Server, client: &reqwest::Client, point: &str) {
    let approving = tokio::spawn({
        let (client, base) = (client.clone(), server.base.clone());
        async move { approve_pending(&client, &base).await }
    });
    server.wait_output(&format!("failpoint {point} reached"));
    server.kill();
    approving.abort();
}

/// `marain serve` started again on `dir` and `db`, once the change it finds
/// waits for approval.
async fn restarted_waiting(dir: &Path, db: &str, client: &reqwest::Client) -> Server {
    let server = Server::start(dir, db, None);
    wait_status(client, &server.base, |s| !s["pending"].as_array().unwrap().is_empty()).await;
    server
}

async fn add_users(client: &reqwest::Client, base: &str, n: usize) {
    for i in 0..n {
        let body = json!({"id": format!("u{i}"), "username": format!("user{i}"), "bio": format!("bio of {i}")});
        let resp = client.post(format!("{base}/entity/user")).json(&body).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 201);
    }
}

async fn backup_tables(db: &str) -> Vec<String> {
    let store = marain::engine::Store::open(db).await.unwrap();
    let tables = store.pool().table_names().await.unwrap();
    store.close().await;
    tables.into_iter().filter(|t| t.starts_with("marain_backup_")).collect()
}

/// The server processes of sessions with a transaction open.
async fn open_transactions(db: &str) -> Vec<i32> {
    let store = marain::engine::Store::open(db).await.unwrap();
    let pids: Vec<(i32,)> = store
        .pool()
        .fetch_all(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction' \
             AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    store.close().await;
    pids.into_iter().map(|(p,)| p).collect()
}

/// Waits until the server processes `pids` have left `pg_stat_activity`.
async fn wait_gone(db: &str, pids: &[i32]) {
    let store = marain::engine::Store::open(db).await.unwrap();
    let list = pids.iter().map(i32::to_string).collect::<Vec<_>>().join(", ");
    let sql = format!("SELECT COUNT(*) FROM pg_stat_activity WHERE pid IN ({list})");
    for _ in 0..400 {
        if store.pool().fetch_one::<(i64,)>(&sql, &[]).await.unwrap().0 == 0 {
            store.close().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the killed process's sessions {list} never left pg_stat_activity");
}

async fn backed_up_bios(db: &str) -> i64 {
    let store = marain::engine::Store::open(db).await.unwrap();
    let tables = store.pool().table_names().await.unwrap();
    let mut n = 0;
    for t in tables.iter().filter(|t| t.starts_with("marain_backup_")) {
        let sql = format!("SELECT COUNT(*) FROM \"{t}\" WHERE bio LIKE 'bio of %'");
        n += store.pool().fetch_one::<(i64,)>(&sql, &[]).await.unwrap().0;
    }
    store.close().await;
    n
}

/// The history's chain and head, and the secure log's line chain (which the
/// killed process and its successor wrote), are intact.
fn history_verifies(db: &str, dir: &Path) {
    log_verifies(db, &dir.join("secure.log"));
}

/// The history and the secure log `log` verify.
fn log_verifies(db: &str, log: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_marain"))
        .args(["history", "verify", "--database", db, "--secure-log"])
        .arg(log)
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "history verify: {said}");
    assert!(said.contains("secure-log lines, chain intact"), "{said}");
}

/// One crash at `point` and the restart after it.
async fn crash_once(point: &str, backend: Backend) {
    let dir = site_with(V1);
    let db = backend.prepare(dir.path()).await;
    let client = approver_client(&db).await;

    let server = Server::start(dir.path(), &db, Some(point));
    wait_status(&client, &server.base, |s| s["in_sync"] == json!(true)).await;
    add_users(&client, &server.base, 5).await;
    // On PostgreSQL a second instance runs on the same site and database all
    // along; when the applying one dies, it carries on.
    let other =
        (backend == Backend::Postgres).then(|| Server::start_logging(dir.path(), &db, None, "secure-b.log", &[]));
    if let Some(other) = &other {
        wait_status(&client, &other.base, |s| s["in_sync"] == json!(true)).await;
    }
    std::fs::write(dir.path().join("site").join(FILE), V2).unwrap();
    let waiting = wait_status(&client, &server.base, |s| !s["pending"].as_array().unwrap().is_empty()).await;
    let pending_id = waiting["pending"][0]["id"].clone();
    let pending = tokio::spawn({
        let (client, base) = (client.clone(), server.base.clone());
        // The approval hangs at the failpoint; its answer never comes.
        async move { approve_pending(&client, &base).await }
    });
    server.wait_output(&format!("failpoint {point} reached"));
    // On PostgreSQL, the sessions of the dying process: its transaction is open.
    let open = match backend {
        Backend::Postgres => open_transactions(&db).await,
        Backend::Sqlite => vec![],
    };
    server.kill();
    pending.abort();
    if backend == Backend::Postgres && point != "after_commit" {
        // Its transaction is gone only once the server has noticed the death.
        assert!(!open.is_empty(), "{point}: the held apply has no open transaction");
        wait_gone(&db, &open).await;
    }

    let server = match other {
        Some(other) => other,
        None => Server::start(dir.path(), &db, None),
    };
    let committed = point == "after_commit";
    let s = wait_status(&client, &server.base, |s| {
        if committed {
            s["in_sync"] == json!(true)
        } else {
            !s["pending"].as_array().unwrap().is_empty()
        }
    })
    .await;
    assert_eq!(s["drift"], json!([]), "{point}: the database and the applied files disagree: {s}");
    assert_eq!(s["rejected"], json!([]), "{point}: {s}");
    history_verifies(&db, dir.path());
    let user: Value = client.get(format!("{}/entity/user/u3", server.base)).send().await.unwrap().json().await.unwrap();
    if committed {
        // Acknowledged by the commit: kept, and not applied a second time.
        assert_eq!(versions(&client, &server.base).await.len(), 2, "{point}");
        assert!(user.get("bio").is_none(), "{point}: {user}");
        assert_eq!(backed_up_bios(&db).await, 5, "{point}: the backup holds every value");
    } else {
        // Never committed: nothing of it is left, and the edit waits again.
        assert_eq!(versions(&client, &server.base).await.len(), 1, "{point}");
        assert_eq!(user["bio"], "bio of 3", "{point}: {user}");
        assert_eq!(backed_up_bios(&db).await, 0, "{point}: a rolled-back backup must not survive");
        assert_eq!(backup_tables(&db).await, Vec::<String>::new(), "{point}: a rolled-back backup table is left");
        if backend == Backend::Postgres {
            // The instance that carried on shows the same change waiting.
            assert_eq!(s["pending"][0]["id"], pending_id, "{point}: {s}");
            log_verifies(&db, &dir.path().join("secure-b.log"));
        }
        let resp = approve_pending(&client, &server.base).await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{point}");
        assert_eq!(versions(&client, &server.base).await.len(), 2, "{point}: applied exactly once");
        assert_eq!(backed_up_bios(&db).await, 5, "{point}");
        history_verifies(&db, dir.path());
    }
    if backend == Backend::Postgres {
        // The instance that died comes back and agrees with the one that carried on.
        let again = Server::start(dir.path(), &db, None);
        let s = wait_status(&client, &again.base, |s| s["in_sync"] == json!(true)).await;
        assert_eq!(s["pending"], json!([]), "{point}: {s}");
        assert_eq!(versions(&client, &again.base).await.len(), 2, "{point}: applied exactly once");
        again.kill();
    }
    server.kill();
}

/// The answer to an apply's COMMIT is lost on its way back (failpoint
/// `lose:commit_answer`; the commit itself happens): the instance finds the
/// version in the history, says the change is applied, and applies nothing twice.
async fn a_lost_commit_answer_is_found_in_the_history(backend: Backend) {
    let dir = site_with(V1);
    let db = backend.prepare(dir.path()).await;
    let client = approver_client(&db).await;
    let server = Server::start(dir.path(), &db, Some("lose:commit_answer"));
    wait_status(&client, &server.base, |s| s["in_sync"] == json!(true)).await;
    add_users(&client, &server.base, 5).await;
    std::fs::write(dir.path().join("site").join(FILE), V2).unwrap();
    let resp = approve_pending(&client, &server.base).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap());
    server.wait_output("the answer to the commit was lost; the history shows the change applied");
    let s = wait_status(&client, &server.base, |s| s["in_sync"] == json!(true)).await;
    assert_eq!(s["pending"], json!([]), "{s}");
    assert_eq!(versions(&client, &server.base).await.len(), 2, "applied exactly once");
    assert_eq!(backed_up_bios(&db).await, 5, "the commit happened whole");
    history_verifies(&db, dir.path());
    server.kill();
}

/// PostgreSQL only (SQLite is a file the process holds: there is no connection
/// to lose). The connection of an apply is cut while it waits before its
/// commit: the instance finds out from the history that nothing was applied and
/// says so; the change waits again, and is then applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_before_the_commit_applies_nothing() {
    let dir = site_with(V1);
    let db = Backend::Postgres.prepare(dir.path()).await;
    let client = approver_client(&db).await;
    let server = Server::start(dir.path(), &db, Some("hold:before_commit"));
    wait_status(&client, &server.base, |s| s["in_sync"] == json!(true)).await;
    add_users(&client, &server.base, 5).await;
    std::fs::write(dir.path().join("site").join(FILE), V2).unwrap();
    let approval = tokio::spawn({
        let (client, base) = (client.clone(), server.base.clone());
        async move { approve_pending(&client, &base).await.unwrap() }
    });
    tokio::task::block_in_place(|| server.wait_output("failpoint before_commit reached"));
    let held = open_transactions(&db).await;
    assert_eq!(held.len(), 1, "one apply holds a transaction: {held:?}");
    let store = marain::engine::Store::open(&db).await.unwrap();
    let sql = format!("SELECT pg_terminate_backend({})", held[0]);
    store.pool().fetch_one::<(bool,)>(&sql, &[]).await.unwrap();
    store.close().await;
    std::fs::write(dir.path().join("release"), "").unwrap();
    let resp = approval.await.unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let body: Value = resp.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("the history shows nothing of it applied"), "{message}");
    assert_eq!(versions(&client, &server.base).await.len(), 1, "nothing applied");
    assert_eq!(backup_tables(&db).await, Vec::<String>::new());
    let user: Value = client.get(format!("{}/entity/user/u3", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(user["bio"], "bio of 3", "{user}");

    // Approved again, it applies once.
    let approval = tokio::spawn({
        let (client, base) = (client.clone(), server.base.clone());
        async move { approve_pending(&client, &base).await.unwrap() }
    });
    tokio::task::block_in_place(|| server.wait_output("failpoint before_commit reached"));
    std::fs::write(dir.path().join("release"), "").unwrap();
    let resp = approval.await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(versions(&client, &server.base).await.len(), 2, "applied exactly once");
    assert_eq!(backed_up_bios(&db).await, 5);
    history_verifies(&db, dir.path());
    server.kill();
}

/// The server's clock runs ten minutes fast (`MARAIN_CLOCK_SKEW_SECS`, debug
/// builds). When a version was applied is the database's clock, so recovery to
/// a moment between two applies (by the database's clock, here the host's)
/// undoes exactly the later one, and the history shows true times.
async fn a_fast_clock_does_not_move_when_versions_were_applied(backend: Backend) {
    let dir = site_with(V2);
    let db = backend.prepare(dir.path()).await;
    let client = approver_client(&db).await;
    let server = Server::start_logging(dir.path(), &db, None, "secure.log", &[("MARAIN_CLOCK_SKEW_SECS", "600")]);
    wait_status(&client, &server.base, |s| s["in_sync"] == json!(true)).await;
    let format = &time::format_description::well_known::Rfc3339;
    let moment = time::OffsetDateTime::now_utc().format(format).unwrap();
    std::fs::write(dir.path().join("site").join(FILE), V1).unwrap();
    let mut applied = versions(&client, &server.base).await;
    for _ in 0..400 {
        if applied.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        applied = versions(&client, &server.base).await;
    }
    assert_eq!(applied.len(), 2, "the SAFE edit never applied: {applied:?}");
    for version in &applied {
        let at = time::OffsetDateTime::parse(version["applied_at"].as_str().unwrap(), format).unwrap();
        let off = (at - time::OffsetDateTime::now_utc()).whole_seconds().abs();
        assert!(off < 60, "version {} was applied {off} s from now by the database's clock", version["version"]);
    }
    let resp =
        client.post(format!("{}/hot-reload/recover", server.base)).json(&json!({"at": moment})).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let changes: Value = resp.json().await.unwrap();
    let changes = changes["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    let id = changes[0]["id"].as_u64().unwrap();
    let change: Value =
        client.get(format!("{}/hot-reload/changes/{id}", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(change["rollback_to"], 1, "recovery undoes the later version only: {change}");
    server.kill();
}

/// PostgreSQL only (SQLite's clock is the server process's own, slow with it).
/// A server whose host clock is ten minutes slow (libfaketime, installed by
/// `scripts/setup.sh --test`) stamps a new session's end by the database's
/// clock: eight hours from the database's now, not from its own; and the
/// session it made works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_host_clock_ends_sessions_by_the_database() {
    let dir = site_with(V1);
    let db = Backend::Postgres.prepare(dir.path()).await;
    // libfaketime preloaded into the server itself: the `faketime` command
    // runs its program as a child, which killing `faketime` leaves running.
    let mut command = Command::new(env!("CARGO_BIN_EXE_marain"));
    command
        .env("LD_PRELOAD", libfaketime())
        .env("FAKETIME", "-10m")
        .args(["serve", "--site"])
        .arg(dir.path().join("site"))
        .args(["--database", &db, "--addr", "127.0.0.1:0", "--secure-log"])
        .arg(dir.path().join("secure.log"))
        .arg("--assets")
        .arg(dir.path().join("assets"))
        .env("MARAIN_ADMIN_PASSWORD", "correct horse battery staple")
        .env_remove("MARAIN_FAILPOINT");
    let process = Running::spawn(command);
    let root = format!("http://{}", process.addr);
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let form = [("username", "admin"), ("password", "correct horse battery staple"), ("next", "/")];
    let resp = client.post(format!("{root}/login")).header("origin", &root).form(&form).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(resp.headers()["location"], "/");
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let store = marain::engine::Store::open(&db).await.unwrap();
    let (ends,): (i64,) = store.pool().fetch_one("SELECT expires_at FROM marain_signed_in", &[]).await.unwrap();
    store.close().await;
    // This test's clock is the database's (one host).
    let off = ends - (time::OffsetDateTime::now_utc().unix_timestamp() + 8 * 3600);
    assert!(off.abs() < 60, "the session ends {off} s off eight hours by the database's clock");
    let status = client.get(format!("{root}/api/v1/hot-reload/status")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(status.status().as_u16(), 200, "the session works");
    process.kill();
}

/// libfaketime's library (installed by `scripts/setup.sh --test`).
fn libfaketime() -> std::path::PathBuf {
    let dirs = std::fs::read_dir("/usr/lib").unwrap().filter_map(Result::ok);
    let found = dirs.map(|d| d.path().join("faketime/libfaketime.so.1")).find(|p| p.exists());
    found.expect("libfaketime is not installed: run scripts/setup.sh --test")
}

/// SQLite only (a PostgreSQL server's disk cannot be filled from here; its
/// `disk_full` is taken the same way). The database may not grow during an
/// apply (failpoint `full:apply`: SQLite's `max_page_count`, so SQLite itself
/// answers SQLITE_FULL): the change is rolled back whole, the answer says the
/// disk is full, the change waits again, and once there is room it applies once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_rolls_the_apply_back_and_the_change_waits() {
    let dir = site_with(V1);
    let db = Backend::Sqlite.prepare(dir.path()).await;
    let client = approver_client(&db).await;
    let server = Server::start(dir.path(), &db, Some("full:apply"));
    wait_status(&client, &server.base, |s| s["in_sync"] == json!(true)).await;
    add_users(&client, &server.base, 200).await;
    std::fs::write(dir.path().join("site").join(FILE), V2).unwrap();
    let resp = approve_pending(&client, &server.base).await.unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let body: Value = resp.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("the database's disk is full: nothing of the change"), "{message}");
    assert_eq!(versions(&client, &server.base).await.len(), 1, "nothing applied");
    assert_eq!(backup_tables(&db).await, Vec::<String>::new());
    let user: Value = client.get(format!("{}/entity/user/u3", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(user["bio"], "bio of 3", "{user}");
    let resp = approve_pending(&client, &server.base).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(versions(&client, &server.base).await.len(), 2, "applied exactly once");
    assert_eq!(backed_up_bios(&db).await, 200);
    history_verifies(&db, dir.path());
    server.kill();
}

/// A panic in the engine's worker takes the server down at once, non-zero and
/// saying why, so a supervisor restarts it, instead of serving a state that no
/// longer moves.
async fn a_panicking_worker_stops_the_server_loudly(backend: Backend) {
    let dir = site_with(V1);
    let db = backend.prepare(dir.path()).await;
    let client = approver_client(&db).await;
    let server = Server::start(dir.path(), &db, Some("panic:after_commit"));
    wait_status(&client, &server.base, |s| s["in_sync"] == json!(true)).await;
    std::fs::write(dir.path().join("site").join(FILE), format!("{V1}  - id: motto\n    type: text\n")).unwrap();
    server.wait_output("the engine stopped unexpectedly");
    let status = server.process.wait_exit(Duration::from_secs(20));
    assert!(!status.success(), "{status:?}");
}

/// Sets the mode of `path`.
fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A directory the server may no longer read (an operator's `chmod`, a deploy
/// that leaves the wrong owner) is an error, never "every file deleted": with
/// `schemas/` unreadable, each of its files is refused as unreadable while its
/// applied version stays live, through a restart too; with the site's parent
/// unreadable, the server stops watching and plans nothing. Read access back,
/// everything is in sync again with no new version.
async fn an_unreadable_directory_is_an_error_not_a_deletion(backend: Backend) {
    let dir = site_with(V1);
    let db = backend.prepare(dir.path()).await;
    let client = approver_client(&db).await;
    let server = Server::start_unprivileged(dir.path(), &db);
    wait_status(&client, &server.base, |s| s["in_sync"] == json!(true)).await;
    add_users(&client, &server.base, 3).await;
    let schemas = dir.path().join("site/schemas");
    let refused = |s: &Value| {
        s["rejected"].as_array().unwrap().iter().any(|r| {
            r["file"] == FILE && r["message"].as_str().unwrap_or_default().contains("cannot read: Permission denied")
        })
    };

    chmod(&schemas, 0o000);
    let seen = wait_status(&client, &server.base, refused).await;
    assert_eq!(seen["pending"], json!([]), "nothing planned while the directory cannot be read: {seen}");
    let user: Value = client.get(format!("{}/entity/user/u1", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(user["bio"], "bio of 1", "the applied schema stays live: {user}");

    // A restart while it cannot be read: the same, from the start-up reconciliation.
    server.kill();
    let server = Server::start_unprivileged(dir.path(), &db);
    let seen = wait_status(&client, &server.base, refused).await;
    assert_eq!(seen["pending"], json!([]), "{seen}");

    chmod(&schemas, 0o755);
    let back = wait_status(&client, &server.base, |s| s["in_sync"] == json!(true)).await;
    assert_eq!(back["rejected"], json!([]), "{back}");
    // Watched again: an edit under it applies.
    std::fs::write(dir.path().join("site").join(FILE), format!("{V1}  - id: motto\n    type: text\n")).unwrap();
    for _ in 0..400 {
        if versions(&client, &server.base).await.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(versions(&client, &server.base).await.len(), 2, "the edit after the directory opened never applied");

    // The site's parent closed: the site cannot be reached; not ready, nothing planned.
    let ready = format!("http://{}/readyz", server.process.addr);
    chmod(dir.path(), 0o000);
    server.wait_output("the site directory cannot be reached");
    assert_eq!(client.get(&ready).send().await.unwrap().status().as_u16(), 503);
    let seen = status(&client, &server.base).await.unwrap();
    assert_eq!(seen["pending"], json!([]), "{seen}");
    chmod(dir.path(), 0o700);
    for _ in 0..400 {
        if client.get(&ready).send().await.unwrap().status().as_u16() == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let back = wait_status(&client, &server.base, |s| s["in_sync"] == json!(true)).await;
    assert_eq!(back["pending"], json!([]), "{back}");
    assert_eq!(versions(&client, &server.base).await.len(), 2, "no version came of it");
    let user: Value = client.get(format!("{}/entity/user/u1", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(user["bio"], "bio of 1", "{user}");
    server.kill();
}

/// `kill -9` during an online change (every table counts as big): after its
/// first phase and after all of them. On PostgreSQL the first builds the
/// index on `bio`, the second the unique index of `username` (not yet a
/// constraint); on SQLite the first makes the shadow table and its triggers,
/// the second fills it. Restarted, the server clears what the phases left
/// that enforces anything, the old schema is live (a duplicate username is
/// accepted), the change waits again, and approved it applies once, with the
/// history intact.
async fn kill_during_online_phases(point: &str, backend: Backend) {
    let (dir, db, client, server) = online_site(V1, backend, &format!("{point}@3")).await;
    add_users(&client, &server.base, 5).await;
    let v2 = V1.replace("    required: true\n", "    required: true\n    unique: true\n") + "    indexed: true\n";
    std::fs::write(dir.path().join("site").join(FILE), &v2).unwrap();
    let waiting = wait_status(&client, &server.base, |s| !s["pending"].as_array().unwrap().is_empty()).await;
    let id = waiting["pending"][0]["id"].as_u64().unwrap();
    let change: Value =
        client.get(format!("{}/hot-reload/changes/{id}", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(change["path"], "online", "{change}");
    assert_eq!(change["phases"].as_array().map(Vec::len), Some(2), "{change}");
    approve_until_killed(server, &client, point).await;

    let server = restarted_waiting(dir.path(), &db, &client).await;
    let store = marain::engine::Store::open(&db).await.unwrap();
    let left = match backend {
        Backend::Postgres => {
            "SELECT (SELECT COUNT(*) FROM pg_index WHERE NOT indisvalid) + (SELECT COUNT(*) FROM pg_indexes \
             WHERE indexname = 'content_user_username_key') + (SELECT COUNT(*) FROM pg_constraint \
             WHERE NOT convalidated OR conname LIKE '%\\_not\\_null')"
        }
        Backend::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' OR name LIKE 'marain\\_shadow\\_%' ESCAPE '\\'"
        }
    };
    let left: (i64,) = store.pool().fetch_one(left, &[]).await.unwrap();
    assert_eq!(left.0, 0, "{point}: what the phases left was not cleared at start-up");
    // The old schema: usernames need not be unique.
    let duplicate = json!({"id": "dup", "username": "user1"});
    let resp = client.post(format!("{}/entity/user", server.base)).json(&duplicate).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 201, "{point}: the old schema is not live");
    client.delete(format!("{}/entity/user/dup", server.base)).send().await.unwrap();
    assert_eq!(versions(&client, &server.base).await.len(), 1, "{point}: nothing was applied");

    let resp = approve_pending(&client, &server.base).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{point}");
    assert_eq!(versions(&client, &server.base).await.len(), 2, "{point}: applied once");
    let resp = client.post(format!("{}/entity/user", server.base)).json(&duplicate).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 409, "{point}: the unique key is not enforced");
    let keys = match backend {
        Backend::Postgres => "SELECT COUNT(*) FROM pg_constraint WHERE conname = 'content_user_username_key'",
        Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE name = 'idx_user__bio'",
    };
    let keys: (i64,) = store.pool().fetch_one(keys, &[]).await.unwrap();
    assert_eq!(keys.0, 1, "{point}");
    store.close().await;
    history_verifies(&db, dir.path());
    server.kill();
}

/// PostgreSQL only (online phases run only there). `kill -9` after the first
/// batch of a dropped field's online backup: restarted, the server drops the
/// trigger that kept the backup, the field is still there with every value,
/// and the change, approved again, starts its backup over and applies once
/// with every value backed up exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_an_online_backup_on_postgres() {
    let (dir, db, client, server) = online_site(V1, Backend::Postgres, "after_batch@3").await;
    add_users(&client, &server.base, 5).await;
    std::fs::write(dir.path().join("site").join(FILE), V2).unwrap();
    approve_until_killed(server, &client, "after_batch").await;

    let server = restarted_waiting(dir.path(), &db, &client).await;
    let store = marain::engine::Store::open(&db).await.unwrap();
    let triggers: (i64,) =
        store.pool().fetch_one("SELECT COUNT(*) FROM pg_trigger WHERE NOT tgisinternal", &[]).await.unwrap();
    assert_eq!(triggers.0, 0, "the backup's trigger was not dropped at start-up");
    store.close().await;
    let user: Value = client.get(format!("{}/entity/user/u3", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(user["bio"], "bio of 3", "{user}");
    assert_eq!(versions(&client, &server.base).await.len(), 1, "nothing was applied");

    let resp = approve_pending(&client, &server.base).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(versions(&client, &server.base).await.len(), 2, "applied once");
    assert_eq!(backed_up_bios(&db).await, 5, "every value backed up, once");
    history_verifies(&db, dir.path());
    server.kill();
}

/// PostgreSQL only (online phases run only there). `kill -9` after the first
/// batch of a type change's copy into its shadow table, on a table a child
/// table points at: restarted, the server drops the trigger, the shadow table
/// (with the copies of the keys pointing at it) and the table of deleted
/// keys; the old schema is live with every value; approved again, the change
/// copies from the start, applies once, and the history verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_an_online_type_change_on_postgres() {
    let v1 = format!("{V1}  - id: age\n    type: integer\n  - id: langs\n    type: text\n    cardinality: -1\n");
    let (dir, db, client, server) = online_site(&v1, Backend::Postgres, "after_batch@3").await;
    for i in 0..5 {
        let body = json!({"id": format!("u{i}"), "username": format!("user{i}"), "age": 30 + i, "langs": ["en"]});
        let resp = client.post(format!("{}/entity/user", server.base)).json(&body).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 201);
    }
    std::fs::write(dir.path().join("site").join(FILE), v1.replace("type: integer", "type: float")).unwrap();
    approve_until_killed(server, &client, "after_batch").await;

    let server = restarted_waiting(dir.path(), &db, &client).await;
    let store = marain::engine::Store::open(&db).await.unwrap();
    let left = "SELECT (SELECT COUNT(*) FROM pg_trigger WHERE NOT tgisinternal) \
                + (SELECT COUNT(*) FROM pg_tables WHERE tablename ~ '^marain_(shadow|gone)_') \
                + (SELECT COUNT(*) FROM pg_constraint WHERE conname LIKE 'marain\\_fk\\_%')";
    let (left,): (i64,) = store.pool().fetch_one(left, &[]).await.unwrap();
    assert_eq!(left, 0, "a trigger, a shadow table or a key copy was not cleared at start-up");
    let user: Value = client.get(format!("{}/entity/user/u3", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(user["age"], json!(33), "{user}");
    assert_eq!(versions(&client, &server.base).await.len(), 1, "nothing was applied");

    let resp = approve_pending(&client, &server.base).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(versions(&client, &server.base).await.len(), 2, "applied once");
    let user: Value = client.get(format!("{}/entity/user/u3", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!((user["age"].as_f64(), &user["langs"]), (Some(33.0), &json!(["en"])), "{user}");
    let keys = "SELECT COUNT(*) FROM pg_constraint WHERE contype = 'f' AND convalidated \
                AND confrelid = 'content_user'::regclass AND conname = 'content_user__langs_parent_id_fkey'";
    let (keys,): (i64,) = store.pool().fetch_one(keys, &[]).await.unwrap();
    assert_eq!(keys, 1, "the child table's key does not point at the new table");
    store.close().await;
    history_verifies(&db, dir.path());
    server.kill();
}

/// SQLite only (PostgreSQL's online steps leave nothing to clear after their
/// cut-over: a type change's old table is the backup it keeps). `kill -9` after an online rebuild's cut-over committed, before
/// the table it replaced (`marain_retired_user`) was emptied and dropped:
/// restarted, the server drops it before anything applies, the change is
/// applied once (the new unique key holds, every row is there), and the
/// history verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_an_online_cut_over_before_its_cleanup_on_sqlite() {
    let (dir, db, client, server) = online_site(V1, Backend::Sqlite, "after_cut_over@3").await;
    add_users(&client, &server.base, 5).await;
    let v2 = V1.replace("    required: true\n", "    required: true\n    unique: true\n");
    std::fs::write(dir.path().join("site").join(FILE), &v2).unwrap();
    approve_until_killed(server, &client, "after_cut_over").await;

    let store = marain::engine::Store::open(&db).await.unwrap();
    let retired = "SELECT COUNT(*) FROM sqlite_master WHERE name = 'marain_retired_user'";
    let (left,): (i64,) = store.pool().fetch_one(retired, &[]).await.unwrap();
    assert_eq!(left, 1, "the kill came before the retired table was dropped");
    store.close().await;
    let server = Server::start(dir.path(), &db, None);
    wait_status(&client, &server.base, |s| s["in_sync"] == json!(true)).await;
    let store = marain::engine::Store::open(&db).await.unwrap();
    let (left,): (i64,) = store.pool().fetch_one(retired, &[]).await.unwrap();
    assert_eq!(left, 0, "the retired table was not dropped at start-up");
    let (whole,): (String,) = store.pool().fetch_one("PRAGMA integrity_check", &[]).await.unwrap();
    assert_eq!(whole, "ok");
    store.close().await;
    assert_eq!(versions(&client, &server.base).await.len(), 2, "applied once");
    let user: Value = client.get(format!("{}/entity/user/u3", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(user["bio"], "bio of 3", "{user}");
    let duplicate = json!({"id": "dup", "username": "user1"});
    let resp = client.post(format!("{}/entity/user", server.base)).json(&duplicate).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 409, "the unique key is not enforced");
    history_verifies(&db, dir.path());
    server.kill();
}

/// See [`kill_during_online_phases`].
async fn kill_after_an_online_phase(backend: Backend) {
    kill_during_online_phases("after_phase", backend).await;
}

/// See [`kill_during_online_phases`].
async fn kill_before_the_online_cut_over(backend: Backend) {
    kill_during_online_phases("before_cut_over", backend).await;
}

async fn crash_runs(point: &str, backend: Backend) {
    for _ in 0..RUNS {
        crash_once(point, backend).await;
    }
}

async fn kill_after_backup(backend: Backend) {
    crash_runs("after_backup", backend).await;
}

async fn kill_after_ddl(backend: Backend) {
    crash_runs("after_ddl", backend).await;
}

async fn kill_before_history_row(backend: Backend) {
    crash_runs("before_history", backend).await;
}

async fn kill_before_commit(backend: Backend) {
    crash_runs("before_commit", backend).await;
}

async fn kill_after_commit_before_state_swap(backend: Backend) {
    crash_runs("after_commit", backend).await;
}

backend_tests!(
    multi_thread: a_lost_commit_answer_is_found_in_the_history,
    a_fast_clock_does_not_move_when_versions_were_applied,
    a_panicking_worker_stops_the_server_loudly,
    an_unreadable_directory_is_an_error_not_a_deletion,
    kill_after_backup,
    kill_after_ddl,
    kill_before_history_row,
    kill_before_commit,
    kill_after_commit_before_state_swap,
    kill_after_an_online_phase,
    kill_before_the_online_cut_over,
);
