//! Records the commit the binary is built from, for `marain --version` and the
//! `marain_build_info` metric. `MARAIN_COMMIT` in the environment wins (builds
//! from a source archive have no `.git`); otherwise `git` is asked, and
//! "unknown" stands when neither can tell.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=MARAIN_COMMIT");
    // The build reruns when HEAD moves: a checkout, or a commit on the branch.
    for path in ["../.git/HEAD", "../.git/packed-refs"] {
        println!("cargo:rerun-if-changed={path}");
    }
    if let Ok(head) = std::fs::read_to_string("../.git/HEAD") {
        if let Some(reference) = head.trim().strip_prefix("ref: ") {
            println!("cargo:rerun-if-changed=../.git/{reference}");
        }
    }
    let commit = std::env::var("MARAIN_COMMIT").ok().filter(|c| !c.trim().is_empty()).or_else(|| {
        let out = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    println!("cargo:rustc-env=MARAIN_COMMIT={}", commit.as_deref().unwrap_or("unknown"));
}
