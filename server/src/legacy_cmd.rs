//! `marain legacy plan | infer | run | verify | finish`: the legacy JSON
//! `content` table into the typed tables (docs/legacy.md). The work is the
//! engine's [`marain::engine::legacy`]; this module reads arguments, prints and
//! picks the exit code: 0 fine, 1 needs attention, 2 invalid input.

use std::io::IsTerminal;
use std::process::ExitCode;

use marain::plural::count;

use marain::engine::legacy::{self, LegacyError, LegacySource, Progress, RunOptions};
use marain::engine::scan::load_site;
use marain::engine::Store;
use marain::site::Site;

use crate::cli::{LegacyAction, LegacyArgs, PlanFormat};
use crate::store_cmd::{failed, with_store};

pub async fn run(args: &LegacyArgs) -> ExitCode {
    with_store(&args.database, async |store| {
        let source = match LegacySource::open(store, args.legacy_database.as_deref(), &args.legacy_table).await {
            Ok(s) => s,
            Err(e) => return failed(e),
        };
        let code = match &args.action {
            LegacyAction::Plan { site, env } => plan(store, &source, site.as_deref(), env, args.format).await,
            LegacyAction::Infer { out, force } => infer(&source, out, *force).await,
            LegacyAction::Run { batch_size, keep_unmapped, no_dual_write } => {
                let options = RunOptions {
                    batch_size: *batch_size as usize,
                    keep_unmapped: *keep_unmapped,
                    dual_write: !no_dual_write,
                };
                copy(store, &source, &options, args.format).await
            }
            LegacyAction::Verify => verify(store, &source, args.format).await,
            LegacyAction::Finish => finish(store, &source).await,
        };
        source.close().await;
        code
    })
    .await
}

/// The schemas rows are read against: `--site`'s files, or those applied in
/// the database.
async fn schemas(store: &Store, site: Option<&std::path::Path>, env: &str) -> Result<Site, ExitCode> {
    match site {
        Some(dir) if !dir.is_dir() => Err(failed(format!("site directory {} does not exist", dir.display()))),
        Some(dir) => {
            let (site, errors) = load_site(dir, env);
            for e in &errors {
                eprintln!("{e}");
            }
            if errors.is_empty() {
                Ok(site)
            } else {
                Err(failed(format!(
                    "{} in {}; fix them first (`marain check`)",
                    count(errors.len() as i64, "problem", "problems"),
                    dir.display()
                )))
            }
        }
        None => store.history().applied_site().await.map_err(failed),
    }
}

fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

async fn plan(
    store: &Store,
    source: &LegacySource,
    site: Option<&std::path::Path>,
    env: &str,
    format: PlanFormat,
) -> ExitCode {
    let site = match schemas(store, site, env).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let report = match legacy::plan(source, &site).await {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    match format {
        PlanFormat::Json => print_json(&report),
        PlanFormat::Text => {
            let rows: i64 = report.types.iter().map(|t| t.rows).sum();
            println!(
                "legacy table `{}`: {}, {}",
                report.legacy_table,
                count(report.types.len() as i64, "entity type", "entity types"),
                count(rows, "row", "rows")
            );
            for t in &report.types {
                let Some(entity) = &t.entity else {
                    println!(
                        "\n{}: {}; no schema defines entity `{}`: add one (`marain legacy infer` writes a start)",
                        t.entity_type,
                        count(t.rows, "row", "rows"),
                        marain::legacy::infer::entity_id(&t.entity_type)
                    );
                    continue;
                };
                println!(
                    "\n{} → entity `{entity}`: {}, {} fit, {} do not",
                    t.entity_type,
                    count(t.rows, "row", "rows"),
                    t.fitting_rows,
                    t.misfit_rows
                );
                let mapped: Vec<String> =
                    t.mapped_keys.iter().map(|(k, f)| if k == f { k.clone() } else { format!("{k} → {f}") }).collect();
                println!(
                    "  keys mapped to fields: {}",
                    if mapped.is_empty() { "none".into() } else { mapped.join(", ") }
                );
                if !t.unmapped_keys.is_empty() {
                    let keys: Vec<String> =
                        t.unmapped_keys.iter().map(|(k, n)| format!("{k} ({})", count(*n, "row", "rows"))).collect();
                    println!(
                        "  keys no field takes: {} — add fields for them, or `run --keep-unmapped`; rows with them are not copied otherwise",
                        keys.join(", ")
                    );
                }
                for (id, m) in &t.misfits {
                    let value = if m.value.is_empty() { String::new() } else { format!(" = {}", m.value) };
                    println!(
                        "  does not fit: {id} {}{value}: {}",
                        if m.key.is_empty() { "(row)" } else { &m.key },
                        m.reason
                    );
                }
                let listed = t.misfits.iter().map(|(id, _)| id).collect::<std::collections::BTreeSet<_>>().len() as i64;
                if t.misfit_rows > listed {
                    println!(
                        "  … and {} more that do not fit (`--format json` has the same cut)",
                        count(t.misfit_rows - listed, "row", "rows")
                    );
                }
            }
        }
    }
    if report.all_fit() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn infer(source: &LegacySource, out: &std::path::Path, force: bool) -> ExitCode {
    let schemas = match legacy::infer(source).await {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let dir = out.join("schemas");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return failed(format!("cannot create {}: {e}", dir.display()));
    }
    let mut skipped = 0;
    for (entity_type, id, text) in schemas {
        let path = dir.join(format!("{id}.schema.yaml"));
        if path.exists() && !force {
            eprintln!("{} exists; left as it is (--force overwrites)", path.display());
            skipped += 1;
            continue;
        }
        if let Err(e) = std::fs::write(&path, text) {
            return failed(format!("cannot write {}: {e}", path.display()));
        }
        println!("{entity_type} → {}", path.display());
    }
    println!("check them with `marain check --site {}`, then start the server on the site", out.display());
    if skipped > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Shows progress: a bar on a terminal, a line per type every 10 % otherwise.
struct Shown {
    bar: Option<indicatif::ProgressBar>,
    said: std::collections::BTreeMap<String, i64>,
}

impl Shown {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            let style =
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows ({per_sec}, {eta} left) {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        Self { bar, said: Default::default() }
    }

    fn show(&mut self, progress: &Progress) {
        let total: i64 = progress.values().map(|p| p.total).sum();
        let done: i64 = progress.values().map(|p| p.total - p.waiting).sum();
        if let Some(bar) = &self.bar {
            bar.set_length(total.max(0) as u64);
            bar.set_position(done.max(0) as u64);
            let misfits: i64 = progress.values().map(|p| p.misfits).sum();
            bar.set_message(format!("{misfits} do not fit"));
            return;
        }
        for (t, p) in progress {
            let step = (p.total / 10).max(1);
            let looked = p.total - p.waiting;
            let said = self.said.entry(t.clone()).or_insert(-1);
            if looked / step > *said / step || (looked == p.total && *said != looked) {
                *said = looked;
                eprintln!("{t}: {looked}/{} looked at, {} copied, {} do not fit", p.total, p.copied, p.misfits);
            }
        }
    }

    fn end(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

async fn copy(store: &Store, source: &LegacySource, options: &RunOptions, format: PlanFormat) -> ExitCode {
    let site = match store.history().applied_site().await {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let mut shown = Shown::new();
    let started = std::time::Instant::now();
    let result = legacy::run(store, source, &site, options, &mut |p| shown.show(p)).await;
    shown.end();
    let progress = match result {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let unknown = match source.types().await {
        Ok(types) => types.into_iter().filter(|(t, _)| !progress.contains_key(t)).collect::<Vec<_>>(),
        Err(e) => return failed(e),
    };
    match format {
        PlanFormat::Json => print_json(&serde_json::json!({"types": progress, "without_schema": unknown})),
        PlanFormat::Text => {
            for (t, p) in &progress {
                println!(
                    "{t} → {}: {} of {} copied, {} do not fit, {} waiting",
                    p.entity, p.copied, p.total, p.misfits, p.waiting
                );
            }
            for (t, n) in &unknown {
                println!("{t}: {} left where they are: no schema defines it", count(*n, "row", "rows"));
            }
            println!("took {:.1} s", started.elapsed().as_secs_f64());
        }
    }
    let misfits: i64 = progress.values().map(|p| p.misfits + p.waiting).sum();
    if misfits > 0 || !unknown.is_empty() {
        if format == PlanFormat::Text {
            println!(
                "rows that do not fit stay in the legacy table; `marain legacy plan` says why; fix them and run again"
            );
        }
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

async fn verify(store: &Store, source: &LegacySource, format: PlanFormat) -> ExitCode {
    let site = match store.history().applied_site().await {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let report = match legacy::verify(store, source, &site).await {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    match format {
        PlanFormat::Json => print_json(&report),
        PlanFormat::Text => {
            for (t, c) in &report.types {
                println!(
                    "{t} → {}: {} compared, {} not copied",
                    c.entity,
                    count(c.compared, "row", "rows"),
                    c.not_copied
                );
            }
            for t in &report.unknown_types {
                println!("{t}: no schema defines it; its rows are not copied");
            }
            for d in &report.differences {
                println!("differs: {} `{}`: legacy {} ≠ typed {}", d.id, d.field, d.legacy, d.typed);
            }
            println!(
                "{}",
                if report.passed() {
                    "verify passed".to_string()
                } else {
                    count(report.differences.len() as i64, "difference", "differences")
                }
            );
        }
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn finish(store: &Store, source: &LegacySource) -> ExitCode {
    let site = match store.history().applied_site().await {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    match legacy::finish(store, source, &site).await {
        Ok((renamed, _)) => {
            println!("the legacy table is now `{renamed}` (kept; drop it yourself when you no longer need it)");
            ExitCode::SUCCESS
        }
        Err(e @ LegacyError::NotReady(_)) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
        Err(e) => failed(e),
    }
}
