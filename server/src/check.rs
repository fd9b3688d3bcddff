//! `marain check`: validation for pre-commit hooks and CI, no database.

use std::process::ExitCode;

use marain::engine::scan::{list_schema_files, read_site_file};
use marain::site::Site;

use crate::cli::CheckArgs;

pub fn run(args: &CheckArgs) -> ExitCode {
    if !args.site.is_dir() {
        eprintln!("error: site directory {} does not exist", args.site.display());
        return ExitCode::from(2);
    }
    let mut errors = Vec::new();
    let mut texts = Vec::new();
    for path in list_schema_files(&args.site) {
        match read_site_file(&args.site, &path) {
            Ok(Some(text)) => texts.push((path, text)),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    let (site, more) = Site::from_texts(texts.iter().map(|(p, t)| (p.as_str(), t.as_str())));
    errors.extend(more);
    for e in &errors {
        eprintln!("{e}");
    }
    if errors.is_empty() {
        println!("ok: {} schema files valid", site.len());
        ExitCode::SUCCESS
    } else {
        eprintln!("{} problem(s) found", errors.len());
        ExitCode::from(2)
    }
}
