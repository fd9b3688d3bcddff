//! The pipeline end to end: real files in a temp dir, the real watcher, a real
//! database. Every test runs on SQLite and on PostgreSQL (`backend_tests!`).

mod support;

use marain::engine::{Approval, EngineError, EventKind, FileState};
use support::{Backend, TestSite, ARTICLE, USER};

const ARTICLE_PATH: &str = "schemas/article.schema.yaml";
const USER_PATH: &str = "schemas/user.schema.yaml";

async fn new_entities_apply_by_themselves_in_dependency_order(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    site.write(ARTICLE_PATH, ARTICLE);
    site.write(USER_PATH, USER);
    site.wait_for(EventKind::Applied, ARTICLE_PATH).await;

    let store = site.coordinator.store();
    assert_eq!(
        store.table_columns("content_article").await.unwrap(),
        ["id", "title", "body", "author_id", "created_at", "updated_at"]
    );
    assert_eq!(store.table_columns("content_user").await.unwrap(), ["id", "username", "created_at", "updated_at"]);
    let history = site.coordinator.history(None, 10).await.unwrap();
    let mut files: Vec<&str> = history.iter().map(|r| r.file.as_str()).collect();
    files.sort();
    assert_eq!(files, [ARTICLE_PATH, USER_PATH]);
    let article = history.iter().find(|r| r.file == ARTICLE_PATH).unwrap();
    assert_eq!(article.version, 1);
    assert_eq!(article.yaml.as_deref(), Some(ARTICLE));
    assert_eq!(article.hash, marain::hash::sha256_hex(ARTICLE.as_bytes()));
    assert!(article.sql[0].starts_with("CREATE TABLE \"content_article\""), "{:?}", article.sql);
    assert!(site.coordinator.snapshot().in_sync());
    site.stop().await;
}

async fn optional_field_applies_and_dropped_field_waits_for_approval(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    site.write(USER_PATH, USER);
    site.write(ARTICLE_PATH, ARTICLE);
    site.wait_for(EventKind::Applied, ARTICLE_PATH).await;
    site.exec("INSERT INTO content_user (id, username) VALUES ('u1', 'ann')").await;
    site.exec("INSERT INTO content_article (id, title, body, author_id) VALUES ('a1', 'Hello', 'Lots of words', 'u1')")
        .await;

    // SAFE: a new optional field is applied without anyone.
    let with_summary = format!("{ARTICLE}  - id: summary\n    type: text\n");
    site.write(ARTICLE_PATH, &with_summary);
    let applied = site.wait_for(EventKind::Applied, ARTICLE_PATH).await;
    assert_eq!(applied.version, Some(2));
    assert!(site.coordinator.store().table_columns("content_article").await.unwrap().contains(&"summary".to_string()));

    // BREAKING: dropping `body` waits.
    let without_body = with_summary.replace("  - id: body\n    type: long_text\n", "");
    site.write(ARTICLE_PATH, &without_body);
    let pending = site.wait_for(EventKind::Pending, ARTICLE_PATH).await;
    assert_eq!(pending.severity, Some(marain::Severity::Breaking));
    let snapshot = site.coordinator.snapshot();
    assert_eq!(snapshot.pending.len(), 1);
    assert!(!snapshot.in_sync());
    assert_eq!(snapshot.files.iter().find(|f| f.path == ARTICLE_PATH).unwrap().state, FileState::Pending);
    assert!(site.coordinator.store().table_columns("content_article").await.unwrap().contains(&"body".to_string()));

    let id = pending.change_id.unwrap();
    let unconfirmed = Approval { actor: "tester".into(), reason: None, confirm: Some("wrong".into()) };
    let refused = site.coordinator.approve(id, unconfirmed).await.unwrap_err();
    assert!(
        matches!(refused, EngineError::ConfirmationRequired { ref expected, .. } if expected == "article"),
        "{refused}"
    );
    let approval = Approval {
        actor: "tester".into(),
        reason: Some("body moves to blocks".into()),
        confirm: Some("article".into()),
    };
    let row = site.coordinator.approve(id, approval).await.unwrap();
    assert_eq!(row.version, 3);
    assert_eq!(row.actor, "tester");
    let columns = site.coordinator.store().table_columns("content_article").await.unwrap();
    assert!(!columns.contains(&"body".to_string()), "{columns:?}");

    // The dropped values were copied to the backup the history row names.
    assert_eq!(row.backups.len(), 1);
    let backup = backend.dialect().table(&row.backups[0]);
    let kept = site.text(&format!("SELECT body FROM {backup} WHERE id = 'a1'")).await;
    assert_eq!(kept, "Lots of words");
    // The other data survived.
    let title = site.text("SELECT title FROM content_article WHERE id = 'a1'").await;
    assert_eq!(title, "Hello");
    assert!(site.coordinator.snapshot().in_sync());
    site.stop().await;
}

async fn invalid_yaml_is_rejected_and_last_good_state_stays_live(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    site.write(USER_PATH, USER);
    site.wait_for(EventKind::Applied, USER_PATH).await;

    site.write(USER_PATH, "id: user\nname: User\nfields:\n  - id: username\n    type: [broken\n");
    let rejected = site.wait_for(EventKind::Rejected, USER_PATH).await;
    assert!(rejected.message.starts_with("schemas/user.schema.yaml:"), "{}", rejected.message);
    let snapshot = site.coordinator.snapshot();
    assert_eq!(snapshot.rejected.len(), 1);
    assert!(snapshot.rejected[0].line >= 5, "{:?}", snapshot.rejected[0]);
    assert!(snapshot.applied.entity_file("user").is_some(), "last good state stays live");

    // Fixing the file back clears the rejection without a new version.
    site.write(USER_PATH, USER);
    site.wait_for(EventKind::Detected, USER_PATH).await;
    site.coordinator.quiet().await;
    let snapshot = site.coordinator.snapshot();
    assert!(snapshot.rejected.is_empty() && snapshot.in_sync(), "{:?}", snapshot.rejected);
    assert_eq!(site.coordinator.history(Some(USER_PATH), 10).await.unwrap().len(), 1);
    site.stop().await;
}

async fn reference_to_undefined_entity_is_rejected_naming_both_files(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    site.write(ARTICLE_PATH, ARTICLE);
    let rejected = site.wait_for(EventKind::Rejected, ARTICLE_PATH).await;
    assert!(rejected.message.contains("schemas/user.schema.yaml"), "{}", rejected.message);
    assert!(site.coordinator.store().table_columns("content_article").await.unwrap().is_empty());
    site.stop().await;
}

async fn files_edited_while_down_become_changes_at_start_up(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    site.write(USER_PATH, USER);
    site.wait_for(EventKind::Applied, USER_PATH).await;
    let dir = site.stop().await;

    // While the server is down: one SAFE edit, one BREAKING deletion.
    let root = dir.path().join("site");
    std::fs::write(root.join(USER_PATH), format!("{USER}  - id: bio\n    type: long_text\n")).unwrap();
    let site = TestSite::start_on(dir, backend).await;
    let snapshot = site.coordinator.snapshot();
    assert!(snapshot.pending.is_empty(), "{:?}", snapshot.pending);
    assert_eq!(snapshot.files[0].version, Some(2));
    assert!(site.coordinator.store().table_columns("content_user").await.unwrap().contains(&"bio".to_string()));
    site.exec("INSERT INTO content_user (id, username) VALUES ('u1', 'ann')").await;
    let dir = site.stop().await;

    std::fs::remove_file(dir.path().join("site").join(USER_PATH)).unwrap();
    let site = TestSite::start_on(dir, backend).await;
    let snapshot = site.coordinator.snapshot();
    assert_eq!(snapshot.pending.len(), 1);
    assert_eq!(snapshot.pending[0].severity, marain::Severity::Breaking);
    assert!(!snapshot.in_sync());
    // Restarting again does not apply or duplicate anything.
    let dir = site.stop().await;
    let site = TestSite::start_on(dir, backend).await;
    assert_eq!(site.coordinator.snapshot().pending.len(), 1);
    assert_eq!(site.coordinator.history(Some(USER_PATH), 10).await.unwrap().len(), 2);
    site.stop().await;
}

async fn file_waiting_on_a_missing_entity_applies_once_it_arrives(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    site.write(ARTICLE_PATH, ARTICLE);
    site.wait_for(EventKind::Rejected, ARTICLE_PATH).await;
    site.write(USER_PATH, USER);
    site.wait_for(EventKind::Applied, ARTICLE_PATH).await;
    let snapshot = site.coordinator.snapshot();
    assert!(snapshot.in_sync(), "{:?}", snapshot.rejected);
    assert_eq!(snapshot.applied.schema_count(), 2);
    site.stop().await;
}

/// `quiet` returns only once what was on disk when it was called has been
/// handled: a file written just before it has applied, a file removed has
/// waited out its debounce and become a pending deletion, without any event
/// awaited first.
async fn quiet_waits_for_what_was_written_to_be_handled(backend: Backend) {
    let site = TestSite::start(backend).await;
    std::fs::write(site.root().join(USER_PATH), USER).unwrap();
    site.coordinator.quiet().await;
    assert!(site.coordinator.snapshot().applied.schema_file(USER_PATH).is_some(), "quiet before the file applied");
    site.exec("INSERT INTO content_user (id, username) VALUES ('u1', 'ann')").await;
    std::fs::remove_file(site.root().join(USER_PATH)).unwrap();
    site.coordinator.quiet().await;
    let snapshot = site.coordinator.snapshot();
    assert!(snapshot.pending.iter().any(|c| c.file == USER_PATH), "quiet before the deletion was planned");
    site.stop().await;
}

/// Reading files raises inotify access events; the engine must not react to its
/// own reads (that once looped, re-detecting every file every debounce period).
async fn engine_is_quiet_when_nothing_changes(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    site.write(USER_PATH, USER);
    site.wait_for(EventKind::Applied, USER_PATH).await;
    site.coordinator.rescan().await.unwrap();
    site.coordinator.quiet().await;
    let mut noise = Vec::new();
    while let Ok(event) = site.events.try_recv() {
        noise.push(event);
    }
    assert!(noise.is_empty(), "events without any file change: {noise:#?}");
    assert_eq!(site.coordinator.history(None, 10).await.unwrap().len(), 1);
    site.stop().await;
}

async fn probes_block_a_required_field_on_rows_and_allow_it_on_an_empty_table(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    site.write(USER_PATH, USER);
    site.wait_for(EventKind::Applied, USER_PATH).await;

    // Empty table: the new required field cannot miss a value, so it is SAFE.
    site.write(USER_PATH, &format!("{USER}  - id: email\n    type: text\n    required: true\n"));
    let applied = site.wait_for(EventKind::Applied, USER_PATH).await;
    assert_eq!(applied.severity, Some(marain::Severity::Safe));

    // With a row, the next one is BLOCKED, says why, and cannot be approved.
    site.exec("INSERT INTO content_user (id, username, email) VALUES ('u1', 'ann', 'a@x')").await;
    site.write(USER_PATH, &format!("{USER}  - id: email\n    type: text\n    required: true\n  - id: phone\n    type: text\n    required: true\n"));
    let pending = site.wait_for(EventKind::Pending, USER_PATH).await;
    assert_eq!(pending.severity, Some(marain::Severity::Blocked));
    let change = site.coordinator.snapshot().pending[0].clone();
    assert!(
        change.hazards.iter().any(|h| h.message.starts_with("1 row has no value for the new required field `phone`")),
        "{:?}",
        change.hazards
    );
    let refused =
        site.coordinator.approve(change.id, Approval { actor: "t".into(), ..Default::default() }).await.unwrap_err();
    assert!(matches!(refused, EngineError::NotApprovable { .. }), "{refused}");
    assert!(!site.coordinator.store().table_columns("content_user").await.unwrap().contains(&"phone".to_string()));
    site.stop().await;
}

async fn dropping_an_empty_field_is_a_warning_and_data_arriving_later_is_caught(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    site.write(USER_PATH, &format!("{USER}  - id: bio\n    type: long_text\n"));
    site.wait_for(EventKind::Applied, USER_PATH).await;
    site.exec("INSERT INTO content_user (id, username) VALUES ('u1', 'ann')").await;

    // No value of `bio` exists: nothing is lost, so WARNING, not BREAKING.
    site.write(USER_PATH, USER);
    let pending = site.wait_for(EventKind::Pending, USER_PATH).await;
    assert_eq!(pending.severity, Some(marain::Severity::Warning));

    // A value arrives before approval: the apply re-probes inside its transaction,
    // refuses, and the change is graded afresh as BREAKING.
    site.exec("UPDATE content_user SET bio = 'hello' WHERE id = 'u1'").await;
    let approval = Approval { actor: "t".into(), ..Default::default() };
    let refused = site.coordinator.approve(pending.change_id.unwrap(), approval).await.unwrap_err();
    assert!(refused.to_string().contains("changed since approval"), "{refused}");
    let snapshot = site.coordinator.snapshot();
    assert_eq!(snapshot.pending.len(), 1, "re-planned, not stranded");
    assert_eq!(snapshot.pending[0].severity, marain::Severity::Breaking);
    assert!(snapshot.failed.is_empty());
    let bio = site.text("SELECT bio FROM content_user").await;
    assert_eq!(bio, "hello");
    site.stop().await;
}

async fn config_files_are_versioned_graded_by_key_path_and_selected_by_environment(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    let api = "config/config.api.yaml";
    let text = "id: api\nprovider: api\nvalues:\n  rate_limit:\n    enabled: false\n    requests_per_minute: 60\n";
    site.write(api, text);
    let created = site.wait_for(EventKind::Applied, api).await;
    assert_eq!(created.severity, Some(marain::Severity::Safe));
    assert_eq!(site.coordinator.snapshot().applied.config("api").unwrap().doc.values["rate_limit"]["enabled"], false);

    // A scalar changing value but not type: SAFE, applied, recorded.
    site.write(api, &text.replace("enabled: false", "enabled: true"));
    let changed = site.wait_for(EventKind::Applied, api).await;
    assert_eq!(changed.version, Some(2));
    assert!(changed.message.contains("api.rate_limit.enabled: false → true"), "{}", changed.message);
    assert_eq!(site.coordinator.snapshot().applied.config("api").unwrap().doc.values["rate_limit"]["enabled"], true);

    // A key removed: WARNING, waits.
    site.write(api, "id: api\nprovider: api\nvalues:\n  rate_limit:\n    enabled: true\n");
    let pending = site.wait_for(EventKind::Pending, api).await;
    assert_eq!(pending.severity, Some(marain::Severity::Warning));
    assert!(pending.message.contains("- api.rate_limit.requests_per_minute"), "{}", pending.message);

    // Another environment's file is watched but never applied; dev's is.
    site.write("config/config.system.prod.yaml", "id: system\nvalues:\n  logging: {level: warn}\n");
    site.write("config/config.system.dev.yaml", "id: system\nvalues:\n  logging: {level: debug}\n");
    site.wait_for(EventKind::Applied, "config/config.system.dev.yaml").await;
    let snapshot = site.coordinator.snapshot();
    assert_eq!(snapshot.applied.config("system").unwrap().doc.values["logging"]["level"], "debug");
    assert!(site.coordinator.history(Some("config/config.system.prod.yaml"), 10).await.unwrap().is_empty());

    // A config whose file name and id disagree is rejected, naming both.
    site.write("config/config.cache.yaml", "id: kache\n");
    let rejected = site.wait_for(EventKind::Rejected, "config/config.cache.yaml").await;
    assert!(rejected.message.contains("file name says config `cache`"), "{}", rejected.message);
    site.stop().await;
}

/// Hostile files are refused before they cost memory, and the last good version
/// stays live. (Durations are printed, not asserted: the machines are shared.)
async fn oversized_files_alias_bombs_and_deep_nesting_are_rejected(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    let api = "config/config.api.yaml";
    site.write(api, "id: api\nvalues: {a: 1}\n");
    site.wait_for(EventKind::Applied, api).await;

    let mut bomb = String::from("id: api\nvalues:\n  l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let refs = vec![format!("*l{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("  l{i}: &l{i} [{refs}]\n"));
    }
    // Under serde_yaml's own repetition limit: a million values from 7 KB.
    let million = format!(
        "id: api\nvalues:\n  l0: &l0 [{}]\n  l1: [{}]\n",
        vec!["x"; 1000].join(", "),
        vec!["*l0"; 1000].join(", ")
    );
    let deep = format!("id: api\nvalues:\n  deep: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let huge = format!("id: api\nvalues:\n  blob: \"{}\"\n", "x".repeat(5 * 1024 * 1024));
    for (name, text, expect) in [
        ("alias bomb", bomb, "config/config.api.yaml:6:12:"),
        ("a million values from 7 KB", million, "config/config.api.yaml:4:"),
        ("10,000-deep nesting", deep, "recursion limit"),
        ("5 MiB file", huge, "over the 1048576-byte limit"),
    ] {
        let started = std::time::Instant::now();
        site.write(api, &text);
        let rejected = site.wait_for(EventKind::Rejected, api).await;
        eprintln!("{name}: rejected {:?} after the write", started.elapsed());
        assert!(rejected.message.contains(expect), "{name}: {}", rejected.message);
        if name.contains("alias") || name.contains("million") {
            assert!(
                rejected.message.contains("past what its aliases may expand it to"),
                "{name}: {}",
                rejected.message
            );
        }
        let live = site.coordinator.snapshot();
        assert_eq!(live.applied.config("api").unwrap().doc.values["a"], 1, "{name}: the last good version stays live");
    }
    assert_eq!(site.coordinator.history(Some(api), 10).await.unwrap().len(), 1);
    site.stop().await;
}

async fn events_reach_the_secure_log_and_the_history_chain_detects_tampering(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    site.write(USER_PATH, USER);
    site.wait_for(EventKind::Applied, USER_PATH).await;
    site.write(USER_PATH, &format!("{USER}  - id: bio\n    type: text\n"));
    site.wait_for(EventKind::Applied, USER_PATH).await;
    site.write(ARTICLE_PATH, ARTICLE);
    site.wait_for(EventKind::Applied, ARTICLE_PATH).await;

    // Readable by this user only: the log, and a SQLite database with its
    // `-wal` and `-shm` files.
    use std::os::unix::fs::PermissionsExt;
    let mut private = vec![site.dir.path().join("secure.log")];
    if backend == Backend::Sqlite {
        private.extend(["marain.db", "marain.db-wal", "marain.db-shm"].map(|f| site.dir.path().join(f)));
    }
    for path in private {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
    }

    let log = std::fs::read_to_string(site.dir.path().join("secure.log")).unwrap();
    let events: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let applied: Vec<(&str, i64)> = events
        .iter()
        .filter(|e| e["kind"] == "applied")
        .map(|e| (e["file"].as_str().unwrap(), e["version"].as_i64().unwrap()))
        .collect();
    assert_eq!(applied, [(USER_PATH, 1), (USER_PATH, 2), (ARTICLE_PATH, 1)]);
    assert!(events.iter().any(|e| e["kind"] == "detected"));

    let store = site.coordinator.store();
    assert_eq!(store.history().verify_chain().await, Ok(3));
    // Editing a recorded row breaks its own hash…
    site.exec("UPDATE marain_history SET actor = 'mallory' WHERE file = 'schemas/user.schema.yaml' AND version = 2")
        .await;
    let broken = store.history().verify_chain().await.unwrap_err();
    assert!(broken.reason.contains("edited"), "{broken}");
    site.exec("UPDATE marain_history SET actor = 'watcher' WHERE file = 'schemas/user.schema.yaml' AND version = 2")
        .await;
    assert_eq!(store.history().verify_chain().await, Ok(3));
    // Cutting the newest row leaves an intact, shorter chain: the head says so.
    let newest = site.count("SELECT MAX(id) FROM marain_history").await;
    site.exec(&format!("DELETE FROM marain_history WHERE id = {newest}")).await;
    let broken = store.history().verify_chain().await.unwrap_err();
    assert!(broken.reason.contains("removed from the end"), "{broken}");
    // …and deleting one breaks the link of the row after it.
    site.exec("DELETE FROM marain_history WHERE file = 'schemas/user.schema.yaml' AND version = 2").await;
    let broken = store.history().verify_chain().await.unwrap_err();
    assert!(broken.reason.contains("removed"), "{broken}");
    site.stop().await;
}

async fn rollback_after_a_dropped_field_restores_every_value_and_the_file(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    let v1 = format!("{USER}  - id: bio\n    type: long_text\n  - id: tags\n    type: text\n    cardinality: -1\n");
    site.write(USER_PATH, &v1);
    site.wait_for(EventKind::Applied, USER_PATH).await;
    site.exec(
        "INSERT INTO content_user (id, username, bio) \
         SELECT 'u' || n, 'user' || n, 'biography number ' || n FROM (WITH RECURSIVE s(n) AS \
         (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < 9999) SELECT n FROM s) AS numbers",
    )
    .await;
    site.exec(
        "INSERT INTO content_user__tags (parent_id, delta, value) \
         SELECT id, d, CASE d WHEN 0 THEN 'a' ELSE 'b' END FROM content_user, \
         (SELECT 0 AS d UNION ALL SELECT 1) AS deltas WHERE CAST(substr(id, 2) AS INTEGER) % 100 = 0",
    )
    .await;

    // v2 drops both fields: BREAKING, approved.
    site.write(USER_PATH, USER);
    let pending = site.wait_for(EventKind::Pending, USER_PATH).await;
    let drop = Approval { actor: "ann".into(), reason: Some("slimming".into()), confirm: Some("user".into()) };
    site.coordinator.approve(pending.change_id.unwrap(), drop).await.unwrap();
    assert!(!site.coordinator.store().table_columns("content_user").await.unwrap().contains(&"bio".to_string()));

    // Roll back to v1: a pending change that re-adds the fields and refills them.
    let change = site.coordinator.rollback(USER_PATH, 1, Some("we need bios".into())).await.unwrap();
    assert_eq!(change.rollback_to, Some(1));
    // 10,000 rows reach the online threshold: `bio` is refilled in batches
    // into a shadow column that the cut-over names.
    assert_eq!(change.plan.path, marain::plan::PlanPath::Online);
    let batches: Vec<&String> =
        change.plan.phases().into_iter().flat_map(|p| p.batches.iter().chain(&p.batch_writes)).collect();
    assert!(batches.iter().any(|s| s.contains("SET \"bio__marain\" = ")), "{batches:?}");
    // The rollback's own reason is recorded when the approval gives none.
    let back = Approval { actor: "bob".into(), reason: None, confirm: Some("user".into()) };
    let row = site.coordinator.approve(change.id, back).await.unwrap();
    assert_eq!(row.version, 3);
    let rolled = site.wait_for(EventKind::RolledBack, USER_PATH).await;
    assert_eq!(rolled.version, Some(3));

    let restored =
        site.count("SELECT COUNT(*) FROM content_user WHERE bio = 'biography number ' || substr(id, 2)").await;
    assert_eq!(restored, 10_000, "every value is back");
    let tags = site.count("SELECT COUNT(*) FROM content_user__tags").await;
    assert_eq!(tags, 200);

    // The file on disk says v1 again, and its event is recognised as applied.
    assert_eq!(std::fs::read_to_string(site.root().join(USER_PATH)).unwrap(), v1);
    site.coordinator.quiet().await;
    let history = site.coordinator.history(Some(USER_PATH), 10).await.unwrap();
    assert_eq!(history.len(), 3, "the rewrite made no extra version");
    assert_eq!(history[0].actor, "bob");
    assert_eq!(history[0].reason.as_deref(), Some("we need bios"));
    assert!(site.coordinator.snapshot().in_sync());
    site.stop().await;
}

async fn drift_is_detected_at_start_up_and_reported_not_repaired(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    site.write(USER_PATH, &format!("{USER}  - id: bio\n    type: text\n"));
    site.wait_for(EventKind::Applied, USER_PATH).await;
    assert!(site.coordinator.snapshot().drift.is_empty());
    // Someone edits the database by hand while the server is down.
    site.exec("ALTER TABLE content_user DROP COLUMN bio").await;
    site.exec("ALTER TABLE content_user ADD COLUMN nickname TEXT").await;
    site.exec("CREATE TABLE content_orphan (id TEXT PRIMARY KEY)").await;
    let dir = site.stop().await;

    let site = TestSite::start_on(dir, backend).await;
    let snapshot = site.coordinator.snapshot();
    let found: Vec<(String, String)> = snapshot.drift.iter().map(|d| (d.table.clone(), d.problem.clone())).collect();
    assert_eq!(
        found,
        [
            ("content_user".to_string(), "column `bio` is missing".to_string()),
            ("content_user".to_string(), "column `nickname` is in the database but in no schema".to_string()),
            ("content_orphan".to_string(), "the table exists but no schema defines it".to_string()),
        ]
    );
    assert!(!snapshot.in_sync());
    // Reported, not repaired: the database is exactly as it was left.
    let columns = site.coordinator.store().table_columns("content_user").await.unwrap();
    assert!(columns.contains(&"nickname".to_string()) && !columns.contains(&"bio".to_string()), "{columns:?}");
    site.stop().await;
}

/// Waits for `path`'s change to wait for approval, approves it, and waits until it applied.
async fn approve_pending(site: &mut TestSite, path: &str) {
    let pending = site.wait_for(EventKind::Pending, path).await;
    let approval = Approval { actor: "ann".into(), reason: None, confirm: None };
    site.coordinator.approve(pending.change_id.unwrap(), approval).await.unwrap();
    site.wait_for(EventKind::Applied, path).await;
}

fn indexed(entity: &str, field: &str, on: bool) -> String {
    format!("id: {entity}\nname: {entity}\nfields:\n  - id: {field}\n    type: text\n    indexed: {on}\n")
}

/// Index names cannot collide: `a_b.c` and `a.b_c` each get their own index,
/// as does entity `marain` beside the history's own index, and dropping one
/// drops that one; two unique keys that would share a name are refused at the
/// field, the applied state staying live.
async fn index_names_of_different_fields_never_collide(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    for (entity, field) in [("a_b", "c"), ("a", "b_c"), ("marain", "history_file")] {
        let path = format!("schemas/{entity}.schema.yaml");
        site.write(&path, &indexed(entity, field, true));
        site.wait_for(EventKind::Applied, &path).await;
    }
    let indexes = |site: &TestSite| {
        let pool = site.coordinator.store().pool().clone();
        async move { pool.index_tables().await.unwrap().into_iter().collect::<std::collections::BTreeMap<_, _>>() }
    };
    let found = indexes(&site).await;
    for (index, table) in
        [("idx_a_b__c", "content_a_b"), ("idx_a__b_c", "content_a"), ("idx_marain__history_file", "content_marain")]
    {
        assert_eq!(found.get(index).map(String::as_str), Some(table), "{found:?}");
    }
    site.write("schemas/a.schema.yaml", &indexed("a", "b_c", false));
    approve_pending(&mut site, "schemas/a.schema.yaml").await;
    let found = indexes(&site).await;
    assert!(!found.contains_key("idx_a__b_c") && found.contains_key("idx_a_b__c"), "{found:?}");

    // Unique keys follow PostgreSQL's own naming, so a clash is refused instead.
    let unique = |entity: &str, field: &str| {
        format!("id: {entity}\nname: {entity}\nfields:\n  - id: {field}\n    type: text\n    unique: true\n")
    };
    site.write("schemas/p_q.schema.yaml", &unique("p_q", "r"));
    site.wait_for(EventKind::Applied, "schemas/p_q.schema.yaml").await;
    site.write("schemas/p.schema.yaml", &unique("p", "q_r"));
    let refused = site.wait_for(EventKind::Rejected, "schemas/p.schema.yaml").await;
    assert!(refused.message.contains("`content_p_q_r_key`"), "{}", refused.message);
    let error = site.coordinator.snapshot().rejected[0].clone();
    assert_eq!((error.line, error.field.as_deref()), (4, Some("fields[0].id")), "{}", error.message);
    site.stop().await;
}

/// A database made before indexes were named `idx_<entity>__<field>`: the old
/// name is renamed at start-up, so a later plan drops the index it names.
async fn indexes_under_their_old_name_are_renamed_at_start_up(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    let path = "schemas/page.schema.yaml";
    site.write(path, &indexed("page", "slug", true));
    site.wait_for(EventKind::Applied, path).await;
    // As an older release left it.
    site.exec("DROP INDEX idx_page__slug").await;
    site.exec("CREATE INDEX idx_page_slug ON content_page (slug)").await;
    let dir = site.stop().await;

    let mut site = TestSite::start_on(dir, backend).await;
    let found: Vec<String> =
        site.coordinator.store().pool().index_tables().await.unwrap().into_iter().map(|(i, _)| i).collect();
    assert!(
        found.contains(&"idx_page__slug".to_string()) && !found.contains(&"idx_page_slug".to_string()),
        "{found:?}"
    );
    site.write(path, &indexed("page", "slug", false));
    approve_pending(&mut site, path).await;
    let found: Vec<String> =
        site.coordinator.store().pool().index_tables().await.unwrap().into_iter().map(|(i, _)| i).collect();
    assert!(!found.iter().any(|i| i.starts_with("idx_page")), "{found:?}");
    site.stop().await;
}

/// An entity renamed with `renamed_from`, and the reference to it retargeted in
/// the same save burst: the table is renamed with its rows, the reference needs
/// no DDL, and the content API serves the rows under the new name.
async fn entity_rename_keeps_rows_and_references_follow(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    site.write(USER_PATH, USER);
    site.write(ARTICLE_PATH, ARTICLE);
    site.wait_for(EventKind::Applied, ARTICLE_PATH).await;
    site.exec("INSERT INTO content_user (id, username) VALUES ('u1', 'ann')").await;
    site.exec("INSERT INTO content_article (id, title, author_id) VALUES ('a1', 'Hello', 'u1')").await;

    let member = USER.replace("id: user\n", "id: member\nrenamed_from: user\n");
    site.write(USER_PATH, &member);
    site.write(ARTICLE_PATH, &ARTICLE.replace("target_entity: user", "target_entity: member"));
    let pending = site.wait_for(EventKind::Pending, USER_PATH).await;
    let id = pending.change_id.unwrap();
    let mut change = None;
    for _ in 0..200 {
        change = site.coordinator.snapshot().pending.iter().find(|c| c.id == id).cloned();
        if change.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let change = change.expect("the pending change is published");
    assert_eq!(change.severity, marain::Severity::Breaking);
    let mut renames = vec!["ALTER TABLE \"content_user\" RENAME TO \"content_member\""];
    if backend == Backend::Postgres {
        // PostgreSQL's constraints are named after the table and follow it.
        renames
            .push("ALTER TABLE \"content_member\" RENAME CONSTRAINT \"content_user_pkey\" TO \"content_member_pkey\"");
    }
    assert_eq!(change.plan.sql(), renames);
    let approval = Approval { actor: "ann".into(), reason: Some("new name".into()), confirm: Some("member".into()) };
    site.coordinator.approve(pending.change_id.unwrap(), approval).await.unwrap();
    site.wait_for(EventKind::Applied, ARTICLE_PATH).await;

    let name = site.text("SELECT username FROM content_member WHERE id = 'u1'").await;
    assert_eq!(name, "ann");
    let target = site
        .text(match backend {
            Backend::Sqlite => "SELECT \"table\" FROM pragma_foreign_key_list('content_article')",
            Backend::Postgres => {
                "SELECT confrelid::regclass::text FROM pg_constraint \
                 WHERE conrelid = 'content_article'::regclass AND contype = 'f'"
            }
        })
        .await;
    assert_eq!(target, "content_member");
    let article_history = site.coordinator.history(Some(ARTICLE_PATH), 10).await.unwrap();
    assert_eq!(article_history.len(), 2, "the retargeted reference is a recorded version");
    assert!(article_history[0].sql.is_empty(), "{:?}", article_history[0].sql);
    assert!(site.coordinator.snapshot().in_sync());
    site.stop().await;
}

/// The `hot_reload` config is read live: a directory's policy holds SAFE changes
/// for approval, a new debounce restarts the watcher, and both revert live.
async fn hot_reload_policy_and_debounce_change_live(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    site.write(USER_PATH, USER);
    site.wait_for(EventKind::Applied, USER_PATH).await;
    const HOT: &str = "config/config.hot_reload.yaml";
    site.write(
        HOT,
        "id: hot_reload\nvalues:\n  debounce_ms: 60\n  directories:\n    schemas:\n      auto_apply: none\n",
    );
    site.wait_for(EventKind::Applied, HOT).await;
    assert_eq!(site.coordinator.snapshot().settings.debounce_ms, Some(60));

    let v2 = format!("{USER}  - id: nickname\n    type: text\n");
    site.write(USER_PATH, &v2);
    let pending = site.wait_for(EventKind::Pending, USER_PATH).await;
    assert!(pending.message.starts_with("SAFE change waits for approval"), "{}", pending.message);

    // Config files still apply alone (the policy is per directory), and lifting
    // the hold lets the next SAFE schema change through without a person.
    site.write(
        HOT,
        "id: hot_reload\nvalues:\n  debounce_ms: 20\n  directories:\n    schemas:\n      auto_apply: safe\n",
    );
    site.wait_for(EventKind::Applied, HOT).await;
    let approval = Approval { actor: "ann".into(), reason: None, confirm: None };
    site.coordinator.approve(pending.change_id.unwrap(), approval).await.unwrap();
    site.write(USER_PATH, &format!("{v2}  - id: motto\n    type: text\n"));
    site.wait_for(EventKind::Applied, USER_PATH).await;
    assert_eq!(site.coordinator.snapshot().settings.debounce_ms, Some(20));
    assert!(site.coordinator.snapshot().in_sync());

    // A value of the wrong type is rejected at its line; the last good settings stay.
    site.write(HOT, "id: hot_reload\nvalues:\n  debounce_ms: soon\n");
    let rejected = site.wait_for(EventKind::Rejected, HOT).await;
    assert!(rejected.message.contains("config/config.hot_reload.yaml:3:3"), "{}", rejected.message);
    assert_eq!(site.coordinator.snapshot().settings.debounce_ms, Some(20));
    site.stop().await;
}

/// Point-in-time recovery: every file back to its version at a moment, as one
/// batch — a dropped field returns with its values, a file created later goes —
/// then the backups are listed and pruned by age.
async fn point_in_time_recovery_restores_files_and_data_then_backups_are_pruned(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    let v1 = format!("{USER}  - id: bio\n    type: long_text\n");
    site.write(USER_PATH, &v1);
    site.wait_for(EventKind::Applied, USER_PATH).await;
    site.exec("INSERT INTO content_user (id, username, bio) VALUES ('u1', 'ann', 'hello'), ('u2', 'bob', 'hi')").await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let moment = marain::engine::now_rfc3339();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    site.write(USER_PATH, USER);
    let pending = site.wait_for(EventKind::Pending, USER_PATH).await;
    let drop = Approval { actor: "ann".into(), reason: Some("no bios".into()), confirm: Some("user".into()) };
    site.coordinator.approve(pending.change_id.unwrap(), drop).await.unwrap();
    site.write(ARTICLE_PATH, ARTICLE);
    site.wait_for(EventKind::Applied, ARTICLE_PATH).await;

    let changes = site.coordinator.recover_to(&moment).await.unwrap();
    let files: Vec<&str> = changes.iter().map(|c| c.file.as_str()).collect();
    assert_eq!(files, [USER_PATH, ARTICLE_PATH], "edits first, deletions after (dependency order)");
    assert_eq!(changes[0].rollback_to, Some(1));
    assert_eq!(changes[1].rollback_to, Some(0), "the article did not exist then");
    for change in &changes {
        let approval =
            Approval { actor: "ops".into(), reason: Some("recover".into()), confirm: Some(change.entity.clone()) };
        site.coordinator.approve(change.id, approval).await.unwrap();
    }
    let bios = site.texts("SELECT bio FROM content_user ORDER BY id").await;
    assert_eq!(bios, [Some("hello".to_string()), Some("hi".to_string())]);
    assert_eq!(std::fs::read_to_string(site.root().join(USER_PATH)).unwrap(), v1);
    assert!(!site.root().join(ARTICLE_PATH).exists());
    let tables = site.coordinator.store().pool().table_names().await.unwrap();
    assert!(!tables.contains(&"content_article".to_string()), "{tables:?}");

    // The bio backup of the drop and the article backup of the recovery are listed.
    let store = site.coordinator.store();
    let backups = store.history().backups().await.unwrap();
    assert!(backups.iter().any(|b| b.table.contains("content_user__bio") && b.rows == Some(2)), "{backups:#?}");
    assert!(backups.iter().any(|b| b.table.contains("content_article") && b.rows == Some(0)), "{backups:#?}");
    let none = store.history().prune_backups(1).await.unwrap();
    assert!(none.is_empty(), "nothing is a day old");
    let pruned = store.history().prune_backups(0).await.unwrap();
    assert_eq!(pruned.len(), backups.len());
    assert!(store.history().backups().await.unwrap().iter().all(|b| b.rows.is_none()));
    // A rollback after pruning still plans; it just has nothing to refill from.
    let since = std::collections::BTreeMap::from([(USER_PATH.to_string(), 1)]);
    assert!(store.history().backups_since(&since).await.unwrap()[USER_PATH].is_empty());

    // End to end: drop `bio` again, prune its backup, roll back to the version
    // with `bio`: the column returns, empty, and the file says so.
    site.events = site.coordinator.subscribe(); // the recovery's own events are past
    site.write(USER_PATH, USER);
    let pending = site.wait_for(EventKind::Pending, USER_PATH).await;
    let drop = Approval { actor: "ann".into(), reason: None, confirm: Some("user".into()) };
    let dropped = site.coordinator.approve(pending.change_id.unwrap(), drop).await.unwrap();
    assert!(!dropped.backups.is_empty());
    assert!(!site.coordinator.prune_backups(0).await.unwrap().is_empty());
    let rollback = site.coordinator.rollback(USER_PATH, 1, None).await.unwrap();
    assert!(rollback.plan.steps.iter().all(|s| s.restores.is_empty()), "a pruned backup refills nothing");
    let approval = Approval { actor: "ops".into(), reason: None, confirm: Some("user".into()) };
    site.coordinator.approve(rollback.id, approval).await.unwrap();
    let bios = site.texts("SELECT bio FROM content_user ORDER BY id").await;
    assert_eq!(bios, [None, None]);
    assert_eq!(std::fs::read_to_string(site.root().join(USER_PATH)).unwrap(), v1);
    site.stop().await;
}

/// Recovery to a moment when two entities, one referring to the other, both
/// existed, after both were deleted: the referenced one comes back first, and
/// both get their rows back from the backups of the deletions.
async fn point_in_time_recovery_recreates_dependent_entities_in_order(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    site.write(USER_PATH, USER);
    site.wait_for(EventKind::Applied, USER_PATH).await;
    site.write(ARTICLE_PATH, ARTICLE);
    site.wait_for(EventKind::Applied, ARTICLE_PATH).await;
    site.exec("INSERT INTO content_user (id, username) VALUES ('u1', 'ann')").await;
    site.exec("INSERT INTO content_article (id, title, author_id) VALUES ('a1', 'Hello', 'u1')").await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let moment = marain::engine::now_rfc3339();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    // Both files deleted at once: one batch, the referring entity dropped first.
    std::fs::remove_file(site.root().join(ARTICLE_PATH)).unwrap();
    std::fs::remove_file(site.root().join(USER_PATH)).unwrap();
    for path in [ARTICLE_PATH, USER_PATH] {
        let pending = site.wait_for(EventKind::Pending, path).await;
        let entity = if path == USER_PATH { "user" } else { "article" };
        let approval = Approval { actor: "ann".into(), reason: None, confirm: Some(entity.into()) };
        site.coordinator.approve(pending.change_id.unwrap(), approval).await.unwrap();
    }
    assert!(site.coordinator.snapshot().applied.schema_count() == 0);

    let changes = site.coordinator.recover_to(&moment).await.unwrap();
    let files: Vec<&str> = changes.iter().map(|c| c.file.as_str()).collect();
    assert_eq!(files, [USER_PATH, ARTICLE_PATH], "the referenced entity first");
    for change in &changes {
        let approval = Approval { actor: "ops".into(), reason: None, confirm: Some(change.entity.clone()) };
        site.coordinator.approve(change.id, approval).await.unwrap();
    }
    let authors: Vec<(String, String)> = site
        .coordinator
        .store()
        .pool()
        .fetch_all("SELECT a.title, u.username FROM content_article a JOIN content_user u ON u.id = a.author_id", &[])
        .await
        .unwrap();
    assert_eq!(authors, [("Hello".to_string(), "ann".to_string())]);
    assert_eq!(std::fs::read_to_string(site.root().join(USER_PATH)).unwrap(), USER);
    assert_eq!(std::fs::read_to_string(site.root().join(ARTICLE_PATH)).unwrap(), ARTICLE);
    site.stop().await;
}

/// Drift is looked for on every rescan too, not only at start-up: a column added
/// behind the engine's back is reported, and never repaired.
async fn drift_is_found_on_rescan(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    site.write(USER_PATH, USER);
    site.wait_for(EventKind::Applied, USER_PATH).await;
    assert!(site.coordinator.snapshot().drift.is_empty());
    site.exec("ALTER TABLE content_user ADD COLUMN sneaky TEXT").await;
    site.coordinator.rescan().await.unwrap();
    let drift = site.coordinator.snapshot().drift.clone();
    assert!(drift.iter().any(|d| d.table == "content_user" && d.problem.contains("sneaky")), "{drift:#?}");
    assert!(!site.coordinator.snapshot().in_sync());
    let columns = site.coordinator.store().table_columns("content_user").await.unwrap();
    assert!(columns.contains(&"sneaky".to_string()), "reported, not repaired");
    site.stop().await;
}

/// One approval is one turn of the worker: it publishes exactly one snapshot,
/// and its events go out only after it, so a client refetching on an event
/// never reads the state from before the approval.
async fn an_approval_publishes_one_snapshot_before_its_events(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    site.write(USER_PATH, &format!("{USER}  - id: bio\n    type: long_text\n"));
    site.wait_for(EventKind::Applied, USER_PATH).await;
    site.write(USER_PATH, USER);
    let pending = site.wait_for(EventKind::Pending, USER_PATH).await;
    let before = site.coordinator.snapshot().generation;

    // A reader that looks at the state the moment each event arrives.
    let mut events = site.coordinator.subscribe();
    let reader = site.coordinator.clone();
    let seen = tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let event = events.recv().await.unwrap();
            let snapshot = reader.snapshot();
            seen.push((event.kind, event.actor, snapshot.generation, snapshot.pending.len()));
        }
        seen
    });
    let approval = Approval { actor: "ann".into(), confirm: Some("user".into()), ..Default::default() };
    let row = site.coordinator.approve(pending.change_id.unwrap(), approval).await.unwrap();
    let after = site.coordinator.snapshot();
    assert_eq!(after.generation, before + 1, "an approval publishes one snapshot");
    assert!(after.pending.is_empty());
    assert_eq!(after.files.iter().find(|f| f.path == USER_PATH).unwrap().version, Some(row.version));

    // Each event arrived when the snapshot reflecting it was already in place.
    let seen = seen.await.unwrap();
    let ann = Some("ann".to_string());
    assert_eq!(seen, vec![(EventKind::Approved, ann.clone(), before + 1, 0), (EventKind::Applied, ann, before + 1, 0)]);
    assert_eq!(site.coordinator.snapshot().generation, before + 1, "the events came with no second publish");
    site.stop().await;
}

/// A deletion refused because another file still refers to it waits on that
/// file; once the other file's own deletion is approved, it goes through as a
/// change of its own, without another save.
async fn a_file_waiting_on_an_approval_goes_on_once_it_is_approved(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    site.write(USER_PATH, USER);
    site.write(ARTICLE_PATH, ARTICLE);
    site.wait_for(EventKind::Applied, ARTICLE_PATH).await;
    // The article's deletion waits for approval; meanwhile the user's deletion
    // is refused, since the applied article still refers to it.
    std::fs::remove_file(site.root().join(ARTICLE_PATH)).unwrap();
    let pending = site.wait_for(EventKind::Pending, ARTICLE_PATH).await;
    std::fs::remove_file(site.root().join(USER_PATH)).unwrap();
    let refused = site.wait_for(EventKind::Rejected, USER_PATH).await;
    assert!(refused.message.contains("article"), "{}", refused.message);
    let approval = Approval { actor: "ann".into(), reason: None, confirm: Some("article".into()) };
    site.coordinator.approve(pending.change_id.unwrap(), approval).await.unwrap();
    site.wait_for(EventKind::Pending, USER_PATH).await;
    let snapshot = site.coordinator.snapshot();
    assert!(snapshot.rejected.is_empty(), "{:?}", snapshot.rejected);
    assert_eq!(snapshot.pending.len(), 1);
    site.stop().await;
}

/// Secrets never leave the server: a secret written into a config file waits
/// for approval (`secret_in_file`), and neither its summary, its hazards, its
/// diff, the events nor `secure.log` show it; a secret named by reference is
/// resolved for the running server only, and a reference that does not resolve
/// rejects the file at its line.
async fn secrets_in_config_files_are_never_shown(backend: Backend) {
    let beside_the_site = |c: &mut marain::engine::EngineConfig| {
        c.secret_sources.dir = c.site_root.parent().map(|p| p.to_path_buf());
    };
    let mut site = TestSite::start_with(tempfile::tempdir().unwrap(), backend, beside_the_site).await;
    let mut events = site.coordinator.subscribe();
    let path = "config/config.hot_reload.yaml";
    let hooks = |secret: &str| {
        format!("id: hot_reload\nvalues:\n  webhooks:\n    - url: http://127.0.0.1:9/hook\n      secret: {secret}\n")
    };
    site.write(path, &hooks("s3cret-one"));
    let pending = site.wait_for(EventKind::Pending, path).await;
    assert_eq!(pending.severity, Some(marain::Severity::Warning));
    let change = site.coordinator.snapshot().pending[0].clone();
    assert!(change.hazards.iter().any(|h| h.code == marain::HazardCode::SecretInFile), "{:?}", change.hazards);
    let approval = Approval { actor: "ann".into(), reason: None, confirm: None };
    site.coordinator.approve(change.id, approval.clone()).await.unwrap();
    site.wait_for(EventKind::Applied, path).await;

    // Changed again, still literal: the change shows, the secrets do not.
    site.write(path, &hooks("s3cret-two"));
    site.wait_for(EventKind::Pending, path).await;
    let change = site.coordinator.snapshot().pending[0].clone();
    assert!(change.summary.iter().any(|s| s.contains("(changed)")), "{:?}", change.summary);
    let mut shown = format!("{:?}{:?}{:?}", change.summary, change.hazards, change.text_diff);
    site.coordinator.approve(change.id, approval).await.unwrap();
    site.wait_for(EventKind::Applied, path).await;

    // Named by reference: resolved for the server, shown as the reference.
    let secret_file = site.dir.path().join("hook-secret");
    std::fs::write(&secret_file, "from-the-file\n").unwrap();
    site.write(path, &hooks(&format!("${{file:{}}}", secret_file.display())));
    let applied = site.wait_for(EventKind::Applied, path).await;
    assert_eq!(applied.version, Some(3));
    assert_eq!(site.coordinator.snapshot().settings.webhooks[0].secret.as_deref(), Some("from-the-file"));
    let unset = "MARAIN_SECRET_TEST_UNSET_VARIABLE";
    site.write(path, &hooks(&format!("${{env:{unset}}}")));
    let refused = site.wait_for(EventKind::Rejected, path).await;
    assert!(refused.message.contains("names an environment variable that is not set"), "{}", refused.message);
    assert!(!refused.message.contains(unset), "a refusal names the key, not the reference: {}", refused.message);
    let error = site.coordinator.snapshot().rejected[0].clone();
    assert_eq!((error.line, error.field.as_deref()), (5, Some("values.webhooks.0.secret")));

    // Rejections quoting a value: a secret of the wrong type, a URL's password.
    site.write(path, &hooks("987654321123"));
    let refused = site.wait_for(EventKind::Rejected, path).await;
    assert!(refused.message.contains("invalid type: integer `•••••`"), "{}", refused.message);
    let ftp = "id: hot_reload\nvalues:\n  webhooks:\n    - url: ftp://hook:ftp-pass-77@127.0.0.1/x\n";
    site.write(path, ftp);
    let refused = site.wait_for(EventKind::Rejected, path).await;
    assert!(refused.message.contains("must start with http"), "{}", refused.message);
    shown.push_str(&format!("{:?}", site.coordinator.snapshot().rejected));

    while let Ok(event) = events.try_recv() {
        shown.push_str(&event.message);
    }
    shown.push_str(&std::fs::read_to_string(site.dir.path().join("secure.log")).unwrap());
    for secret in ["s3cret-one", "s3cret-two", "from-the-file", "987654321123", "ftp-pass-77"] {
        assert!(!shown.contains(secret), "{secret} was shown: {shown}");
    }
    site.stop().await;
}

/// A reference reads only what the server allows: `${file:}` regular files
/// under the secrets directory (no link out of it, no FIFO, nothing over the
/// size cap, nothing at all without the directory), `${env:}` only variables
/// with the allowed prefix. Each refusal rejects the file at its line naming
/// the key, never the reference; the engine goes on (a FIFO never holds it).
async fn secret_references_read_only_what_the_server_allows(backend: Backend) {
    use marain::engine::EngineConfig;
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("hook"), "from-the-secrets-dir\n").unwrap();
    std::fs::write(dir.path().join("outside"), "not-for-the-site\n").unwrap();
    std::os::unix::fs::symlink(dir.path().join("outside"), secrets.join("link-out")).unwrap();
    std::fs::write(secrets.join("big"), "x".repeat(70 * 1024)).unwrap();
    let fifo = secrets.join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let into = secrets.clone();
    let mut site =
        TestSite::start_with(dir, backend, move |c: &mut EngineConfig| c.secret_sources.dir = Some(into)).await;
    let path = "config/config.hot_reload.yaml";
    let hooks = |reference: &str| {
        format!("id: hot_reload\nvalues:\n  webhooks:\n    - url: http://127.0.0.1:9/hook\n      secret: {reference}\n")
    };
    let file = |p: &std::path::Path| format!("${{file:{}}}", p.display());
    // The process's own secrets are in its environment.
    let admin = "MARAIN_ADMIN_PASSWORD_OF_THIS_TEST";
    std::env::set_var(admin, "the-admin-password");
    std::env::set_var("MARAIN_SECRET_TEST_HOOK", "from-the-environment");
    let outside = site.dir.path().join("outside");
    for (n, (what, reference, says)) in [
        ("a file outside the directory", file(&outside), "names a file outside the secrets directory"),
        ("a link out of the directory", file(&secrets.join("link-out")), "outside the secrets directory"),
        ("/dev/zero", "${file:/dev/zero}".to_string(), "outside the secrets directory"),
        ("a FIFO", file(&fifo), "names something that is not a regular file"),
        ("a file over the cap", file(&secrets.join("big")), "over the 65536-byte limit"),
        ("a variable without the prefix", format!("${{env:{admin}}}"), "outside the ones references may name"),
    ]
    .into_iter()
    .enumerate()
    {
        // A good version between two refusals: the same refusal twice in a
        // row is announced once.
        let good = format!("id: hot_reload\nvalues:\n  webhooks:\n    - url: http://127.0.0.1:9/hook{n}\n");
        site.write(path, &good);
        site.wait_for(EventKind::Applied, path).await;
        site.write(path, &hooks(&reference));
        let refused = site.wait_for(EventKind::Rejected, path).await;
        assert!(refused.message.contains(says), "{what}: {}", refused.message);
        assert!(
            refused.message.contains("config/config.hot_reload.yaml:5:15: the reference in `values.webhooks.0.secret`"),
            "{what}: {}",
            refused.message
        );
        for hidden in [reference.as_str(), admin, "the-admin-password", "not-for-the-site", "fifo"] {
            assert!(!refused.message.contains(hidden), "{what}: `{hidden}` shown in {}", refused.message);
        }
        let error = site.coordinator.snapshot().rejected[0].clone();
        assert_eq!(error.field.as_deref(), Some("values.webhooks.0.secret"), "{what}");
    }
    for (reference, secret) in [
        (file(&secrets.join("hook")), "from-the-secrets-dir"),
        ("${env:MARAIN_SECRET_TEST_HOOK}".to_string(), "from-the-environment"),
    ] {
        site.write(path, &hooks(&reference));
        site.wait_for(EventKind::Applied, path).await;
        assert_eq!(site.coordinator.snapshot().settings.webhooks[0].secret.as_deref(), Some(secret));
    }
    site.stop().await;

    // Without a secrets directory, `${file:}` is off.
    let mut site = TestSite::start(backend).await;
    let secret = site.dir.path().join("hook");
    std::fs::write(&secret, "s\n").unwrap();
    site.write(path, &hooks(&file(&secret)));
    let refused = site.wait_for(EventKind::Rejected, path).await;
    assert!(refused.message.contains("`${file:}` is off"), "{}", refused.message);
    site.stop().await;
}

/// Keys a site names in `system.redact_keys` are secrets like the built-in
/// ones: a literal value under one waits for approval (`secret_in_file`), and
/// neither summaries, hazards, diffs, events nor `secure.log` show it; a
/// `redact_keys` that is not a list is rejected at its line.
async fn keys_a_site_names_secret_are_never_shown(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    let mut events = site.coordinator.subscribe();
    let system = "config/config.system.yaml";
    site.write(system, "id: system\nvalues:\n  redact_keys: license\n");
    let refused = site.wait_for(EventKind::Rejected, system).await;
    let error = site.coordinator.snapshot().rejected[0].clone();
    assert_eq!((error.line, error.field.as_deref()), (3, Some("values.redact_keys")), "{}", refused.message);
    site.write(system, "id: system\nvalues:\n  redact_keys: [License]\n");
    site.wait_for(EventKind::Applied, system).await;

    let path = "config/config.billing.yaml";
    let billing = |license: &str| format!("id: billing\nvalues:\n  plan: pro\n  license: {license}\n");
    site.write(path, &billing("LIC-one-1111"));
    site.wait_for(EventKind::Pending, path).await;
    let change = site.coordinator.snapshot().pending[0].clone();
    assert!(change.hazards.iter().any(|h| h.code == marain::HazardCode::SecretInFile), "{:?}", change.hazards);
    let mut shown = format!("{:?}{:?}{:?}", change.summary, change.hazards, change.text_diff);
    let approval = Approval { actor: "ann".into(), reason: None, confirm: None };
    site.coordinator.approve(change.id, approval.clone()).await.unwrap();
    site.wait_for(EventKind::Applied, path).await;

    site.write(path, &billing("LIC-two-2222"));
    site.wait_for(EventKind::Pending, path).await;
    let change = site.coordinator.snapshot().pending[0].clone();
    assert!(change.summary.iter().any(|s| s.contains("license") && s.contains("(changed)")), "{:?}", change.summary);
    shown.push_str(&format!("{:?}{:?}{:?}", change.summary, change.hazards, change.text_diff));
    site.coordinator.approve(change.id, approval).await.unwrap();
    site.wait_for(EventKind::Applied, path).await;

    while let Ok(event) = events.try_recv() {
        shown.push_str(&event.message);
        shown.push_str(&serde_json::to_string(&event).unwrap());
    }
    shown.push_str(&std::fs::read_to_string(site.dir.path().join("secure.log")).unwrap());
    for secret in ["LIC-one-1111", "LIC-two-2222"] {
        assert!(!shown.contains(secret), "{secret} was shown: {shown}");
    }
    assert!(shown.contains("plan"), "the rest of the file is still shown");
    site.stop().await;
}

/// Sets or clears the immutable attribute of `path` (even root cannot replace
/// an immutable file).
fn immutable(path: &std::path::Path, on: bool) {
    let flag = if on { "+i" } else { "-i" };
    let status = std::process::Command::new("chattr").arg(flag).arg(path).status().expect("chattr (e2fsprogs)");
    assert!(status.success(), "chattr {flag} {}", path.display());
}

/// A rollback commits in the database but its file cannot be rewritten (made
/// immutable here): the two do not disagree silently. The file is shown failed,
/// saying what to do; its later text is not planned again; saving the text of
/// the version rolled back to settles it.
async fn a_rollback_whose_file_cannot_be_rewritten_says_so(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    site.write(USER_PATH, USER);
    site.wait_for(EventKind::Applied, USER_PATH).await;
    site.write(USER_PATH, &format!("{USER}  - id: bio\n    type: long_text\n"));
    site.wait_for(EventKind::Applied, USER_PATH).await;
    let path = site.root().join(USER_PATH);
    immutable(&path, true);
    let rollback = site.coordinator.rollback(USER_PATH, 1, None).await.unwrap();
    let approval = Approval { actor: "ops".into(), reason: None, confirm: Some("user".into()) };
    let applied = site.coordinator.approve(rollback.id, approval).await;
    immutable(&path, false);
    assert_eq!(applied.unwrap().version, 3);
    let snapshot = site.coordinator.snapshot();
    let failed = snapshot.failed.iter().find(|e| e.file == USER_PATH).expect("the disagreement is shown");
    assert!(
        failed.message.contains("could not be rewritten") && failed.message.contains("save version 1"),
        "{}",
        failed.message
    );
    assert_eq!(snapshot.applied.schema_file(USER_PATH).unwrap().hash, marain::hash::sha256_hex(USER.as_bytes()));
    site.coordinator.rescan().await.unwrap();
    assert!(site.coordinator.snapshot().pending.is_empty(), "the later text was planned again");
    // The file saved with the rolled-back text: nothing to apply, nothing to say.
    std::fs::write(&path, USER).unwrap();
    site.coordinator.rescan().await.unwrap();
    let snapshot = site.coordinator.snapshot();
    assert!(
        snapshot.rejected.is_empty() && snapshot.pending.is_empty() && snapshot.in_sync(),
        "{:?}",
        snapshot.rejected
    );
    site.stop().await;
}

/// Waits until the engine's readiness says it watches the site (`true`) or not.
async fn until_watching(site: &TestSite, watching: bool) {
    for _ in 0..400 {
        if site.coordinator.readiness().await.watching == watching {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("readiness never said watching = {watching}");
}

/// A checkout or a redeploy replaces the site directory: removed, recreated
/// empty, then filled again. While it is gone or empty nothing is planned (no
/// deletion waits, nothing applies), and once full it is taken in as it is:
/// the same files, no new version.
async fn a_site_directory_replaced_and_refilled_plans_no_deletion(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    site.write(USER_PATH, USER);
    site.wait_for(EventKind::Applied, USER_PATH).await;
    site.write(ARTICLE_PATH, ARTICLE);
    site.wait_for(EventKind::Applied, ARTICLE_PATH).await;
    let versions = site.coordinator.history(None, 100).await.unwrap().len();
    let mut events = site.coordinator.subscribe();
    let root = site.root();

    std::fs::remove_dir_all(&root).unwrap();
    until_watching(&site, false).await;
    // Recreated empty: taken in once quiet, and found empty, nothing planned.
    std::fs::create_dir_all(root.join("schemas")).unwrap();
    until_watching(&site, true).await;
    assert!(site.coordinator.snapshot().pending.is_empty(), "an empty directory planned deletions");
    // Filled again, one file, then the other.
    std::fs::write(root.join(USER_PATH), USER).unwrap();
    std::fs::write(root.join(ARTICLE_PATH), ARTICLE).unwrap();
    site.coordinator.rescan().await.unwrap();
    let snapshot = site.coordinator.snapshot();
    assert!(snapshot.pending.is_empty() && snapshot.in_sync(), "{:?}", snapshot.pending);
    assert_eq!(site.coordinator.history(None, 100).await.unwrap().len(), versions, "a new version");
    let kinds: Vec<EventKind> = std::iter::from_fn(|| events.try_recv().ok()).map(|e| e.kind).collect();
    assert!(!kinds.contains(&EventKind::Pending) && !kinds.contains(&EventKind::Applied), "{kinds:?}");
    site.stop().await;
}

/// Files stay inside the site: a schema reached through a symlinked directory
/// that leaves the site is not applied, a data file in a symlinked directory
/// leaving the site is refused naming why, and a FIFO named like a schema is
/// refused without blocking the engine, which goes on.
async fn files_outside_the_site_and_special_files_are_refused(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), site.root().join("schemas/elsewhere")).unwrap();
    std::fs::write(outside.path().join("evil.schema.yaml"), USER.replace("id: user", "id: evil")).unwrap();
    let status =
        std::process::Command::new("mkfifo").arg(site.root().join("schemas/pipe.schema.yaml")).status().unwrap();
    assert!(status.success());
    let rescan = tokio::time::timeout(std::time::Duration::from_secs(10), site.coordinator.rescan()).await;
    rescan.expect("reading a FIFO blocked the engine").unwrap();
    let snapshot = site.coordinator.snapshot();
    assert!(snapshot.applied.entity_file("evil").is_none(), "a schema outside the site was applied");
    let pipe = snapshot.rejected.iter().find(|e| e.file == "schemas/pipe.schema.yaml").expect("the FIFO is reported");
    assert!(pipe.message.contains("not a regular file"), "{}", pipe.message);

    // A file in the linked directory announced by a file event is refused too.
    std::fs::write(outside.path().join("evil.schema.yaml"), USER.replace("id: user", "id: evil2")).unwrap();
    site.write(USER_PATH, USER);
    site.wait_for(EventKind::Applied, USER_PATH).await;
    let snapshot = site.coordinator.snapshot();
    assert!(snapshot.applied.entity_file("evil").is_none() && snapshot.applied.entity_file("evil2").is_none());

    // A data directory that is a link leaving the site: its file is read, and
    // refused naming why; it does not go unseen.
    let data_outside = tempfile::tempdir().unwrap();
    std::fs::write(data_outside.path().join("people.yaml"), "records:\n  - id: u1\n    username: mallory\n").unwrap();
    std::fs::create_dir_all(site.root().join("data")).unwrap();
    std::os::unix::fs::symlink(data_outside.path(), site.root().join("data/user")).unwrap();
    site.coordinator.rescan().await.unwrap();
    let snapshot = site.coordinator.snapshot();
    let linked = snapshot.rejected.iter().find(|e| e.file == "data/user/people.yaml");
    let linked = linked.expect("the file in the linked directory is reported");
    assert!(linked.message.contains("outside the site"), "{}", linked.message);
    let rows = site.coordinator.store().pool().fetch_one::<(i64,)>("SELECT COUNT(*) FROM content_user", &[]).await;
    assert_eq!(rows.unwrap().0, 0, "nothing of it was written");
    site.stop().await;
}

/// A change to `article` waits for its cut-over (another session holds what
/// it needs: SQLite's write lock, PostgreSQL's table); meanwhile reads of
/// `user` never wait, a read of `article` waits for the change and then sees
/// it whole (the new schema, none of the old), and the change applies once
/// the session lets go.
async fn a_change_to_one_entity_never_holds_up_another(backend: Backend) {
    let mut site = TestSite::start(backend).await;
    // Long enough that PostgreSQL's apply waits in one attempt (no retries).
    site.write("config/config.hot_reload.yaml", "id: hot_reload\nvalues:\n  lock_timeout_ms: 20000\n");
    site.wait_for(EventKind::Applied, "config/config.hot_reload.yaml").await;
    site.write(USER_PATH, USER);
    site.write(ARTICLE_PATH, ARTICLE);
    site.wait_for(EventKind::Applied, ARTICLE_PATH).await;
    site.exec("INSERT INTO content_user (id, username) VALUES ('u1', 'ann')").await;
    site.exec("INSERT INTO content_article (id, title, body) VALUES ('a1', 'Hello', 'words')").await;
    site.exec("CREATE TABLE hold_marker (x INTEGER)").await;

    // Another session: a read of `article` and a write, in a transaction it keeps open.
    let pool = site.coordinator.store().pool().clone();
    let mut holder = pool.begin().await.unwrap();
    holder.conn().execute("SELECT COUNT(*) FROM content_article", &[]).await.unwrap();
    holder.conn().execute("INSERT INTO hold_marker VALUES (1)", &[]).await.unwrap();

    site.write(ARTICLE_PATH, &ARTICLE.replace("  - id: body\n    type: long_text\n", ""));
    let pending = site.wait_for(EventKind::Pending, ARTICLE_PATH).await;
    let approval = Approval { actor: "ann".into(), reason: None, confirm: Some("article".into()) };
    let coordinator = site.coordinator.clone();
    let approving = tokio::spawn(async move { coordinator.approve(pending.change_id.unwrap(), approval).await });
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while site.coordinator.changing() != ["article"] {
        assert!(tokio::time::Instant::now() < deadline, "the change never started: {:?}", site.coordinator.changing());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let content = site.coordinator.content().clone();
    let article_read = tokio::spawn(async move { content.get("article", "a1").await });

    // For a second and a half the change waits; `user` answers throughout.
    let held_until = tokio::time::Instant::now() + std::time::Duration::from_millis(1500);
    let mut reads = 0;
    while tokio::time::Instant::now() < held_until {
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(1), site.coordinator.content().get("user", "u1"));
        let record = read.await.expect("a read of another entity waited for the change").unwrap();
        assert_eq!(record["username"], "ann");
        let (page, total) = site.coordinator.content().list("user", 10, 0).await.unwrap();
        assert_eq!((page.len(), total), (1, 1));
        reads += 1;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(reads >= 10, "reads of another entity stalled: {reads} in 1.5 s");
    assert!(!approving.is_finished(), "the change applied while another session held what it needs");
    assert!(!article_read.is_finished(), "a read of the changed entity ran across the change");

    holder.commit().await.unwrap();
    let row = approving.await.unwrap().unwrap();
    assert_eq!(row.version, 2);
    let record = article_read.await.unwrap().unwrap();
    assert_eq!(record["title"], "Hello");
    assert!(record.get("body").is_none(), "the read saw the old schema after waiting for the new: {record}");
    assert!(site.coordinator.changing().is_empty());
    site.stop().await;
}

/// PostgreSQL only (SQLite locks the whole database, not a table): a session
/// holds a lock on `content_article` while a change to `article` is approved.
/// The apply gives up each attempt after the lock timeout (here 100 ms, set live
/// by `hot_reload.lock_timeout_ms`) and tries again, so content reads keep
/// answering while it waits, the wait is announced with who holds the table,
/// and the change applies once the session lets go.
#[tokio::test]
async fn ddl_waiting_for_a_table_lock_never_stalls_reads() {
    use sqlx::Connection;
    let mut site = TestSite::start(Backend::Postgres).await;
    site.write("config/config.hot_reload.yaml", "id: hot_reload\nvalues:\n  lock_timeout_ms: 100\n");
    site.wait_for(EventKind::Applied, "config/config.hot_reload.yaml").await;
    site.write(USER_PATH, USER);
    site.write(ARTICLE_PATH, ARTICLE);
    site.wait_for(EventKind::Applied, ARTICLE_PATH).await;
    site.exec("INSERT INTO content_article (id, title, body) VALUES ('a1', 'Hello', 'words')").await;

    // Another session reads the table in a transaction it keeps open.
    let url = std::fs::read_to_string(site.dir.path().join("database-url")).unwrap();
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let mut holder = sqlx::PgConnection::connect_with(&options.application_name("report-job")).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT COUNT(*) FROM content_article").execute(&mut holder).await.unwrap();

    site.write(ARTICLE_PATH, &ARTICLE.replace("  - id: body\n    type: long_text\n", ""));
    let pending = site.wait_for(EventKind::Pending, ARTICLE_PATH).await;
    let approval = Approval { actor: "ann".into(), reason: None, confirm: Some("article".into()) };
    let coordinator = site.coordinator.clone();
    let approving = tokio::spawn(async move { coordinator.approve(pending.change_id.unwrap(), approval).await });

    // The wait is announced at once, naming the session that holds the table.
    let waiting = site.wait_for(EventKind::Waiting, ARTICLE_PATH).await;
    assert!(waiting.message.contains("report-job"), "{}", waiting.message);
    assert!(waiting.message.contains("SELECT COUNT(*) FROM content_article"), "{}", waiting.message);
    let waits = site.coordinator.lock_waits();
    assert!(waits[ARTICLE_PATH].summary().contains("report-job"), "{waits:?}");

    // While the lock is held (three seconds), reads go on and the change waits.
    let held_until = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    let mut reads = 0;
    while tokio::time::Instant::now() < held_until {
        let record = site.coordinator.content().get("article", "a1").await.unwrap();
        assert_eq!(record["title"], "Hello");
        reads += 1;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!approving.is_finished(), "the change applied while another session held the table");
    assert!(reads >= 20, "reads stalled behind the waiting change: {reads} in three seconds");

    sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
    let row = approving.await.unwrap().unwrap();
    assert_eq!(row.version, 2);
    assert!(site.coordinator.lock_waits().is_empty(), "the wait is over");
    let columns = site.coordinator.store().table_columns("content_article").await.unwrap();
    assert!(!columns.contains(&"body".to_string()), "{columns:?}");
    site.stop().await;
}

crate::backend_tests!(
    a_change_to_one_entity_never_holds_up_another,
    a_rollback_whose_file_cannot_be_rewritten_says_so,
    a_site_directory_replaced_and_refilled_plans_no_deletion,
    new_entities_apply_by_themselves_in_dependency_order,
    optional_field_applies_and_dropped_field_waits_for_approval,
    invalid_yaml_is_rejected_and_last_good_state_stays_live,
    reference_to_undefined_entity_is_rejected_naming_both_files,
    files_edited_while_down_become_changes_at_start_up,
    file_waiting_on_a_missing_entity_applies_once_it_arrives,
    engine_is_quiet_when_nothing_changes,
    quiet_waits_for_what_was_written_to_be_handled,
    probes_block_a_required_field_on_rows_and_allow_it_on_an_empty_table,
    dropping_an_empty_field_is_a_warning_and_data_arriving_later_is_caught,
    config_files_are_versioned_graded_by_key_path_and_selected_by_environment,
    oversized_files_alias_bombs_and_deep_nesting_are_rejected,
    events_reach_the_secure_log_and_the_history_chain_detects_tampering,
    rollback_after_a_dropped_field_restores_every_value_and_the_file,
    drift_is_detected_at_start_up_and_reported_not_repaired,
    entity_rename_keeps_rows_and_references_follow,
    hot_reload_policy_and_debounce_change_live,
    point_in_time_recovery_restores_files_and_data_then_backups_are_pruned,
    point_in_time_recovery_recreates_dependent_entities_in_order,
    drift_is_found_on_rescan,
    an_approval_publishes_one_snapshot_before_its_events,
    a_file_waiting_on_an_approval_goes_on_once_it_is_approved,
    secrets_in_config_files_are_never_shown,
    secret_references_read_only_what_the_server_allows,
    keys_a_site_names_secret_are_never_shown,
    index_names_of_different_fields_never_collide,
    indexes_under_their_old_name_are_renamed_at_start_up,
    files_outside_the_site_and_special_files_are_refused,
);
