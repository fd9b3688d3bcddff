//! Several real `marain serve` processes on one throw-away PostgreSQL database,
//! behaving as one system.
//!
//! Layout (a): one shared site directory that every instance watches. Each
//! instance sees every edit; exactly one applies it (the advisory lock and the
//! re-read head decide which), and every instance's event stream announces it.
//!
//! Layout (b): a copy of the site per instance (`--site-layout per-instance`),
//! updated host by host. The database's applied version is the arbiter: a copy
//! equal to an older applied version is behind, and a rollback anywhere rewrites
//! the copies that still hold the text rolled back from.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

mod support;
use support::instance::{approver_client, Instance, APPROVER};
use support::pg_server::PgServer;
use support::pooler::{database_name, PgBouncer};
use support::EventReader;

const FILE: &str = "schemas/user.schema.yaml";
const V1: &str = "id: user\nname: User\nfields:\n  - id: username\n    type: text\n    required: true\n  - id: bio\n    type: long_text\n  - id: motto\n    type: text\n";

/// The versions of `FILE` in the shared history, newest first.
async fn versions(db: &str) -> Vec<i64> {
    let store = marain::engine::Store::open(db).await.unwrap();
    let rows = store.history().rows(Some(FILE), 100).await.unwrap();
    store.close().await;
    rows.iter().map(|r| r.version).collect()
}

/// Ends the listening connections of every instance, as a network blip or a
/// database restart would.
async fn kill_listeners(db: &str) -> usize {
    let store = marain::engine::Store::open(db).await.unwrap();
    let (n,): (i64,) = store
        .pool()
        .fetch_one(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
            &[],
        )
        .await
        .unwrap();
    store.close().await;
    n as usize
}

fn write_site(dir: &Path, text: &str) {
    write_copy(&dir.join("site"), text);
}

/// Saves `FILE` in the site directory `site`, by rename into place.
fn write_copy(site: &Path, text: &str) {
    let path = site.join(FILE);
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(temp, path).unwrap();
}

/// Waits until the webhook outbox holds no delivery that is not done (every
/// one delivered or given up): the deliveries are quiet.
async fn deliveries_done(db: &str) {
    let store = marain::engine::Store::open(db).await.unwrap();
    let sql = "SELECT COUNT(*) FROM marain_webhook_outbox WHERE done_at IS NULL";
    for _ in 0..600 {
        let (left,): (i64,) = store.pool().fetch_one(sql, &[]).await.unwrap();
        if left == 0 {
            store.close().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("webhook deliveries never finished");
}

/// A webhook receiver that records the body of every delivery.
async fn webhook_receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let record = seen.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| async move {
            record.lock().unwrap().push(serde_json::from_str(&body).unwrap());
            axum::http::StatusCode::NO_CONTENT
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });
    (url, seen)
}

/// PostgreSQL only (instances share one database server; a SQLite file serves one instance).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_one_shared_site_act_as_one() {
    act_as_one(Route::Direct).await;
}

/// PostgreSQL only (a pooler sits in front of a database server).
/// The same, with every instance's `--database` PgBouncer in transaction mode
/// and `--direct-database` the server itself (for `LISTEN`, migrations and
/// leases): exactly-once applies, sync, approvals on any instance, rejections,
/// a lost listener and content traffic all go through the pooler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_through_pgbouncer_in_transaction_mode_act_as_one() {
    act_as_one(Route::PgBouncer).await;
}

/// How the instances reach the database.
#[derive(Clone, Copy, Debug)]
enum Route {
    Direct,
    PgBouncer,
}

async fn act_as_one(route: Route) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("site/schemas")).unwrap();
    std::fs::create_dir_all(dir.path().join("site/config")).unwrap();
    std::fs::write(dir.path().join("site").join(FILE), V1).unwrap();
    let (hook, delivered) = webhook_receiver().await;
    let hooks = format!("id: hot_reload\nvalues:\n  webhooks:\n    - url: {hook}\n");
    std::fs::write(dir.path().join("site/config/config.hot_reload.yaml"), hooks).unwrap();
    let db = PgServer::shared().fresh_database().await;
    let (instance_db, instance_args, bouncer) = route_to(route, &db);
    let client = approver_client(&db).await;
    // All three start at the same moment on an empty database: migrations, the
    // first account, the session table and the first applies race, and must not
    // trip over each other.
    let instances = std::thread::scope(|scope| {
        let started = ["a", "b", "c"].map(|name| {
            scope.spawn(|| {
                let site = dir.path().join("site");
                Instance::start_with(name, dir.path(), &site, &instance_db, "shared", &[], &instance_args)
            })
        });
        started.map(|s| s.join().expect("an instance failed to start"))
    });
    for instance in &instances {
        instance.wait_status(&client, |s| s["in_sync"] == json!(true)).await;
    }
    assert_eq!(versions(&db).await, [1], "three instances starting on one site create the table once");
    let mut streams = Vec::new();
    for instance in &instances {
        streams.push(EventReader::open(&client, &instance.base).await);
    }

    // A SAFE edit: applied once, announced on all three event streams.
    write_site(dir.path(), &format!("{V1}  - id: email\n    type: text\n"));
    for (instance, stream) in instances.iter().zip(streams.iter_mut()) {
        let events = stream.until(|e| e["kind"] == "applied" && e["file"] == FILE).await;
        assert_eq!(events.last().unwrap()["version"], 2, "instance {}: {events:#?}", instance.name);
        // The instances that lost the race say nothing failed.
        assert!(events.iter().all(|e| e["kind"] != "failed"), "instance {}: {events:#?}", instance.name);
    }
    assert_eq!(versions(&db).await, [2, 1], "the SAFE edit applied exactly once");
    for instance in &instances {
        let status = instance.wait_status(&client, |s| s["in_sync"] == json!(true)).await;
        assert_eq!(status["rejected"], json!([]), "instance {}: {status}", instance.name);
    }

    // Content written through each instance is read back through every one.
    for (n, instance) in instances.iter().enumerate() {
        let resp = client
            .post(format!("http://{}/api/v1/entity/user", instance.process.addr))
            .json(&json!({"id": format!("u{n}"), "username": format!("user {n}"), "email": "x@example.org"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status().as_u16(),
            201,
            "instance {} ({route:?}): {}",
            instance.name,
            resp.text().await.unwrap()
        );
    }
    for instance in &instances {
        let list: Value = client
            .get(format!("http://{}/api/v1/entity/user", instance.process.addr))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut ids: Vec<&str> = list["items"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
        ids.sort();
        assert_eq!(ids, ["u0", "u1", "u2"], "instance {} ({route:?}): {list}", instance.name);
    }
    // The figure of the closing note (printed, never asserted): a read and a
    // write of the content API on one instance, 300 of each, by route.
    let records = format!("http://{}/api/v1/entity/user", instances[0].process.addr);
    let (mut reads, mut writes) = (Vec::new(), Vec::new());
    for n in 0..300 {
        let started = std::time::Instant::now();
        let resp = client.get(format!("{records}/u0")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        reads.push(started.elapsed());
        let started = std::time::Instant::now();
        let resp =
            client.put(format!("{records}/u0")).json(&json!({"username": format!("user {n}")})).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap());
        writes.push(started.elapsed());
    }
    let at = |v: &mut Vec<Duration>, p: usize| {
        v.sort();
        v[(v.len() - 1) * p / 100].as_micros()
    };
    println!(
        "{route:?}: content read p50 {} µs p99 {} µs; write p50 {} µs p99 {} µs",
        at(&mut reads, 50),
        at(&mut reads, 99),
        at(&mut writes, 50),
        at(&mut writes, 99)
    );

    // A BREAKING change approved on B: applied once, gone from A's and C's dashboards.
    write_site(
        dir.path(),
        &format!("{V1}  - id: email\n    type: text\n").replace("  - id: motto\n    type: text\n", ""),
    );
    let on_b = instances[1].pending_id(&client).await;
    for instance in [&instances[0], &instances[2]] {
        instance.pending_id(&client).await;
    }
    let (code, body) = instances[1].approve(&client, on_b, "user").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["version"], 3);
    for instance in &instances {
        instance.wait_status(&client, |s| s["pending"] == json!([]) && s["in_sync"] == json!(true)).await;
    }
    assert_eq!(versions(&db).await, [3, 2, 1]);
    // A and C took B's version in: each measured how long after B's commit.
    for instance in [&instances[0], &instances[2]] {
        let metrics = client.get(format!("http://{}/metrics", instance.process.addr)).send().await.unwrap();
        let text = metrics.text().await.unwrap();
        let count = text
            .lines()
            .find_map(|l| l.strip_prefix("marain_sync_lag_seconds_count "))
            .and_then(|n| n.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        assert!(count >= 1.0, "instance {} observed no sync lag:\n{text}", instance.name);
    }

    // Two approvals of the same change at the same moment, on A and on C: one
    // applies it, the other is told it was applied already.
    write_site(dir.path(), "id: user\nname: User\nfields:\n  - id: username\n    type: text\n    required: true\n");
    let (on_a, on_c) = (instances[0].pending_id(&client).await, instances[2].pending_id(&client).await);
    instances[1].pending_id(&client).await;
    let ((code_a, body_a), (code_c, body_c)) =
        tokio::join!(instances[0].approve(&client, on_a, "user"), instances[2].approve(&client, on_c, "user"));
    let mut codes = [code_a, code_c];
    codes.sort();
    assert_eq!(codes, [200, 409], "A: {body_a}\nC: {body_c}");
    let refused = if code_a == 409 { &body_a } else { &body_c };
    assert_eq!(refused["error"]["code"], "already_applied", "{refused}");
    assert_eq!(versions(&db).await, [4, 3, 2, 1], "applied exactly once");
    for instance in &instances {
        instance.wait_status(&client, |s| s["pending"] == json!([]) && s["in_sync"] == json!(true)).await;
    }

    // Turned down on C: every instance shows it rejected, none keeps it waiting.
    write_site(
        dir.path(),
        "id: user\nname: User\nfields:\n  - id: username\n    type: long_text\n    required: true\n",
    );
    let on_c = instances[2].pending_id(&client).await;
    for instance in &instances[..2] {
        instance.pending_id(&client).await;
    }
    let resp = client
        .post(format!("{}/changes/{on_c}/reject", instances[2].base))
        .json(&json!({"reason": "not now"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap());
    for instance in &instances {
        let status = instance
            .wait_status(&client, |s| {
                s["pending"] == json!([]) && s["rejected"].as_array().is_some_and(|r| r.len() == 1)
            })
            .await;
        let message = status["rejected"][0]["message"].as_str().unwrap();
        assert!(message.contains(&format!("rejected by {APPROVER}: not now")), "instance {}: {status}", instance.name);
    }
    assert_eq!(versions(&db).await, [4, 3, 2, 1], "a rejection applies nothing");

    // The listening connections die. A change approved on A must still reach B
    // and C, whose own files tell them nothing new, well before the 60 s poll
    // could explain it: each listener came back by itself.
    assert_eq!(kill_listeners(&db).await, 3, "each instance listens on its own connection");
    tokio::time::sleep(Duration::from_millis(300)).await;
    write_site(dir.path(), "id: user\nname: User\nfields:\n  - id: handle\n    type: text\n");
    let on_a = instances[0].pending_id(&client).await;
    for instance in &instances[1..] {
        instance.pending_id(&client).await;
    }
    let (code, body) = instances[0].approve(&client, on_a, "user").await;
    assert_eq!(code, 200, "{body}");
    for (instance, stream) in instances.iter().zip(streams.iter_mut()).skip(1) {
        let events = stream.until(|e| e["kind"] == "applied" && e["version"] == 5).await;
        assert_eq!(events.last().unwrap()["file"], FILE, "instance {}", instance.name);
        instance.wait_status(&client, |s| s["pending"] == json!([]) && s["in_sync"] == json!(true)).await;
    }
    assert_eq!(versions(&db).await, [5, 4, 3, 2, 1]);

    // Every instance saw every applied version; once every delivery is done,
    // the hook heard each once.
    deliveries_done(&db).await;
    let mut heard: Vec<i64> = delivered
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "applied" && e["file"] == FILE)
        .map(|e| e["version"].as_i64().unwrap())
        .collect();
    heard.sort();
    assert_eq!(heard, [2, 3, 4, 5], "one delivery per applied version, cluster-wide");
    for instance in instances {
        instance.process.kill();
    }
    assert_went_through(bouncer.as_ref());
}

/// PostgreSQL only (instances share one database server; a SQLite file serves one instance).
/// Two approvals of one change, the second provably arriving while the first
/// holds the apply lock: A stops before its commit (failpoint `hold`), B's
/// approval is seen waiting for the lock in `pg_stat_activity`, then A goes on.
/// Ten times: one 200 and one 409 each time, each change applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_racing_one_that_holds_the_lock_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("site/schemas")).unwrap();
    std::fs::write(dir.path().join("site").join(FILE), V1).unwrap();
    let db = PgServer::shared().fresh_database().await;
    let client = approver_client(&db).await;
    let release = dir.path().join("release");
    let hold = [
        ("MARAIN_FAILPOINT", "hold:before_commit".to_string()),
        ("MARAIN_FAILPOINT_RELEASE", release.display().to_string()),
    ];
    // B applies the first version; A, started after, finds it applied.
    let b = Instance::start("b", dir.path(), &db);
    b.wait_status(&client, |s| s["in_sync"] == json!(true)).await;
    let a = Instance::start_with("a", dir.path(), &dir.path().join("site"), &db, "shared", &hold, &[]);
    for instance in [&a, &b] {
        instance.wait_status(&client, |s| s["in_sync"] == json!(true)).await;
    }
    let mut expected = versions(&db).await;
    for round in 0..10 {
        // `motto` moves between text and long_text: a WARNING that waits.
        let motto = if round % 2 == 0 { "long_text" } else { "text" };
        write_site(
            dir.path(),
            &V1.replace("  - id: motto\n    type: text\n", &format!("  - id: motto\n    type: {motto}\n")),
        );
        let (on_a, on_b) = (a.pending_id(&client).await, b.pending_id(&client).await);
        let first = tokio::spawn({
            let (client, base) = (client.clone(), a.base.clone());
            async move { approve_at(&client, &base, on_a).await }
        });
        tokio::task::block_in_place(|| a.process.wait_line("failpoint before_commit reached", Duration::from_secs(20)));
        let second = tokio::spawn({
            let (client, base) = (client.clone(), b.base.clone());
            async move { approve_at(&client, &base, on_b).await }
        });
        wait_for_a_lock_wait(&db).await;
        std::fs::write(&release, "").unwrap();
        let ((code_a, body_a), (code_b, body_b)) = (first.await.unwrap(), second.await.unwrap());
        assert_eq!((code_a, code_b), (200, 409), "round {round}: A {body_a}\nB {body_b}");
        assert_eq!(body_b["error"]["code"], "already_applied", "round {round}: {body_b}");
        expected.insert(0, expected[0] + 1);
        assert_eq!(versions(&db).await, expected, "round {round}: applied exactly once");
        for instance in [&a, &b] {
            instance.wait_status(&client, |s| s["pending"] == json!([]) && s["in_sync"] == json!(true)).await;
        }
    }
}

/// PostgreSQL only (instances share one database server; a SQLite file serves one instance).
/// The listening connections stop answering without being reset (their server
/// processes are stopped with SIGSTOP, as a network partition or a frozen
/// proxy would leave them): no notification arrives and nothing says the
/// connection is gone. A change applied by A reaches B anyway, through the
/// poll of the history's head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_goes_silent_is_caught_up_by_the_poll() {
    let dir = tempfile::tempdir().unwrap();
    let sites: Vec<std::path::PathBuf> = ["a", "b"].iter().map(|n| dir.path().join(format!("site-{n}"))).collect();
    for site in &sites {
        std::fs::create_dir_all(site.join("schemas")).unwrap();
        std::fs::write(site.join(FILE), V1).unwrap();
    }
    let db = PgServer::shared().fresh_database().await;
    let client = approver_client(&db).await;
    let poll = [("MARAIN_SYNC_POLL_MS", "500".to_string())];
    let a = Instance::start_with("a", dir.path(), &sites[0], &db, "per-instance", &poll, &[]);
    a.wait_status(&client, |s| s["in_sync"] == json!(true)).await;
    let b = Instance::start_with("b", dir.path(), &sites[1], &db, "per-instance", &poll, &[]);
    b.wait_status(&client, |s| s["in_sync"] == json!(true)).await;

    let listeners = listening_backends(&db).await;
    assert_eq!(listeners.len(), 2, "each instance listens on its own connection: {listeners:?}");
    signal(&listeners, "STOP");
    // A SAFE edit on A's copy: A applies it; B hears nothing, and its copy is
    // one version behind until the poll finds the new head.
    write_copy(&sites[0], &format!("{V1}  - id: email\n    type: text\n"));
    let caught_up = b.wait_status(&client, |s| s["behind"].as_array().is_some_and(|behind| behind.len() == 1)).await;
    signal(&listeners, "CONT");
    assert_eq!(caught_up["behind"][0]["applied_version"], 2, "{caught_up}");
    assert_eq!(versions(&db).await, [2, 1]);
}

/// PostgreSQL only (instances share one database server; a SQLite file serves one instance).
/// A webhook receiver that hangs on the first delivery it is sent, and the
/// instance sending it dies mid-delivery: its lease runs out and the other
/// instance delivers it. The hook hears the event once, answered; the outbox
/// says delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_whose_instance_dies_is_delivered_by_another() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("site/schemas")).unwrap();
    std::fs::create_dir_all(dir.path().join("site/config")).unwrap();
    std::fs::write(dir.path().join("site").join(FILE), V1).unwrap();
    // The receiver: the first request hangs for good; every later one is answered.
    let answered: Arc<Mutex<Vec<String>>> = Arc::default();
    let hung = Arc::new(tokio::sync::Notify::new());
    let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
    // Later, every request hangs; how many are open at once is kept.
    let hang_all = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let open = Arc::new((std::sync::atomic::AtomicUsize::new(0), std::sync::atomic::AtomicUsize::new(0)));
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let (answered, hung, first) = (answered.clone(), hung.clone(), first.clone());
            let (hang_all, open) = (hang_all.clone(), open.clone());
            move |headers: axum::http::HeaderMap, body: String| async move {
                if hang_all.load(std::sync::atomic::Ordering::SeqCst) {
                    let _open = Open::new(&open);
                    std::future::pending::<()>().await;
                }
                let event: Value = serde_json::from_str(&body).unwrap();
                if event["kind"] != "applied" || event["version"] != 2 {
                    return axum::http::StatusCode::NO_CONTENT;
                }
                if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                    hung.notify_one();
                    std::future::pending::<()>().await;
                }
                answered.lock().unwrap().push(headers["x-marain-delivery"].to_str().unwrap().to_string());
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });
    // Attempts time out after 300 ms; a lease lasts a second.
    let config = format!("id: hot_reload\nvalues:\n  webhook_timeout_ms: 300\n  webhooks:\n    - url: {hook}\n");
    std::fs::write(dir.path().join("site/config/config.hot_reload.yaml"), config).unwrap();
    let db = PgServer::shared().fresh_database().await;
    let client = approver_client(&db).await;
    let mut instances: Vec<Instance> = ["a", "b"].into_iter().map(|n| Instance::start(n, dir.path(), &db)).collect();
    for instance in &instances {
        instance.wait_status(&client, |s| s["in_sync"] == json!(true)).await;
    }
    deliveries_done(&db).await;

    write_site(dir.path(), &format!("{V1}  - id: email\n    type: text\n"));
    hung.notified().await;
    let store = marain::engine::Store::open(&db).await.unwrap();
    let (sender,): (String,) = store
        .pool()
        .fetch_one(
            "SELECT leased_by FROM marain_webhook_outbox WHERE done_at IS NULL AND leased_by IS NOT NULL \
             AND body LIKE '%\"applied\"%'",
            &[],
        )
        .await
        .unwrap();
    store.close().await;
    let dying = instances.iter().position(|i| sender.starts_with(&format!("{}/", i.name)));
    let dying = dying.unwrap_or_else(|| panic!("the lease holder {sender} names no instance"));
    instances.remove(dying).process.kill();
    deliveries_done(&db).await;
    let answered = answered.lock().unwrap().clone();
    assert_eq!(answered.len(), 1, "delivered once, by the instance still alive: {answered:?}");
    let store = marain::engine::Store::open(&db).await.unwrap();
    let (outcome,): (String,) = store
        .pool()
        .fetch_one("SELECT outcome FROM marain_webhook_outbox WHERE key = $1", &[answered[0].as_str().into()])
        .await
        .unwrap();
    store.close().await;
    assert_eq!(outcome, "delivered");

    // A receiver that hangs on everything: the instance left keeps at most
    // IN_FLIGHT (8) deliveries open at once, however many are due.
    hang_all.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut text = format!("{V1}  - id: email\n    type: text\n");
    for n in 0..12 {
        text.push_str(&format!("  - id: extra_{n}\n    type: text\n"));
        let before = versions(&db).await.len();
        write_site(dir.path(), &text);
        for _ in 0..400 {
            if versions(&db).await.len() > before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    let store = marain::engine::Store::open(&db).await.unwrap();
    let (due,): (i64,) =
        store.pool().fetch_one("SELECT COUNT(*) FROM marain_webhook_outbox WHERE done_at IS NULL", &[]).await.unwrap();
    store.close().await;
    assert!(due > 8, "only {due} deliveries due: too few to show a bound");
    for _ in 0..40 {
        if open.1.load(std::sync::atomic::Ordering::SeqCst) >= 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let most = open.1.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(most, 8, "deliveries open at once, at most");
}

/// One request open at the receiver: counted while it lives, with the most
/// ever open at once.
struct Open<'a>(&'a (std::sync::atomic::AtomicUsize, std::sync::atomic::AtomicUsize));

impl<'a> Open<'a> {
    fn new(counts: &'a (std::sync::atomic::AtomicUsize, std::sync::atomic::AtomicUsize)) -> Self {
        let now = counts.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        counts.1.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
        Open(counts)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The server processes of the sessions that `LISTEN`.
async fn listening_backends(db: &str) -> Vec<i32> {
    let store = marain::engine::Store::open(db).await.unwrap();
    let rows: Vec<(i32,)> = store
        .pool()
        .fetch_all("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'", &[])
        .await
        .unwrap();
    store.close().await;
    rows.into_iter().map(|(p,)| p).collect()
}

/// Sends `SIG<name>` to `pids`.
fn signal(pids: &[i32], name: &str) {
    for pid in pids {
        let status = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status().unwrap();
        assert!(status.success(), "kill -{name} {pid}");
    }
}

async fn approve_at(client: &reqwest::Client, base: &str, id: u64) -> (u16, Value) {
    let resp = client
        .post(format!("{base}/changes/{id}/approve"))
        .json(&json!({"reason": "race test", "confirm": "user"}))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// Waits until a session of the database waits for a lock (the second apply,
/// behind the first one's advisory lock).
async fn wait_for_a_lock_wait(db: &str) {
    let store = marain::engine::Store::open(db).await.unwrap();
    for _ in 0..400 {
        let (n,): (i64,) = store
            .pool()
            .fetch_one(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap();
        if n > 0 {
            store.close().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the second approval never waited for the lock");
}

/// PostgreSQL only (instances share one database server; a SQLite file serves one instance).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_per_instance_defer_to_the_applied_version() {
    let dir = tempfile::tempdir().unwrap();
    let sites: Vec<std::path::PathBuf> = ["a", "b", "c"].iter().map(|n| dir.path().join(format!("site-{n}"))).collect();
    for site in &sites {
        std::fs::create_dir_all(site.join("schemas")).unwrap();
        std::fs::write(site.join(FILE), V1).unwrap();
    }
    let db = PgServer::shared().fresh_database().await;
    let client = approver_client(&db).await;
    let start = |name, site| Instance::start_on(name, dir.path(), site, &db, "per-instance");
    let instances = [start("a", &sites[0]), start("b", &sites[1]), start("c", &sites[2])];
    for instance in &instances {
        instance.wait_status(&client, |s| s["in_sync"] == json!(true)).await;
    }

    // A's copy moves on: A applies it; B's and C's copies are now behind, said
    // so, and not proposed (they would drop the new field).
    let v2 = format!("{V1}  - id: email\n    type: text\n");
    write_copy(&sites[0], &v2);
    instances[0].wait_status(&client, |s| s["in_sync"] == json!(true) && s["behind"] == json!([])).await;
    for instance in &instances[1..] {
        let status = instance.wait_status(&client, |s| s["behind"].as_array().is_some_and(|b| b.len() == 1)).await;
        assert_eq!(status["behind"][0]["message"], "this copy is v1; v2 is applied", "instance {}", instance.name);
        assert_eq!(status["pending"], json!([]), "instance {}: a copy behind is never proposed", instance.name);
        assert_eq!(status["in_sync"], json!(false), "instance {}", instance.name);
    }
    assert_eq!(versions(&db).await, [2, 1]);

    // B's host is updated: B is in step again.
    write_copy(&sites[1], &v2);
    instances[1].wait_status(&client, |s| s["in_sync"] == json!(true) && s["behind"] == json!([])).await;
    assert_eq!(versions(&db).await, [2, 1], "an updated copy applies nothing");

    // A rolls back to v1. B's copy, which holds the text rolled back from, is
    // rewritten; C's copy (v1 all along) is in step again without a write.
    let resp = client
        .post(format!("{}/rollback", instances[0].base))
        .json(&json!({"file": FILE, "version": 1, "reason": "email later"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let change: Value = resp.json().await.unwrap();
    let (code, body) = instances[0].approve(&client, change["id"].as_u64().unwrap(), "user").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["version"], 3);
    for instance in &instances {
        instance.wait_status(&client, |s| s["in_sync"] == json!(true) && s["behind"] == json!([])).await;
    }
    for site in &sites {
        assert_eq!(std::fs::read_to_string(site.join(FILE)).unwrap(), V1, "{}", site.display());
    }
    assert_eq!(versions(&db).await, [3, 2, 1], "the rewrites applied nothing more");

    // A's copy drops `motto` (BREAKING): it waits on A, and shows on B and C as
    // proposed by A's copy; approved on B, it applies once and leaves every
    // dashboard. B's and C's copies are then behind.
    let v4 = V1.replace("  - id: motto\n    type: text\n", "");
    write_copy(&sites[0], &v4);
    instances[0].pending_id(&client).await;
    let mut on_b = None;
    for instance in &instances[1..] {
        let status = instance.wait_status(&client, |s| s["pending"].as_array().is_some_and(|p| p.len() == 1)).await;
        assert_eq!(status["pending"][0]["origin"], "a", "instance {}: {status}", instance.name);
        assert_eq!(status["pending"][0]["conflict"], false, "instance {}: {status}", instance.name);
        on_b.get_or_insert(status["pending"][0]["id"].as_u64().unwrap());
    }
    let (code, body) = instances[1].approve(&client, on_b.unwrap(), "user").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["version"], 4);
    instances[0].wait_status(&client, |s| s["in_sync"] == json!(true)).await;
    for instance in &instances[1..] {
        let status = instance.wait_status(&client, |s| s["pending"] == json!([]) && s["behind"] != json!([])).await;
        assert_eq!(status["behind"][0]["message"], "this copy is v3; v4 is applied", "instance {}", instance.name);
    }
    assert_eq!(versions(&db).await, [4, 3, 2, 1]);

    // Two copies propose different texts for the file (each drops a different
    // field, so neither applies by itself anyway): every instance marks both
    // as a conflict. Approving A's applies it; B's copy is then planned afresh
    // from what applied, and is no conflict any more.
    for site in &sites {
        write_copy(site, &v4);
    }
    for instance in &instances {
        instance.wait_status(&client, |s| s["in_sync"] == json!(true)).await;
    }
    write_copy(&sites[0], &v4.replace("  - id: bio\n    type: long_text\n", ""));
    write_copy(&sites[1], &v4.replace("  - id: username\n    type: text\n    required: true\n", ""));
    let two =
        |s: &Value| s["pending"].as_array().is_some_and(|p| p.len() == 2 && p.iter().all(|c| c["conflict"] == true));
    for instance in &instances {
        instance.wait_status(&client, two).await;
    }
    let status = instances[0].status(&client).await;
    let own = status["pending"].as_array().unwrap().iter().find(|c| c.get("origin").is_none()).unwrap().clone();
    let (code, body) = instances[0].approve(&client, own["id"].as_u64().unwrap(), "user").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(versions(&db).await, [5, 4, 3, 2, 1]);
    let status = instances[1]
        .wait_status(&client, |s| s["pending"].as_array().is_some_and(|p| p.len() == 1 && p[0]["conflict"] == false))
        .await;
    assert!(status["pending"][0].get("origin").is_none(), "B's own copy: {status}");
    let status = instances[2].wait_status(&client, |s| s["pending"].as_array().is_some_and(|p| p.len() == 1)).await;
    assert_eq!(status["pending"][0]["origin"], "b", "C sees B's proposal, planned from v5: {status}");
    assert_eq!(status["pending"][0]["conflict"], false, "{status}");
    for instance in instances {
        instance.process.kill();
    }
}

/// Two instances on a shared site whose `item` has 3,000 rows, "big" for
/// `online_threshold_rows: 500`, changed in small, slow batches; `score`
/// becoming text waits for approval as change `id` on both.
struct BigChange {
    dir: tempfile::TempDir,
    client: reqwest::Client,
    a: Instance,
    b: Instance,
    store: marain::engine::Store,
    id: u64,
    /// The pooler the instances go through, if any; kept as long as they run.
    bouncer: Option<PgBouncer>,
}

/// The `--database` URL and the extra arguments of an instance on `db`, by
/// `route`, and the pooler it goes through.
fn route_to(route: Route, db: &str) -> (String, Vec<String>, Option<PgBouncer>) {
    match route {
        Route::Direct => (db.to_string(), Vec::new(), None),
        Route::PgBouncer => {
            let bouncer = PgBouncer::start(PgServer::shared());
            let pooled = bouncer.url(database_name(db));
            (pooled, vec!["--direct-database".to_string(), db.to_string()], Some(bouncer))
        }
    }
}

impl BigChange {
    async fn waiting(route: Route) -> BigChange {
        const ITEM: &str =
            "id: item\nname: Item\nfields:\n  - id: code\n    type: text\n  - id: score\n    type: integer\n";
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site");
        std::fs::create_dir_all(site.join("schemas")).unwrap();
        std::fs::create_dir_all(site.join("config")).unwrap();
        std::fs::write(site.join("schemas/item.schema.yaml"), ITEM).unwrap();
        let slow = "id: hot_reload\nvalues:\n  online_threshold_rows: 500\n  online_batch_rows: 100\n  \
                    online_batch_pause_ms: 40\n";
        std::fs::write(site.join("config/config.hot_reload.yaml"), slow).unwrap();
        let db = PgServer::shared().fresh_database().await;
        let client = approver_client(&db).await;
        let (instance_db, args, bouncer) = route_to(route, &db);
        let a = Instance::start_with("a", dir.path(), &site, &instance_db, "shared", &[], &args);
        a.wait_status(&client, |s| s["in_sync"] == json!(true)).await;
        let b = Instance::start_with("b", dir.path(), &site, &instance_db, "shared", &[], &args);
        b.wait_status(&client, |s| s["in_sync"] == json!(true)).await;
        let store = marain::engine::Store::open(&db).await.unwrap();
        let seed =
            "INSERT INTO content_item (id, code, score) SELECT 'i' || i, 'c' || i, i FROM generate_series(1, 3000) i";
        store.pool().execute(seed, &[]).await.unwrap();
        std::fs::write(site.join("schemas/item.schema.yaml"), ITEM.replace("type: integer", "type: text")).unwrap();
        let id = a.pending_id(&client).await;
        BigChange { dir, client, a, b, store, id, bouncer }
    }
}

/// PostgreSQL only (phases run only there). A type change of a big table,
/// approved on A, runs its phases there in small, slow batches; B shows how
/// far they are (from the database), pauses them (A's run stops between
/// batches and says who paused it), then aborts them: A's approval answers
/// 409 naming who aborted, the table is as it was, and the change waits on
/// both instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_change_on_one_instance_is_steered_from_another() {
    let BigChange { dir: _dir, client, a, b, store, id, bouncer: _bouncer } = BigChange::waiting(Route::Direct).await;
    assert_eq!(b.pending_id(&client).await, id, "one change, one id");
    let approving = tokio::spawn({
        let (client, base) = (client.clone(), a.base.clone());
        async move { approve_at(&client, &base, id).await }
    });
    // B sees A's run, as far as its last batch.
    let change = |instance: &Instance| {
        let url = format!("{}/changes/{id}", instance.base);
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let mut seen = json!(null);
    for _ in 0..400 {
        seen = change(&b).await;
        if seen["running"]["rows_done"].as_i64().is_some_and(|n| n > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(seen["running"]["rows_done"].as_i64().is_some_and(|n| n > 0), "B never saw A's run: {seen}");
    assert_eq!(seen["running"]["rows_total"].as_i64().map(|n| n >= 3000), Some(true), "{seen}");

    let control = |instance: &Instance, action: &str| {
        let url = format!("{}/changes/{id}/{action}", instance.base);
        let client = client.clone();
        async move { client.post(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(control(&b, "pause").await, 200);
    let paused = a.wait_status(&client, |s| s["pending"][0]["running"]["state"] == "paused").await;
    assert_eq!(paused["pending"][0]["running"]["state_by"], APPROVER, "{paused}");
    let held = paused["pending"][0]["running"]["rows_done"].clone();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(a.status(&client).await["pending"][0]["running"]["rows_done"], held, "a batch ran while paused");
    assert_eq!(control(&b, "pause").await, 409, "paused already");

    assert_eq!(control(&b, "abort").await, 200);
    let (code, body) = approving.await.unwrap();
    assert_eq!(code, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(&format!("aborted by {APPROVER}")), "{body}");
    let columns = store.table_columns("content_item").await.unwrap();
    assert_eq!(columns, ["id", "code", "score", "created_at", "updated_at"]);
    let (n,): (i64,) = store.pool().fetch_one("SELECT COUNT(*) FROM marain_online_runs", &[]).await.unwrap();
    assert_eq!(n, 0);
    for instance in [&a, &b] {
        let status = instance.wait_status(&client, |s| s["pending"].as_array().is_some_and(|p| p.len() == 1)).await;
        assert_eq!(status["pending"][0]["id"].as_u64(), Some(id), "the change waits again on {}", instance.name);
        assert!(status["pending"][0].get("running").is_none(), "{status}");
    }
    store.close().await;
}

/// PostgreSQL only (phases run only there). A type change of a big table,
/// approved on A, runs its phases there; A is killed (SIGKILL) in the middle
/// of its batches. Its lease ends with its session, and B, finding the run's
/// record with nobody holding the lease, applies the change again under the
/// recorded approval: it goes on from A's last recorded batch (the rows A's
/// batches wrote up to that key are not written again) and the change
/// commits once, as the one who approved it, every value converted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_online_change_of_an_instance_that_dies_is_finished_by_another() {
    finished_by_another(Route::Direct).await;
}

/// PostgreSQL only (a pooler sits in front of a database server).
/// The same through PgBouncer in transaction mode: the lease is a
/// session-level lock, taken over `--direct-database`, so it still ends with
/// the session of the instance that dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_online_change_of_an_instance_that_dies_is_finished_by_another_through_pgbouncer() {
    finished_by_another(Route::PgBouncer).await;
}

async fn finished_by_another(route: Route) {
    let BigChange { dir: _dir, client, a, b, store, id, bouncer } = BigChange::waiting(route).await;
    assert_eq!(b.pending_id(&client).await, id);
    let approving = tokio::spawn({
        let (client, base) = (client.clone(), a.base.clone());
        async move { client.post(format!("{base}/changes/{id}/approve")).json(&json!({"confirm": "item"})).send().await }
    });
    a.wait_status(&client, |s| s["pending"][0]["running"]["rows_done"].as_i64().is_some_and(|n| n >= 500)).await;
    let Instance { process, .. } = a;
    process.kill();
    assert!(approving.await.unwrap().is_err(), "A answered although it was killed");
    // Where A's record says it was, and which transaction last wrote each
    // row up to there: B's batches must not write those rows again.
    let at = "SELECT CAST(batch AS BIGINT), after_key, rows_done FROM marain_online_runs";
    let (batch, key, rows): (Option<i64>, Option<String>, i64) = store.pool().fetch_one(at, &[]).await.unwrap();
    assert_eq!(batch, Some(0), "A was in its batches");
    let key = key.expect("A recorded its last key");
    assert!(rows >= 500, "A recorded {rows} rows");
    // The batches copy into the shadow table, which the cut-over makes the
    // table: its rows keep the transaction that copied them.
    let written = |table: &str| format!("SELECT string_agg(xmin::text, ',' ORDER BY id) FROM {table} WHERE id <= $1");
    let (before,): (String,) =
        store.pool().fetch_one(&written("marain_shadow_item"), &[key.as_str().into()]).await.unwrap();

    // B finishes it: applied once, under the approver's name.
    let mut applied = Vec::new();
    for _ in 0..600 {
        applied = store.history().rows(Some("schemas/item.schema.yaml"), 10).await.unwrap();
        if applied.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(applied.len(), 2, "B never finished the change of the instance that died");
    assert_eq!(applied[0].actor, APPROVER);
    let mut columns = store.table_columns("content_item").await.unwrap();
    columns.sort();
    assert_eq!(columns, ["code", "created_at", "id", "score", "updated_at"], "a shadow column stayed");
    let shadows = "SELECT COUNT(*) FROM pg_tables WHERE tablename ~ '^marain_(shadow|gone)_'";
    let (shadows,): (i64,) = store.pool().fetch_one(shadows, &[]).await.unwrap();
    assert_eq!(shadows, 0, "a shadow table stayed");
    let (n,): (i64,) =
        store.pool().fetch_one("SELECT COUNT(*) FROM content_item WHERE score = substr(id, 2)", &[]).await.unwrap();
    assert_eq!(n, 3000, "every value converted");
    let (after,): (String,) = store.pool().fetch_one(&written("content_item"), &[key.as_str().into()]).await.unwrap();
    let again = before.split(',').zip(after.split(',')).filter(|(b, a)| b != a).count();
    assert_eq!(again, 0, "B wrote again {again} rows A's batches had done (up to {key}): it started over");
    let (left,): (i64,) = store
        .pool()
        .fetch_one("SELECT (SELECT COUNT(*) FROM marain_online_runs) + (SELECT COUNT(*) FROM pg_trigger WHERE NOT tgisinternal)", &[])
        .await
        .unwrap();
    assert_eq!(left, 0, "a run record or a trigger stayed");
    b.wait_status(&client, |s| s["pending"] == json!([]) && s["in_sync"] == json!(true)).await;
    store.close().await;
    assert_went_through(bouncer.as_ref());
}

/// The instances logged in through `bouncer`, when there is one.
fn assert_went_through(bouncer: Option<&PgBouncer>) {
    if let Some(bouncer) = bouncer {
        let log = bouncer.log();
        assert!(log.contains("login attempt"), "the instances never went through pgbouncer:\n{log}");
    }
}
