//! `cargo xtask fuzz`: builds the cargo-fuzz targets under `fuzz/` with
//! libFuzzer's coverage instrumentation (as `cargo fuzz build` does, on the
//! nightly toolchain), seeds a corpus from the example site and the case
//! table, and runs the target for a fixed number of inputs. Not part of
//! `make test`: a run is as long as it is asked to be.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Paths;

/// What `cargo fuzz` passes to rustc for libFuzzer (without a sanitizer:
/// the core is safe Rust, and a panic is what the target looks for).
const RUSTFLAGS: &str = "-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks";

/// Where the texts of a seed go, by its first byte (`fuzz_targets/plan.rs`'s
/// layouts: 0 one schema, 1 one config, 2 two schemas, 3 two configs).
const SCHEMA: u8 = 0;
const CONFIG: u8 = 1;

#[derive(Debug)]
pub struct FuzzArgs {
    pub target: String,
    pub runs: u64,
}

pub fn run(paths: &Paths, args: &FuzzArgs) -> Result<(), String> {
    let host = host_triple()?;
    let binary = build(paths, &args.target, &host)?;
    let corpus = paths.target.join("fuzz").join("corpus").join(&args.target);
    let seeds = seed(&paths.root, &corpus)?;
    eprintln!("xtask: fuzzing `{}` for {} inputs from {} seeds in {}", args.target, args.runs, seeds, corpus.display());
    let artifacts = paths.target.join("fuzz").join("artifacts").join(&args.target);
    std::fs::create_dir_all(&artifacts).map_err(|e| format!("cannot create {}: {e}", artifacts.display()))?;
    let started = std::time::Instant::now();
    let status = Command::new(&binary)
        .arg(format!("-runs={}", args.runs))
        .arg("-max_len=8192")
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(&corpus)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    if status.success() {
        eprintln!(
            "xtask: {} inputs in {seconds:.1} s ({:.0}/s), no failure",
            args.runs,
            args.runs as f64 / seconds.max(0.001)
        );
        Ok(())
    } else {
        Err(format!("the fuzzer found a failure ({status}); the input is in {}", artifacts.display()))
    }
}

fn host_triple() -> Result<String, String> {
    let out = Command::new("rustc").arg("-vV").output().map_err(|e| format!("cannot run rustc: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .ok_or_else(|| "rustc -vV names no host".to_string())
}

/// The instrumented target binary. `--target` keeps the flags off build
/// scripts and proc macros, which must not be instrumented.
fn build(paths: &Paths, target: &str, host: &str) -> Result<PathBuf, String> {
    let dir = paths.target.join("fuzz");
    let mut command = Command::new("rustup");
    command
        .args(["run", "nightly", "cargo", "build", "--release", "--bin", target, "--target", host])
        .arg("--manifest-path")
        .arg(paths.root.join("fuzz").join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&dir)
        .env("RUSTFLAGS", RUSTFLAGS);
    // The outer `cargo xtask` names its own toolchain; the nightly one must win.
    for var in ["CARGO", "RUSTC", "RUSTDOC", "RUSTUP_TOOLCHAIN", "CARGO_TARGET_DIR", "CARGO_ENCODED_RUSTFLAGS"] {
        command.env_remove(var);
    }
    eprintln!("xtask: building the fuzz target `{target}` (nightly, instrumented)");
    let status = command.status().map_err(|e| format!("cannot run rustup: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the fuzz target failed ({status}); it needs the nightly toolchain: rustup toolchain install nightly"
        ));
    }
    Ok(dir.join(host).join("release").join(target))
}

/// Writes a seed per pair of our own site files of one kind (each file against
/// itself, against every other, and against nothing) into `corpus`; returns
/// how many seeds there are.
fn seed(root: &Path, corpus: &Path) -> Result<usize, String> {
    std::fs::create_dir_all(corpus).map_err(|e| format!("cannot create {}: {e}", corpus.display()))?;
    let mut schemas = Vec::new();
    let mut configs = Vec::new();
    for dir in [root.join("examples/site"), root.join("tests/cases")] {
        collect(&dir, &mut |path, text| {
            let name = path.to_string_lossy();
            if name.ends_with(".schema.yaml") {
                schemas.push(text);
            } else if name.contains("/config/") && name.ends_with(".yaml") {
                configs.push(text);
            }
        })?;
    }
    let mut count = 0;
    for (layout, texts) in [(SCHEMA, &schemas), (CONFIG, &configs)] {
        for (i, a) in texts.iter().enumerate() {
            for b in texts.iter().skip(i).take(8).chain(std::iter::once(&Vec::new())) {
                let mut input = vec![layout];
                input.extend_from_slice(a);
                input.push(0xFF);
                input.extend_from_slice(b);
                let name = corpus.join(format!("seed-{layout}-{count:05}"));
                std::fs::write(&name, &input).map_err(|e| format!("cannot write {}: {e}", name.display()))?;
                count += 1;
            }
        }
    }
    Ok(count)
}

fn collect(dir: &Path, found: &mut impl FnMut(&Path, Vec<u8>)) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, found)?;
        } else if let Ok(text) = std::fs::read(&path) {
            found(&path, text);
        }
    }
    Ok(())
}
