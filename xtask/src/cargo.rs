//! The two cargo builds: the server binary for the host, the dashboard's hydrate
//! library for wasm32. The flags match what cargo-leptos passes for the same
//! `[workspace.metadata.leptos]`, so both tools share one `target/`.

use std::path::PathBuf;
use std::process::Command;

use crate::Paths;

fn cargo(paths: &Paths) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(&paths.root);
    command
}

fn run(mut command: Command, what: &str) -> Result<(), String> {
    eprintln!("xtask: building {what}");
    let status = command.status().map_err(|e| format!("could not run cargo for {what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo failed building {what} ({status})"))
    }
}

/// `target/<profile>/marain`.
pub fn build_server(paths: &Paths, release: bool) -> Result<(), String> {
    let mut command = cargo(paths);
    command.args(["build", "--package", "marain-server", "--bin", "marain"]);
    if release {
        command.arg("--release");
    }
    run(command, "the server")
}

/// Builds `marain-app` with `hydrate` for wasm32 and returns the `.wasm` file.
pub fn build_hydrate(paths: &Paths, release: bool) -> Result<PathBuf, String> {
    let mut command = cargo(paths);
    command.args([
        "build",
        "--package",
        "marain-app",
        "--lib",
        "--target",
        "wasm32-unknown-unknown",
        "--no-default-features",
        "--features",
        "hydrate",
    ]);
    // The size-optimised profile the workspace defines for the browser.
    let profile = if release { "wasm-release" } else { "debug" };
    if release {
        command.args(["--profile", "wasm-release"]);
    }
    run(command, "the dashboard (wasm32)")?;
    let wasm = paths.target.join("wasm32-unknown-unknown").join(profile).join("marain_app.wasm");
    if !wasm.is_file() {
        return Err(format!("cargo finished but {} is missing", wasm.display()));
    }
    Ok(wasm)
}
