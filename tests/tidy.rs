//! Tidy checks, in the manner of rust-analyzer's: the rules `ARCHITECTURE.md`
//! states, checked on the source text so that breaking one fails `make test`
//! instead of waiting for a reviewer to notice. Each invariant in ARCHITECTURE.md
//! names the check that enforces it, and `every_invariant_names_its_check` makes
//! sure that check exists.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir` (relative to the repository root) ending in `ext`.
fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, ext, out);
            } else if path.to_string_lossy().ends_with(ext) {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join(dir), ext, &mut out);
    out.sort();
    out
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).to_string_lossy().replace('\\', "/")
}

/// The lines of `path` that are code, not comments, with their numbers.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect()
}

/// `file:line: text` for every code line of `paths` containing one of `needles`.
fn occurrences(paths: &[PathBuf], needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for path in paths {
        for (n, line) in code_lines(path) {
            if needles.iter().any(|needle| line.contains(needle)) {
                found.push(format!("{}:{n}: {}", relative(path), line.trim()));
            }
        }
    }
    found
}

/// Architecture Invariant: nothing under `src/` outside `src/engine/` does I/O,
/// reads the clock or spawns tasks.
#[test]
fn the_core_does_no_io() {
    let core: Vec<PathBuf> =
        files("src", ".rs").into_iter().filter(|p| !relative(p).starts_with("src/engine/")).collect();
    assert!(core.len() > 10, "the core's files were not found");
    let io = [
        "std::fs",
        "std::net",
        "std::process",
        "std::thread",
        "std::env",
        "std::io::stdin",
        "SystemTime",
        "Instant::now",
        "now_utc",
        "tokio",
        "sqlx",
        "notify",
        "reqwest",
        "println!",
        "eprintln!",
    ];
    let found = occurrences(&core, &io);
    assert!(found.is_empty(), "the pure core must not do I/O, read the clock or spawn tasks:\n{}", found.join("\n"));
}

/// Architecture Invariant: in the product's code, only `src/yaml.rs` names
/// serde_yaml (test harnesses may read their own YAML with it).
#[test]
fn only_the_yaml_module_names_serde_yaml() {
    let mut paths = Vec::new();
    for dir in ["src", "app/src", "server/src"] {
        paths.extend(files(dir, ".rs"));
    }
    paths.retain(|p| relative(p) != "src/yaml.rs");
    let found = occurrences(&paths, &["serde_yaml"]);
    assert!(found.is_empty(), "serde_yaml outside src/yaml.rs:\n{}", found.join("\n"));
}

/// Architecture Invariant: text becomes an SQL literal in one place,
/// `sql::string_literal`, which knows what each dialect needs (a backslash on
/// PostgreSQL); quoting by hand elsewhere would miss it.
#[test]
fn sql_literals_are_made_in_one_place() {
    let mut paths = Vec::new();
    for dir in ["src", "server/src"] {
        paths.extend(files(dir, ".rs"));
    }
    paths.retain(|p| relative(p) != "src/sql/mod.rs");
    let found = occurrences(&paths, &[r#"replace('\'', "''")"#, r#"replace("'", "''")"#]);
    assert!(found.is_empty(), "a literal quoted outside sql::string_literal:\n{}", found.join("\n"));
}

/// Architecture Invariant: only the coordinator's worker task mutates engine
/// state; everything else reads a `Snapshot` or sends a command. The snapshot is
/// published in exactly one place.
#[test]
fn only_the_worker_publishes_snapshots() {
    let mut paths = Vec::new();
    for dir in ["src", "app/src", "server/src"] {
        paths.extend(files(dir, ".rs"));
    }
    let found = occurrences(&paths, &["snapshot.store(", ".snapshot.swap(", ".snapshot.rcu("]);
    assert_eq!(found.len(), 1, "the snapshot must be published in one place:\n{}", found.join("\n"));
    assert!(found[0].starts_with("src/engine/worker/publish.rs:"), "{}", found[0]);
}

/// Architecture Invariant: database error text stays in the server log. The
/// only readings of a database's own message are `rows::refusal` picking a
/// column name (checked to be a plain identifier) out of SQLite's
/// unique-violation and not-null texts and out of an online rebuild's
/// trigger's own refusal.
#[test]
fn database_text_is_never_copied_out() {
    let mut paths = Vec::new();
    for dir in ["src", "app/src", "server/src"] {
        paths.extend(files(dir, ".rs"));
    }
    let allowed = [
        r#"d.message().strip_prefix("UNIQUE constraint failed: ")"#,
        r#"d.message().strip_prefix("NOT NULL constraint failed: ")"#,
        r#"d.message().strip_prefix("marain: cannot convert ")"#,
    ];
    let found: Vec<String> = occurrences(&paths, &[".message()"])
        .into_iter()
        .filter(|hit| !hit.starts_with("src/engine/rows.rs:") || !allowed.iter().any(|a| hit.contains(a)))
        .collect();
    assert!(found.is_empty(), "a database error's message copied out:\n{}", found.join("\n"));
}

/// Architecture Invariant: the REST handlers and the server functions hold no
/// business rules: they reach the engine only through the `Coordinator`'s
/// methods, never the store underneath it.
#[test]
fn interfaces_do_not_reach_around_the_engine() {
    let paths =
        vec![root().join("server/src/api.rs"), root().join("server/src/content_api.rs"), root().join("app/src/api.rs")];
    let found = occurrences(&paths, &[".store()", "Store::", "sqlx"]);
    assert!(found.is_empty(), "an interface bypasses the coordinator:\n{}", found.join("\n"));
}

/// Architecture Invariant: the server learns a request's peer from the capped
/// listener's `Peer`, never `ConnectInfo<SocketAddr>` (which that listener does
/// not provide: the extractor would fail, and a middleware reading the
/// extension would silently see no address).
#[test]
fn peers_come_from_the_capped_listener() {
    let found =
        occurrences(&files("server/src", "rs"), &["ConnectInfo<SocketAddr>", "ConnectInfo<std::net::SocketAddr>"]);
    assert!(found.is_empty(), "a peer read without the capped listener:\n{}", found.join("\n"));
    let serve = std::fs::read_to_string(root().join("server/src/serve.rs")).unwrap();
    assert!(serve.contains("CappedListener::new("), "the server no longer serves through the capped listener");
}

/// Architecture Invariant: every HTTP endpoint outside the dashboard's pages is
/// registered through `utoipa_axum`'s `routes!` (server/src/openapi.rs), so
/// it is in the OpenAPI document; plain `.route(` is kept for the sign-in
/// form's two paths and the API's catch-all 404.
#[test]
fn http_routes_are_described() {
    let allowed = ["\"/login\"", "\"/logout\"", "\"/api/{*rest}\""];
    let mut found = vec![];
    for path in files("server/src", "rs") {
        for (n, line) in code_lines(&path) {
            if line.contains(".route(\"") && !allowed.iter().any(|a| line.contains(a)) {
                found.push(format!("{}:{n}: {}", relative(&path), line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "a route left out of the OpenAPI document:\n{}", found.join("\n"));
    let openapi = std::fs::read_to_string(root().join("server/src/openapi.rs")).unwrap();
    assert!(openapi.contains("split_for_parts()"), "the routes and the document are no longer made together");
}

/// Architecture Invariant: a batch of the engine costs what it touches, not the
/// size of the site: the worker never calls the whole-site check or planner.
/// Architecture Invariant: the pipeline knows a file's kind only through the
/// `FileKind` trait: outside `src/kind/` (where `kind/file.rs` defines the
/// variants), no code (tests aside) tests a path's kind or builds or matches a
/// kind's variant of `SiteFile`, `site.rs` included; and only the change vocabulary's own
/// dispatch (`diff.rs`, `grade.rs`) names a kind's variant of `ChangeItem`
/// other than the entity one the schema planners unwrap.
#[test]
fn kinds_are_known_only_through_the_trait() {
    let mut paths = files("src", "rs");
    paths.extend(files("server/src", "rs"));
    paths.extend(files("app/src", "rs"));
    let allowed = ["src/kind/"];
    paths.retain(|p| !allowed.iter().any(|a| relative(p).starts_with(a)));
    let needles = ["is_config_path(", "is_schema_path(", "SiteFile::Schema(", "SiteFile::Config(", "SiteFile::Data("];
    let items = ["ChangeItem::Config(", "ChangeItem::Record("];
    let mut found = Vec::new();
    for path in &paths {
        let dispatch = ["src/diff.rs", "src/grade.rs"].contains(&relative(path).as_str());
        let text = std::fs::read_to_string(path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (i, line) in code.lines().enumerate().filter(|(_, l)| !l.trim_start().starts_with("//")) {
            if needles.iter().any(|n| line.contains(n)) || (!dispatch && items.iter().any(|n| line.contains(n))) {
                found.push(format!("{}:{}: {}", relative(path), i + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "ask the file's kind (crate::kind) instead:\n{}", found.join("\n"));
}

#[test]
fn batches_do_not_walk_the_whole_site() {
    let mut paths = files("src/engine/worker", "rs");
    paths.push(root().join("src/engine/worker.rs"));
    let found = occurrences(&paths, &[".check()", "plan_sites_in", "plan_sites(", ".dependency_order()"]);
    assert!(found.is_empty(), "the worker walks the whole site:\n{}", found.join("\n"));
    let intake = std::fs::read_to_string(root().join("src/engine/worker/intake.rs")).unwrap();
    assert!(intake.contains("check_changes(") && intake.contains("plan_files_in("), "the worker's batch path moved");
}

/// The repository documents itself: a user who clones it has no `../shared/`,
/// so nothing may send them to the product specification kept there.
#[test]
fn docs_live_in_the_repo() {
    let mut paths = vec![root().join("README.md"), root().join("ARCHITECTURE.md")];
    for (dir, ext) in [
        ("docs", ".md"),
        ("src", ".rs"),
        ("app/src", ".rs"),
        ("server/src", ".rs"),
        ("tests", ".rs"),
        ("server/tests", ".rs"),
        ("xtask/src", ".rs"),
        ("end2end/tests", ".ts"),
    ] {
        paths.extend(files(dir, ext));
    }
    // Spelled in pieces, so that this file does not cite what it forbids.
    let (section, file) = (["SPEC", " §"].concat(), ["SPEC", ".md"].concat());
    let mut found = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path).unwrap();
        for (i, line) in text.lines().enumerate() {
            if line.contains(&section) || line.contains(&file) {
                found.push(format!("{}:{}: {}", relative(path), i + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "cite docs/ in the repo, not the specification outside it:\n{}", found.join("\n"));
    for doc in ["schema-format.md", "config-format.md", "grading.md", "api.md"] {
        assert!(root().join("docs").join(doc).is_file(), "docs/{doc} is missing");
    }
}

/// Every source file of the four crates, in every directory, is named in
/// ARCHITECTURE.md's code map, so the map cannot fall behind the code. A file
/// is named by its path under its crate's sources (the engine's without the
/// leading `engine/`, which has a section of its own): `site.rs`,
/// `kind/data/plan.rs`, `worker/intake.rs`, `pages/audit.rs`. A crate's root
/// (`lib.rs`, `main.rs`), `mod.rs` files and test-only `tests.rs` files aside.
#[test]
fn the_code_map_names_every_module() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let mut missing = Vec::new();
    let mut seen = 0;
    for src in ["src", "server/src", "app/src", "xtask/src"] {
        for path in files(src, ".rs") {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if ["lib.rs", "main.rs", "mod.rs", "tests.rs"].contains(&name.as_str()) {
                continue;
            }
            seen += 1;
            let under = path.strip_prefix(root().join(src)).unwrap().to_string_lossy().replace('\\', "/");
            let named = under.strip_prefix("engine/").unwrap_or(&under);
            if !map.contains(&format!("`{named}`")) {
                missing.push(relative(&path));
            }
        }
    }
    assert!(seen > 100, "only {seen} source files found");
    assert!(missing.is_empty(), "not in ARCHITECTURE.md's code map (as `name.rs`, `plan/name.rs`): {missing:?}");
}

/// Each bullet under "## Invariants" in ARCHITECTURE.md ends with
/// `Checked by <check>`: a test as `file::function`, or `make lint`'s step. The
/// named test must exist, so an invariant cannot be left as prose.
#[test]
fn every_invariant_names_its_check() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let section = map.split("## Invariants").nth(1).expect("ARCHITECTURE.md has an Invariants section");
    let section = section.split("\n## ").next().unwrap();
    let mut bullets: Vec<String> = Vec::new();
    for line in section.lines() {
        if let Some(rest) = line.strip_prefix("- ") {
            bullets.push(rest.to_string());
        } else if let Some(last) = bullets.last_mut().filter(|_| line.starts_with("  ")) {
            last.push(' ');
            last.push_str(line.trim());
        }
    }
    assert!(bullets.len() >= 8, "the invariants were not found: {bullets:#?}");
    let makefile = std::fs::read_to_string(root().join("Makefile")).unwrap();
    for bullet in &bullets {
        let (_, check) = bullet.split_once("Checked by").unwrap_or_else(|| panic!("no `Checked by` in: {bullet}"));
        let names: Vec<&str> = check.split('`').skip(1).step_by(2).collect();
        assert!(!names.is_empty(), "`Checked by` names nothing in: {bullet}");
        for name in names {
            if let Some(step) = name.strip_prefix("make lint: ") {
                assert!(makefile.contains(step), "make lint has no step `{step}` (named in: {bullet})");
                continue;
            }
            let (file, function) = name.rsplit_once("::").unwrap_or_else(|| panic!("`{name}` is not file::function"));
            let text =
                std::fs::read_to_string(root().join(file)).unwrap_or_else(|_| panic!("{file} (named in: {bullet})"));
            assert!(text.contains(&format!("fn {function}(")), "{file} has no fn {function} (named in: {bullet})");
        }
    }
}

/// The module path of `file` in the crate whose sources are under `src`:
/// `engine/worker/intake.rs` → `[engine, worker, intake]`; a `mod.rs`,
/// `lib.rs` or `main.rs` is its directory's module.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().to_string()).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !["mod", "lib", "main"].contains(&stem) {
        parts.push(stem.to_string());
    }
    parts
}

/// The paths that `rest` (what follows `crate::` or `super::`) names, as
/// segments, with `{…}` groups expanded: `a::{b, c::d}` → `[a, b]`, `[a, c, d]`.
fn expand_path(rest: &str) -> Vec<Vec<String>> {
    fn path(s: &mut std::iter::Peekable<std::str::Chars>, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        let mut segs = prefix;
        loop {
            let ident: String = std::iter::from_fn(|| s.next_if(|c| c.is_ascii_alphanumeric() || *c == '_')).collect();
            if !ident.is_empty() {
                segs.push(ident);
            }
            let mut rest = s.clone();
            if rest.next() == Some(':') && rest.next() == Some(':') {
                s.next();
                s.next();
                if s.peek() == Some(&'{') {
                    s.next();
                    loop {
                        while s.next_if(|c| c.is_whitespace()).is_some() {}
                        path(s, segs.clone(), out);
                        while s.next_if(|c| c.is_whitespace()).is_some() {}
                        match s.next() {
                            Some(',') => continue,
                            _ => return,
                        }
                    }
                }
                continue;
            }
            out.push(segs);
            return;
        }
    }
    let mut out = Vec::new();
    path(&mut rest.chars().peekable(), Vec::new(), &mut out);
    out
}

/// The module paths the code of `file` (module `own`; not its `#[cfg(test)]`
/// part) imports through `crate::` and `super::` paths. A parent naming its
/// own children (`mod x;`, `x::Item`, a facade's `pub use x::…`) is the module
/// tree, not an import, and is not counted.
fn imports(file: &Path, own: &[String]) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(file).unwrap();
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = Vec::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            // `pub(in crate::engine)` is visibility, not a use.
            if line[..i].ends_with("in ") || line[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            out.extend(expand_path(&line[i + "crate::".len()..]));
        }
        let mut from = 0;
        while let Some(i) = line[from..].find("super::").map(|i| i + from) {
            if i > 0 && line[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                from = i + 1;
                continue;
            }
            let mut base = own.to_vec();
            let mut rest = &line[i..];
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
            from = line.len() - rest.len();
            out.extend(expand_path(rest).into_iter().map(|p| base.iter().cloned().chain(p).collect()));
        }
    }
    out
}

/// The first import circle among `modules` (name → the names it uses), if any.
fn find_circle(
    modules: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        modules: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|p| p == node) {
            let mut circle = path[start..].to_vec();
            circle.push(node.to_string());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in modules.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, modules, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    modules.keys().find_map(|m| visit(m, modules, &mut Vec::new(), &mut done))
}

/// The import graph of the crate under `src`: each source file (test-only
/// `tests.rs` files aside) → the files it imports from.
fn import_graph(src: &str) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    use std::collections::{BTreeMap, BTreeSet};
    let src_root = root().join(src);
    let paths: Vec<PathBuf> = files(src, ".rs").into_iter().filter(|p| !p.ends_with("tests.rs")).collect();
    let by_module: BTreeMap<Vec<String>, String> =
        paths.iter().map(|p| (module_path(&src_root, p), relative(p))).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &paths {
        let own = module_path(&src_root, path);
        let from = relative(path);
        let edges = graph.entry(from.clone()).or_default();
        for import in imports(path, &own) {
            // The longest prefix that is a module of this crate is the file imported from.
            let target = (1..=import.len()).rev().find_map(|n| by_module.get(&import[..n]));
            if let Some(target) = target.filter(|t| **t != from) {
                edges.insert(target.clone());
            }
        }
    }
    graph
}

/// No two source files of a crate import each other, directly or around a
/// circle, at any depth (files inside a subdirectory too): each file can be
/// read (and changed) knowing only the ones below it. Checked for the core
/// with its engine, the server and the app.
#[test]
fn modules_form_no_import_circle() {
    for src in ["src", "server/src", "app/src"] {
        let graph = import_graph(src);
        assert!(graph.len() > 3, "{src}: no files found");
        assert!(graph.values().any(|e| !e.is_empty()), "{src}: no imports found");
        if let Some(circle) = find_circle(&graph) {
            panic!("{src}: an import circle: {}", circle.join(" → "));
        }
    }
}

/// The checker itself finds the circles it is for: a sibling pair inside a
/// subdirectory, through `super::` and through `crate::` with a group.
#[test]
fn the_import_check_sees_circles_in_subdirectories() {
    let own = |m: &str| m.split('/').map(str::to_string).collect::<Vec<_>>();
    let dir = std::env::temp_dir().join(format!("marain-tidy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("a.rs"), dir.join("b.rs"));
    std::fs::write(&a, "use super::b::Thing;\npub(in crate::engine) fn f() {}\n").unwrap();
    std::fs::write(&b, "use crate::engine::{legacy::a::{self, f}, store};\n").unwrap();
    let from_a = imports(&a, &own("engine/legacy/a"));
    let from_b = imports(&b, &own("engine/legacy/b"));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(from_a, vec![own("engine/legacy/b/Thing")]);
    assert!(from_b.contains(&own("engine/legacy/a/self")) && from_b.contains(&own("engine/store")), "{from_b:?}");
    let graph = [("a", "b"), ("b", "a")].map(|(x, y)| (x.to_string(), [y.to_string()].into()));
    assert!(find_circle(&graph.into_iter().collect()).is_some());
}

/// Architecture Invariant: every behaviour that touches the database is tested
/// on SQLite and on PostgreSQL by the same code. Every test file under `tests/`
/// and `server/tests/` that reaches a database is walked: a test body taking a
/// `Backend` is listed in `backend_tests!`; any other test is one of a pair
/// named for the two backends (`…_on_sqlite` and `…_on_postgres…`, sharing
/// their code), or its doc comment says why it runs on one backend alone
/// ("SQLite only (…)", "PostgreSQL only (…)") or touches no database ("No
/// database (…)").
#[test]
fn database_suites_run_on_both_backends() {
    let mut problems = Vec::new();
    let mut walked = 0;
    for path in files("tests", ".rs").into_iter().chain(files("server/tests", ".rs")) {
        let suite = relative(&path);
        if suite.contains("/support/") || suite == "tests/tidy.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        problems.extend(single_backend_tests(&suite, &text));
        walked += 1;
    }
    assert!(walked >= 15, "only {walked} test files walked");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Whether a test file reaches a database: it starts the engine or the server,
/// or opens one of the harness's databases.
fn reaches_a_database(text: &str) -> bool {
    ["Backend", "TestSite", "PgServer", "sqlite_harness", "case_db", "DATABASE_URL", "sqlite://"]
        .iter()
        .any(|marker| text.contains(marker))
}

/// The tests of `suite` that run on one backend without saying why.
fn single_backend_tests(suite: &str, text: &str) -> Vec<String> {
    if !reaches_a_database(text) {
        return vec![];
    }
    let listed = text.split("backend_tests!(").skip(1).flat_map(|rest| {
        let list = rest.split(')').next().unwrap_or("");
        list.split([',', '\n', ' '])
            .map(|s| s.trim().trim_start_matches("multi_thread:").trim().to_string())
            .collect::<Vec<_>>()
    });
    let listed: std::collections::BTreeSet<String> = listed.filter(|s| !s.is_empty()).collect();
    let lines: Vec<&str> = text.lines().collect();
    let test_name = |line: &str| {
        let line = line.trim_start().trim_start_matches("async ").trim_start_matches("fn ");
        line.split(['(', '<']).next().unwrap_or("").trim().to_string()
    };
    let mut tests = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(name) =
            line.strip_prefix("async fn ").and_then(|l| l.split_once("(backend: Backend)")).map(|(n, _)| n)
        {
            if !listed.contains(name) {
                problems.push(format!("{suite}: `{name}` takes a backend but is not in backend_tests!"));
            }
        }
        let attribute = line.trim_start();
        if attribute.starts_with("#[tokio::test") || attribute == "#[test]" {
            let doc: String = lines[i.saturating_sub(8)..i].join("\n");
            let next = lines[i + 1..].iter().find(|l| !l.trim_start().starts_with("#[")).copied().unwrap_or("");
            tests.push((i + 1, test_name(next), doc));
        }
    }
    let names: Vec<String> = tests.iter().map(|(_, name, _)| name.clone()).collect();
    let paired = |name: &str| {
        let other = |from: &str, to: &str| {
            name.split_once(from).is_some_and(|(head, _)| names.iter().any(|n| n.starts_with(&format!("{head}{to}"))))
        };
        other("sqlite", "postgres") || other("postgres", "sqlite")
    };
    for (line, name, doc) in tests {
        let said = ["SQLite only (", "PostgreSQL only (", "No database ("].iter().any(|why| doc.contains(why));
        if !said && !paired(&name) {
            problems.push(format!("{suite}:{line}: a test on one backend without saying why: {name}"));
        }
    }
    problems
}

/// The walk sees what it is for: a test without its pair or reason, in a file
/// that reaches a database, anywhere.
#[test]
fn the_backend_check_sees_single_backend_tests() {
    let file = "use support::Backend;\n\n#[tokio::test]\nasync fn saves_on_sqlite() {}\n";
    assert_eq!(single_backend_tests("tests/x.rs", file).len(), 1);
    let paired = format!("{file}\n#[tokio::test]\nasync fn saves_on_postgres() {{}}\n");
    assert!(single_backend_tests("tests/x.rs", &paired).is_empty());
    let said = "use support::Backend;\n\n/// SQLite only (a file lock).\n#[test]\nfn locks() {}\n";
    assert!(single_backend_tests("tests/x.rs", said).is_empty());
    assert!(single_backend_tests("tests/x.rs", "#[test]\nfn pure() {}\n").is_empty());
}

/// The public methods of the store and of its views by concern (`History`,
/// `Accounts`, `ClusterTables`): the store's API.
fn store_methods() -> Vec<String> {
    let mut names = Vec::new();
    for path in files("src/engine", ".rs") {
        let text = std::fs::read_to_string(&path).unwrap();
        let heads = ["\nimpl Store {", "\nimpl History<'_> {", "\nimpl Accounts<'_> {", "\nimpl ClusterTables<'_> {"];
        let blocks = heads.iter().flat_map(|h| text.split(h).skip(1).collect::<Vec<_>>());
        for block in blocks {
            let block = block.split("\n}\n").next().unwrap_or("");
            for line in block.lines() {
                let Some(rest) = line.strip_prefix("    pub async fn ").or_else(|| line.strip_prefix("    pub fn "))
                else {
                    continue;
                };
                names.push(rest.split(['(', '<']).next().unwrap().to_string());
            }
        }
    }
    names
}

/// Architecture Invariant: every state change is a `Command` on the worker's
/// queue. The handle (`coordinator.rs`) calls only the store's reads, and
/// the webhook outbox (deliveries shared by the instances, a side effect that
/// no snapshot shows, leased per delivery), and the requests to running online
/// phases (their worker is busy running them); any other store method, and the
/// legacy move's writing calls, must be a command. Store methods are denied
/// unless listed as reads here, so a new writing method is caught by default.
#[test]
fn the_handle_changes_state_only_through_the_queue() {
    let reads = [
        "history",
        "accounts",
        "cluster",
        "backend",
        "rows",
        "instance",
        "history_head",
        "version_hashes",
        "history_after",
        "pool",
        "dialect",
        "failpoints",
        "probe",
        "lock_holders",
        "latest_versions",
        "applied_site",
        "version",
        "backups",
        "applied_versions",
        "backups_since",
        "verify_chain",
        "table_columns",
        "account_count",
        "verify_password",
        "tokens",
        "token_identity",
        "session_role",
        "signed_in",
        "proposals_except",
        "rejections",
        "enqueue_delivery",
        "lease_deliveries",
        "delivered",
        "delivery_failed",
        "prune_deliveries",
        // Asks running online phases to pause, resume or abort: the worker is
        // busy running them, so the request cannot wait in its queue; the
        // phases read it between batches, and it changes no snapshot state.
        "control_run",
        "recorded_runs",
    ];
    let methods = store_methods();
    assert!(methods.len() > 30 && methods.contains(&"apply".to_string()), "the store's methods were not found");
    let writes: Vec<String> = methods.into_iter().filter(|m| !reads.contains(&m.as_str())).collect();
    let mut needles: Vec<String> = writes.iter().map(|m| format!(".{m}(")).collect();
    needles.extend(["legacy::run(", "legacy::finish(", "legacy::retire(", "::run(&"].map(String::from));
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    let found = occurrences(&[root().join("src/engine/coordinator.rs")], &needles);
    assert!(found.is_empty(), "the handle changes state around the queue (send a Command):\n{}", found.join("\n"));
}

/// Architecture Invariant: the handle and the worker never import each other;
/// `start.rs` is the one module that knows both.
#[test]
fn the_handle_and_the_worker_never_import_each_other() {
    let mut found = occurrences(&[root().join("src/engine/coordinator.rs")], &["worker::", "Worker"]);
    let mut worker = files("src/engine/worker", ".rs");
    worker.push(root().join("src/engine/worker.rs"));
    found.extend(occurrences(&worker, &["coordinator::", "Coordinator"]));
    assert!(found.is_empty(), "the handle and the worker meet only in shared.rs and start.rs:\n{}", found.join("\n"));
}

/// No product source file is over 700 lines, and the worker keeps at most 12
/// fields: past that, a file or a struct has more than one job (split it by
/// concern, as `worker/` and the store are).
#[test]
fn files_and_the_worker_stay_small() {
    let mut long = Vec::new();
    for src in ["src", "server/src", "app/src", "xtask/src"] {
        for path in files(src, ".rs") {
            let lines = std::fs::read_to_string(&path).unwrap().lines().count();
            if lines > 700 {
                long.push(format!("{}: {lines} lines", relative(&path)));
            }
        }
    }
    assert!(long.is_empty(), "split these by concern:\n{}", long.join("\n"));
    let worker = std::fs::read_to_string(root().join("src/engine/worker.rs")).unwrap();
    let body =
        worker.split("pub(super) struct Worker {").nth(1).expect("the Worker struct").split("\n}").next().unwrap();
    let fields =
        body.lines().filter(|l| l.starts_with("    ") && !l.trim_start().starts_with("//") && l.contains(": ")).count();
    assert!((3..=12).contains(&fields), "Worker has {fields} fields; group them into values with one job each");
}

/// The table of file states in ARCHITECTURE.md is `TRANSITIONS` in
/// `worker/files.rs`, row for row.
#[test]
fn the_file_state_table_is_the_code() {
    let code = std::fs::read_to_string(root().join("src/engine/worker/files.rs")).unwrap();
    let table = code.split("const TRANSITIONS").nth(1).expect("TRANSITIONS").split("];").next().unwrap();
    let in_code: Vec<String> = table
        .lines()
        .filter_map(|l| l.trim().strip_prefix("(S::"))
        .map(|l| l.trim_end_matches("),").replace(", S::", " | ").replace(", Via::", " | "))
        .collect();
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let header = map.find("| from | to | by |").expect("ARCHITECTURE.md has the table of file states");
    let in_map: Vec<String> = map[header..]
        .lines()
        .skip(2)
        .map(str::trim)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').trim().to_string())
        .collect();
    assert!(in_code.len() > 10, "TRANSITIONS was not read: {in_code:?}");
    assert_eq!(in_map, in_code, "ARCHITECTURE.md's table of file states differs from worker/files.rs");
}

/// ARCHITECTURE.md states no value the code can change (a timeout, an
/// interval, a size): it names the constant, so the map cannot drift.
#[test]
fn the_map_states_no_constants() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let units = [" s", " ms", " MiB", " KiB", " GiB", " seconds", " minutes", " hours", " days"];
    let words = ["each second", "every second", "twice a second", "once a minute", "once a second"];
    let mut found = Vec::new();
    for (n, line) in map.lines().enumerate() {
        let bytes = line.as_bytes();
        for (i, _) in line.match_indices(|c: char| c.is_ascii_digit()) {
            let after_number = line[i..].trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == ',');
            let starts =
                i == 0 || !bytes[i - 1].is_ascii_alphanumeric() && bytes[i - 1] != b'_' && bytes[i - 1] != b'.';
            if starts
                && units
                    .iter()
                    .any(|u| after_number.starts_with(u) && !after_number[u.len()..].starts_with(char::is_alphanumeric))
            {
                found.push(format!("ARCHITECTURE.md:{}: {}", n + 1, line.trim()));
            }
        }
        if words.iter().any(|w| line.contains(w)) {
            found.push(format!("ARCHITECTURE.md:{}: {}", n + 1, line.trim()));
        }
    }
    assert!(found.is_empty(), "name the constant instead of its value:\n{}", found.join("\n"));
}

/// Architecture Invariant: the engine's differences between SQLite and
/// PostgreSQL live behind the `Backend` trait (`src/engine/backend/`, one
/// implementation per backend) and the driver plumbing of `database.rs`; no
/// other engine code matches on a dialect or a pool.
#[test]
fn dialects_differ_only_in_the_backends() {
    let paths: Vec<PathBuf> = files("src/engine", ".rs")
        .into_iter()
        .filter(|p| {
            let rel = relative(p);
            !rel.starts_with("src/engine/backend/") && rel != "src/engine/database.rs" && !rel.ends_with("/tests.rs")
        })
        .collect();
    let variants = ["Dialect::Sqlite", "Dialect::Postgres"];
    let pools = ["Pool::Sqlite", "Pool::Postgres", "Conn::Sqlite", "Conn::Postgres", "Tx::Sqlite", "Tx::Postgres"];
    let needles: Vec<&str> = variants.iter().chain(pools.iter()).copied().collect();
    let found = occurrences(&paths, &needles);
    assert!(paths.len() > 40, "the engine's files were not found");
    assert!(found.is_empty(), "ask the backend (engine::backend) instead:\n{}", found.join("\n"));
}

/// One word, one meaning (ARCHITECTURE.md's "Words"): a file that does not
/// validate is *invalid*, a person's decision against a change is a
/// *decline*, and *rejected* is only the wire's word for either (a file state,
/// an event kind); the move from the legacy JSON table is the *legacy move*,
/// and *migrations* are sqlx's, of Marain's own tables. The former names
/// stay out of the code (the wire keeps its names: `rejected`, `/reject`,
/// `migration` events and the Migration page's address).
#[test]
fn one_word_one_meaning() {
    let mut paths = files("src", ".rs");
    paths.extend(files("server/src", ".rs"));
    paths.extend(files("app/src", ".rs"));
    let needles = [
        "Rejection",
        "reject_change",
        "RejectChange",
        "record_rejection",
        "fn reject_",
        "Migration {",
        "Migration(",
        "MigrationView",
        "MigrationDto",
        "EventKind::Migration",
        "_migration(",
        "migration_feed",
    ];
    // axum's extractor trait names the answer to a refused request
    // `Rejection`: the one place the word is the framework's, not ours.
    let found: Vec<String> = occurrences(&paths, &needles)
        .into_iter()
        .filter(|line| !line.ends_with("type Rejection = ApiError;"))
        .collect();
    assert!(found.is_empty(), "one word, one meaning (ARCHITECTURE.md, Words):\n{}", found.join("\n"));
}
