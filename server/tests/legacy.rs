//! `marain legacy plan | infer | run | verify | finish` as a real process on a
//! generated legacy `content` table, on SQLite and PostgreSQL: several types,
//! every field type, multi-valued fields, references between types and to the
//! same type, missing keys, wrong types, values outside `values`, a unique
//! value taken twice, unknown entity types and keys no field takes. A run
//! killed at a failpoint resumes without copying a row twice or skipping one,
//! and the content API serves and writes both tables during the move.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use marain::engine::accounts::Role;
use marain::engine::Store;
use serde_json::{json, Value};

mod support;
use support::{Backend, Running};

const USER: &str = "id: user\nname: User\nfields:
  - id: name
    type: text
    required: true
    renamed_from: full_name
  - id: bio
    type: long_text
  - id: handle
    type: slug
    unique: true
  - id: age
    type: integer
  - id: score
    type: float
  - id: active
    type: boolean
  - id: joined
    type: datetime
  - id: role
    type: text
    values: [admin, editor]
  - id: emails
    type: text
    cardinality: 2
  - id: mentor
    type: entity_reference
    target_entity: user
";

const ARTICLE: &str = "id: article\nname: Article\nfields:
  - id: title
    type: text
    required: true
  - id: body
    type: rich_text
  - id: author
    type: entity_reference
    target_entity: user
  - id: tags
    type: text
    cardinality: -1
  - id: related
    type: entity_reference
    target_entity: article
    cardinality: -1
  - id: views
    type: integer
  - id: published
    type: datetime
";

fn marain(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_marain")).args(args).env("NO_COLOR", "1").output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// `marain legacy <args…> --database <db>`.
fn legacy(db: &str, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["legacy"];
    all.extend(args);
    all.extend(["--database", db]);
    marain(&all)
}

/// Applies the site in `site` to `db` with the real engine, then stops it.
async fn apply(site: &Path, db: &str) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = marain::engine::EngineConfig::new(site, db);
    let (engine, task) = marain::engine::Coordinator::start(config, async move {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    let snapshot = engine.snapshot();
    assert!(
        snapshot.pending.is_empty() && snapshot.rejected.is_empty(),
        "the site did not apply: {:?}",
        snapshot.files
    );
    stop.send(()).unwrap();
    task.await.unwrap();
    engine.store().close().await;
}

/// The generated legacy rows: (id, entity_type, data).
fn legacy_rows() -> Vec<(String, &'static str, Value)> {
    let mut rows = Vec::new();
    for i in 1..=30 {
        let name_key = if i <= 5 { "full_name" } else { "name" };
        let mut data = json!({
            "bio": format!("line one\nline two of user {i}"),
            "handle": format!("user-{i}"),
            "age": i,
            "score": i as f64 * 0.5,
            "active": i % 2 == 0,
            "joined": format!("2025-01-{:02}T10:00:00Z", i % 28 + 1),
            "role": if i % 3 == 0 { "admin" } else { "editor" },
            "emails": [format!("u{i}@example.org"), format!("u{i}@example.com")],
        });
        data[name_key] = json!(format!("User {i}"));
        rows.push((format!("u{i:03}"), "user", data));
    }
    let user = |extra: Value| {
        let mut data = json!({"name": "Odd", "handle": "odd", "age": 1});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                data.as_object_mut().unwrap().remove(k);
            } else {
                data[k] = v.clone();
            }
        }
        data
    };
    rows.push(("u031".into(), "user", user(json!({"handle": "h31", "age": "old"}))));
    rows.push(("u032".into(), "user", user(json!({"handle": "h32", "name": null}))));
    rows.push(("u033".into(), "user", user(json!({"handle": "h33", "role": "boss"}))));
    rows.push(("u034".into(), "user", user(json!({"handle": "h34", "nickname": "nick"}))));
    rows.push(("u035".into(), "user", user(json!({"handle": "user-1"}))));
    rows.push(("u036".into(), "user", user(json!({"handle": "h36", "emails": ["a", "b", "c"]}))));
    // Refused by the database (the handle is taken), and one that references it
    // and would go in with it.
    rows.push(("u037".into(), "user", user(json!({"handle": "user-2"}))));
    rows.push(("u038".into(), "user", user(json!({"handle": "h38", "mentor": "u037"}))));
    for i in 1..=20 {
        let mut related = if i > 1 { vec![format!("a{:03}", i - 1)] } else { vec![] };
        if i == 5 {
            related.push("a010".into());
        }
        rows.push((
            format!("a{i:03}"),
            "article",
            json!({
                "title": format!("Article {i}"),
                "body": "<p>hello</p>",
                "author": format!("u{:03}", i % 30 + 1),
                "tags": (0..i % 3).map(|t| format!("tag{t}")).collect::<Vec<_>>(),
                "related": related,
                "views": i * 10,
                "published": "2025-02-01T10:00:00Z",
            }),
        ));
    }
    rows.push(("a021".into(), "article", json!({"title": "By an odd user", "author": "u031"})));
    rows.push(("a022".into(), "article", json!({"title": "By nobody", "author": "u999"})));
    rows.push(("a023".into(), "article", json!({"title": "Half a view", "views": 1.5})));
    rows.push(("g1".into(), "gadget", json!({"label": "Sprocket", "weight": 3})));
    rows.push(("g2".into(), "gadget", json!({"label": "Widget", "weight": 4})));
    rows
}

/// Creates the legacy table in `db` (as a Marain install has it) with `rows`.
async fn create_legacy(store: &Store, rows: &[(String, &str, Value)]) {
    let json = match store.dialect() {
        marain::sql::Dialect::Postgres => "JSONB",
        marain::sql::Dialect::Sqlite => "JSON",
    };
    store
        .pool()
        .execute(
            &format!("CREATE TABLE content (id TEXT PRIMARY KEY, entity_type TEXT, data {json}, created_at TIMESTAMP, updated_at TIMESTAMP)"),
            &[],
        )
        .await
        .unwrap();
    for (id, t, data) in rows {
        insert_legacy(store, id, t, data).await;
    }
}

async fn insert_legacy(store: &Store, id: &str, entity_type: &str, data: &Value) {
    let cast = match store.dialect() {
        marain::sql::Dialect::Postgres => "CAST($3 AS JSONB)",
        marain::sql::Dialect::Sqlite => "$3",
    };
    store
        .pool()
        .execute(
            &format!("INSERT INTO content VALUES ($1, $2, {cast}, '2025-01-02 03:04:05', '2025-01-03 03:04:05')"),
            &[id.into(), entity_type.into(), data.to_string().into()],
        )
        .await
        .unwrap();
}

async fn set_legacy(store: &Store, id: &str, data: &Value) {
    let cast = match store.dialect() {
        marain::sql::Dialect::Postgres => "CAST($2 AS JSONB)",
        marain::sql::Dialect::Sqlite => "$2",
    };
    store
        .pool()
        .execute(&format!("UPDATE content SET data = {cast} WHERE id = $1"), &[id.into(), data.to_string().into()])
        .await
        .unwrap();
}

async fn legacy_data(store: &Store, id: &str) -> Option<Value> {
    let row: Option<(String,)> = store
        .pool()
        .fetch_optional("SELECT CAST(data AS TEXT) FROM content WHERE id = $1", &[id.into()])
        .await
        .unwrap();
    row.map(|(d,)| serde_json::from_str(&d).unwrap())
}

async fn ids(store: &Store, table: &str) -> Vec<String> {
    let rows: Vec<(String,)> =
        store.pool().fetch_all(&format!("SELECT id FROM {table} ORDER BY id"), &[]).await.unwrap();
    rows.into_iter().map(|(id,)| id).collect()
}

async fn count(store: &Store, sql: &str) -> i64 {
    let (n,): (i64,) = store.pool().fetch_one(sql, &[]).await.unwrap();
    n
}

/// A site with the user and article schemas, applied to a fresh database that
/// also holds the generated legacy table. Returns (site dir, database URL).
async fn prepared(dir: &Path, backend: Backend) -> (std::path::PathBuf, String) {
    let site = dir.join("site");
    std::fs::create_dir_all(site.join("schemas")).unwrap();
    std::fs::write(site.join("schemas/user.schema.yaml"), USER).unwrap();
    std::fs::write(site.join("schemas/article.schema.yaml"), ARTICLE).unwrap();
    let db = backend.prepare(dir).await;
    apply(&site, &db).await;
    let store = Store::open(&db).await.unwrap();
    create_legacy(&store, &legacy_rows()).await;
    store.close().await;
    (site, db)
}

/// plan → infer → run → verify (and a value changed behind its back) → finish
/// refused while rows remain → the data fixed → run, verify, finish.
async fn the_move_from_plan_to_finish(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (site, db) = prepared(dir.path(), backend).await;

    let (code, out, err) = legacy(&db, &["plan"]);
    assert_eq!(code, 1, "{out}{err}");
    for expected in [
        "legacy table `content`: 3 entity types, 63 rows",
        "user → entity `user`: 38 rows, 34 fit, 4 do not",
        "full_name → name",
        "keys no field takes: nickname (1 row)",
        "does not fit: u031 age = \"old\": field `age` must be a whole number",
        "does not fit: u032 name: field `name` is required and the row has no `name`",
        "does not fit: u033 role = \"boss\": field `role` must be one of admin, editor",
        "does not fit: u036 emails",
        "article → entity `article`: 23 rows, 22 fit, 1 do not",
        "does not fit: a023 views = 1.5",
        "gadget: 2 rows; no schema defines entity `gadget`",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in\n{out}");
    }
    let (code, json_out, _) = legacy(&db, &["plan", "--format", "json"]);
    assert_eq!(code, 1);
    let report: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(report["types"].as_array().unwrap().len(), 3, "{report}");

    // infer writes schemas `marain check` accepts, with references found.
    let inferred = dir.path().join("inferred");
    let (code, out, err) = legacy(&db, &["infer", "--out", &inferred.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = marain(&["check", "--site", &inferred.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    let article = std::fs::read_to_string(inferred.join("schemas/article.schema.yaml")).unwrap();
    assert!(article.contains("  - id: author\n    type: entity_reference\n"), "{article}");
    assert!(article.contains("target_entity: user"), "{article}");
    assert!(article.contains("  - id: tags\n    type: text\n    cardinality: -1"), "{article}");

    let (code, out, err) = legacy(&db, &["run", "--batch-size", "7"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("user → user: 30 of 38 copied, 8 do not fit, 0 waiting"), "{out}");
    assert!(out.contains("article → article: 20 of 23 copied, 3 do not fit, 0 waiting"), "{out}");
    assert!(out.contains("gadget: 2 rows left where they are"), "{out}");
    let store = Store::open(&db).await.unwrap();
    let fitting_users: Vec<String> = (1..=30).map(|i| format!("u{i:03}")).collect();
    assert_eq!(ids(&store, "content_user").await, fitting_users);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM content_user__emails").await, 60);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM content_article").await, 20);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM content_article__related").await, 20);
    let reasons: Vec<(String, String)> =
        store.pool().fetch_all("SELECT id, reason FROM marain_legacy_misfits ORDER BY id", &[]).await.unwrap();
    let why = |id: &str| reasons.iter().filter(|(i, _)| i == id).map(|(_, r)| r.clone()).collect::<Vec<_>>().join("; ");
    assert!(why("u035").contains("the value of `handle` is taken"), "{reasons:?}");
    assert!(why("a022").contains("references `user` `u999`"), "{reasons:?}");
    assert!(why("a021").contains("references `user` `u031`"), "{reasons:?}");
    assert!(why("u034").contains("no field takes `nickname`"), "{reasons:?}");
    assert!(why("u037").contains("the value of `handle` is taken"), "{reasons:?}");
    assert!(why("u038").contains("references `user` `u037`"), "{reasons:?}");
    let (stamp,): (String,) = store
        .pool()
        .fetch_one("SELECT CAST(created_at AS TEXT) FROM content_user WHERE id = 'u001'", &[])
        .await
        .unwrap();
    assert!(stamp.starts_with("2025-01-02 03:04:05"), "{stamp}");

    // Again: nothing copied twice.
    let (code, out, _) = legacy(&db, &["run"]);
    assert_eq!(code, 1);
    assert!(out.contains("user → user: 30 of 38 copied, 8 do not fit"), "{out}");
    assert_eq!(count(&store, "SELECT COUNT(*) FROM content_user__emails").await, 60);

    let (code, out, err) = legacy(&db, &["verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("user → user: 30 rows compared, 8 not copied"), "{out}");
    store.pool().execute("UPDATE content_user SET age = 99 WHERE id = 'u001'", &[]).await.unwrap();
    store.pool().execute("UPDATE content_article__tags SET value = 'x' WHERE parent_id = 'a001'", &[]).await.unwrap();
    let (code, out, _) = legacy(&db, &["verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("differs: u001 `age`: legacy 1 ≠ typed 99"), "{out}");
    assert!(out.contains("differs: a001 `tags`"), "{out}");
    store.pool().execute("UPDATE content_user SET age = 1 WHERE id = 'u001'", &[]).await.unwrap();
    store
        .pool()
        .execute("UPDATE content_article__tags SET value = 'tag0' WHERE parent_id = 'a001'", &[])
        .await
        .unwrap();

    let (code, _, err) = legacy(&db, &["finish"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot finish") && err.contains("not copied"), "{err}");
    assert!(store.pool().table_names().await.unwrap().contains(&"content".to_string()));

    // Fix the data, give the gadgets the schema infer wrote, and go on.
    let odd = |extra: Value| {
        let mut d = json!({"name": "Odd", "age": 1});
        d.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        d
    };
    set_legacy(&store, "u031", &odd(json!({"handle": "h31"}))).await;
    set_legacy(&store, "u032", &odd(json!({"handle": "h32"}))).await;
    set_legacy(&store, "u033", &odd(json!({"handle": "h33", "role": "editor"}))).await;
    set_legacy(&store, "u035", &odd(json!({"handle": "h35"}))).await;
    set_legacy(&store, "u036", &odd(json!({"handle": "h36", "emails": ["a", "b"]}))).await;
    set_legacy(&store, "u037", &odd(json!({"handle": "h37"}))).await;
    set_legacy(&store, "a022", &json!({"title": "By somebody", "author": "u002"})).await;
    set_legacy(&store, "a023", &json!({"title": "Two views", "views": 2})).await;
    std::fs::copy(inferred.join("schemas/gadget.schema.yaml"), site.join("schemas/gadget.schema.yaml")).unwrap();
    store.close().await;
    apply(&site, &db).await;
    let (code, out, err) = legacy(&db, &["run", "--keep-unmapped"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("user → user: 38 of 38 copied, 0 do not fit"), "{out}");
    assert!(out.contains("gadget → gadget: 2 of 2 copied"), "{out}");
    let store = Store::open(&db).await.unwrap();
    let (extra,): (String,) =
        store.pool().fetch_one("SELECT data FROM marain_legacy_extra WHERE id = 'u034'", &[]).await.unwrap();
    assert_eq!(serde_json::from_str::<Value>(&extra).unwrap(), json!({"nickname": "nick"}));
    assert_eq!(count(&store, "SELECT COUNT(*) FROM marain_legacy_misfits").await, 0);

    let (code, out, err) = legacy(&db, &["finish"]);
    assert_eq!(code, 0, "{out}{err}");
    let tables = store.pool().table_names().await.unwrap();
    assert!(!tables.contains(&"content".to_string()), "{tables:?}");
    let kept: Vec<&String> = tables.iter().filter(|t| t.starts_with("content_legacy_")).collect();
    assert_eq!(kept.len(), 1, "{tables:?}");
    assert_eq!(count(&store, &format!("SELECT COUNT(*) FROM {}", kept[0])).await, 63);
    let drift = marain::engine::drift::detect(&store, &store.history().applied_site().await.unwrap()).await.unwrap();
    assert!(drift.is_empty(), "the kept legacy table is not drift: {drift:?}");
    store.close().await;
}

/// Runs `marain legacy run` with a failpoint armed and kills it (SIGKILL) once
/// the point is reached.
fn killed_run(db: &str, failpoint: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_marain"))
        .args(["legacy", "run", "--batch-size", "5", "--database", db])
        .env("MARAIN_FAILPOINT", failpoint)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.contains("failpoint") && line.contains("reached") {
            child.kill().unwrap();
            child.wait().unwrap();
            return;
        }
        seen.push(line);
    }
    let status = child.wait().unwrap();
    panic!("the failpoint {failpoint} was never reached ({status}): {seen:?}");
}

/// A run killed inside a batch's transaction, and one killed right after a
/// commit, each resumed: every row that fits is copied exactly once.
async fn a_killed_run_resumes_without_copying_twice_or_skipping(backend: Backend) {
    for failpoint in ["legacy_before_commit@4", "legacy_after_commit@3"] {
        let dir = tempfile::tempdir().unwrap();
        let (_site, db) = prepared(dir.path(), backend).await;
        killed_run(&db, failpoint);
        let store = Store::open(&db).await.unwrap();
        let partial = ids(&store, "content_user").await;
        assert!(!partial.is_empty() && partial.len() < 30, "{failpoint}: {} rows before the kill", partial.len());
        let (code, out, err) = legacy(&db, &["run", "--batch-size", "5"]);
        assert_eq!(code, 1, "{out}{err}");
        let fitting: Vec<String> = (1..=30).map(|i| format!("u{i:03}")).collect();
        assert_eq!(ids(&store, "content_user").await, fitting, "{failpoint}");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM content_user__emails").await, 60, "{failpoint}");
        let articles: BTreeSet<String> = ids(&store, "content_article").await.into_iter().collect();
        assert_eq!(articles.len(), 20, "{failpoint}");
        let (code, out, _) = legacy(&db, &["verify"]);
        assert_eq!(code, 0, "{failpoint}: {out}");
        store.close().await;
    }
}

/// During the move the API serves rows not copied yet (converted, or with
/// their problems), lists both tables, and writes through to the legacy rows;
/// this process reads the legacy table as an old Marain process would.
async fn during_the_move_the_api_serves_both_and_writes_through(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (site, db) = prepared(dir.path(), backend).await;
    let (code, out, err) = legacy(&db, &["run"]);
    assert_eq!(code, 1, "{out}{err}");
    let store = Store::open(&db).await.unwrap();
    let token = store.accounts().create_token("tests", Role::Approver).await.unwrap();
    // Written by an old Marain process after the run: not copied.
    insert_legacy(&store, "u900", "user", &json!({"full_name": "Late", "handle": "late", "age": 9})).await;

    let mut command = Command::new(env!("CARGO_BIN_EXE_marain"));
    command.args(["serve", "--site", &site.display().to_string(), "--database", &db, "--addr", "127.0.0.1:0"]);
    command.args(["--secure-log", &dir.path().join("secure.log").display().to_string()]);
    command.arg("--assets").arg(dir.path().join("assets"));
    command.env("MARAIN_ADMIN_PASSWORD", "correct horse battery staple").env_remove("MARAIN_FAILPOINT");
    let server = Running::spawn(command);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    let client = reqwest::Client::builder().default_headers(headers).build().unwrap();
    let users = format!("http://{}/api/v1/entity/user", server.addr);

    let late: Value = client.get(format!("{users}/u900")).send().await.unwrap().json().await.unwrap();
    assert_eq!(late["name"], "Late", "{late}");
    assert_eq!(late["age"], 9);
    assert_eq!(late["emails"], json!([]));
    let odd: Value = client.get(format!("{users}/u031")).send().await.unwrap().json().await.unwrap();
    assert_eq!(odd["age"], Value::Null, "{odd}");
    assert!(odd["legacy_problems"][0].as_str().unwrap().contains("age"), "{odd}");
    let list: Value = client.get(format!("{users}?limit=500")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["total"], 39, "30 copied, 8 that do not fit, 1 late: {list}");
    let listed: Vec<&str> = list["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(listed.len(), 39);
    assert!(listed.windows(2).all(|w| w[0] < w[1]), "{listed:?}");

    // A copied record changed through the API: the legacy row follows, under
    // the key it used (`full_name`), its other keys kept.
    let mut u001 = client.get(format!("{users}/u001")).send().await.unwrap().json::<Value>().await.unwrap();
    u001["name"] = json!("Ann");
    u001["age"] = json!(41);
    for k in ["created_at", "updated_at"] {
        u001.as_object_mut().unwrap().remove(k);
    }
    let resp = client.put(format!("{users}/u001")).json(&u001).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap());
    let data = legacy_data(&store, "u001").await.unwrap();
    assert_eq!(data["full_name"], "Ann", "{data}");
    assert_eq!(data["age"], 41);
    assert!(data.get("name").is_none(), "{data}");

    // A record only in the legacy table, changed: copied with the new values.
    let resp = client
        .put(format!("{users}/u900"))
        .json(&json!({"name": "Later", "handle": "late", "age": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap());
    assert!(ids(&store, "content_user").await.contains(&"u900".to_string()));
    assert_eq!(legacy_data(&store, "u900").await.unwrap()["full_name"], "Later");

    // Created: a legacy row too; deleted: gone from both.
    let resp = client.post(&users).json(&json!({"id": "u950", "name": "New", "handle": "new"})).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(legacy_data(&store, "u950").await.unwrap()["name"], "New");
    let resp = client.post(&users).json(&json!({"id": "u031", "name": "Taken", "handle": "t"})).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 409, "an id the legacy table holds is taken");
    assert_eq!(client.delete(format!("{users}/u950")).send().await.unwrap().status().as_u16(), 204);
    assert!(legacy_data(&store, "u950").await.is_none());
    assert_eq!(client.delete(format!("{users}/u032")).send().await.unwrap().status().as_u16(), 204);
    assert!(legacy_data(&store, "u032").await.is_none());
    assert_eq!(client.get(format!("{users}/u032")).send().await.unwrap().status().as_u16(), 404);

    let (code, out, _) = legacy(&db, &["verify"]);
    assert_eq!(code, 0, "writes through the API keep both tables equal: {out}");

    // A schema change that would strand rows not copied yet waits, naming them:
    // dropping `renamed_from: full_name` changes no table, but `u901` says
    // `full_name` and would no longer fit.
    insert_legacy(&store, "u901", "user", &json!({"full_name": "Stranded", "handle": "s901"})).await;
    std::fs::write(site.join("schemas/user.schema.yaml"), USER.replace("    renamed_from: full_name\n", "")).unwrap();
    let status = format!("http://{}/api/v1/hot-reload/status", server.addr);
    let mut found = None;
    for _ in 0..200 {
        let s: Value = client.get(&status).send().await.unwrap().json().await.unwrap();
        let hazards: Vec<Value> =
            s["pending"].as_array().unwrap().iter().flat_map(|c| c["hazards"].as_array().unwrap().clone()).collect();
        if let Some(h) = hazards.into_iter().find(|h| h["code"] == "legacy_rows_no_longer_fit") {
            found = Some(h);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hazard = found.expect("the change stranding legacy rows never waited with legacy_rows_no_longer_fit");
    assert_eq!(hazard["severity"], "WARNING");
    assert!(hazard["message"].as_str().unwrap().contains("1 of 8 legacy rows of `user` not copied yet"), "{hazard}");
    assert!(hazard["message"].as_str().unwrap().contains("u901"), "{hazard}");
    std::fs::write(site.join("schemas/user.schema.yaml"), USER).unwrap();

    // With dual writes off, the legacy rows are left alone.
    let (code, _, _) = legacy(&db, &["run", "--no-dual-write"]);
    assert_eq!(code, 1);
    // A write goes by the move as it is now: no wait for the read cache.
    u001["age"] = json!(42);
    let resp = client.put(format!("{users}/u001")).json(&u001).send().await.unwrap();
    let code = resp.status().as_u16();
    assert_eq!(code, 200, "{}\nthe server printed:\n{}", resp.text().await.unwrap(), server.printed());
    assert_eq!(legacy_data(&store, "u001").await.unwrap()["age"], 41);
    drop(server);
    store.close().await;
}

/// The dashboard's Migration page and its actions, on a real `marain serve`:
/// the page offers to start; Start runs in the server and its progress comes
/// as `migration` events on the event stream; the page then lists each type's
/// counts and the rows that do not fit; Verify passes; Finish is refused while
/// rows are left behind; the actions are in `secure.log` with who did them;
/// a viewer may look but not act.
async fn the_migration_page_runs_the_move_and_shows_it_live(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (site, db) = prepared(dir.path(), backend).await;
    let store = Store::open(&db).await.unwrap();
    let approver = store.accounts().create_token("ops", Role::Approver).await.unwrap();
    let viewer = store.accounts().create_token("reader", Role::Viewer).await.unwrap();
    store.close().await;
    let log = dir.path().join("secure.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_marain"));
    command.args(["serve", "--site", &site.display().to_string(), "--database", &db, "--addr", "127.0.0.1:0"]);
    command.arg("--secure-log").arg(&log).arg("--assets").arg(dir.path().join("assets"));
    command.env("MARAIN_ADMIN_PASSWORD", "correct horse battery staple").env_remove("MARAIN_FAILPOINT");
    let server = Running::spawn(command);
    let bearer = |token: &str| {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        reqwest::Client::builder().default_headers(headers).build().unwrap()
    };
    let (client, reader) = (bearer(&approver), bearer(&viewer));
    let root = format!("http://{}", server.addr);
    let page = || async { client.get(format!("{root}/migration")).send().await.unwrap().text().await.unwrap() };

    let before = page().await;
    assert!(before.contains("data-testid=\"migration-startable\""), "{before}");
    assert!(before.contains("Start copying"), "{before}");

    let mut events = support::EventReader::open(&client, &format!("{root}/api/v1/hot-reload")).await;
    let (code, body) = call(&reader, &root, "start_legacy_move").await;
    assert_eq!(code, 403, "a viewer may not start: {body}");
    assert_eq!(body["kind"], "forbidden", "{body}");
    let (code, body) = call(&client, &root, "start_legacy_move").await;
    assert_eq!(code, 200, "{body}");
    let seen = events
        .until(|e| e["kind"] == "migration" && e["message"].as_str().unwrap_or("").contains("user: 30 of 38 copied"))
        .await;
    let migration: Vec<&Value> = seen.iter().filter(|e| e["kind"] == "migration").collect();
    assert!(
        migration.iter().any(|e| e["actor"] == "ops" && e["message"].as_str().unwrap().contains("copying started")),
        "{migration:?}"
    );

    let after = page().await;
    for expected in [
        "data-testid=\"migration-type-user\"",
        "30<!> of <!>38",
        "data-testid=\"migration-misfits\"",
        "u031",
        "field `age` must be a whole number",
        "Verify",
    ] {
        assert!(after.contains(expected), "missing `{expected}` in the page:\n{after}");
    }
    // A misfit's value is an approver's to see, and never under a secret key
    // or a URL's password.
    let store = Store::open(&db).await.unwrap();
    for (id, key, value) in [
        ("u097", "password_hash", "$argon2id$v=19$legacy-hash-value"),
        ("u098", "homepage", "https://me:url-pass-9@example.org/"),
    ] {
        store
            .pool()
            .execute(
                "INSERT INTO marain_legacy_misfits (entity_type, id, json_key, value, reason) VALUES ($1, $2, $3, $4, $5)",
                &[
                    "user".into(),
                    id.into(),
                    key.into(),
                    value.into(),
                    format!("no field takes `{key}`").into(),
                ],
            )
            .await
            .unwrap();
    }
    store.close().await;
    let approver_page = page().await;
    let viewer_page = reader.get(format!("{root}/migration")).send().await.unwrap().text().await.unwrap();
    for (who, shown) in [("approver", &approver_page), ("viewer", &viewer_page)] {
        assert!(shown.contains("u097") && shown.contains("no field takes `password_hash`"), "{who}: {shown}");
        for hidden in ["legacy-hash-value", "url-pass-9"] {
            assert!(!shown.contains(hidden), "{who} sees {hidden}: {shown}");
        }
    }
    assert!(approver_page.contains("https://me:•••••@example.org/"), "{approver_page}");
    assert!(approver_page.contains("&quot;old&quot;") || approver_page.contains("\"old\""), "{approver_page}");
    assert!(!viewer_page.contains("example.org") && !viewer_page.contains("\"old\""), "{viewer_page}");
    let (code, verified) = call(&client, &root, "verify_legacy_move").await;
    assert_eq!(code, 200, "{verified}");
    assert_eq!(verified["difference_count"], 0, "{verified}");
    assert_eq!(verified["compared"], 50, "{verified}");
    let (code, refused) = call(&client, &root, "finish_legacy_move").await;
    assert_eq!(code, 409, "{refused}");
    assert_eq!(refused["kind"], "conflict", "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("not copied"), "{refused}");
    drop(server);
    let audit = std::fs::read_to_string(&log).unwrap();
    let started = audit.lines().find(|l| l.contains("\"migration\"") && l.contains("copying started"));
    assert!(started.is_some_and(|l| l.contains("\"ops\"")), "{audit}");
    assert!(audit.lines().any(|l| l.contains("verify passed")), "{audit}");
}

/// A server function called as the dashboard calls it: (status, JSON body).
async fn call(client: &reqwest::Client, root: &str, endpoint: &str) -> (u16, Value) {
    let resp =
        client.post(format!("{root}/_sfn/{endpoint}")).form(&Vec::<(String, String)>::new()).send().await.unwrap();
    let code = resp.status().as_u16();
    (code, resp.json::<Value>().await.unwrap_or(Value::Null))
}

backend_tests!(
    the_migration_page_runs_the_move_and_shows_it_live,
    the_move_from_plan_to_finish,
    a_killed_run_resumes_without_copying_twice_or_skipping,
    during_the_move_the_api_serves_both_and_writes_through,
);
