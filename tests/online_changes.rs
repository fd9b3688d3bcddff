//! Changes to a big table while content traffic runs (docs/online-changes.md):
//! readers and a writer on the changed entity and a reader of another go on
//! through the content API during the change, on both backends, each taking
//! its online path (PostgreSQL: phases before a short cut-over; SQLite: a
//! shadow table filled in batches, then swapped). "Big" is a low
//! `online_threshold_rows`: the figures for millions of rows come from
//! `make bench-online`, not from tests.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use marain::engine::content::ContentError;
use marain::engine::store::{OnlineRun, RunControl, RunState};
use marain::engine::{Approval, Coordinator, EngineError, EventKind};
use serde_json::{json, Map, Value as Json};
use support::{Backend, TestSite, USER};

const USER_PATH: &str = "schemas/user.schema.yaml";
const ITEM_PATH: &str = "schemas/item.schema.yaml";
const ITEM: &str = "id: item\nname: Item\nfields:\n  - id: code\n    type: text\n  - id: score\n    type: integer\n";
/// `code` indexed, unique and required, `score` required: every online step
/// but a reference, in one change.
const ITEM_STRICT: &str = "id: item\nname: Item\nfields:\n  - id: code\n    type: text\n    required: true\n    \
                           unique: true\n    indexed: true\n  - id: score\n    type: integer\n    required: true\n";
const ROWS: i64 = 3000;

/// A site with `user` (one row) and `item` (`ROWS` rows), where a table of
/// 500 rows is big; `policy` is the schemas' auto-apply policy.
async fn big_site(backend: Backend, policy: &str) -> TestSite {
    let mut site = TestSite::start(backend).await;
    let config = format!(
        "id: hot_reload\nvalues:\n  online_threshold_rows: 500\n  directories:\n    schemas:\n      auto_apply: {policy}\n"
    );
    site.write("config/config.hot_reload.yaml", &config);
    site.wait_for(EventKind::Applied, "config/config.hot_reload.yaml").await;
    site.write(USER_PATH, USER);
    site.write(ITEM_PATH, ITEM);
    // Both apply, by themselves or approved, in whichever order they come;
    // every event up to both applies is taken, so later waits see only what
    // follows.
    let mut applied = std::collections::BTreeSet::new();
    while applied.len() < 2 {
        let event = tokio::time::timeout(std::time::Duration::from_secs(10), site.events.recv()).await;
        let event = event.expect("the entities did not apply").unwrap();
        match event.kind {
            EventKind::Applied if event.file.starts_with("schemas/") => {
                applied.insert(event.file);
            }
            EventKind::Pending => {
                let approval = Approval { actor: "ann".into(), reason: None, confirm: None };
                site.coordinator.approve(event.change_id.unwrap(), approval).await.unwrap();
            }
            _ => {}
        }
    }
    site.exec("INSERT INTO content_user (id, username) VALUES ('u1', 'ann')").await;
    site.exec(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS}) \
         INSERT INTO content_item (id, code, score) SELECT 'i' || i, 'c' || i, i FROM n"
    ))
    .await;
    site
}

/// Makes `site`'s online batches small, with a rest between them, so that a
/// change is still running when the test acts on it; nothing auto-applies.
async fn slow_batches(site: &mut TestSite) {
    let slow = "id: hot_reload\nvalues:\n  online_threshold_rows: 500\n  online_batch_rows: 100\n  \
                online_batch_pause_ms: 30\n  directories:\n    schemas:\n      auto_apply: none\n";
    site.write("config/config.hot_reload.yaml", slow);
    site.wait_for(EventKind::Applied, "config/config.hot_reload.yaml").await;
}

/// SQLite after an online rebuild ended, whichever way: no shadow table or
/// trigger left, and the database file whole (the cut-over wrote the schema
/// table to give the shadow's indexes their names). The retired table is
/// emptied and dropped after the approval is answered: it must be gone
/// within a generous while.
async fn assert_sqlite_clean(site: &TestSite) {
    let retired = "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'marain\\_retired\\_%' ESCAPE '\\'";
    for _ in 0..1500 {
        if site.count(retired).await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let left = site
        .count(
            "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'marain\\_shadow\\_%' ESCAPE '\\' OR \
             name LIKE 'marain\\_retired\\_%' ESCAPE '\\' OR type = 'trigger'",
        )
        .await;
    assert_eq!(left, 0, "a shadow or retired table, an index of one, or a trigger is left");
    let checked = site.texts("PRAGMA integrity_check").await;
    assert_eq!(checked, [Some("ok".to_string())], "the database is not whole");
}

/// What the traffic saw: failures, and the ids the writer created.
#[derive(Default)]
struct Seen {
    failures: Vec<String>,
    written: Vec<String>,
    requests: usize,
}

/// Readers of `item` and `user` and a writer of `item`, through the content
/// API, until `stop`: every request is valid before and after the change.
fn traffic(coordinator: &Coordinator, stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<Seen>> {
    let mut tasks = Vec::new();
    for role in ["read item", "read user", "write item"] {
        let content = coordinator.content().clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Seen::default();
            let mut n: i64 = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let outcome = match role {
                    "read item" => content.get("item", &format!("i{}", n % ROWS + 1)).await.map(drop),
                    "read user" => content.list("user", 10, 0).await.map(drop),
                    _ => {
                        let id = format!("w{n}");
                        let input = record(json!({"id": id, "code": format!("w{n}"), "score": n}));
                        let created = content.create("item", &input).await.map(drop);
                        if created.is_ok() {
                            seen.written.push(id);
                        }
                        created
                    }
                };
                seen.requests += 1;
                if let Err(e) = outcome {
                    seen.failures.push(format!("{role}: {e}"));
                }
                tokio::task::yield_now().await;
            }
            seen
        }));
    }
    tasks
}

fn record(value: Json) -> Map<String, Json> {
    value.as_object().cloned().unwrap()
}

async fn a_big_table_is_indexed_keyed_and_made_required_while_traffic_runs(backend: Backend) {
    let mut site = big_site(backend, "safe").await;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = traffic(&site.coordinator, stop.clone());
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    // An index is SAFE: it applies by itself.
    site.write(ITEM_PATH, &ITEM.replace("type: integer\n", "type: integer\n    indexed: true\n"));
    site.wait_for(EventKind::Applied, ITEM_PATH).await;
    // Unique and required are WARNING (no duplicate, no NULL on the live
    // rows): approved by a person.
    site.write(ITEM_PATH, ITEM_STRICT);
    let pending = site.wait_for(EventKind::Pending, ITEM_PATH).await;
    let shown = site.coordinator.snapshot().pending.iter().find(|c| c.file == ITEM_PATH).map(|c| c.plan.clone());
    let shown = shown.expect("the change waits");
    let phases: Vec<String> = shown.phases().iter().map(|p| p.summary.clone()).collect();
    assert_eq!(shown.path, marain::plan::PlanPath::Online);
    assert_eq!(shown.table_rows.map(|n| n >= ROWS), Some(true), "{:?}", shown.table_rows);
    // PostgreSQL: an index, a unique index, a NOT NULL proof for each field;
    // SQLite: the shadow table made, then filled.
    let count = match backend {
        Backend::Postgres => 4,
        Backend::Sqlite => 2,
    };
    assert_eq!(phases.len(), count, "{phases:?}");
    let approval = Approval { actor: "ann".into(), reason: None, confirm: Some("item".into()) };
    site.coordinator.approve(pending.change_id.unwrap(), approval).await.unwrap();
    // Each phase was announced as it started.
    for n in 1..=count {
        let progress = site.wait_for(EventKind::Progress, ITEM_PATH).await;
        assert!(progress.message.starts_with(&format!("online phase {n} of {count}: ")), "{}", progress.message);
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.store(true, Ordering::SeqCst);
    let mut written = Vec::new();
    for task in tasks {
        let seen = task.await.unwrap();
        assert!(seen.failures.is_empty(), "requests valid before and after failed: {:?}", seen.failures);
        assert!(seen.requests > 0);
        written.extend(seen.written);
    }
    assert!(!written.is_empty(), "the writer wrote nothing");
    for id in &written {
        let row = site.coordinator.content().get("item", id).await.unwrap();
        assert_eq!(row["code"], json!(id), "{row}");
    }
    let total = site.count("SELECT COUNT(*) FROM content_item").await;
    assert_eq!(total, ROWS + written.len() as i64);

    let history = site.coordinator.history(Some(ITEM_PATH), 2).await.unwrap();
    let sql = history.iter().flat_map(|row| row.sql.iter().cloned()).collect::<Vec<_>>().join(";\n");
    match backend {
        Backend::Postgres => {
            for expected in [
                "CREATE INDEX CONCURRENTLY",
                "CREATE UNIQUE INDEX CONCURRENTLY",
                "CHECK (\"code\" IS NOT NULL) NOT VALID",
                "VALIDATE CONSTRAINT",
                "UNIQUE USING INDEX",
                "SET NOT NULL",
            ] {
                assert!(sql.contains(expected), "no `{expected}` in what ran:\n{sql}");
            }
            let left = site
                .count(
                    "SELECT (SELECT COUNT(*) FROM pg_index WHERE NOT indisvalid) + \
                     (SELECT COUNT(*) FROM pg_constraint WHERE conname LIKE '%\\_not\\_null')",
                )
                .await;
            assert_eq!(left, 0, "the phases left an invalid index or a NOT NULL proof behind");
        }
        Backend::Sqlite => {
            for expected in ["CREATE TABLE \"marain_shadow_item\"", "ALTER TABLE \"marain_shadow_item\" RENAME TO"] {
                assert!(sql.contains(expected), "no `{expected}` in what ran:\n{sql}");
            }
            assert_sqlite_clean(&site).await;
            // The index the shadow table was built with has the field's name.
            let index = site.count("SELECT COUNT(*) FROM sqlite_master WHERE name = 'idx_item__code'").await;
            assert_eq!(index, 1, "the field's index has its own name");
        }
    }

    // The new schema holds: a duplicate is a conflict, a NULL is refused.
    let duplicate = site.coordinator.content().create("item", &record(json!({"code": "c1", "score": 1}))).await;
    assert!(matches!(duplicate, Err(ContentError::Conflict(_))), "{duplicate:?}");
    let pool = site.coordinator.store().pool().clone();
    let null = pool.execute("INSERT INTO content_item (id, code, score) VALUES ('n1', NULL, 1)", &[]).await;
    assert!(null.is_err(), "a NULL code was accepted");

    // Rolled back, every value stays and the constraints go.
    let back = site.coordinator.rollback(ITEM_PATH, 2, None).await.unwrap();
    let approval = Approval { actor: "ann".into(), reason: None, confirm: Some("item".into()) };
    site.coordinator.approve(back.id, approval).await.unwrap();
    pool.execute("INSERT INTO content_item (id, code, score) VALUES ('n1', NULL, 1)", &[]).await.unwrap();
    let total = site.count("SELECT COUNT(*) FROM content_item").await;
    assert_eq!(total, ROWS + written.len() as i64 + 1);
    site.stop().await;
}

/// A field of a big table dropped (its values backed up) while a client
/// keeps rewriting it directly in the database: on PostgreSQL the backup is
/// made by a trigger and batches, on SQLite the table is rebuilt into a
/// shadow table (the backup kept the same way). Either way the backup holds
/// each row's last value at the cut-over, so the rollback brings every one
/// back, the late writes included.
async fn a_dropped_field_keeps_every_value_written_up_to_the_cut_over(backend: Backend) {
    let mut site = big_site(backend, "none").await;
    site.exec("UPDATE content_item SET code = 'n' || id").await;
    let with_note = ITEM.replace("  - id: score\n", "  - id: note\n    type: text\n  - id: score\n");
    site.write(ITEM_PATH, &with_note);
    let pending = site.wait_for(EventKind::Pending, ITEM_PATH).await;
    let approval = || Approval { actor: "ann".into(), reason: None, confirm: Some("item".into()) };
    site.coordinator.approve(pending.change_id.unwrap(), approval()).await.unwrap();
    site.exec("UPDATE content_item SET note = 'first ' || id").await;

    // A client rewrites notes, one row after another, until the column is gone.
    let pool = site.coordinator.store().pool().clone();
    let writer = tokio::spawn(async move {
        let mut written = Vec::new();
        for n in 1..=ROWS {
            let sql = format!("UPDATE content_item SET note = 'late {n}' WHERE id = 'i{n}'");
            if pool.execute(&sql, &[]).await.is_err() {
                break;
            }
            written.push(n);
            tokio::task::yield_now().await;
        }
        written
    });
    site.write(ITEM_PATH, ITEM);
    let drop = site.wait_for(EventKind::Pending, ITEM_PATH).await;
    site.coordinator.approve(drop.change_id.unwrap(), approval()).await.unwrap();
    let written = writer.await.unwrap();
    assert!(!written.is_empty(), "no write went in before the drop");

    // The rollback is online too, filled from the backup in batches while
    // traffic runs: on PostgreSQL a shadow table swapped in at the cut-over,
    // on SQLite a shadow column named at the cut-over.
    let back = site.coordinator.rollback(ITEM_PATH, 2, None).await.unwrap();
    assert_eq!(back.plan.path, marain::plan::PlanPath::Online);
    let phases: Vec<String> = back.plan.phases().iter().map(|p| p.summary.clone()).collect();
    let (filled, swapped) = match backend {
        Backend::Postgres => {
            ("copy content_item into marain_shadow_item in keyset batches, note from ", "RENAME TO \"content_item\"")
        }
        Backend::Sqlite => ("refill content_item.note__marain from ", "RENAME COLUMN \"note__marain\" TO \"note\""),
    };
    assert!(phases.iter().any(|p| p.starts_with(filled)), "{phases:?}");
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = traffic(&site.coordinator, stop.clone());
    site.coordinator.approve(back.id, approval()).await.unwrap();
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        let seen = task.await.unwrap();
        assert!(seen.failures.is_empty(), "requests valid before and after failed: {:?}", seen.failures);
    }
    let history = site.coordinator.history(Some(ITEM_PATH), 1).await.unwrap();
    let sql = history.iter().flat_map(|row| row.sql.iter().cloned()).collect::<Vec<_>>().join(";\n");
    assert!(sql.contains(swapped), "the refill was not online:\n{sql}");
    let notes =
        site.texts("SELECT note FROM content_item WHERE id LIKE 'i%' ORDER BY CAST(substr(id, 2) AS INTEGER)").await;
    assert_eq!(notes.len() as i64, ROWS);
    for (n, note) in (1..=ROWS).zip(notes) {
        let expected = match written.contains(&n) {
            true => format!("late {n}"),
            false => format!("first i{n}"),
        };
        assert_eq!(note.as_deref(), Some(expected.as_str()), "row i{n}");
    }
    let mut columns = site.coordinator.store().table_columns("content_item").await.unwrap();
    columns.sort();
    assert_eq!(columns, ["code", "created_at", "id", "note", "score", "updated_at"], "a shadow column stayed");
    if backend == Backend::Postgres {
        // The table the shadow replaced is dropped once the approval answered.
        let left = "SELECT COUNT(*) FROM pg_tables WHERE tablename ~ '^marain_(shadow|gone|retired)_'";
        let mut n = 1;
        for _ in 0..400 {
            n = site.count(left).await;
            if n == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert_eq!(n, 0, "a shadow, gone or retired table stayed");
    }

    // A refill cut short leaves its shadow column (and its index): cleared
    // as what unfinished phases left, which SQLite cannot say `IF EXISTS`.
    site.exec("ALTER TABLE content_item ADD COLUMN note__marain TEXT").await;
    site.exec("CREATE INDEX idx_item__note__marain ON content_item (note__marain)").await;
    // PostgreSQL: a process killed after the swap committed, before the
    // table the shadow replaced was dropped, leaves it.
    if backend == Backend::Postgres {
        site.exec("CREATE TABLE marain_retired_item (id TEXT PRIMARY KEY, note TEXT)").await;
    }
    let cleared = site.coordinator.store().clear_unfinished_phases(None).await.unwrap();
    assert!(!cleared.is_empty(), "nothing was found unfinished");
    if backend == Backend::Postgres {
        let retired = site.count("SELECT COUNT(*) FROM pg_tables WHERE tablename = 'marain_retired_item'").await;
        assert_eq!(retired, 0, "the retired table stays: {cleared:?}");
    }
    let mut columns = site.coordinator.store().table_columns("content_item").await.unwrap();
    columns.sort();
    assert_eq!(columns, ["code", "created_at", "id", "note", "score", "updated_at"], "{cleared:?}");
    site.stop().await;
}

/// A field dropped while its table was small (its backup made in the
/// change's one transaction, without a key) and rolled back once the table
/// counts as big: the refill is online, walking a backup that has no key of
/// its own (PostgreSQL builds one first; SQLite walks its rowid), and every
/// value comes back; a row written since the drop takes the field's default.
async fn a_rollback_refills_online_from_a_backup_made_in_one_transaction(backend: Backend) {
    refill_after_a_drop(backend, 500, marain::plan::PlanPath::Online).await;
}

/// The same rollback on the one-transaction path means the same: every
/// value back, the default for a row written since the drop.
async fn a_rollback_refills_in_one_transaction_as_online(backend: Backend) {
    refill_after_a_drop(backend, DROP_THRESHOLD, marain::plan::PlanPath::Transaction).await;
}

/// Writes `text` as `item`'s schema and approves the change it waits with.
async fn approve_item(site: &mut TestSite, text: &str) {
    site.write(ITEM_PATH, text);
    let pending = site.wait_for(EventKind::Pending, ITEM_PATH).await;
    let approval = Approval { actor: "ann".into(), reason: None, confirm: Some("item".into()) };
    site.coordinator.approve(pending.change_id.unwrap(), approval).await.unwrap();
}

/// `online_threshold_rows` while `refill_after_a_drop` drops the field:
/// above the table's rows, so the backup is made in one transaction.
const DROP_THRESHOLD: u64 = 1_000_000;

/// A rollback's refill aborted mid-batches leaves no shadow column: SQLite
/// cannot drop a column `IF EXISTS`, so the reset finds it as unfinished
/// work on the table; PostgreSQL's reset drops it by name. The field stays
/// dropped, and the rollback applies when approved again.
async fn an_aborted_refill_leaves_no_shadow_column(backend: Backend) {
    let mut site = big_site(backend, "none").await;
    let approval = || Approval { actor: "ann".into(), reason: None, confirm: Some("item".into()) };
    let with_note = ITEM.replace("  - id: score\n", "  - id: note\n    type: text\n  - id: score\n");
    approve_item(&mut site, &with_note).await;
    site.exec("UPDATE content_item SET note = 'kept ' || id").await;
    approve_item(&mut site, ITEM).await;
    slow_batches(&mut site).await;

    let back = site.coordinator.rollback(ITEM_PATH, 2, None).await.unwrap();
    let coordinator = site.coordinator.clone();
    let approving = tokio::spawn({
        let coordinator = coordinator.clone();
        async move { coordinator.approve(back.id, approval()).await }
    });
    // Its batches under way: on PostgreSQL into a shadow table, on SQLite
    // into a shadow column.
    run_until(&coordinator, |r: &OnlineRun| r.rows_done > 0 && r.phase == 2).await;
    let shadows = "SELECT COUNT(*) FROM pg_tables WHERE tablename ~ '^marain_(shadow|gone)_'";
    let columns = coordinator.store().table_columns("content_item").await.unwrap();
    match backend {
        Backend::Postgres => assert_eq!(site.count(shadows).await, 2),
        Backend::Sqlite => assert!(columns.contains(&"note__marain".to_string()), "{columns:?}"),
    }
    coordinator.control_online(back.id, RunControl::Abort, "ann").await.unwrap();
    let aborted = approving.await.unwrap();
    assert!(aborted.is_err(), "{aborted:?}");
    let mut columns = coordinator.store().table_columns("content_item").await.unwrap();
    columns.sort();
    assert_eq!(columns, ["code", "created_at", "id", "score", "updated_at"], "the shadow column stays");
    if backend == Backend::Postgres {
        assert_eq!(site.count(shadows).await, 0, "the shadow table stays");
    }

    let again = site.wait_for(EventKind::Pending, ITEM_PATH).await;
    site.coordinator.approve(again.change_id.unwrap(), approval()).await.unwrap();
    let kept = site.count("SELECT COUNT(*) FROM content_item WHERE note = 'kept ' || id").await;
    assert_eq!(kept, ROWS, "every value is back once approved again");
    site.stop().await;
}

/// Drops a field with a default on the one-transaction path, writes a row,
/// then rolls the drop back with `online_threshold_rows` at `threshold`,
/// which must choose `path`.
async fn refill_after_a_drop(backend: Backend, threshold_rows: u64, path: marain::plan::PlanPath) {
    let mut site = big_site(backend, "none").await;
    let threshold = |rows: u64| {
        format!(
            "id: hot_reload\nvalues:\n  online_threshold_rows: {rows}\n  directories:\n    schemas:\n      \
             auto_apply: none\n"
        )
    };
    let approval = || Approval { actor: "ann".into(), reason: None, confirm: Some("item".into()) };
    let with_note = ITEM.replace("  - id: score\n", "  - id: note\n    type: text\n    default: none\n  - id: score\n");
    approve_item(&mut site, &with_note).await;
    site.exec("UPDATE content_item SET note = 'kept ' || id").await;
    site.write("config/config.hot_reload.yaml", &threshold(DROP_THRESHOLD));
    site.wait_for(EventKind::Applied, "config/config.hot_reload.yaml").await;
    site.write(ITEM_PATH, ITEM);
    let dropped = site.wait_for(EventKind::Pending, ITEM_PATH).await;
    let change = site.coordinator.snapshot().pending.iter().find(|c| c.file == ITEM_PATH).map(|c| c.plan.path);
    assert_eq!(change, Some(marain::plan::PlanPath::Transaction), "the drop must make its backup in one transaction");
    site.coordinator.approve(dropped.change_id.unwrap(), approval()).await.unwrap();
    site.exec("INSERT INTO content_item (id, code, score) VALUES ('late', 'late', 0)").await;
    if threshold_rows != DROP_THRESHOLD {
        site.write("config/config.hot_reload.yaml", &threshold(threshold_rows));
        site.wait_for(EventKind::Applied, "config/config.hot_reload.yaml").await;
    }

    let back = site.coordinator.rollback(ITEM_PATH, 2, None).await.unwrap();
    assert_eq!(back.plan.path, path);
    site.coordinator.approve(back.id, approval()).await.unwrap();
    let notes =
        site.texts("SELECT note FROM content_item WHERE id LIKE 'i%' ORDER BY CAST(substr(id, 2) AS INTEGER)").await;
    assert_eq!(notes.len() as i64, ROWS);
    for (n, note) in (1..=ROWS).zip(notes) {
        assert_eq!(note, Some(format!("kept i{n}")), "row i{n}");
    }
    let late = site.texts("SELECT note FROM content_item WHERE id = 'late'").await;
    assert_eq!(late, [Some("none".to_string())], "a row written since the drop takes the default");
    site.stop().await;
}

/// `score` becomes a float on a big table while traffic runs: on either
/// backend a shadow table kept by triggers and filled in batches, then a
/// cut-over that swaps the tables. Every request valid before
/// and after succeeds, every row (those written during the change too) holds
/// its value converted, and the rollback brings back every original.
async fn a_type_change_converts_every_row_written_up_to_the_cut_over(backend: Backend) {
    let mut site = big_site(backend, "none").await;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = traffic(&site.coordinator, stop.clone());
    site.write(ITEM_PATH, &ITEM.replace("type: integer", "type: float"));
    let pending = site.wait_for(EventKind::Pending, ITEM_PATH).await;
    let approval = || Approval { actor: "ann".into(), reason: None, confirm: Some("item".into()) };
    site.coordinator.approve(pending.change_id.unwrap(), approval()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.store(true, Ordering::SeqCst);
    let mut written = Vec::new();
    for task in tasks {
        let seen = task.await.unwrap();
        assert!(seen.failures.is_empty(), "requests valid before and after failed: {:?}", seen.failures);
        written.extend(seen.written);
    }
    let sql = site.coordinator.history(Some(ITEM_PATH), 1).await.unwrap()[0].sql.join(";\n");
    // Both backends copy the rows into a shadow table.
    assert!(sql.contains("marain_shadow_item"), "not online: {sql}");
    for n in [1, ROWS / 2, ROWS] {
        let row = site.coordinator.content().get("item", &format!("i{n}")).await.unwrap();
        assert_eq!(row["score"].as_f64(), Some(n as f64), "{row}");
    }
    for id in &written {
        let row = site.coordinator.content().get("item", id).await.unwrap();
        let n: f64 = id.trim_start_matches('w').parse().unwrap();
        assert_eq!(row["score"].as_f64(), Some(n), "{row}");
    }
    let back = site.coordinator.rollback(ITEM_PATH, 2, None).await.unwrap();
    site.coordinator.approve(back.id, approval()).await.unwrap();
    let total = site.count("SELECT COUNT(*) FROM content_item WHERE CAST(substr(id, 2) AS INTEGER) = score").await;
    assert_eq!(total, ROWS + written.len() as i64, "every original is back");
    site.stop().await;
}

/// `item` with a multi-valued field (a child table pointing at it) and a
/// `note` pointing at it.
const ITEM_TAGGED: &str = "id: item\nname: Item\nfields:\n  - id: code\n    type: text\n  - id: score\n    \
                           type: integer\n  - id: tags\n    type: text\n    cardinality: -1\n";
const NOTE: &str = "id: note\nname: Note\nfields:\n  - id: about\n    type: entity_reference\n    \
                    target_entity: item\n";

/// Writes `file` and approves the change it makes.
async fn apply(site: &mut TestSite, path: &str, file: &str) {
    site.write(path, file);
    let pending = site.wait_for(EventKind::Pending, path).await;
    let approval = Approval { actor: "ann".into(), reason: None, confirm: Some("item".into()) };
    site.coordinator.approve(pending.change_id.unwrap(), approval).await.unwrap();
}

/// A type change of a table that others point at (a child table and another
/// entity's reference), with rows deleted, updated and created again while
/// its rows are copied: paused mid-copy, on both sides of where the copy
/// stands, then by a deleter running beside the rest of the copy (a batch may
/// read a row just before its delete commits). Afterwards no deleted row is
/// back, every update and re-creation holds its new value converted, and the
/// keys pointing at the table point at the new one (deleting an item deletes
/// its tags; on PostgreSQL each key is there under its own name, validated).
async fn a_type_change_keeps_what_was_deleted_updated_and_pointed_at_meanwhile(backend: Backend) {
    use sqlx::Connection;
    let mut site = big_site(backend, "none").await;
    let config = "id: hot_reload\nvalues:\n  online_threshold_rows: 500\n  online_batch_rows: 100\n  \
                  online_batch_pause_ms: 30\n  lock_timeout_ms: 50\n  directories:\n    schemas:\n      \
                  auto_apply: none\n";
    site.write("config/config.hot_reload.yaml", config);
    site.wait_for(EventKind::Applied, "config/config.hot_reload.yaml").await;
    apply(&mut site, ITEM_PATH, ITEM_TAGGED).await;
    apply(&mut site, "schemas/note.schema.yaml", NOTE).await;
    site.exec("INSERT INTO content_item__tags (parent_id, delta, value) SELECT id, 0, 'x' || id FROM content_item")
        .await;
    site.exec("INSERT INTO content_note (id, about_id) VALUES ('n1', 'i5'), ('n2', 'i2999')").await;

    site.write(ITEM_PATH, &ITEM_TAGGED.replace("type: integer", "type: float"));
    let id = site.wait_for(EventKind::Pending, ITEM_PATH).await.change_id.unwrap();
    let coordinator = site.coordinator.clone();
    let (approving, paused) = approve_and_pause_mid_copy(&coordinator, id).await;
    let content = coordinator.content().clone();
    let mut deleted = std::collections::BTreeSet::new();
    let mut updated = std::collections::BTreeMap::new();
    // PostgreSQL: a row the copy has not reached is deleted in a transaction
    // kept open until the batches are over. The batches read the row
    // meanwhile (the delete is not committed) and copy it after the trigger
    // found nothing to delete; only the key the trigger kept takes it out.
    let mut holder = None;
    if backend == Backend::Postgres {
        let url = std::fs::read_to_string(site.dir.path().join("database-url")).unwrap();
        let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
        let mut conn = sqlx::PgConnection::connect_with(&options.application_name("late-delete")).await.unwrap();
        sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
        let ahead = format!(
            "DELETE FROM content_item WHERE id = (SELECT id FROM content_item WHERE id NOT IN ('i5', 'i2999') \
             AND substr(id, 2)::int % 7 NOT IN (2, 3) ORDER BY id OFFSET {} LIMIT 1) RETURNING id",
            paused.rows_done + 300
        );
        let (id,): (String,) = sqlx::query_as(&ahead).fetch_one(&mut conn).await.unwrap();
        deleted.insert(id);
        holder = Some(conn);
    }
    let held = deleted.clone();
    // Ids sort as text (`i1`, `i10`, `i100`, …): these are on both sides of
    // where the copy stands.
    for n in (1..=ROWS).step_by(97).filter(|n| ![5, 2999].contains(n) && !held.contains(&format!("i{n}"))) {
        content.delete("item", &format!("i{n}")).await.unwrap();
        deleted.insert(format!("i{n}"));
    }
    for n in (3..=ROWS).step_by(89).filter(|n| !deleted.contains(&format!("i{n}"))) {
        let score = 100_000 + n;
        content.update("item", &format!("i{n}"), &record(json!({"score": score}))).await.unwrap();
        updated.insert(format!("i{n}"), score);
    }
    // Deleted, then created again: it is there, with its new value.
    content.create("item", &record(json!({"id": "i1", "code": "again", "score": 11}))).await.unwrap();
    deleted.remove("i1");
    updated.insert("i1".to_string(), 11);
    coordinator.control_online(id, RunControl::Resume, "ann").await.unwrap();
    let deleter = tokio::spawn({
        let content = content.clone();
        let spared = [updated.keys().cloned().collect::<Vec<_>>(), vec!["i5".into(), "i2999".into()]].concat();
        let spared = [spared, held.iter().cloned().collect()].concat();
        async move {
            let mut gone = Vec::new();
            for n in (2..=ROWS).step_by(7) {
                let id = format!("i{n}");
                if spared.contains(&id) {
                    continue;
                }
                if content.delete("item", &id).await.is_ok() {
                    gone.push(id);
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            gone
        }
    });
    if let Some(mut conn) = holder {
        // Committed once the phase clearing the rows deleted meanwhile is
        // over (the next one, copying the keys, waits for this transaction):
        // only the cut-over can take the row out now.
        run_until(&coordinator, |r: &OnlineRun| r.phase >= 4).await;
        sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
    }
    approving.await.unwrap().unwrap();
    deleted.extend(deleter.await.unwrap());

    let left = site.texts("SELECT id FROM content_item ORDER BY id").await;
    let back: Vec<&String> = left.iter().flatten().filter(|id| deleted.contains(*id)).collect();
    assert!(back.is_empty(), "deleted rows came back: {back:?}");
    assert_eq!(left.len() as i64, ROWS - deleted.len() as i64, "rows were lost");
    for (id, score) in &updated {
        let row = content.get("item", id).await.unwrap();
        assert_eq!(row["score"].as_f64(), Some(*score as f64), "{row}");
    }
    let row = content.get("item", "i1").await.unwrap();
    assert_eq!(row["code"], json!("again"), "{row}");
    // The child table's key points at the new table: deleting an item
    // deletes its tags; the note's reference still holds.
    assert_eq!(site.count("SELECT COUNT(*) FROM content_item__tags WHERE parent_id = 'i4'").await, 1);
    content.delete("item", "i4").await.unwrap();
    assert_eq!(site.count("SELECT COUNT(*) FROM content_item__tags WHERE parent_id = 'i4'").await, 0);
    let orphans = "SELECT COUNT(*) FROM content_item__tags t WHERE NOT EXISTS \
                   (SELECT 1 FROM content_item i WHERE i.id = t.parent_id)";
    assert_eq!(site.count(orphans).await, 0, "tags of deleted items are left");
    let note = content.get("note", "n1").await.unwrap();
    assert_eq!(note["about"], json!("i5"), "{note}");
    if backend == Backend::Postgres {
        // Validated before the cut-over, under their own names.
        let keys = "SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint WHERE contype = 'f' \
                    AND convalidated AND confrelid = 'content_item'::regclass";
        let keys = site.texts(keys).await;
        let expected = "content_item__tags_parent_id_fkey,content_note_about_id_fkey";
        assert_eq!(keys, [Some(expected.to_string())], "the keys pointing at item are not on the new table");
        let stray = site.count("SELECT COUNT(*) FROM pg_tables WHERE tablename ~ '^marain_(shadow|gone)_'").await;
        assert_eq!(stray, 0, "a shadow or gone table is left");
    } else {
        assert_sqlite_clean(&site).await;
    }
    site.stop().await;
}

/// PostgreSQL only (its batches are a function: `plan/postgres/swap.rs`). A
/// row ahead of the copy is updated in a transaction that stays open, so the
/// trigger's copy of it is not committed yet when a batch reaches it: the
/// batch's plain insert waits for that transaction and then fails on the
/// key, and the batch is copied again skipping what the trigger wrote. The
/// change applies, with the update's value.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_meeting_a_row_the_trigger_is_writing_copies_around_it_on_postgres() {
    use sqlx::Connection;
    let mut site = big_site(Backend::Postgres, "none").await;
    slow_batches(&mut site).await;
    site.write(ITEM_PATH, &ITEM.replace("type: integer", "type: float"));
    let id = site.wait_for(EventKind::Pending, ITEM_PATH).await.change_id.unwrap();
    let coordinator = site.coordinator.clone();
    let (approving, paused) = approve_and_pause_mid_copy(&coordinator, id).await;
    let url = std::fs::read_to_string(site.dir.path().join("database-url")).unwrap();
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let mut writer = sqlx::PgConnection::connect_with(&options.application_name("open-update")).await.unwrap();
    sqlx::query("BEGIN").execute(&mut writer).await.unwrap();
    let ahead = format!(
        "UPDATE content_item SET score = 424242 WHERE id = \
         (SELECT id FROM content_item ORDER BY id OFFSET {} LIMIT 1) RETURNING id",
        paused.rows_done + 150
    );
    let (row,): (String,) = sqlx::query_as(&ahead).fetch_one(&mut writer).await.unwrap();
    coordinator.control_online(id, RunControl::Resume, "ann").await.unwrap();
    let waiting = "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%marain_copy%'";
    let mut waited = false;
    for _ in 0..400 {
        if site.count(waiting).await == 1 {
            waited = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(waited, "no batch waited for the open update");
    sqlx::query("COMMIT").execute(&mut writer).await.unwrap();
    approving.await.unwrap().unwrap();
    let updated = site.coordinator.content().get("item", &row).await.unwrap();
    assert_eq!(updated["score"].as_f64(), Some(424242.0), "{updated}");
    assert_eq!(site.count("SELECT COUNT(*) FROM content_item").await, ROWS);
    let converted = "SELECT COUNT(*) FROM content_item WHERE score = CAST(substr(id, 2) AS FLOAT)";
    assert_eq!(site.count(converted).await, ROWS - 1, "every other row converted");
    site.stop().await;
}

/// A duplicate written after the change was planned: PostgreSQL's unique
/// index build fails in its phase, SQLite's copy into the shadow table; either
/// way the approval is refused as the data now grades it, the old schema
/// stays live and nothing of the phases is left behind.
async fn a_phase_the_data_refuses_leaves_the_old_schema_live(backend: Backend) {
    let mut site = big_site(backend, "none").await;
    site.write(ITEM_PATH, ITEM_STRICT);
    let pending = site.wait_for(EventKind::Pending, ITEM_PATH).await;
    site.exec("INSERT INTO content_item (id, code, score) VALUES ('dup', 'c1', 1)").await;
    let approval = Approval { actor: "ann".into(), reason: None, confirm: Some("item".into()) };
    let refused = site.coordinator.approve(pending.change_id.unwrap(), approval).await;
    match refused {
        Err(EngineError::Store(e)) => {
            let message = e.to_string();
            assert!(message.contains("the live data changed since approval"), "{message}");
            assert!(message.contains("appears more than once"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(site.coordinator.changing().is_empty());
    // The old schema: duplicates and NULLs are still fine.
    site.exec("INSERT INTO content_item (id, code, score) VALUES ('dup2', 'c1', NULL)").await;
    if backend == Backend::Postgres {
        let left = site
            .count(
                "SELECT (SELECT COUNT(*) FROM pg_indexes WHERE tablename = 'content_item' AND indexname <> \
                 'content_item_pkey') + (SELECT COUNT(*) FROM pg_constraint WHERE conname LIKE 'content_item_%' \
                 AND contype <> 'p')",
            )
            .await;
        assert_eq!(left, 0, "the failed phases left an index or a constraint behind");
    } else {
        assert_sqlite_clean(&site).await;
    }
    let columns = site.coordinator.store().table_columns("content_item").await.unwrap();
    assert_eq!(columns, ["id", "code", "score", "created_at", "updated_at"]);
    site.stop().await;
}

/// PostgreSQL only (phases run only there). While a change's phases run, the
/// table already refuses what the new schema will: a NULL where the field
/// becomes required, a value outside the new allowed ones. Such a write is a
/// conflict naming the field (HTTP 409), not a database error; here the
/// phases' constraints are put in place as the phases put them.
#[tokio::test]
async fn a_write_the_change_in_progress_refuses_is_a_conflict_naming_the_field_on_postgres() {
    let site = big_site(Backend::Postgres, "safe").await;
    site.exec("ALTER TABLE content_item ADD CONSTRAINT content_item_code_not_null CHECK (code IS NOT NULL) NOT VALID")
        .await;
    site.exec("ALTER TABLE content_item ADD CONSTRAINT content_item_score_check CHECK (score < 100) NOT VALID").await;
    let content = site.coordinator.content();
    let missing = content.create("item", &record(json!({"score": 1}))).await;
    match missing {
        Err(ContentError::Conflict(why)) => {
            assert!(why.contains("`code` must have a value: a change making it required is being applied"), "{why}")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let outside = content.create("item", &record(json!({"code": "x", "score": 500}))).await;
    match outside {
        Err(ContentError::Conflict(why)) => {
            assert_eq!(why, "the value of `score` is not one the schema allows");
            assert!(!why.contains("500"));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // A type change's trigger converting `code` to an integer, as its phases make it.
    site.exec(
        "CREATE FUNCTION marain_backup_v2_ab12_content_item__code_sync() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN PERFORM CAST(NEW.code AS BIGINT); RETURN NEW; END $$",
    )
    .await;
    site.exec(
        "CREATE TRIGGER sync BEFORE INSERT OR UPDATE ON content_item FOR EACH ROW EXECUTE FUNCTION \
         marain_backup_v2_ab12_content_item__code_sync()",
    )
    .await;
    let unconvertible = content.create("item", &record(json!({"code": "abc", "score": 1}))).await;
    match unconvertible {
        Err(ContentError::Conflict(why)) => {
            assert!(why.starts_with("the value of `code` cannot be held by the type a change being applied"), "{why}");
            assert!(!why.contains("abc"));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    site.stop().await;
}

/// Approves change `id` in the background and pauses it once its batches
/// (phase 2) have taken rows: the approval's task, and the run as paused.
async fn approve_and_pause_mid_copy(
    coordinator: &Coordinator,
    id: u64,
) -> (tokio::task::JoinHandle<Result<marain::engine::VersionRow, EngineError>>, OnlineRun) {
    let approving = tokio::spawn({
        let coordinator = coordinator.clone();
        let approval = Approval { actor: "ann".into(), reason: None, confirm: Some("item".into()) };
        async move { coordinator.approve(id, approval).await }
    });
    run_until(coordinator, |r: &OnlineRun| r.rows_done > 0 && r.phase == 2).await;
    coordinator.control_online(id, RunControl::Pause, "ann").await.unwrap();
    let paused = run_until(coordinator, |r: &OnlineRun| r.state == RunState::Paused).await;
    (approving, paused)
}

/// The online run of `ITEM_PATH` once it is as `want` says.
async fn run_until(coordinator: &Coordinator, want: impl Fn(&OnlineRun) -> bool) -> OnlineRun {
    for _ in 0..400 {
        if let Some(run) = coordinator.online_runs().get(ITEM_PATH).filter(|r| want(r)) {
            return run.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the online run never got there: {:?}", coordinator.online_runs());
}

/// An approver pauses, resumes and aborts a change's running phases, as
/// `POST …/pause|resume|abort` do. A type change of a big table runs its
/// batches slowly (small batches with a rest between): paused, no batch runs
/// while writes go on (converted into the shadow table); resumed, the batches go on; aborted, what the
/// phases made is cleared, every value is as it was and the change waits for
/// approval again, and then applies.
async fn an_approver_pauses_resumes_and_aborts_a_running_change(backend: Backend) {
    let mut site = big_site(backend, "none").await;
    slow_batches(&mut site).await;
    site.write(ITEM_PATH, &ITEM.replace("type: integer", "type: text"));
    let id = site.wait_for(EventKind::Pending, ITEM_PATH).await.change_id.unwrap();
    let coordinator = site.coordinator.clone();
    let not_running = coordinator.control_online(id, RunControl::Pause, "ann").await;
    assert!(
        matches!(not_running, Err(EngineError::NotRunning { .. })),
        "a change not approved runs nothing: {not_running:?}"
    );
    let approval = || Approval { actor: "ann".into(), reason: None, confirm: Some("item".into()) };
    let approving = tokio::spawn({
        let coordinator = coordinator.clone();
        async move { coordinator.approve(id, approval()).await }
    });
    let started = run_until(&coordinator, |r: &OnlineRun| r.rows_done > 0 && r.phase >= 2).await;
    assert_eq!(started.rows_total.map(|n| n >= ROWS), Some(true), "{started:?}");
    assert!(started.rows_per_second > 0.0, "{started:?}");
    assert!(started.describe().contains("rows/s"), "{}", started.describe());

    coordinator.control_online(id, RunControl::Pause, "ann").await.unwrap();
    let paused = run_until(&coordinator, |r: &OnlineRun| r.state == RunState::Paused).await;
    assert_eq!(paused.state_by.as_deref(), Some("ann"));
    let again = coordinator.control_online(id, RunControl::Pause, "bob").await;
    assert!(matches!(again, Err(EngineError::NotRunning { .. })), "paused already: {again:?}");
    // Paused: writes go on, converted by the trigger; no batch runs.
    let content = coordinator.content();
    content.create("item", &record(json!({"id": "p1", "code": "p1", "score": 7}))).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let still = coordinator.online_runs().get(ITEM_PATH).cloned().unwrap();
    assert_eq!((still.phase, still.rows_done), (paused.phase, paused.rows_done), "a batch ran while paused");
    let converted = "SELECT COUNT(*) FROM marain_shadow_item WHERE id = 'p1' AND score = '7'";
    assert_eq!(site.count(converted).await, 1, "the write was not converted while paused");

    coordinator.control_online(id, RunControl::Resume, "ann").await.unwrap();
    run_until(&coordinator, |r: &OnlineRun| {
        r.state == RunState::Running && (r.phase, r.rows_done) != (paused.phase, paused.rows_done)
    })
    .await;
    coordinator.control_online(id, RunControl::Abort, "ann").await.unwrap();
    match approving.await.unwrap() {
        Err(EngineError::Store(e)) => {
            assert_eq!(e.kind(), marain::ErrorKind::Conflict);
            assert!(e.to_string().contains("aborted by ann"), "{e}");
        }
        other => panic!("expected the abort, got {other:?}"),
    }
    assert!(coordinator.online_runs().is_empty());
    assert_eq!(site.count("SELECT COUNT(*) FROM marain_online_runs").await, 0);
    let columns = coordinator.store().table_columns("content_item").await.unwrap();
    assert_eq!(columns, ["id", "code", "score", "created_at", "updated_at"], "the shadow column stays");
    let left = match backend {
        Backend::Postgres => {
            "SELECT (SELECT COUNT(*) FROM pg_trigger WHERE NOT tgisinternal) + \
             (SELECT COUNT(*) FROM pg_tables WHERE tablename LIKE 'marain\\_backup\\_%')"
        }
        Backend::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' OR name LIKE 'marain\\_backup\\_%' \
             ESCAPE '\\' OR name LIKE 'marain\\_shadow\\_%' ESCAPE '\\'"
        }
    };
    assert_eq!(site.count(left).await, 0, "the aborted phases left a trigger, a shadow or a backup table behind");
    let kept = site.count("SELECT COUNT(*) FROM content_item WHERE score = CAST(substr(id, 2) AS INTEGER)").await;
    assert_eq!(kept, ROWS, "every value is as it was");
    let waits = coordinator.snapshot().pending.iter().any(|c| c.id == id);
    assert!(waits, "the aborted change waits for approval again");

    coordinator.approve(id, approval()).await.unwrap();
    assert_eq!(site.count("SELECT COUNT(*) FROM content_item WHERE score = substr(id, 2)").await, ROWS);
    assert_eq!(site.count("SELECT COUNT(*) FROM content_item WHERE id = 'p1' AND score = '7'").await, 1);
    site.stop().await;
}

/// PostgreSQL only (phases run only there). Once the phases' own DDL is
/// done (held paused meanwhile), a report job reads `item` in a transaction
/// it keeps open: the batches go on beside it (their locks do not conflict
/// with a reader's), the cut-over cannot take the table and is retried after
/// each lock timeout with what the phases made kept (they run once, not again
/// per attempt), and once the reader lets go the change applies.
#[tokio::test(flavor = "multi_thread")]
async fn a_cut_over_retried_behind_a_reader_keeps_what_the_phases_made_on_postgres() {
    use sqlx::Connection;
    let mut site = big_site(Backend::Postgres, "none").await;
    let config = "id: hot_reload\nvalues:\n  online_threshold_rows: 500\n  online_batch_rows: 100\n  \
                  online_batch_pause_ms: 20\n  lock_timeout_ms: 50\n  directories:\n    schemas:\n      \
                  auto_apply: none\n";
    site.write("config/config.hot_reload.yaml", config);
    site.wait_for(EventKind::Applied, "config/config.hot_reload.yaml").await;
    site.write(ITEM_PATH, &ITEM.replace("type: integer", "type: float"));
    let id = site.wait_for(EventKind::Pending, ITEM_PATH).await.change_id.unwrap();
    let coordinator = site.coordinator.clone();
    let approval = Approval { actor: "ann".into(), reason: None, confirm: Some("item".into()) };
    let approving = tokio::spawn({
        let coordinator = coordinator.clone();
        async move { coordinator.approve(id, approval).await }
    });
    // The batches (the shadow table filled, phase 2 of 5; the rows deleted
    // meanwhile cleared, the keys copied and the statistics taken follow)
    // under way: held while the reader starts.
    let filling = run_until(&coordinator, |r| r.phase == 2 && r.rows_done > 0).await;
    assert_eq!(filling.phases, 5, "{filling:?}");
    coordinator.control_online(id, RunControl::Pause, "ann").await.unwrap();
    run_until(&coordinator, |r| r.state == RunState::Paused).await;
    let url = std::fs::read_to_string(site.dir.path().join("database-url")).unwrap();
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let mut reader = sqlx::PgConnection::connect_with(&options.application_name("report-job")).await.unwrap();
    sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
    sqlx::query("SELECT COUNT(*) FROM content_item").execute(&mut reader).await.unwrap();
    coordinator.control_online(id, RunControl::Resume, "ann").await.unwrap();

    let mut starts = 0;
    let mut waits = 0;
    while waits < 3 {
        let event = tokio::time::timeout(std::time::Duration::from_secs(20), site.events.recv()).await;
        let event = event.expect("the cut-over never waited").unwrap();
        match event.kind {
            EventKind::Progress if event.message.starts_with("online phase 1 of") => starts += 1,
            EventKind::Waiting if event.file == ITEM_PATH => waits += 1,
            _ => {}
        }
    }
    assert!(!approving.is_finished(), "the cut-over took the table a reader holds");
    let shadow = site.count("SELECT COUNT(*) FROM pg_tables WHERE tablename = 'marain_shadow_item'").await;
    assert_eq!(shadow, 1, "the shadow table went while the cut-over waited");
    sqlx::query("COMMIT").execute(&mut reader).await.unwrap();
    approving.await.unwrap().unwrap();
    while let Ok(event) = site.events.try_recv() {
        if event.kind == EventKind::Progress && event.message.starts_with("online phase 1 of") {
            starts += 1;
        }
    }
    assert_eq!(starts, 1, "phase 1 started more than once: the phases ran again for a retried cut-over");
    let converted = site.count("SELECT COUNT(*) FROM content_item WHERE score = CAST(substr(id, 2) AS FLOAT)").await;
    assert_eq!(converted, ROWS);
    site.stop().await;
}

/// PostgreSQL only (phases run only there). A report job reads `item` in a
/// transaction it keeps open as a change is approved: the first phase's
/// `ADD COLUMN` cannot take the table. It waits only briefly each time and
/// tries again, so the content reads of `item` queued behind it never wait
/// long: they go on throughout the hold (with one full `lock_timeout` wait
/// they would stall for it). Once the reader lets go, the change applies.
#[tokio::test(flavor = "multi_thread")]
async fn a_phase_meeting_a_reader_lets_go_and_tries_again_on_postgres() {
    use sqlx::Connection;
    let mut site = big_site(Backend::Postgres, "none").await;
    let config = "id: hot_reload\nvalues:\n  online_threshold_rows: 500\n  lock_timeout_ms: 5000\n  directories:\n    \
                  schemas:\n      auto_apply: none\n";
    site.write("config/config.hot_reload.yaml", config);
    site.wait_for(EventKind::Applied, "config/config.hot_reload.yaml").await;
    site.write(ITEM_PATH, &ITEM.replace("type: integer", "type: float"));
    let id = site.wait_for(EventKind::Pending, ITEM_PATH).await.change_id.unwrap();
    let url = std::fs::read_to_string(site.dir.path().join("database-url")).unwrap();
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let mut reader = sqlx::PgConnection::connect_with(&options.application_name("report-job")).await.unwrap();
    sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
    sqlx::query("SELECT COUNT(*) FROM content_item").execute(&mut reader).await.unwrap();

    let coordinator = site.coordinator.clone();
    let approval = Approval { actor: "ann".into(), reason: None, confirm: Some("item".into()) };
    let approving = tokio::spawn(async move { coordinator.approve(id, approval).await });
    site.wait_for(EventKind::Progress, ITEM_PATH).await;
    // Held for two seconds: reads of `item` go on (the 5 s lock timeout
    // would have held them all that time).
    let held_until = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut reads = 0;
    while tokio::time::Instant::now() < held_until {
        site.coordinator.content().get("item", "i1").await.unwrap();
        reads += 1;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!approving.is_finished(), "the phase took the table a reader holds");
    assert!(reads >= 10, "reads of item stalled behind the waiting phase: {reads} in two seconds");
    sqlx::query("COMMIT").execute(&mut reader).await.unwrap();
    approving.await.unwrap().unwrap();
    let converted = site.count("SELECT COUNT(*) FROM content_item WHERE score = CAST(substr(id, 2) AS FLOAT)").await;
    assert_eq!(converted, ROWS);
    site.stop().await;
}

/// While a change's phases run, the table already refuses what the new
/// schema will, as a conflict naming the field (HTTP 409) and never the
/// value, not a database error: `code` becomes an integer, the change is
/// paused mid-batches, and a client writes. What the new type can hold goes
/// in and is there, converted, once the change applies.
async fn a_write_the_running_change_refuses_is_a_conflict_naming_the_field(backend: Backend) {
    let mut site = big_site(backend, "none").await;
    slow_batches(&mut site).await;
    site.exec("UPDATE content_item SET code = substr(id, 2)").await;
    site.write(ITEM_PATH, &ITEM.replace("code\n    type: text", "code\n    type: integer"));
    let id = site.wait_for(EventKind::Pending, ITEM_PATH).await.change_id.unwrap();
    let coordinator = site.coordinator.clone();
    let approval = || Approval { actor: "ann".into(), reason: None, confirm: Some("item".into()) };
    let approving = tokio::spawn({
        let coordinator = coordinator.clone();
        async move { coordinator.approve(id, approval()).await }
    });
    run_until(&coordinator, |r: &OnlineRun| r.rows_done > 0 && r.phase >= 2).await;
    coordinator.control_online(id, RunControl::Pause, "ann").await.unwrap();
    run_until(&coordinator, |r: &OnlineRun| r.state == RunState::Paused).await;

    let content = coordinator.content();
    let unconvertible = content.create("item", &record(json!({"id": "x1", "code": "abc", "score": 1}))).await;
    match unconvertible {
        Err(ContentError::Conflict(why)) => {
            assert!(why.starts_with("the value of `code` cannot be held by the type a change being applied"), "{why}");
            assert!(!why.contains("abc"), "{why}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    content.create("item", &record(json!({"id": "x2", "code": "42", "score": 1}))).await.unwrap();
    content.update("item", "i1", &record(json!({"code": "7"}))).await.unwrap();
    coordinator.control_online(id, RunControl::Resume, "ann").await.unwrap();
    approving.await.unwrap().unwrap();
    assert_eq!(site.count("SELECT COUNT(*) FROM content_item WHERE id = 'x1'").await, 0);
    for (row, code) in [("x2", 42), ("i1", 7), ("i2", 2)] {
        let got = content.get("item", row).await.unwrap();
        assert_eq!(got["code"], json!(code), "{got}");
    }
    if backend == Backend::Sqlite {
        assert_sqlite_clean(&site).await;
    }
    site.stop().await;
}

crate::backend_tests!(
    multi_thread: a_big_table_is_indexed_keyed_and_made_required_while_traffic_runs,
    a_dropped_field_keeps_every_value_written_up_to_the_cut_over,
    a_rollback_refills_online_from_a_backup_made_in_one_transaction,
    a_rollback_refills_in_one_transaction_as_online,
    an_aborted_refill_leaves_no_shadow_column,
    a_type_change_converts_every_row_written_up_to_the_cut_over,
    a_type_change_keeps_what_was_deleted_updated_and_pointed_at_meanwhile,
    a_phase_the_data_refuses_leaves_the_old_schema_live,
    an_approver_pauses_resumes_and_aborts_a_running_change,
    a_write_the_running_change_refuses_is_a_conflict_naming_the_field,
);
