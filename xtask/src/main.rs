//! Build logic for Marain, in Rust (the cargo-xtask pattern): `cargo xtask build`
//! builds the `marain` server binary, the dashboard's hydrate library for wasm32,
//! runs wasm-bindgen as a library, and lays out `target/site` the way the server
//! serves it. It replaces cargo-leptos for `make run` and `make test`, so a fresh
//! machine needs no 20-minute tool install; `cargo leptos watch` still works for
//! live-reload development (see the README).

mod assets;
mod bindgen;
mod cargo;
mod fuzz;
mod layout;
mod optimise;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask build [--release | --release-wasm]
       cargo xtask fuzz [--target plan] [--runs N]

  build       the server (target/<profile>/marain) and the dashboard (target/site)
  --release   optimised server and size-optimised wasm (wasm-opt -Oz, binaryen pinned in tools/binaryen)
  --release-wasm  the debug server with the size-optimised wasm (what `make test` runs:
              the browser tests check the bundle users get)
              Both write content-hashed asset names, hash.txt and .br/.gz copies.
  fuzz        builds fuzz/ with libFuzzer (nightly toolchain) and runs a target for
              N inputs (default 200000) from a corpus seeded with our own site files
";

/// What the build produces and from where.
pub struct Paths {
    /// The product's workspace root (this crate's parent directory).
    pub root: PathBuf,
    /// Cargo's target directory (`CARGO_TARGET_DIR` or `<root>/target`).
    pub target: PathBuf,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits inside the workspace").to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let paths = Paths { root, target };
    let profiles = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["fuzz", rest @ ..] => return finish(fuzz_args(rest).and_then(|a| fuzz::run(&paths, &a))),
        ["build"] => Profiles { server_release: false, wasm_release: false },
        ["build", "--release"] => Profiles { server_release: true, wasm_release: true },
        ["build", "--release-wasm"] => Profiles { server_release: false, wasm_release: true },
        ["help" | "--help" | "-h"] => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    finish(build(&paths, profiles))
}

fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `[--target NAME] [--runs N]`.
fn fuzz_args(rest: &[&str]) -> Result<fuzz::FuzzArgs, String> {
    let mut args = fuzz::FuzzArgs { target: "plan".into(), runs: 200_000 };
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match *flag {
            "--target" => args.target = value.to_string(),
            "--runs" => args.runs = value.parse().map_err(|_| format!("--runs {value}: not a number"))?,
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

/// Which of the two builds are optimised.
#[derive(Clone, Copy)]
struct Profiles {
    server_release: bool,
    wasm_release: bool,
}

fn build(paths: &Paths, profiles: Profiles) -> Result<(), String> {
    let release = profiles.wasm_release;
    let started = std::time::Instant::now();
    bindgen::check_version(&paths.root)?;
    cargo::build_server(paths, profiles.server_release)?;
    let wasm = cargo::build_hydrate(paths, release)?;
    let site = paths.target.join("site");
    // A fresh `pkg/`: the names of an earlier build's files are stale.
    let pkg = site.join("pkg");
    if pkg.exists() {
        std::fs::remove_dir_all(&pkg).map_err(|e| format!("clearing {}: {e}", pkg.display()))?;
    }
    let served = bindgen::generate(&wasm, &pkg, release)?;
    if release {
        optimise::run(&paths.root, &served)?;
    }
    layout::copy_assets(&paths.root, &site)?;
    assets::fingerprint(&site, bindgen::OUTPUT_NAME)?;
    let sizes = assets::precompress(&site, release)?;
    eprintln!("xtask: assets {} bytes, {} with brotli, {} with gzip", sizes.plain, sizes.br, sizes.gz);
    eprintln!("xtask: built the server and {} in {:.1} s", site.display(), started.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::fuzz_args;

    #[test]
    fn fuzz_options() {
        let args = fuzz_args(&[]).unwrap();
        assert_eq!((args.target.as_str(), args.runs), ("plan", 200_000));
        let args = fuzz_args(&["--runs", "5", "--target", "other"]).unwrap();
        assert_eq!((args.target.as_str(), args.runs), ("other", 5));
        assert!(fuzz_args(&["--runs"]).unwrap_err().contains("needs a value"));
        assert!(fuzz_args(&["--runs", "many"]).unwrap_err().contains("not a number"));
        assert!(fuzz_args(&["--fast", "1"]).unwrap_err().contains("unknown option --fast"));
    }
}
