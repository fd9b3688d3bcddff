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
        let counts: Vec<String> = marain::kind::KINDS
            .iter()
            .map(|kind| {
                let n = site.paths().filter(|p| kind.claims(p)).count() as i64;
                marain::plural::count(n, &format!("{} file", kind.name()), &format!("{} files", kind.name()))
            })
            .collect();
        println!("ok: {} valid", counts.join(", "));
        ExitCode::SUCCESS
    } else {
        eprintln!("{} found", marain::plural::count(errors.len() as i64, "problem", "problems"));
        ExitCode::from(2)
    }
}
