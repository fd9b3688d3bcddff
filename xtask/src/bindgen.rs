//! wasm-bindgen as a library: the JS glue and the final `.wasm`, named the way
//! Leptos's hydration script asks for them (`pkg/marain.js`, `pkg/marain.wasm`).

use std::path::Path;

/// The version of the `wasm-bindgen-cli-support` this crate pins. The glue it
/// writes only works with the `wasm-bindgen` crate of exactly that version.
const BINDGEN_VERSION: &str = "0.2.130";

/// Leptos reads `LEPTOS_OUTPUT_NAME` at compile time (`.cargo/config.toml`).
pub const OUTPUT_NAME: &str = "marain";

/// Fails when the product's Cargo.lock resolves another `wasm-bindgen` than the
/// one this crate links, naming both, instead of producing glue that breaks in
/// the browser.
pub fn check_version(root: &Path) -> Result<(), String> {
    let lock_path = root.join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path).map_err(|e| format!("reading {}: {e}", lock_path.display()))?;
    let locked = locked_version(&lock, "wasm-bindgen")
        .ok_or_else(|| format!("{} has no wasm-bindgen package", lock_path.display()))?;
    if locked != BINDGEN_VERSION {
        return Err(format!(
            "Cargo.lock resolves wasm-bindgen {locked} but xtask links wasm-bindgen-cli-support {BINDGEN_VERSION}: \
             pin the same version in xtask/Cargo.toml (and BINDGEN_VERSION in xtask/src/bindgen.rs)"
        ));
    }
    Ok(())
}

/// The version of package `name` in a Cargo.lock's text.
fn locked_version<'a>(lock: &'a str, name: &str) -> Option<&'a str> {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted {
            let version = lines.next()?.trim().strip_prefix("version = \"")?;
            return version.strip_suffix('"');
        }
    }
    None
}

/// Writes `<out>/marain.js` and `<out>/marain.wasm` from the hydrate library;
/// returns the `.wasm`.
pub fn generate(wasm: &Path, out: &Path, release: bool) -> Result<std::path::PathBuf, String> {
    eprintln!("xtask: wasm-bindgen {BINDGEN_VERSION} → {}", out.display());
    std::fs::create_dir_all(out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let mut bindgen = wasm_bindgen_cli_support::Bindgen::new();
    bindgen.input_path(wasm).out_name(OUTPUT_NAME).typescript(false).keep_debug(!release);
    bindgen.web(true).map_err(|e| format!("wasm-bindgen: {e}"))?;
    bindgen.generate(out).map_err(|e| format!("wasm-bindgen on {}: {e:#}", wasm.display()))?;
    // Leptos loads `<name>.wasm` when LEPTOS_OUTPUT_NAME is set at compile time.
    let generated = out.join(format!("{OUTPUT_NAME}_bg.wasm"));
    let served = out.join(format!("{OUTPUT_NAME}.wasm"));
    std::fs::rename(&generated, &served).map_err(|e| format!("renaming {}: {e}", generated.display()))?;
    Ok(served)
}

#[cfg(test)]
mod tests {
    use super::locked_version;

    #[test]
    fn reads_a_locked_version() {
        let lock = "[[package]]\nname = \"wasm-bindgen-macro\"\nversion = \"9.9.9\"\n\n[[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\n";
        assert_eq!(locked_version(lock, "wasm-bindgen"), Some("0.2.130"));
        assert_eq!(locked_version(lock, "leptos"), None);
    }
}
