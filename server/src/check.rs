//! `marain check`: validation for pre-commit hooks and CI, no database.

use std::process::ExitCode;

use marain::engine::scan::load_site;

use crate::cli::CheckArgs;

pub fn run(args: &CheckArgs) -> ExitCode {
    if !args.site.is_dir() {
        eprintln!("error: site directory {} does not exist", args.site.display());
        return ExitCode::from(2);
    }
    let (site, errors) = load_site(&args.site, &args.env);
    for e in &errors {
        eprintln!("{e}");
    }
    if errors.is_empty() {
        // "2 schema files and 2 config files": every kind with files, by kind.
        let mut counts: Vec<String> = marain::kind::KINDS
            .iter()
            .map(|kind| (kind.name(), site.paths().filter(|p| kind.claims(p)).count() as i64))
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| marain::plural::count(n, &format!("{name} file"), &format!("{name} files")))
            .collect();
        let last = counts.pop().unwrap_or_else(|| "no files".into());
        let all = if counts.is_empty() { last } else { format!("{} and {last}", counts.join(", ")) };
        println!("ok: {all} valid");
        ExitCode::SUCCESS
    } else {
        eprintln!("{} found", marain::plural::count(errors.len() as i64, "problem", "problems"));
        ExitCode::from(2)
    }
}
