//! Where the upstream Marain files are. Shared by the root crate's tests
//! (`mod support`) and the server's CLI test (through `#[path]`), so both follow
//! one rule.

use std::io::Write;
use std::path::{Path, PathBuf};

/// `MARAIN_UPSTREAM_FIXTURES` when set (CI sets it, and then a missing folder
/// fails the test), else `../shared/fixtures/marain-upstream` beside the
/// repository at `repo` when present. On a clone without them, `test` says so on
/// the terminal (past the test harness's capture) and the caller skips.
pub fn upstream_fixtures(repo: &Path, test: &str) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("MARAIN_UPSTREAM_FIXTURES").map(PathBuf::from) {
        assert!(dir.is_dir(), "MARAIN_UPSTREAM_FIXTURES is {}, which is not a folder", dir.display());
        return Some(dir);
    }
    let dir = repo.join("../shared/fixtures/marain-upstream");
    if dir.is_dir() {
        return Some(dir);
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: the upstream Marain files are not at {} (set MARAIN_UPSTREAM_FIXTURES to require them)",
        dir.display()
    );
    None
}
