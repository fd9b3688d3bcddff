//! `marain plan --from DIR --to DIR`: the graded plan between two sites, offline.
//! Exit code 0: nothing to approve; 1: something needs approval; 2: invalid input.

use std::io::IsTerminal;
use std::process::ExitCode;

use marain::engine::scan::load_site;
use marain::site_plan::{plan_sites_in, FileChange};
use marain::Severity;
use serde::Serialize;

use crate::cli::{Dialect, PlanArgs, PlanFormat};

#[derive(Serialize)]
struct Report {
    severity: Severity,
    changes: Vec<ReportChange>,
}

#[derive(Serialize)]
struct ReportChange {
    file: String,
    kind: &'static str,
    severity: Severity,
    hazards: Vec<ReportHazard>,
    sql: Vec<String>,
    rollback_sql: Vec<String>,
}

#[derive(Serialize)]
struct ReportHazard {
    code: &'static str,
    severity: Severity,
    message: String,
}

fn kind(c: &FileChange) -> &'static str {
    match (&c.old, &c.new) {
        (None, Some(_)) => "create",
        (Some(_), None) => "delete",
        _ => "modify",
    }
}

/// Invalid input, as `--format json` prints it (exit code 2): every problem of
/// either site, so a CI tool reads every outcome from stdout.
#[derive(Serialize)]
struct InvalidInput {
    severity: Severity,
    errors: Vec<ReportError>,
}

#[derive(Serialize)]
struct ReportError {
    /// The site directory (`--from` or `--to`) the problem is in.
    site: String,
    /// The file, relative to the site; none when the site itself is missing.
    file: Option<String>,
    line: Option<usize>,
    column: Option<usize>,
    field: Option<String>,
    message: String,
}

pub fn run(args: &PlanArgs) -> ExitCode {
    let mut problems: Vec<ReportError> = Vec::new();
    let mut load = |dir: &std::path::Path| {
        let site = dir.display().to_string();
        if !dir.is_dir() {
            let message = "the site directory does not exist".to_string();
            problems.push(ReportError { site, file: None, line: None, column: None, field: None, message });
            return marain::site::Site::default();
        }
        let (loaded, errors) = load_site(dir, &args.env);
        problems.extend(errors.into_iter().map(|e| ReportError {
            site: site.clone(),
            file: Some(e.file),
            line: Some(e.line),
            column: Some(e.column),
            field: e.field,
            message: e.message,
        }));
        loaded
    };
    let from = load(&args.from);
    let to = load(&args.to);
    if !problems.is_empty() {
        match args.format {
            PlanFormat::Json => {
                let invalid = InvalidInput { severity: Severity::Rejected, errors: problems };
                println!("{}", serde_json::to_string_pretty(&invalid).expect("report serialises"));
            }
            PlanFormat::Text => {
                for p in &problems {
                    match (&p.file, p.line, p.column) {
                        (Some(file), Some(line), Some(column)) => {
                            eprintln!("{}: {file}:{line}:{column}: {}", p.site, p.message)
                        }
                        _ => eprintln!("error: {}: {}", p.site, p.message),
                    }
                }
            }
        }
        return ExitCode::from(2);
    }
    let dialect = match args.dialect {
        Dialect::Sqlite => marain::plan::Dialect::Sqlite,
        Dialect::Postgres => marain::plan::Dialect::Postgres,
    };
    let changes = plan_sites_in(dialect, &from, &to, |_, short| format!("plan_{short}"));
    let report = Report {
        severity: changes.iter().map(FileChange::severity).max().unwrap_or(Severity::Safe),
        changes: changes
            .iter()
            .map(|c| ReportChange {
                file: c.file.clone(),
                kind: kind(c),
                severity: c.severity(),
                hazards: c
                    .plan
                    .hazards()
                    .into_iter()
                    .map(|h| ReportHazard { code: h.code.as_str(), severity: h.severity, message: h.message })
                    .collect(),
                sql: c.plan.sql(),
                rollback_sql: c.plan.rollback_sql(),
            })
            .collect(),
    };
    match args.format {
        PlanFormat::Json => println!("{}", serde_json::to_string_pretty(&report).expect("report serialises")),
        PlanFormat::Text => print!("{}", text(&report, use_colour())),
    }
    if report.severity == Severity::Safe {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn use_colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn paint(on: bool, code: &str, s: &str) -> String {
    if on {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

fn severity_colour(s: Severity) -> &'static str {
    match s {
        Severity::Safe => "32",
        Severity::Warning => "33",
        Severity::Breaking | Severity::Rejected => "31",
        Severity::Blocked => "35",
    }
}

fn text(report: &Report, colour: bool) -> String {
    let mut out = String::new();
    if report.changes.is_empty() {
        out.push_str("No changes. The sites are equivalent.\n");
        return out;
    }
    for c in &report.changes {
        let (sign, code) = match c.kind {
            "create" => ("+", "32"),
            "delete" => ("-", "31"),
            _ => ("~", "33"),
        };
        out.push_str(&format!(
            "{} {} ({})  {}\n",
            paint(colour, code, sign),
            paint(colour, "1", &c.file),
            c.kind,
            paint(colour, severity_colour(c.severity), c.severity.as_str())
        ));
        for h in &c.hazards {
            out.push_str(&format!(
                "    {} {}  {}\n",
                paint(colour, severity_colour(h.severity), &format!("{:<8}", h.severity.as_str())),
                h.code,
                h.message
            ));
        }
        for statement in &c.sql {
            for (i, line) in statement.lines().enumerate() {
                let lead = if i == 0 { "      " } else { "        " };
                out.push_str(&format!("{lead}{}\n", paint(colour, "2", line)));
            }
        }
        out.push('\n');
    }
    let counts = |k: &str| report.changes.iter().filter(|c| c.kind == k).count();
    out.push_str(&format!(
        "Plan: {} to create, {} to modify, {} to delete. Overall: {}\n",
        counts("create"),
        counts("modify"),
        counts("delete"),
        paint(colour, severity_colour(report.severity), report.severity.as_str())
    ));
    out
}
