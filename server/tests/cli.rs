//! The offline CLI, run as a real process: `marain check` and `marain plan`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

#[path = "../../tests/support/fixtures.rs"]
mod fixtures;
use fixtures::upstream_fixtures;

mod support;
use support::Backend;

fn marain(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_marain")).args(args).env("NO_COLOR", "1").output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn case(name: &str, side: &str) -> String {
    repo().join("tests/cases").join(name).join(side).display().to_string()
}

fn site_with(dir: &Path, file: &str, text: &str) -> String {
    std::fs::create_dir_all(dir.join("schemas")).unwrap();
    std::fs::write(dir.join("schemas").join(file), text).unwrap();
    dir.display().to_string()
}

/// No database (`marain check` and `marain plan` read files only).
#[test]
fn check_accepts_the_example_site() {
    let (code, stdout, _) = marain(&["check", "--site", &repo().join("examples/site").display().to_string()]);
    assert_eq!(code, 0);
    assert!(stdout.contains("2 schema files and 2 config files valid"), "{stdout}");
}

/// No database (`marain check` and `marain plan` read files only).
#[test]
fn check_reports_file_line_column_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_with(dir.path(), "a.schema.yaml", "id: a\nname: A\nfields:\n  - id: t\n    type: strnig\n");
    let (code, _, stderr) = marain(&["check", "--site", &site]);
    assert_eq!(code, 2);
    assert!(stderr.contains("schemas/a.schema.yaml:5:5: unknown type `strnig`"), "{stderr}");
}

/// No database (`marain check` and `marain plan` read files only).
#[test]
fn plan_exit_codes_follow_severity() {
    let (code, stdout, _) = marain(&[
        "plan",
        "--from",
        &case("field_add_optional_text", "old"),
        "--to",
        &case("field_add_optional_text", "new"),
    ]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("Overall: SAFE"), "{stdout}");
    let (code, stdout, _) =
        marain(&["plan", "--from", &case("field_drop_optional", "old"), "--to", &case("field_drop_optional", "new")]);
    assert_eq!(code, 1);
    assert!(stdout.contains("~ schemas/article.schema.yaml (modify)  BREAKING"), "{stdout}");
    let same = case("field_drop_optional", "old");
    let (code, stdout, _) = marain(&["plan", "--from", &same, "--to", &same]);
    assert_eq!(code, 0);
    assert!(stdout.contains("No changes"), "{stdout}");
    let dir = tempfile::tempdir().unwrap();
    let bad = site_with(dir.path(), "a.schema.yaml", "id: A\n");
    let (code, _, stderr) = marain(&["plan", "--from", &same, "--to", &bad]);
    assert_eq!(code, 2);
    assert!(stderr.contains("schemas/a.schema.yaml:"), "{stderr}");
}

/// `check` and `plan` take data files like the other kinds: a bad record is
/// named by file, line and field, and a plan of two sites lists the data
/// file's upserts and deletes with their grades, after the schema they need.
/// No database (`marain check` and `marain plan` read files only).
#[test]
fn check_and_plan_cover_data_files() {
    let dir = tempfile::tempdir().unwrap();
    let schema = "id: category\nname: Category\nfields:\n  - id: title\n    type: text\n    required: true\n";
    let old = site_with(&dir.path().join("old"), "category.schema.yaml", schema);
    let new = site_with(&dir.path().join("new"), "category.schema.yaml", schema);
    let data = |site: &str, text: &str| {
        let path = Path::new(site).join("data/category");
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("main.yaml"), text).unwrap();
    };
    data(&old, "records:\n  - id: news\n    title: News\n  - id: sport\n    title: Sport\n");
    data(&new, "records:\n  - id: news\n    title: Latest news\n");
    let (code, stdout, stderr) = marain(&["check", "--site", &new]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("ok: 1 schema file and 1 data file valid"), "{stdout}");

    let (code, stdout, _) = marain(&["plan", "--from", &old, "--to", &new, "--format", "json"]);
    assert_eq!(code, 1, "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let change = &report["changes"][0];
    assert_eq!(change["file"], "data/category/main.yaml");
    assert_eq!(change["severity"], "BREAKING");
    let codes: Vec<&str> = change["hazards"].as_array().unwrap().iter().map(|h| h["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["record_changed", "record_removed"]);
    let sql = change["sql"].to_string();
    assert!(sql.contains("ON CONFLICT") && sql.contains("DELETE FROM"), "{sql}");

    data(&new, "records:\n  - id: news\n    title: 7\n    colour: red\n");
    let (code, _, stderr) = marain(&["check", "--site", &new]);
    assert_eq!(code, 2);
    assert!(stderr.contains("data/category/main.yaml:3:5: record `news`: `title` must be a string"), "{stderr}");
    assert!(
        stderr.contains("data/category/main.yaml:4:5: record `news`: `category` has no field `colour`"),
        "{stderr}"
    );
}

/// Invalid input with `--format json`: exit 2 and a JSON object on stdout
/// naming every problem's site, file, line and column, so a CI tool reads
/// every outcome the same way.
/// `marain --version` names the version and the commit it was built from.
/// No database (`marain --version`).
#[test]
fn version_names_the_commit() {
    let (code, out, err) = marain(&["--version"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("marain {} (commit ", env!("CARGO_PKG_VERSION"))), "{out}");
    let head = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output();
    match head {
        // Built inside a git checkout (as here and in CI): the commit is HEAD's.
        Ok(head) if head.status.success() && std::env::var("MARAIN_COMMIT").is_err() => {
            let head = String::from_utf8(head.stdout).unwrap();
            assert!(out.contains(&format!("(commit {})", head.trim())), "{out} is not HEAD {head}");
        }
        _ => assert!(out.contains("(commit "), "{out}"),
    }
}

/// No database (`marain check` and `marain plan` read files only).
#[test]
fn plan_reports_invalid_input_as_json() {
    let same = case("field_drop_optional", "old");
    let dir = tempfile::tempdir().unwrap();
    let bad = site_with(dir.path(), "a.schema.yaml", "id: a\nname: A\nfields:\n  - id: t\n    type: strnig\n");
    let missing = dir.path().join("nowhere").display().to_string();
    let (code, stdout, _) = marain(&["plan", "--from", &missing, "--to", &bad, "--format", "json"]);
    assert_eq!(code, 2, "{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["severity"], "REJECTED", "{report}");
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{report}");
    assert_eq!(errors[0]["site"], missing.as_str());
    assert_eq!(errors[0]["file"], Value::Null);
    assert_eq!(errors[0]["message"], "the site directory does not exist");
    assert_eq!(errors[1]["file"], "schemas/a.schema.yaml");
    assert_eq!(errors[1]["line"], 5);
    assert_eq!(errors[1]["column"], 5);
    assert!(errors[1]["message"].as_str().unwrap().contains("unknown type `strnig`"), "{report}");
    let (code, stdout, _) = marain(&["plan", "--from", &same, "--to", &same, "--format", "json"]);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap()["severity"], "SAFE");
}

/// No database (`marain check` and `marain plan` read files only).
#[test]
fn plan_json_has_the_documented_shape() {
    let (code, stdout, _) = marain(&[
        "plan",
        "--from",
        &case("field_drop_optional", "old"),
        "--to",
        &case("field_drop_optional", "new"),
        "--format",
        "json",
    ]);
    assert_eq!(code, 1);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["severity"], "BREAKING");
    let change = &report["changes"][0];
    assert_eq!(change["file"], "schemas/article.schema.yaml");
    assert_eq!(change["kind"], "modify");
    assert_eq!(change["severity"], "BREAKING");
    assert_eq!(change["hazards"][0]["code"], "field_dropped");
    assert_eq!(change["hazards"][0]["severity"], "BREAKING");
    assert!(change["sql"][1].as_str().unwrap().contains("DROP COLUMN \"body\""));
    assert!(change["rollback_sql"][0].as_str().unwrap().contains("ADD COLUMN \"body\""));
}

/// The upstream corpus against an empty site: a SAFE creation plan for all five
/// entities and three configs.
/// No database (`marain check` and `marain plan` read files only).
#[test]
fn plan_of_the_upstream_corpus_creates_every_entity_safely() {
    let Some(corpus) = upstream_fixtures(&repo(), "plan_of_the_upstream_corpus_creates_every_entity_safely") else {
        return;
    };
    let empty = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = marain(&[
        "plan",
        "--from",
        &empty.path().display().to_string(),
        "--to",
        &corpus.display().to_string(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["severity"], "SAFE");
    let files: Vec<&str> = report["changes"].as_array().unwrap().iter().map(|c| c["file"].as_str().unwrap()).collect();
    // Five entities and the three configs (config.system.dev.yaml is dev's).
    assert_eq!(files.len(), 8, "{files:?}");
    for config in ["config/config.api.yaml", "config/config.content.yaml", "config/config.system.dev.yaml"] {
        assert!(files.contains(&config), "{files:?}");
    }
    assert!(report["changes"].as_array().unwrap().iter().all(|c| c["kind"] == "create"));
    // links before user (user.public_links refers to it), user before the rest.
    let pos = |f: &str| files.iter().position(|x| *x == f).unwrap();
    assert!(pos("schemas/links.schema.yaml") < pos("schemas/user.schema.yaml"));
    assert!(pos("schemas/user.schema.yaml") < pos("schemas/snippet.schema.yaml"));

    let (code, stdout, stderr) = marain(&[
        "plan",
        "--from",
        &empty.path().display().to_string(),
        "--to",
        &corpus.display().to_string(),
        "--dialect",
        "postgres",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["severity"], "SAFE");
    let sql = report["changes"].to_string();
    assert!(sql.contains("TIMESTAMPTZ") && sql.contains("content_user_managed_by_id_fkey"), "{sql}");
}

async fn history_verify_on_an_empty_database_is_intact(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.prepare(dir.path()).await;
    let (code, stdout, stderr) = marain(&["history", "verify", "--database", &url]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("0 history rows, chain intact"), "{stdout}");
    let (code, stdout, _) = marain(&["history", "--database", &url]);
    assert_eq!(code, 0);
    assert!(stdout.is_empty(), "{stdout}");
}

/// A database with history: the user schema applied with `bio`, a row with a
/// bio, then `bio` dropped (approved), which backs the values up.
async fn database_with_a_backup(dir: &Path, backend: Backend) -> String {
    let user = "id: user\nname: User\nfields:\n  - id: username\n    type: text\n";
    let site = site_with(dir, "user.schema.yaml", &format!("{user}  - id: bio\n    type: long_text\n"));
    let db = backend.prepare(dir).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut config = marain::engine::EngineConfig::new(&site, &db);
    config.secure_log = Some(dir.join("secure.log"));
    let (engine, task) = marain::engine::Coordinator::start(config, async move {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    engine
        .store()
        .pool()
        .execute("INSERT INTO content_user (id, username, bio) VALUES ('u1', 'ann', 'hello')", &[])
        .await
        .unwrap();
    let mut events = engine.subscribe();
    std::fs::write(dir.join("schemas/user.schema.yaml"), user).unwrap();
    let pending = loop {
        let e = events.recv().await.unwrap();
        if e.kind == marain::engine::EventKind::Pending {
            break e;
        }
    };
    let approval = marain::engine::Approval { actor: "ann".into(), reason: None, confirm: Some("user".into()) };
    engine.approve(pending.change_id.unwrap(), approval).await.unwrap();
    stop.send(()).unwrap();
    task.await.unwrap();
    engine.store().close().await;
    db
}

/// `marain history verify` passes on an intact chain and exits 1 naming the row
/// once a history row is edited.
async fn history_verify_exits_1_on_a_tampered_chain(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = database_with_a_backup(dir.path(), backend).await;
    let (code, stdout, _) = marain(&["history", "verify", "--database", &db]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("2 history rows, chain intact"), "{stdout}");
    let (code, stdout, _) = marain(&["history", "--database", &db]);
    assert_eq!(code, 0);
    assert!(stdout.contains("schemas/user.schema.yaml") && stdout.contains("by ann"), "{stdout}");

    let store = marain::engine::Store::open(&db).await.unwrap();
    store.pool().execute("UPDATE marain_history SET actor = 'mallory' WHERE version = 2", &[]).await.unwrap();
    store.close().await;
    let (code, _, stderr) = marain(&["history", "verify", "--database", &db]);
    assert_eq!(code, 1);
    assert!(stderr.contains("history row 2 breaks the chain") && stderr.contains("edited"), "{stderr}");
}

/// The database records the newest line of `secure.log`: a log whose tail
/// was cut passes its own chain check, and `marain history verify` still
/// finds it out.
async fn a_secure_log_cut_short_fails_history_verify(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = database_with_a_backup(dir.path(), backend).await;
    let log = dir.path().join("secure.log");
    let path = log.display().to_string();
    let (code, stdout, stderr) = marain(&["history", "verify", "--database", &db, "--secure-log", &path]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("secure-log lines, chain intact"), "{stdout}");

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 2, "{text}");
    let cut = lines[..lines.len() - 2].iter().map(|l| format!("{l}\n")).collect::<String>();
    std::fs::write(&log, cut).unwrap();
    assert!(marain::engine::secure_log::verify(&log).is_ok(), "the chain alone cannot tell");
    let (code, _, stderr) = marain(&["history", "verify", "--database", &db, "--secure-log", &path]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("the log ends before the newest line the database recorded"), "{stderr}");
}

/// `marain backups` lists the backup of the dropped values with its rows;
/// `marain backups prune --older-than-days 0` drops it, and the listing says so.
async fn backups_are_listed_and_pruned_from_the_command_line(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = database_with_a_backup(dir.path(), backend).await;
    let (code, stdout, _) = marain(&["backups", "--database", &db]);
    assert_eq!(code, 0);
    let line = stdout.lines().find(|l| l.contains("content_user__bio")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains("schemas/user.schema.yaml") && line.contains("v2") && line.ends_with("1 row"), "{line}");
    let (code, stdout, _) = marain(&["backups", "prune", "--older-than-days", "0", "--database", &db]);
    assert_eq!(code, 0);
    assert!(stdout.contains("1 backup table pruned"), "{stdout}");
    let (_, stdout, _) = marain(&["backups", "--database", &db]);
    assert!(stdout.lines().any(|l| l.contains("content_user__bio") && l.ends_with("pruned")), "{stdout}");
    let (code, _, stderr) = marain(&["backups", "--database", "sqlite:///nonexistent/dir/db.sqlite"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
}

backend_tests!(
    tokens_and_accounts_are_managed_from_the_command_line,
    history_verify_on_an_empty_database_is_intact,
    history_verify_exits_1_on_a_tampered_chain,
    a_secure_log_cut_short_fails_history_verify,
    backups_are_listed_and_pruned_from_the_command_line,
);

/// `marain token create --expires-in`, `token list`, `token revoke` and
/// `admin remove`, on the real binary.
async fn tokens_and_accounts_are_managed_from_the_command_line(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = backend.prepare(dir.path()).await;
    let (code, secret, _) =
        marain(&["token", "create", "--name", "ci", "--role", "viewer", "--expires-in", "30d", "--database", &db]);
    assert_eq!(code, 0);
    assert!(secret.trim().starts_with("mrn_"), "{secret}");
    let (code, listed, _) = marain(&["token", "list", "--database", &db]);
    assert_eq!(code, 0);
    let line = listed.lines().find(|l| l.starts_with("ci ")).unwrap_or_else(|| panic!("{listed}"));
    assert!(line.contains("viewer") && !line.contains("expires never"), "{line}");
    assert!(!listed.contains(secret.trim()), "a listing never shows a secret");
    let (code, _, _) = marain(&["token", "revoke", "--name", "ci", "--database", &db]);
    assert_eq!(code, 0);
    let (_, listed, _) = marain(&["token", "list", "--database", &db]);
    assert!(!listed.contains("ci "), "{listed}");
    let (code, _, stderr) = marain(&["token", "revoke", "--name", "ci", "--database", &db]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no token `ci`"), "{stderr}");
    let (code, _, stderr) =
        marain(&["token", "create", "--name", "x", "--role", "viewer", "--expires-in", "soon", "--database", &db]);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = marain(&["admin", "remove", "--username", "nobody", "--database", &db]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no account `nobody`"), "{stderr}");
}
