//! Reference data (`data/<entity>/*.yaml`), the third file kind, end to end:
//! real files, the real watcher, a real database, on SQLite and on PostgreSQL
//! (`backend_tests!`).
//!
//! The case table below is the data kind's counterpart of `case_table.rs`:
//! each case applies a first version of a data file, lets another writer touch
//! the rows, saves a second version, checks its grade and the rows it leaves,
//! then rolls back to the first version and expects every row, every column,
//! exactly as it was just before the second version applied.

mod support;

use marain::engine::drift::Drift;
use marain::engine::{Approval, EngineError, EngineEvent, EventKind};
use marain::Severity;
use support::{Backend, TestSite};

const CATEGORY_PATH: &str = "schemas/category.schema.yaml";
const ARTICLE_PATH: &str = "schemas/article.schema.yaml";
const DATA: &str = "data/category/main.yaml";

const CATEGORY: &str = "id: category\nname: Category\nfields:\n  - id: title\n    type: text\n    required: true\n  - id: rank\n    type: integer\n  - id: featured\n    type: boolean\n  - id: note\n    type: text\n  - id: published\n    type: datetime\n  - id: weight\n    type: float\n  - id: parent\n    type: entity_reference\n    target_entity: category\n  - id: tags\n    type: text\n    cardinality: -1\n";
const ARTICLE: &str = "id: article\nname: Article\nfields:\n  - id: title\n    type: text\n    required: true\n  - id: category\n    type: entity_reference\n    target_entity: category\n";

/// Every column of every row of `table`, as text, in the order of the first
/// two columns (id, or parent and position).
async fn rows(site: &TestSite, table: &str, columns: &[&str]) -> Vec<String> {
    let cells: Vec<String> = columns.iter().map(|c| format!("COALESCE(CAST({c} AS TEXT), '-')")).collect();
    let order = columns.iter().take(2).copied().collect::<Vec<_>>().join(", ");
    let sql = format!("SELECT {} FROM {table} ORDER BY {order}", cells.join(" || '|' || "));
    site.texts(&sql).await.into_iter().map(Option::unwrap_or_default).collect()
}

/// Every value of the multi-valued `tags`, as `id:position:value`.
async fn tag_rows(site: &TestSite) -> Vec<String> {
    rows(site, "content_category__tags", &["parent_id", "delta", "value"]).await
}

async fn category_rows(site: &TestSite) -> Vec<String> {
    let columns = ["id", "title", "rank", "featured", "note", "published", "weight", "created_at", "updated_at"];
    rows(site, "content_category", &columns).await
}

/// The next event for `file` that applied it or made it wait.
async fn decided(site: &mut TestSite, file: &str) -> EngineEvent {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, site.events.recv()).await {
            Ok(Ok(e)) if e.file == file && matches!(e.kind, EventKind::Applied | EventKind::Pending) => return e,
            Ok(Ok(e)) if e.file == file && e.kind == EventKind::Rejected => panic!("{file} rejected: {}", e.message),
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => panic!("event stream broke: {e}"),
            Err(_) => panic!("{file} was neither applied nor held within 10 s"),
        }
    }
}

/// A site with the two schemas applied, on `on`.
async fn started(on: Backend) -> TestSite {
    let mut site = TestSite::start(on).await;
    site.write(CATEGORY_PATH, CATEGORY);
    site.wait_for(EventKind::Applied, CATEGORY_PATH).await;
    site.write(ARTICLE_PATH, ARTICLE);
    site.wait_for(EventKind::Applied, ARTICLE_PATH).await;
    site
}

fn approval(confirm: &str) -> Approval {
    Approval { actor: "ann".into(), reason: None, confirm: Some(confirm.into()) }
}

/// One row of the case table.
struct Case {
    name: &'static str,
    /// The first version of the data file, applied by itself.
    v1: &'static str,
    /// What another writer does between the two versions.
    meanwhile: &'static [&'static str],
    /// The second version.
    v2: &'static str,
    severity: Severity,
    /// The hazard code that must be among the change's, and words its hazards must hold.
    code: &'static str,
    says: &'static str,
    /// `id|title|rank|featured|note` of every row once v2 applied (if it may).
    after: &'static [&'static str],
    /// `id|position|value` of every tag once v2 applied.
    tags: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "tags set, then changed by the file",
        v1: "records:\n  - id: news\n    title: News\n    tags: [a, b]\n",
        meanwhile: &[],
        v2: "records:\n  - id: news\n    title: News\n    tags: [b, c]\n",
        severity: Severity::Safe,
        code: "record_changed",
        says: "no other writer has written the row",
        after: &["news|News|-|-|-"],
        tags: &["news|0|b", "news|1|c"],
    },
    Case {
        name: "tags another writer changed",
        v1: "records:\n  - id: news\n    title: News\n    tags: [a, b]\n",
        meanwhile: &["DELETE FROM content_category__tags WHERE value = 'a'"],
        v2: "records:\n  - id: news\n    title: News\n    tags: [a, b, c]\n",
        severity: Severity::Warning,
        code: "record_changed",
        says: "1 row was changed or deleted by another writer",
        after: &["news|News|-|-|-"],
        tags: &["news|0|a", "news|1|b", "news|2|c"],
    },
    Case {
        name: "a record with tags removed",
        v1: "records:\n  - id: news\n    title: News\n  - id: sport\n    title: Sport\n    tags: [ball]\n",
        meanwhile: &[],
        v2: "records:\n  - id: news\n    title: News\n",
        severity: Severity::Breaking,
        code: "record_removed",
        says: "record `sport` is removed from `category`",
        after: &["news|News|-|-|-"],
        tags: &[],
    },
    Case {
        name: "records added",
        v1: "records:\n  - id: news\n    title: News\n",
        meanwhile: &[],
        v2: "records:\n  - id: news\n    title: News\n  - id: sport\n    title: Sport\n    rank: 2\n    featured: true\n",
        severity: Severity::Safe,
        code: "record_added",
        says: "record `sport` is added to `category`",
        after: &["news|News|-|-|-", "sport|Sport|2|yes|-"],
        tags: &[],
    },
    Case {
        name: "a value changed, no other writer",
        v1: "records:\n  - id: news\n    title: News\n    rank: 1\n",
        meanwhile: &["UPDATE content_category SET note = 'kept' WHERE id = 'news'"],
        v2: "records:\n  - id: news\n    title: Latest news\n    rank: 1\n",
        severity: Severity::Safe,
        code: "record_changed",
        says: "no other writer has written the row",
        after: &["news|Latest news|1|-|kept"],
        tags: &[],
    },
    Case {
        name: "a date and a number changed",
        v1: "records:\n  - id: news\n    title: News\n    published: 2026-01-01T00:00:00Z\n    weight: 1.5\n    featured: false\n",
        meanwhile: &[],
        v2: "records:\n  - id: news\n    title: News\n    published: 2026-02-01T10:30:00Z\n    weight: 2.25\n    featured: false\n",
        severity: Severity::Safe,
        code: "record_changed",
        says: "no other writer has written the row",
        after: &["news|News|-|no|-"],
        tags: &[],
    },
    Case {
        name: "a value another writer changed",
        v1: "records:\n  - id: news\n    title: News\n",
        meanwhile: &["UPDATE content_category SET title = 'Edited by hand' WHERE id = 'news'"],
        v2: "records:\n  - id: news\n    title: Latest news\n",
        severity: Severity::Warning,
        code: "record_changed",
        says: "the database holds `title` = \"Edited by hand\"",
        after: &["news|Latest news|-|-|-"],
        tags: &[],
    },
    Case {
        name: "a field the file lets go of",
        v1: "records:\n  - id: news\n    title: News\n    rank: 3\n",
        meanwhile: &[],
        v2: "records:\n  - id: news\n    title: News\n",
        severity: Severity::Safe,
        code: "record_changed",
        says: "`rank` set",
        after: &["news|News|-|-|-"],
        tags: &[],
    },
    Case {
        name: "a record removed",
        v1: "records:\n  - id: news\n    title: News\n  - id: sport\n    title: Sport\n",
        meanwhile: &["UPDATE content_category SET note = 'only in the database' WHERE id = 'sport'"],
        v2: "records:\n  - id: news\n    title: News\n",
        severity: Severity::Breaking,
        code: "record_removed",
        says: "record `sport` is removed from `category`",
        after: &["news|News|-|-|-"],
        tags: &[],
    },
    Case {
        name: "a record whose row another writer made first",
        v1: "records:\n  - id: news\n    title: News\n",
        meanwhile: &["INSERT INTO content_category (id, title, note) VALUES ('sport', 'Sports', 'by hand')"],
        v2: "records:\n  - id: news\n    title: News\n  - id: sport\n    title: Sport\n",
        severity: Severity::Warning,
        code: "record_added",
        says: "exist already",
        after: &["news|News|-|-|-", "sport|Sport|-|-|by hand"],
        tags: &[],
    },
    Case {
        name: "a removed record other rows reference",
        v1: "records:\n  - id: news\n    title: News\n  - id: sport\n    title: Sport\n",
        meanwhile: &["INSERT INTO content_article (id, title, category_id) VALUES ('a1', 'Match report', 'sport')"],
        v2: "records:\n  - id: news\n    title: News\n",
        severity: Severity::Blocked,
        code: "record_referenced",
        says: "1 row holds a reference to `category` `sport`",
        after: &[],
        tags: &[],
    },
];

async fn data_cases_apply_and_roll_back_with_every_value_restored(backend: Backend) {
    for case in CASES {
        let mut site = started(backend).await;
        site.write(DATA, case.v1);
        let first = site.wait_for(EventKind::Applied, DATA).await;
        assert_eq!(first.version, Some(1), "{}", case.name);
        // What the file wrote is what the rows hold, for every type: no drift.
        assert!(site.coordinator.snapshot().drift.is_empty(), "{}: {:?}", case.name, site.coordinator.snapshot().drift);
        for sql in case.meanwhile {
            site.exec(sql).await;
        }
        let before = category_rows(&site).await;
        let tags_before = tag_rows(&site).await;

        site.write(DATA, case.v2);
        let event = decided(&mut site, DATA).await;
        assert_eq!(event.severity, Some(case.severity), "{}: {}", case.name, event.message);
        let snapshot = site.coordinator.snapshot();
        let hazards: Vec<marain::Hazard> = match event.kind {
            EventKind::Pending => snapshot.pending.iter().flat_map(|c| c.hazards.clone()).collect(),
            _ => site.coordinator.history(Some(DATA), 1).await.unwrap().remove(0).hazards,
        };
        assert!(hazards.iter().any(|h| h.code.as_str() == case.code), "{}: {hazards:#?}", case.name);
        assert!(hazards.iter().any(|h| h.message.contains(case.says)), "{}: {hazards:#?}", case.name);
        if case.severity == Severity::Blocked {
            let id = event.change_id.unwrap();
            let refused = site.coordinator.approve(id, approval("category")).await.unwrap_err();
            assert!(matches!(refused, EngineError::NotApprovable { .. }), "{}: {refused:?}", case.name);
            assert_eq!(category_rows(&site).await, before, "{}: a blocked change leaves the rows alone", case.name);
            site.stop().await;
            continue;
        }
        if event.kind == EventKind::Pending {
            site.coordinator.approve(event.change_id.unwrap(), approval("category")).await.unwrap();
        }
        // Booleans are 1 on SQLite and true on PostgreSQL: shown as `yes` / `no`.
        let featured = "CASE WHEN featured THEN 'yes' WHEN NOT featured THEN 'no' END";
        let after = rows(&site, "content_category", &["id", "title", "rank", featured, "note"]).await;
        assert_eq!(after, case.after, "{}", case.name);
        assert_eq!(tag_rows(&site).await, case.tags, "{}", case.name);

        let back = site.coordinator.rollback(DATA, 1, Some("undo".into())).await.unwrap();
        assert_eq!(back.rollback_to, Some(1));
        site.coordinator.approve(back.id, approval("category")).await.unwrap();
        site.wait_for(EventKind::RolledBack, DATA).await;
        assert_eq!(category_rows(&site).await, before, "{}: every value is back", case.name);
        assert_eq!(tag_rows(&site).await, tags_before, "{}: every tag is back", case.name);
        assert_eq!(std::fs::read_to_string(site.root().join(DATA)).unwrap(), case.v1, "{}", case.name);
        site.stop().await;
    }
}

async fn a_field_and_the_data_that_fills_it_land_in_one_save(backend: Backend) {
    let mut site = started(backend).await;
    site.write(DATA, "records:\n  - id: news\n    title: News\n");
    site.wait_for(EventKind::Applied, DATA).await;
    // One save: the schema gains `colour`, the data file fills it.
    let with_colour = format!("{CATEGORY}  - id: colour\n    type: text\n    values: [red, blue]\n");
    site.write(CATEGORY_PATH, &with_colour);
    site.write(
        DATA,
        "records:\n  - id: news\n    title: News\n    colour: red\n  - id: sport\n    title: Sport\n    colour: blue\n",
    );
    let applied = site.wait_for(EventKind::Applied, DATA).await;
    assert_eq!(applied.version, Some(2));
    assert_eq!(site.coordinator.history(Some(CATEGORY_PATH), 1).await.unwrap()[0].version, 2);
    assert_eq!(rows(&site, "content_category", &["id", "colour"]).await, ["news|red", "sport|blue"]);
    let schema_row = site.coordinator.history(Some(CATEGORY_PATH), 1).await.unwrap().remove(0);
    let data_row = site.coordinator.history(Some(DATA), 1).await.unwrap().remove(0);
    assert!(schema_row.id < data_row.id, "the schema change is committed before the data that needs it");
    assert!(site.coordinator.snapshot().in_sync());
    site.stop().await;
}

async fn a_reference_to_a_row_that_does_not_exist_blocks_until_it_does(backend: Backend) {
    let mut site = started(backend).await;
    let path = "data/article/main.yaml";
    site.write(path, "records:\n  - id: a1\n    title: Match report\n    category: sport\n");
    let event = decided(&mut site, path).await;
    assert_eq!(event.severity, Some(Severity::Blocked), "{}", event.message);
    let change = site.coordinator.snapshot().pending.iter().find(|c| c.file == path).cloned().unwrap();
    let missing = change.hazards.iter().find(|h| h.code.as_str() == "referenced_record_missing").unwrap();
    assert!(missing.message.contains("`category` `sport`"), "{}", missing.message);
    // Once the row exists, the same file applies: a data file of `category` defines it.
    site.write(DATA, "records:\n  - id: sport\n    title: Sport\n");
    site.wait_for(EventKind::Applied, DATA).await;
    site.write(path, "records:\n  - id: a1\n    title: Match report\n    category: sport\n\n");
    let applied = site.wait_for(EventKind::Applied, path).await;
    assert_eq!(applied.severity, Some(Severity::Safe));
    assert_eq!(site.text("SELECT category_id FROM content_article WHERE id = 'a1'").await, "sport");
    site.stop().await;
}

async fn point_in_time_recovery_brings_back_every_row_a_data_file_held(backend: Backend) {
    let mut site = started(backend).await;
    site.write(DATA, "records:\n  - id: news\n    title: News\n  - id: sport\n    title: Sport\n");
    site.wait_for(EventKind::Applied, DATA).await;
    site.exec("UPDATE content_category SET note = 'by hand' WHERE id = 'sport'").await;
    let before = category_rows(&site).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let moment = marain::engine::now_rfc3339();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    // v2 removes `sport` and renames `news`; then the file goes altogether.
    site.write(DATA, "records:\n  - id: news\n    title: Latest news\n");
    let pending = site.wait_for(EventKind::Pending, DATA).await;
    site.coordinator.approve(pending.change_id.unwrap(), approval("category")).await.unwrap();
    std::fs::remove_file(site.root().join(DATA)).unwrap();
    let pending = site.wait_for(EventKind::Pending, DATA).await;
    site.coordinator.approve(pending.change_id.unwrap(), approval("category")).await.unwrap();
    assert_eq!(site.count("SELECT COUNT(*) FROM content_category").await, 0);

    let changes = site.coordinator.recover_to(&moment).await.unwrap();
    let files: Vec<&str> = changes.iter().map(|c| c.file.as_str()).collect();
    assert_eq!(files, [DATA]);
    assert_eq!(changes[0].rollback_to, Some(1));
    site.coordinator.approve(changes[0].id, approval("category")).await.unwrap();
    assert_eq!(category_rows(&site).await, before, "every row, every column, as at that moment");
    assert!(site.root().join(DATA).exists());
    site.stop().await;
}

async fn a_schema_change_that_would_break_a_data_file_waits(backend: Backend) {
    let mut site = started(backend).await;
    site.write(DATA, "records:\n  - id: news\n    title: News\n    rank: 1\n");
    site.wait_for(EventKind::Applied, DATA).await;
    site.write(CATEGORY_PATH, &CATEGORY.replace("  - id: rank\n    type: integer\n", ""));
    let rejected = site.wait_for(EventKind::Rejected, CATEGORY_PATH).await;
    assert!(
        rejected.message.contains("data/category/main.yaml:4:5: record `news`: `category` has no field `rank`"),
        "{}",
        rejected.message
    );
    let columns = site.coordinator.store().table_columns("content_category").await.unwrap();
    assert!(columns.contains(&"rank".to_string()), "the applied schema stays live: {columns:?}");
    // The data file lets go of `rank`: it applies by itself (it needs nothing
    // of the schema change), and the schema change, which drops the column,
    // now waits for a person instead of being refused.
    site.write(DATA, "records:\n  - id: news\n    title: News\n");
    site.wait_for(EventKind::Applied, DATA).await;
    let snapshot = site.coordinator.snapshot();
    let waiting: Vec<(&str, Severity)> = snapshot.pending.iter().map(|c| (c.file.as_str(), c.severity)).collect();
    assert_eq!(waiting, [(CATEGORY_PATH, Severity::Breaking)]);
    assert_eq!(site.coordinator.history(Some(DATA), 1).await.unwrap()[0].version, 2);
    site.stop().await;
}

async fn a_hierarchy_in_one_file_is_written_parents_first(backend: Backend) {
    let mut site = started(backend).await;
    // Children before their parents in the file, three levels deep.
    site.write(
        DATA,
        "records:\n  - id: football\n    title: Football\n    parent: sport\n  - id: sport\n    title: Sport\n    parent: all\n  - id: all\n    title: All\n",
    );
    let applied = site.wait_for(EventKind::Applied, DATA).await;
    assert_eq!(applied.severity, Some(Severity::Safe), "{}", applied.message);
    let parents = rows(&site, "content_category", &["id", "parent_id"]).await;
    assert_eq!(parents, ["all|-", "football|sport", "sport|all"]);
    let sql = site.coordinator.history(Some(DATA), 1).await.unwrap().remove(0).sql;
    let at = |id: &str| sql.iter().position(|s| s.contains(&format!("VALUES ('{id}'"))).unwrap();
    assert!(at("all") < at("sport") && at("sport") < at("football"), "{sql:#?}");
    site.stop().await;
}

async fn an_entity_renamed_with_its_data_directory_keeps_its_rows(backend: Backend) {
    let mut site = started(backend).await;
    site.write(DATA, "records:\n  - id: news\n    title: News\n");
    site.wait_for(EventKind::Applied, DATA).await;
    site.exec("UPDATE content_category SET note = 'by hand' WHERE id = 'news'").await;
    // One batch (made while the server is down, so the start-up takes it in
    // at once): the entity becomes `topic` (in the same file, so it is a
    // rename: rows kept), and its data directory moves with it.
    let topic = CATEGORY
        .replace("id: category\nname: Category\n", "id: topic\nname: Topic\nrenamed_from: category\n")
        .replace("target_entity: category", "target_entity: topic");
    let article = ARTICLE.replace("target_entity: category", "target_entity: topic");
    let dir = site.stop().await;
    let root = dir.path().join("site");
    std::fs::remove_file(root.join(DATA)).unwrap();
    std::fs::write(root.join(CATEGORY_PATH), &topic).unwrap();
    std::fs::write(root.join(ARTICLE_PATH), &article).unwrap();
    std::fs::create_dir_all(root.join("data/topic")).unwrap();
    std::fs::write(root.join("data/topic/main.yaml"), "records:\n  - id: news\n    title: News\n").unwrap();
    let site = TestSite::start_on(dir, backend).await;
    let topic_data = "data/topic/main.yaml";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let pending =
        |site: &TestSite, file: &str| site.coordinator.snapshot().pending.iter().find(|c| c.file == file).cloned();
    while pending(&site, CATEGORY_PATH).is_none() || pending(&site, topic_data).is_none() {
        assert!(std::time::Instant::now() < deadline, "{:#?}", site.coordinator.snapshot().pending);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The data waits for the rename (it names an entity only the rename makes),
    // and approving it first is refused, naming the change to approve.
    let data = pending(&site, topic_data).unwrap();
    let refused = site.coordinator.approve(data.id, approval("topic")).await.unwrap_err();
    assert!(matches!(&refused, EngineError::WaitsFor { first, .. } if first == CATEGORY_PATH), "{refused:?}");
    let rename = pending(&site, CATEGORY_PATH).unwrap();
    assert_eq!(rename.severity, Severity::Breaking);
    site.coordinator.approve(rename.id, approval("topic")).await.unwrap();
    // Planned afresh once the rename applied: the row is there already (the
    // table kept it), so writing it waits for a person, showing what it holds.
    let data = pending(&site, topic_data).expect("the data change is planned again");
    assert_eq!(data.severity, Severity::Warning, "{:#?}", data.hazards);
    assert!(data.hazards.iter().any(|h| h.message.contains("exist already")), "{:#?}", data.hazards);
    site.coordinator.approve(data.id, approval("topic")).await.unwrap();
    assert!(site.coordinator.snapshot().pending.is_empty(), "{:#?}", site.coordinator.snapshot().pending);
    let kept = rows(&site, "content_topic", &["id", "title", "note"]).await;
    assert_eq!(kept, ["news|News|by hand"], "the row and what another writer set are kept");
    site.stop().await;
}

async fn bad_records_are_rejected_naming_file_line_and_field(backend: Backend) {
    let mut site = started(backend).await;
    site.write(DATA, "records:\n  - id: news\n    title: News\n    rank: many\n    colur: red\n");
    let rejected = site.wait_for(EventKind::Rejected, DATA).await;
    assert!(
        rejected.message.contains("data/category/main.yaml:4:5: record `news`: `rank` must be a whole number"),
        "{}",
        rejected.message
    );
    assert!(
        rejected.message.contains("did you mean `colour`") || rejected.message.contains("has no field `colur`"),
        "{}",
        rejected.message
    );
    site.write("data/genre/main.yaml", "records:\n  - id: jazz\n");
    let rejected = site.wait_for(EventKind::Rejected, "data/genre/main.yaml").await;
    assert!(
        rejected.message.contains("no file defines it (expected schemas/genre.schema.yaml)"),
        "{}",
        rejected.message
    );
    assert_eq!(site.count("SELECT COUNT(*) FROM content_category").await, 0, "nothing of a rejected file is written");
    site.stop().await;
}

/// The drift the engine reports once `done` holds for it, or after 10 s.
async fn drift_until(site: &TestSite, done: impl Fn(&[Drift]) -> bool) -> Vec<Drift> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let drift = site.coordinator.snapshot().drift.clone();
        if done(&drift) || std::time::Instant::now() > deadline {
            return drift;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn a_row_changed_through_the_content_api_is_drift_of_its_file(backend: Backend) {
    let mut site = started(backend).await;
    site.write(DATA, "records:\n  - id: news\n    title: News\n    rank: 1\n");
    site.wait_for(EventKind::Applied, DATA).await;
    assert!(site.coordinator.snapshot().drift.is_empty());
    let input = serde_json::json!({"title": "Edited", "rank": 1});
    site.coordinator.content().update("category", "news", input.as_object().unwrap()).await.unwrap();
    let drift = drift_until(&site, |d| !d.is_empty()).await;
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!(drift[0].file.as_deref(), Some(DATA));
    assert!(
        drift[0].problem.contains("`title` is \"Edited\" in the database, \"News\" in the file"),
        "{}",
        drift[0].problem
    );
    // Reported, never silently overwritten: the row keeps the API's value.
    assert_eq!(site.text("SELECT title FROM content_category WHERE id = 'news'").await, "Edited");
    // A multi-valued field written through the API is drift too, named.
    // The file takes the API's title (a WARNING: the row was changed since),
    // and gains tags.
    site.write(DATA, "records:\n  - id: news\n    title: Edited\n    rank: 1\n    tags: [a]\n");
    let event = decided(&mut site, DATA).await;
    assert_eq!(event.severity, Some(Severity::Warning), "{}", event.message);
    site.coordinator.approve(event.change_id.unwrap(), approval("category")).await.unwrap();
    // The file wrote the row again: no drift once the rows are checked.
    let drift = drift_until(&site, |d| d.is_empty()).await;
    assert!(drift.is_empty(), "{drift:?}");
    let input = serde_json::json!({"title": "Edited", "rank": 1, "tags": ["a", "b"]});
    site.coordinator.content().update("category", "news", input.as_object().unwrap()).await.unwrap();
    let drift = drift_until(&site, |d| d.iter().any(|d| d.problem.contains("`tags`"))).await;
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert!(drift[0].problem.contains("the values of `tags` differ from the file's"), "{}", drift[0].problem);
    assert_eq!(site.text("SELECT title FROM content_category WHERE id = 'news'").await, "Edited");
    site.stop().await;
}

/// A text that would end an SQL literal early under PostgreSQL's legacy
/// `standard_conforming_strings = off` (a backslash escapes the quote Marain
/// doubles) and run the rest as SQL: here, `current_user`.
const ESCAPING: &str = r"a\'||current_user||'x";

/// Values from files are written as they are, whatever the database's
/// settings: a PostgreSQL database whose sessions default to
/// `standard_conforming_strings = off` still gets every schema default,
/// allowed value and record value exactly as the file has it (each of
/// Marain's sessions sets it on, docs/security.md).
async fn a_value_with_a_backslash_and_a_quote_is_written_as_it_is(backend: Backend) {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let url = backend.prepare(dir.path()).await;
    if backend == Backend::Postgres {
        let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
        let name = url.split('?').next().and_then(|u| u.rsplit('/').next()).unwrap().to_string();
        let legacy = format!("ALTER DATABASE \"{name}\" SET standard_conforming_strings = off");
        sqlx::query(&legacy).execute(&mut admin).await.unwrap();
        // A session that does not set it finds the legacy setting.
        let mut plain = sqlx::PgConnection::connect(&url).await.unwrap();
        let (shown,): (String,) =
            sqlx::query_as("SHOW standard_conforming_strings").fetch_one(&mut plain).await.unwrap();
        assert_eq!(shown, "off", "the database's sessions default to the legacy setting");
    }
    let mut site = TestSite::start_on(dir, backend).await;
    let quoted = ESCAPING.replace('\'', "''");
    let schema = format!(
        "id: quote\nname: Quote\nfields:\n  - id: title\n    type: text\n    default: '{quoted}'\n  - id: kind\n    \
         type: text\n    values: ['{quoted}', plain]\n  - id: tags\n    type: text\n    cardinality: -1\n"
    );
    site.write("schemas/quote.schema.yaml", &schema);
    site.wait_for(EventKind::Applied, "schemas/quote.schema.yaml").await;
    let data = format!(
        "records:\n  - id: r1\n    title: '{quoted}'\n    kind: '{quoted}'\n    tags: ['{quoted}']\n  - id: r2\n    \
         kind: plain\n"
    );
    site.write("data/quote/main.yaml", &data);
    site.wait_for(EventKind::Applied, "data/quote/main.yaml").await;
    let written = rows(&site, "content_quote", &["id", "title", "kind"]).await;
    assert_eq!(written, [format!("r1|{ESCAPING}|{ESCAPING}"), format!("r2|{ESCAPING}|plain")]);
    let tags = rows(&site, "content_quote__tags", &["parent_id", "delta", "value"]).await;
    assert_eq!(tags, [format!("r1|0|{ESCAPING}")]);
    // A value outside the allowed ones is still refused: the CHECK holds the text itself.
    let input = serde_json::json!({"kind": r"a\"});
    let refused = site.coordinator.content().create("quote", input.as_object().unwrap()).await;
    assert!(refused.is_err(), "{refused:?}");
    if backend == Backend::Postgres {
        assert_eq!(site.text("SHOW standard_conforming_strings").await, "on", "Marain's sessions set it");
        // The SQL a plan holds reads the same in a session that did not
        // (the database's default here): `psql` running an exported plan.
        let mut plain = sqlx::PgConnection::connect(&url).await.unwrap();
        let literal = marain::sql::string_literal(backend.dialect(), ESCAPING);
        let (read,): (String,) = sqlx::query_as(&format!("SELECT {literal}")).fetch_one(&mut plain).await.unwrap();
        assert_eq!(read, ESCAPING, "{literal}");
    }
    site.stop().await;
}

crate::backend_tests!(
    a_value_with_a_backslash_and_a_quote_is_written_as_it_is,
    data_cases_apply_and_roll_back_with_every_value_restored,
    a_field_and_the_data_that_fills_it_land_in_one_save,
    a_reference_to_a_row_that_does_not_exist_blocks_until_it_does,
    point_in_time_recovery_brings_back_every_row_a_data_file_held,
    a_hierarchy_in_one_file_is_written_parents_first,
    an_entity_renamed_with_its_data_directory_keeps_its_rows,
    a_schema_change_that_would_break_a_data_file_waits,
    bad_records_are_rejected_naming_file_line_and_field,
    a_row_changed_through_the_content_api_is_drift_of_its_file,
);
