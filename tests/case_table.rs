//! The table of old → new cases under `tests/cases/<name>/{old,new}/{schemas,config}/`.
//!
//! Every case is graded and planned for each dialect (snapshots), then run on a
//! real SQLite file and on a throw-away PostgreSQL server:
//! seed the old state with rows, apply the plan, compare the schema with one built
//! directly from `new`, check no row or value was lost, then apply the inverse and
//! expect the old schema and every row back — dropped data restored from backups.
//!
//! Probes run on the seeded data before the apply, and must be right: a plan the
//! probes leave unblocked applies cleanly.
//!
//! `case.yaml` (optional) tunes a case: `rows: N` seeds N rows per table (default
//! 3); `values: {"<entity>.<field>": [literal, …]}` seeds those SQL literals
//! instead of the default values (`"<entity>.id"` for ids), so a type change can
//! meet data that converts; `blocked: true` says the seeded data must make the
//! probes block the plan.
//! A blocked plan is still tried: if the database refuses it, it must be left
//! exactly as it was. (SQLite's flexible typing accepts some changes that the
//! probes rightly block, such as text in an integer column.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod support;

use marain::plan::Dialect;
use marain::site::Site;
use marain::site_plan::FileChange;
use marain::Severity;
use serde::Serialize;
use support::case_db::{build_in, CaseDb};
use support::kept::compare_after_apply;
use support::postgres_harness::PgServer;
use support::sqlite_harness::{open, plan_in, Seed};

fn cases_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cases")
}

fn case_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cases_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn load_site(dir: &Path) -> Site {
    let mut texts = Vec::new();
    for kind in ["schemas", "config"] {
        let Ok(entries) = std::fs::read_dir(dir.join(kind)) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            let rel = format!("{kind}/{}", path.file_name().unwrap().to_string_lossy());
            texts.push((rel, std::fs::read_to_string(&path).unwrap()));
        }
    }
    let (site, errors) = Site::from_texts(texts.iter().map(|(p, t)| (p.as_str(), t.as_str())));
    assert!(errors.is_empty(), "{}: {errors:#?}", dir.display());
    site
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseOptions {
    rows: Option<usize>,
    #[serde(default)]
    values: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    blocked: bool,
}

impl CaseOptions {
    fn seed(&self) -> Seed {
        Seed { rows: self.rows.unwrap_or(3), values: self.values.clone(), edges: false }
    }
}

struct Case {
    name: String,
    old: Site,
    new: Site,
    options: CaseOptions,
}

fn load_case(name: &str) -> Case {
    let dir = cases_dir().join(name);
    let options =
        std::fs::read_to_string(dir.join("case.yaml")).map(|t| serde_yaml::from_str(&t).unwrap()).unwrap_or_default();
    Case { name: name.to_string(), old: load_site(&dir.join("old")), new: load_site(&dir.join("new")), options }
}

#[derive(Serialize)]
struct FileSnapshot {
    file: String,
    severity: Severity,
    items: Vec<String>,
    hazards: Vec<String>,
    probes: Vec<String>,
    sql: Vec<String>,
    rollback_sql: Vec<String>,
    foreign_keys_off: bool,
    /// On a big table (PostgreSQL): the phases before the cut-over, and the
    /// cut-over's SQL.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    online_phases: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    online_cut_over: Vec<String>,
}

/// No database (grades and plans compared with snapshots).
#[test]
fn every_case_matches_its_snapshot() {
    let names = case_names();
    assert!(names.len() >= 60, "only {} cases", names.len());
    for name in names {
        let case = load_case(&name);
        insta::assert_yaml_snapshot!(format!("case__{name}"), snapshot(&case, Dialect::Sqlite));
        insta::assert_yaml_snapshot!(format!("case__{name}__postgres"), snapshot(&case, Dialect::Postgres));
    }
}

fn snapshot(case: &Case, dialect: Dialect) -> Vec<FileSnapshot> {
    plan_in(dialect, &case.old, &case.new)
        .into_iter()
        .map(|c| {
            let mut online = c.plan.clone();
            online.choose_path(Some(i64::MAX), 0);
            let online_phases = online
                .phases()
                .into_iter()
                .chain(online.retire_phases())
                .flat_map(|p| p.sql.iter().chain(&p.batches).chain(&p.batch_writes).chain(&p.proofs).cloned())
                .collect();
            let online_cut_over =
                if online.path == marain::plan::PlanPath::Online { online.cut_over_sql() } else { vec![] };
            (c, online_phases, online_cut_over)
        })
        .map(|(c, online_phases, online_cut_over)| FileSnapshot {
            online_phases,
            online_cut_over,
            severity: c.severity(),
            items: c.graded.items.iter().map(|i| i.item.summary()).collect(),
            hazards: c
                .plan
                .hazards()
                .iter()
                .map(|h| format!("{} {}: {}", h.severity, h.code.as_str(), h.message))
                .collect(),
            probes: c.plan.probes().into_iter().map(|p| p.sql).collect(),
            sql: c.plan.sql(),
            rollback_sql: c.plan.rollback_sql(),
            foreign_keys_off: c.plan.foreign_keys_off,
            file: c.file,
        })
        .collect()
}

/// No database (plans only).
#[test]
fn planning_a_site_against_itself_is_empty() {
    for name in case_names() {
        let case = load_case(&name);
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            assert!(plan_in(dialect, &case.old, &case.old).is_empty(), "{name}: old → old");
            assert!(plan_in(dialect, &case.new, &case.new).is_empty(), "{name}: new → new");
        }
    }
}

/// No data-deleting step is graded below BREAKING (tables here are not known
/// empty). The one backup that is not a deletion keeps the originals of a
/// widening conversion (`type_widened`), so its rollback restores them exactly.
/// No database (plans only).
#[test]
fn deleting_steps_are_breaking() {
    for name in case_names() {
        let case = load_case(&name);
        for change in plan_in(Dialect::Sqlite, &case.old, &case.new).into_iter().chain(plan_in(
            Dialect::Postgres,
            &case.old,
            &case.new,
        )) {
            for step in &change.plan.steps {
                let widens = step.hazards.iter().any(|h| h.code == marain::HazardCode::TypeWidened);
                if !step.backups.is_empty() && !widens {
                    let worst = step.hazards.iter().map(|h| h.severity).max().unwrap();
                    assert!(worst >= Severity::Breaking, "{name}: {} backs up data but is {worst}", step.summary);
                }
            }
        }
    }
}

/// Runs every probe of `plan` on `db` and re-grades it.
async fn probe(db: &mut impl CaseDb, plan: &mut marain::Plan) -> Result<(), String> {
    let mut counts = BTreeMap::new();
    for p in plan.probes() {
        let n = db.count(&p.sql).await?;
        counts.insert(p.sql, n);
    }
    plan.regrade(|p| counts.get(&p.sql).copied());
    Ok(())
}

/// How the case table applies each plan.
#[derive(Clone, Copy, PartialEq)]
enum ApplyPath {
    /// Every statement in one transaction.
    Transaction,
    /// Each online step's phases first, statement by statement, then the
    /// cut-over in one transaction: every table counts as big.
    Online,
}

/// Static and probed severity of the case, for the overview snapshot. `open`
/// makes a new empty database under the given name.
async fn run_case<D: CaseDb>(
    case: &Case,
    dialect: Dialect,
    path: ApplyPath,
    mut open: impl AsyncFnMut(&str) -> D,
) -> Result<(Severity, Severity), String> {
    let mut db = open("case").await;
    build_in(&mut db, dialect, &case.old).await;
    db.seed(&case.old, &case.options.seed()).await;
    let schema_before = db.schema().await;
    let data_before = db.data().await;
    let mut changes = plan_in(dialect, &case.old, &case.new);
    let static_severity = changes.iter().map(FileChange::severity).max().unwrap_or(Severity::Safe);
    if static_severity >= Severity::Blocked {
        return Ok((static_severity, static_severity)); // Nothing may run; the snapshot shows why.
    }
    for change in &mut changes {
        probe(&mut db, &mut change.plan).await?;
    }
    let probed = changes.iter().map(FileChange::severity).max().unwrap_or(Severity::Safe);
    if (probed == Severity::Blocked) != case.options.blocked {
        return Err(format!("probes graded {probed}, but the case says blocked: {}", case.options.blocked));
    }

    if path == ApplyPath::Online {
        if case.options.blocked {
            return Ok((static_severity, probed)); // The transaction path shows that nothing runs.
        }
        for change in &mut changes {
            change.plan.choose_path(Some(i64::MAX), 0);
        }
    }
    let mut failure = None;
    for change in &changes {
        let mut ran = Ok(());
        for phase in change.plan.phases() {
            if ran.is_ok() {
                ran = db.run_each(&phase.sql).await;
            }
            for batch in &phase.batches {
                if ran.is_ok() {
                    // Batches of two rows: every case's rows take several.
                    ran = db.repeat(batch, &phase.batch_writes, 2).await;
                }
            }
            for proof in &phase.proofs {
                if ran.is_ok() {
                    ran = match db.count(proof).await {
                        Ok(0) => Ok(()),
                        Ok(n) => Err(format!("{n} rows disprove the change: {proof}")),
                        Err(e) => Err(e),
                    };
                }
            }
        }
        if ran.is_ok() {
            ran = db.cut_over(&change.plan).await;
        }
        // What the old shape left (SQLite: the table the shadow replaced),
        // cleared after the cut-over.
        for phase in change.plan.retire_phases() {
            if ran.is_ok() {
                ran = db.run_each(&phase.sql).await;
            }
            for batch in &phase.batches {
                if ran.is_ok() {
                    ran = db.repeat(batch, &phase.batch_writes, 2).await;
                }
            }
        }
        if let Err(e) = ran {
            failure = Some(e);
            break;
        }
    }
    match (failure, case.options.blocked) {
        (Some(e), false) => return Err(format!("apply failed: {e}")),
        (None, true) => return Ok((static_severity, probed)),
        (Some(_), true) => {
            // Only single-file cases can promise this: each file is one transaction.
            if changes.len() == 1 && (db.schema().await != schema_before || db.data().await != data_before) {
                return Err("a failed apply changed the database".into());
            }
            return Ok((static_severity, probed));
        }
        (None, false) => {}
    }

    // The schema equals one built directly from `new`.
    let mut fresh = open("fresh").await;
    build_in(&mut fresh, dialect, &case.new).await;
    let expected = fresh.schema().await;
    let actual = db.schema().await;
    if actual != expected {
        return Err(format!("schema after apply differs from a direct build:\n{}", diff(&expected, &actual)));
    }

    // No row lost unless its entity was dropped; every kept value unchanged,
    // every converted one as the conversion table says.
    let data_after = db.data().await;
    compare_after_apply(dialect, &changes, &data_before, &data_after)?;
    db.whole().await?;

    // The inverse restores the old schema and every value.
    for change in changes.iter().rev() {
        db.run(&change.plan.rollback_sql(), change.plan.rollback_foreign_keys_off, &change.plan.rollback_dangling)
            .await
            .map_err(|e| format!("rollback failed: {e}"))?;
    }
    let schema_back = db.schema().await;
    if schema_back != schema_before {
        return Err(format!("schema after rollback differs from the old one:\n{}", diff(&schema_before, &schema_back)));
    }
    let data_back = db.data().await;
    if data_back != data_before {
        return Err(format!("data after rollback differs:\nbefore {data_before:#?}\nafter {data_back:#?}"));
    }
    Ok((static_severity, probed))
}

fn diff(expected: &BTreeMap<String, Vec<String>>, actual: &BTreeMap<String, Vec<String>>) -> String {
    let e = format!("{expected:#?}");
    let a = format!("{actual:#?}");
    similar::TextDiff::from_lines(&e, &a).unified_diff().header("expected", "actual").to_string()
}

#[tokio::test]
async fn every_case_applies_and_rolls_back_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    let overview = run_all(Dialect::Sqlite, ApplyPath::Transaction, async |name: &str| {
        n += 1;
        open(&dir.path().join(format!("{name}-{n}.db"))).await
    })
    .await;
    insta::assert_yaml_snapshot!("severity_overview", overview);
}

#[tokio::test]
async fn every_case_applies_and_rolls_back_on_postgres() {
    let server = PgServer::start();
    let mut n = 0;
    let overview = run_all(Dialect::Postgres, ApplyPath::Transaction, async |name: &str| {
        n += 1;
        server.database(&format!("{name}_{n}")).await
    })
    .await;
    insta::assert_yaml_snapshot!("severity_overview_postgres", overview);
}

/// Every case again with every table taken as big: the online path (phases,
/// then the cut-over) leaves the schema a direct build of the new files
/// gives, keeps every value, and rolls back exactly, as the one-transaction
/// path does. On SQLite: a rebuild's shadow table, its copy in batches of two
/// rows, the proofs, and the swap (whose indexes are renamed in the schema
/// table; the database's integrity is checked after every case).
#[tokio::test]
async fn every_case_applies_online_and_rolls_back_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    let overview = run_all(Dialect::Sqlite, ApplyPath::Online, async |name: &str| {
        n += 1;
        open(&dir.path().join(format!("online-{name}-{n}.db"))).await
    })
    .await;
    insta::assert_yaml_snapshot!("severity_overview", overview);
}

#[tokio::test]
async fn every_case_applies_online_and_rolls_back_on_postgres() {
    let server = PgServer::start();
    let mut n = 0;
    let overview = run_all(Dialect::Postgres, ApplyPath::Online, async |name: &str| {
        n += 1;
        let mut db = server.database(&format!("online_{name}_{n}")).await;
        // The function online copies run their batches with, as the store's
        // migrations make it.
        sqlx::raw_sql(include_str!("../migrations/postgres/0015_copy_rows.sql")).execute(&mut db).await.unwrap();
        db
    })
    .await;
    insta::assert_yaml_snapshot!("severity_overview_postgres", overview);
}

async fn run_all<D: CaseDb>(
    dialect: Dialect,
    path: ApplyPath,
    mut open: impl AsyncFnMut(&str) -> D,
) -> BTreeMap<String, String> {
    let mut failures = Vec::new();
    let mut overview = BTreeMap::new();
    let names = case_names();
    for name in &names {
        let case = load_case(name);
        match run_case(&case, dialect, path, &mut open).await {
            Ok((graded, probed)) if graded == probed => {
                overview.insert(name.clone(), graded.as_str().to_string());
            }
            Ok((graded, probed)) => {
                overview.insert(name.clone(), format!("{graded}, probed {probed}"));
            }
            Err(e) => failures.push(format!("--- {}: {e}", case.name)),
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), names.len(), failures.join("\n"));
    overview
}

/// Every hazard code the grader can give appears in at least one case, in each
/// dialect: the variants are read from `src/hazard.rs` itself, so a new code
/// without a case fails here instead of going untested. The codes the engine
/// adds from live data outside the grader are listed with the test that
/// gives them, and that test must name them.
/// No database (reads the snapshots of both dialects).
#[test]
fn every_hazard_code_has_a_case_in_both_dialects() {
    let source = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/hazard.rs")).unwrap();
    let body = source.split("pub enum HazardCode {").nth(1).unwrap().split('}').next().unwrap();
    let snake = |name: &str| {
        let mut out = String::new();
        for (i, c) in name.chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        }
        out
    };
    let codes: Vec<String> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .map(|l| snake(l.trim_end_matches(',')))
        .collect();
    assert!(codes.len() >= 28, "variants not found: {codes:?}");
    let snapshots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let mut texts = [String::new(), String::new()];
    for entry in std::fs::read_dir(&snapshots).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        if name.starts_with("case_table__case__") {
            let text = std::fs::read_to_string(snapshots.join(&name)).unwrap();
            texts[usize::from(name.ends_with("__postgres.snap"))].push_str(&text);
        }
    }
    // (code, the test file, the test that gives it on both backends)
    let engine_given = [
        (
            "legacy_rows_no_longer_fit",
            "server/tests/legacy.rs",
            "during_the_move_the_api_serves_both_and_writes_through",
        ),
        ("record_added", "tests/reference_data.rs", "data_cases_apply_and_roll_back_with_every_value_restored"),
        ("record_changed", "tests/reference_data.rs", "data_cases_apply_and_roll_back_with_every_value_restored"),
        ("record_removed", "tests/reference_data.rs", "data_cases_apply_and_roll_back_with_every_value_restored"),
        ("record_referenced", "tests/reference_data.rs", "data_cases_apply_and_roll_back_with_every_value_restored"),
        (
            "referenced_record_missing",
            "tests/reference_data.rs",
            "a_reference_to_a_row_that_does_not_exist_blocks_until_it_does",
        ),
    ];
    for (code, file, test) in engine_given {
        let text = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
        if let Err(e) = gives_code(&text, test, code) {
            panic!("{file}: {e}");
        }
    }
    let graded: Vec<&String> = codes.iter().filter(|c| !engine_given.iter().any(|(code, ..)| code == c)).collect();
    for (dialect, text) in ["SQLite", "PostgreSQL"].iter().zip(&texts) {
        let missing: Vec<&&String> = graded.iter().filter(|c| !text.contains(&format!(" {c}: "))).collect();
        assert!(missing.is_empty(), "{dialect}: no case gives {missing:?}");
    }
}

/// The text of top-level item `name` of a Rust file (a `fn` or a `const`), up
/// to the line that closes it.
fn item<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let start = [format!("fn {name}("), format!("const {name}:")].iter().filter_map(|p| text.find(p.as_str())).min()?;
    let rest = &text[start..];
    let end = rest.find("\n}\n").or_else(|| rest.find("\n];\n")).map_or(rest.len(), |i| i + 3);
    Some(&rest[..end])
}

/// Test `test` of `text` runs on both backends (`backend_tests!`) and its code
/// gives hazard `code`: the code's name is in its body, or in an item its
/// body names (a table of cases), and not only in a comment.
fn gives_code(text: &str, test: &str, code: &str) -> Result<(), String> {
    let listed = text
        .split("backend_tests!(")
        .skip(1)
        .any(|rest| rest.split(')').next().unwrap_or("").split([',', '\n', ' ']).any(|n| n.trim() == test));
    if !listed {
        return Err(format!("`{test}` is not in backend_tests!"));
    }
    let body = item(text, test).ok_or_else(|| format!("no test `{test}`"))?;
    let code_of = |t: &str| t.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    let quoted = format!("\"{code}\"");
    let named: Vec<&str> = body
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| w.len() > 2 && *w != test)
        .filter_map(|w| item(text, w))
        .collect();
    if code_of(body).contains(&quoted) || named.iter().any(|i| code_of(i).contains(&quoted)) {
        Ok(())
    } else {
        Err(format!("`{test}` does not give `{code}`"))
    }
}

/// The check reads the named test's code: a code named in another test, or
/// only in a comment, or by a test on one backend, is not enough.
/// No database (reads source text).
#[test]
fn the_hazard_check_reads_the_named_test() {
    let file = "backend_tests!(gives, other);\n\nconst CASES: &[&str] = &[\n    \"x_code\",\n];\n\nasync fn gives(backend: Backend) {\n    for c in CASES {}\n}\n\nasync fn other(backend: Backend) {\n    // \"y_code\"\n    let _ = \"z_code\";\n}\n";
    assert!(gives_code(file, "gives", "x_code").is_ok());
    assert!(gives_code(file, "gives", "z_code").is_err());
    assert!(gives_code(file, "other", "y_code").is_err());
    assert!(gives_code(file, "other", "z_code").is_ok());
    assert!(gives_code(&file.replace("gives, other", "other"), "gives", "x_code").is_err());
}
