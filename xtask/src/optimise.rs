//! `wasm-opt -Oz` on the dashboard's wasm, for release builds: about a third
//! of the size wasm-bindgen writes.
//!
//! The binaryen is pinned in `tools/binaryen/` (npm's `binaryen`, installed by
//! `scripts/setup.sh`), not Debian's: Debian 12's binaryen 108 reads
//! wasm-bindgen's externref table as `anyref` and writes its export
//! (`__wbindgen_externrefs`) as the function table, even with no pass at all,
//! and the dashboard then stops at its first `Table.set`. A release build
//! without the pinned one fails rather than ship a bundle three times larger.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The binaryen `tools/binaryen/package-lock.json` pins.
const VERSION: &str = "132";

/// The WebAssembly features rustc's wasm32 target uses, named so that no
/// binaryen default can drop one.
const WASM_FEATURES: [&str; 6] = [
    "--enable-bulk-memory",
    "--enable-reference-types",
    "--enable-multivalue",
    "--enable-sign-ext",
    "--enable-nontrapping-float-to-int",
    "--enable-mutable-globals",
];

/// `<root>/tools/binaryen/node_modules/.bin/wasm-opt`.
fn wasm_opt(root: &Path) -> PathBuf {
    root.join("tools").join("binaryen").join("node_modules").join(".bin").join("wasm-opt")
}

/// Rewrites `wasm` in place with `wasm-opt -Oz`.
pub fn run(root: &Path, wasm: &Path) -> Result<(), String> {
    let tool = wasm_opt(root);
    let missing = || format!("{} is missing: run scripts/setup.sh, which installs binaryen {VERSION}", tool.display());
    let version = Command::new(&tool).arg("--version").output().map_err(|_| missing())?;
    let version = String::from_utf8_lossy(&version.stdout).to_string();
    if !version.starts_with(&format!("wasm-opt version {VERSION} ")) {
        return Err(format!(
            "{}: {} (wanted binaryen {VERSION}): run scripts/setup.sh",
            tool.display(),
            version.trim()
        ));
    }
    let before = std::fs::metadata(wasm).map(|m| m.len()).unwrap_or(0);
    let started = std::time::Instant::now();
    let status = Command::new(&tool)
        .arg("-Oz")
        .args(WASM_FEATURES)
        .arg(wasm)
        .arg("-o")
        .arg(wasm)
        .status()
        .map_err(|e| format!("running {}: {e}", tool.display()))?;
    if !status.success() {
        return Err(format!("wasm-opt -Oz {} failed ({status})", wasm.display()));
    }
    let after = std::fs::metadata(wasm).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "xtask: wasm-opt -Oz (binaryen {VERSION}) {}: {before} → {after} bytes in {:.1} s",
        wasm.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
