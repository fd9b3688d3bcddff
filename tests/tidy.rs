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
    assert!(found[0].starts_with("src/engine/worker.rs:"), "{}", found[0]);
}

/// Architecture Invariant: database error text stays in the server log. The
/// only reading of a database's own message is `rows::refusal` picking the
/// column name out of SQLite's unique-violation text.
#[test]
fn database_text_is_never_copied_out() {
    let mut paths = Vec::new();
    for dir in ["src", "app/src", "server/src"] {
        paths.extend(files(dir, ".rs"));
    }
    let found: Vec<String> = occurrences(&paths, &[".message()"])
        .into_iter()
        .filter(|hit| {
            !hit.starts_with("src/engine/rows.rs:")
                || !hit.contains(r#"d.message().strip_prefix("UNIQUE constraint failed: ")"#)
        })
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
/// `FileKind` trait: outside `src/kind/` and the definitions in `site.rs` and
/// `config.rs`, no code (tests aside) tests a path's kind or builds or matches
/// a kind's variant of `SiteFile`; and only the change vocabulary's own
/// dispatch (`diff.rs`, `grade.rs`) names a kind's variant of `ChangeItem`
/// other than the entity one the schema planners unwrap.
#[test]
fn kinds_are_known_only_through_the_trait() {
    let mut paths = files("src", "rs");
    paths.extend(files("server/src", "rs"));
    paths.extend(files("app/src", "rs"));
    let allowed = ["src/kind/", "src/site.rs", "src/config.rs"];
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
    let worker = std::fs::read_to_string(root().join("src/engine/worker.rs")).unwrap();
    assert!(worker.contains("check_changes(") && worker.contains("plan_files_in("), "the worker's batch path moved");
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

/// Every source file of the three crates is named in ARCHITECTURE.md's code map,
/// so the map cannot fall behind the code.
#[test]
fn the_code_map_names_every_module() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let mut missing = Vec::new();
    // (directory, how its files are named in the map)
    let dirs = [
        ("src", ""),
        ("src/engine", ""),
        ("src/engine/worker", "worker/"),
        ("src/plan", "plan/"),
        ("src/kind", "kind/"),
        ("src/kind/data", "kind/data/"),
        ("src/sql", "sql/"),
        ("server/src", ""),
        ("app/src", ""),
        ("xtask/src", ""),
    ];
    for (dir, prefix) in dirs {
        let entries = std::fs::read_dir(root().join(dir)).unwrap_or_else(|e| panic!("{dir}: {e}"));
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let skip = ["lib.rs", "main.rs", "mod.rs"];
            if name.ends_with(".rs") && !skip.contains(&name.as_str()) && !map.contains(&format!("`{prefix}{name}`")) {
                missing.push(format!("{dir}/{name}"));
            }
        }
    }
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

/// The modules a file's code (not its `#[cfg(test)]` part) names through
/// `crate::x` (and `super::x` / `super::{x, …}` when `sibling` is set: then
/// `crate::` names the core, not a sibling, and `crate::engine::x` a sibling).
fn named_modules(path: &Path, sibling: bool) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let ident = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    let mut out = Vec::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let prefixes = if sibling { vec!["crate::engine::", "super::"] } else { vec!["crate::"] };
        for prefix in prefixes {
            for (i, _) in line.match_indices(prefix) {
                let rest = &line[i + prefix.len()..];
                match rest.strip_prefix('{') {
                    Some(group) => {
                        let group = group.split('}').next().unwrap_or("");
                        out.extend(group.split(',').map(|g| ident(g.trim())).filter(|g| !g.is_empty()));
                    }
                    None => out.push(ident(rest)),
                }
            }
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

/// No two modules of a crate import each other, directly or around a circle:
/// each layer can be read (and changed) knowing only the ones below it.
/// Checked for the core's modules, the engine's, the server's and the app's.
#[test]
fn modules_form_no_import_circle() {
    use std::collections::{BTreeMap, BTreeSet};
    // (the directory, whether `super::` names siblings there, the module a file belongs to)
    let module_of = |dir: &str, path: &Path| -> String {
        let rel = path.strip_prefix(root().join(dir)).unwrap();
        let first = rel.components().next().unwrap().as_os_str().to_string_lossy().to_string();
        first.trim_end_matches(".rs").to_string()
    };
    for (dir, sibling) in [("src", false), ("src/engine", true), ("server/src", false), ("app/src", false)] {
        let mut modules: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let paths = files(dir, ".rs");
        for path in &paths {
            modules.entry(module_of(dir, path)).or_default();
        }
        for path in &paths {
            let from = module_of(dir, path);
            if ["lib", "main", "mod"].contains(&from.as_str()) {
                continue;
            }
            let uses: Vec<String> = named_modules(path, sibling)
                .into_iter()
                .filter(|m| *m != from && modules.contains_key(m) && !["lib", "main", "mod"].contains(&m.as_str()))
                .collect();
            modules.get_mut(&from).unwrap().extend(uses);
        }
        if dir == "src" {
            // The engine is the shell around the core; its own circles are checked separately.
            modules.remove("engine");
        }
        assert!(modules.len() > 3, "{dir}: no modules found");
        if let Some(circle) = find_circle(&modules) {
            panic!("{dir}: an import circle: {}", circle.join(" → "));
        }
    }
}

/// Architecture Invariant: every behaviour that touches the database is tested
/// on SQLite and on PostgreSQL by the same code. In the suites that run against a
/// database, each test body takes a `Backend` and is listed in `backend_tests!`;
/// a test of its own is allowed only when its doc comment says it is for one
/// backend alone and why ("PostgreSQL only (…)").
#[test]
fn database_suites_run_on_both_backends() {
    let suites = [
        "tests/engine_pipeline.rs",
        "tests/reference_data.rs",
        "server/tests/api.rs",
        "server/tests/crash.rs",
        "server/tests/cli.rs",
    ];
    let mut problems = Vec::new();
    for suite in suites {
        let text = std::fs::read_to_string(root().join(suite)).unwrap();
        let listed = text.split("backend_tests!(").skip(1).flat_map(|rest| {
            let list = rest.split(')').next().unwrap_or("");
            list.split([',', '\n', ' '])
                .map(|s| s.trim().trim_start_matches("multi_thread:").trim().to_string())
                .collect::<Vec<_>>()
        });
        let listed: std::collections::BTreeSet<String> = listed.filter(|s| !s.is_empty()).collect();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if let Some(name) =
                line.strip_prefix("async fn ").and_then(|l| l.split_once("(backend: Backend)")).map(|(n, _)| n)
            {
                if !listed.contains(name) {
                    problems.push(format!("{suite}: `{name}` takes a backend but is not in backend_tests!"));
                }
            }
            if line.trim_start().starts_with("#[tokio::test") || line.trim_start() == "#[test]" {
                let doc: String = lines[i.saturating_sub(8)..i].join("\n");
                let name = lines.get(i + 1).copied().unwrap_or("");
                let touches_db = !name.starts_with("fn ") || suite != "server/tests/cli.rs";
                if touches_db && !doc.contains("SQLite only (") && !doc.contains("PostgreSQL only (") {
                    problems.push(format!("{suite}:{}: a test on one backend without saying why: {name}", i + 1));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
