//! `system.logging.level` changes the running process's log filter, observed on
//! the real binary's output.

use std::process::Command;
use std::time::{Duration, Instant};

mod support;

use support::{Backend, Running};

crate::backend_tests!(the_log_level_follows_the_system_config, the_log_format_follows_the_system_config);

const USER: &str = "id: user\nname: User\nfields:\n  - id: username\n    type: text\n";

fn system(level: &str) -> String {
    format!("id: system\nvalues:\n  app:\n    name: Test\n  logging:\n    level: {level}\n")
}

/// A temp site with the `user` schema and `system` config `text`, and a new
/// database of `backend` for it.
async fn site_with_system(text: &str, backend: Backend) -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("schemas")).unwrap();
    std::fs::create_dir_all(site.join("config")).unwrap();
    std::fs::write(site.join("schemas/user.schema.yaml"), USER).unwrap();
    std::fs::write(site.join("config/config.system.yaml"), text).unwrap();
    let db = backend.prepare(dir.path()).await;
    (dir, site, db)
}

async fn the_log_level_follows_the_system_config(backend: Backend) {
    let (dir, site, db) = site_with_system(&system("info"), backend).await;
    // The body blocks (processes, channels, its own client runtime).
    tokio::task::spawn_blocking(move || log_level_follows(dir, site, db)).await.unwrap();
}

fn log_level_follows(dir: tempfile::TempDir, site: std::path::PathBuf, db: String) {
    // `marain token create`, the real command, makes the reader's token.
    let out = Command::new(env!("CARGO_BIN_EXE_marain"))
        .args(["token", "create", "--name", "reader", "--role", "viewer", "--database", &db])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("mrn_"), "{token}");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_marain"));
    serve
        .args(["serve", "--site"])
        .arg(&site)
        .arg("--database")
        .arg(&db)
        .args(["--addr", "127.0.0.1:0", "--secure-log"])
        .arg(dir.path().join("secure.log"))
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    let server = Running::spawn(serve);
    let lines = &server.lines;
    let addr = &server.addr;
    let list = format!("http://{addr}/api/v1/entity/user");
    let get = |url: &str| -> Option<u16> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let client = reqwest::Client::new();
            client.get(url).bearer_auth(&token).send().await.ok().map(|r| r.status().as_u16())
        })
    };
    // Waits for a line containing `needle`, requesting the list between tries.
    let saw = |needle: &str, within: Duration| -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let _ = get(&list);
            while let Ok(line) = lines.recv_timeout(Duration::from_millis(50)) {
                if line.contains(needle) {
                    return true;
                }
            }
        }
        false
    };

    assert!(!saw("content list", Duration::from_secs(1)), "debug lines are shown at level info");
    std::fs::write(site.join("config/config.system.yaml"), system("debug")).unwrap();
    assert!(saw("content list", Duration::from_secs(10)), "level debug never took effect");
    std::fs::write(site.join("config/config.system.yaml"), system("warn")).unwrap();
    assert!(saw("filter=warn", Duration::from_secs(10)), "the warn level was never applied");
    while lines.try_recv().is_ok() {}
    assert!(!saw("content list", Duration::from_secs(1)), "debug lines still shown at level warn");
    server.kill();
}

/// `system.logging.format: json` turns the running process's lines into one
/// JSON object each, and `text` turns them back.
async fn the_log_format_follows_the_system_config(backend: Backend) {
    let text = "id: system\nvalues:\n  logging:\n    format: text\n";
    let (dir, site, db) = site_with_system(text, backend).await;
    tokio::task::spawn_blocking(move || log_format_follows(dir, site, db)).await.unwrap();
}

fn log_format_follows(_dir: tempfile::TempDir, site: std::path::PathBuf, db: String) {
    let config = site.join("config/config.system.yaml");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_marain"));
    serve
        .args(["serve", "--site"])
        .arg(&site)
        .arg("--database")
        .arg(&db)
        .args(["--addr", "127.0.0.1:0", "--debounce-ms", "10", "--secure-log"])
        .arg(site.with_file_name("secure.log"))
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    let server = Running::spawn(serve);
    // Switches the format, then saves a new entity and returns the line that
    // logs it: each save logs an `applied` event in the format in force.
    let saved_in = |format: &str, entity: &str| -> String {
        std::fs::write(&config, format!("id: system\nvalues:\n  logging:\n    format: {format}\n")).unwrap();
        server.wait_line("log format changed", Duration::from_secs(10));
        let file = format!("schemas/{entity}.schema.yaml");
        let text = format!("id: {entity}\nname: {entity}\nfields:\n  - id: body\n    type: text\n");
        std::fs::write(site.join(&file), text).unwrap();
        server.wait_line(&file, Duration::from_secs(10))
    };
    let line = saved_in("json", "note");
    let object: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
    assert_eq!(object["level"], "INFO", "{line}");
    assert_eq!(object["file"], "schemas/note.schema.yaml", "{line}");
    assert!(object["timestamp"].is_string(), "{line}");
    let line = saved_in("text", "tag");
    assert!(serde_json::from_str::<serde_json::Value>(&line).is_err(), "still JSON: {line}");
    assert!(line.contains("INFO"), "{line}");
    server.kill();
}
