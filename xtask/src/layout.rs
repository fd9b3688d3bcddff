//! The rest of `target/site`: the stylesheet as `pkg/marain.css` (the path the
//! shell links) and everything in `public/` at the site root.

use std::path::Path;

pub fn copy_assets(root: &Path, site: &Path) -> Result<(), String> {
    let css = site.join("pkg").join("marain.css");
    copy(&root.join("style").join("main.css"), &css)?;
    copy_tree(&root.join("public"), site)
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    std::fs::copy(from, to).map(|_| ()).map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    let Ok(entries) = std::fs::read_dir(from) else { return Ok(()) };
    for entry in entries {
        let entry = entry.map_err(|e| format!("listing {}: {e}", from.display()))?;
        // `.gitkeep` and the like are the repository's, not the site's.
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type().map_err(|e| format!("{}: {e}", entry.path().display()))?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            copy(&entry.path(), &target)?;
        }
    }
    Ok(())
}
