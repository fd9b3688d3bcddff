//! The site on disk: reading files with the limits that protect the process, and
//! writing one atomically when a rollback makes the file follow the database.

use std::path::{Path, PathBuf};

use crate::error::FileError;
use crate::kind::is_site_path;
use crate::yaml::MAX_FILE_BYTES;

/// Every site file (of every kind, in its directory) under `root`, as site-relative
/// paths, sorted.
pub fn list_site_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut visited = std::collections::BTreeSet::new();
    for kind in crate::kind::KINDS {
        walk(root, &root.join(kind.directory()), &mut out, &mut visited);
    }
    out.sort();
    out
}

/// Lists the site files under `dir`. A symlinked directory is listed too (each
/// real directory once, so a link loop ends), so that a file it holds is read,
/// and refused by [`read_site_file`] when its real path leaves the site,
/// instead of going unseen.
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>, visited: &mut std::collections::BTreeSet<PathBuf>) {
    let Ok(real) = dir.canonicalize() else { return };
    if !visited.insert(real) {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(rel) = super::watcher::relative(root, &path) else { continue };
        if super::watcher::is_editor_noise(&rel) {
            continue;
        }
        // `metadata` follows a symlink: a link to a directory is walked.
        if std::fs::metadata(&path).map(|m| m.is_dir()).unwrap_or(false) {
            walk(root, &path, out, visited);
        } else if is_site_path(&rel) {
            out.push(rel);
        }
    }
}

/// Reads one site file: `Ok(None)` when it does not exist. Before its content is
/// read, a file is refused when its real path (every symlink resolved, in the
/// directories above it too) leaves the site, when it is not a regular file (a
/// FIFO would block the reader forever), when it is over the size limit; and
/// after, when it is not UTF-8.
pub fn read_site_file(root: &Path, rel: &str) -> Result<Option<String>, FileError> {
    let path = root.join(rel);
    let refuse = |message: String| Err(FileError::new(rel, (1, 1), None, message));
    match std::fs::symlink_metadata(&path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return refuse(format!("cannot read: {e}")),
    }
    let (Ok(real), Ok(base)) = (path.canonicalize(), root.canonicalize()) else {
        // A dangling symlink: there is no file.
        return Ok(None);
    };
    if !real.starts_with(&base) {
        return refuse(format!("the file is really {}, outside the site; refused", real.display()));
    }
    let meta = match std::fs::metadata(&real) {
        Ok(m) => m,
        Err(e) => return refuse(format!("cannot read: {e}")),
    };
    if !meta.file_type().is_file() {
        return refuse("not a regular file (a directory, FIFO, socket or device); refused".into());
    }
    let len = meta.len();
    if len > MAX_FILE_BYTES as u64 {
        return refuse(format!("file is {len} bytes, over the {MAX_FILE_BYTES}-byte limit"));
    }
    match std::fs::read(&real) {
        Ok(bytes) => String::from_utf8(bytes).map(Some).or_else(|_| refuse("file is not valid UTF-8".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => refuse(format!("cannot read: {e}")),
    }
}

/// Reads every site file under `root` into a [`Site`] for environment `env`, with
/// the problems of the files that had to be left out (unreadable, invalid, or
/// breaking cross-file rules).
pub fn load_site(root: &Path, env: &str) -> (crate::site::Site, Vec<FileError>) {
    let mut errors = Vec::new();
    let mut texts = Vec::new();
    for path in list_site_files(root) {
        match read_site_file(root, &path) {
            Ok(Some(text)) => texts.push((path, text)),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    let (site, more) = crate::site::Site::from_texts_for(env, texts.iter().map(|(p, t)| (p.as_str(), t.as_str())));
    errors.extend(more);
    (site, errors)
}

/// Makes site file `rel` hold `text` (or removes it for `None`) atomically: a
/// temporary file beside it, fsync, rename, fsync of the directory. A reader (the
/// watcher, an editor) sees the old file or the new one, never half of either.
///
/// The temporary file is created exclusively under a random name (a file or a
/// symlink planted at a predictable name cannot redirect the write), and the
/// file keeps the permissions it had.
pub fn write_site_file(root: &Path, rel: &str, text: Option<&str>) -> std::io::Result<()> {
    let full = root.join(rel);
    match text {
        Some(text) => {
            let dir = full.parent().unwrap_or(root);
            std::fs::create_dir_all(dir)?;
            let mut tmp = tempfile::Builder::new().prefix(".marain-").suffix(".tmp").tempfile_in(dir)?;
            std::io::Write::write_all(&mut tmp, text.as_bytes())?;
            if let Ok(meta) = std::fs::symlink_metadata(&full) {
                if meta.file_type().is_file() {
                    tmp.as_file().set_permissions(meta.permissions())?;
                }
            }
            tmp.as_file().sync_all()?;
            tmp.persist(&full).map_err(|e| e.error)?;
            std::fs::File::open(dir)?.sync_all()
        }
        None => match std::fs::remove_file(&full) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A symlink planted where the old code put its temporary file is not
    /// written through, and the rewritten file keeps its mode.
    #[test]
    fn the_rewrite_cannot_be_redirected_and_keeps_the_mode() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let schemas = root.path().join("schemas");
        std::fs::create_dir_all(&schemas).unwrap();
        let file = schemas.join("user.schema.yaml");
        std::fs::write(&file, "old\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let target = outside.path().join("stolen");
        std::os::unix::fs::symlink(&target, schemas.join(".user.schema.yaml.marain-tmp")).unwrap();

        write_site_file(root.path(), "schemas/user.schema.yaml", Some("new\n")).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new\n");
        assert!(!target.exists(), "the write followed a planted symlink");
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o640);
        let leftovers: Vec<_> = std::fs::read_dir(&schemas)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".marain-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
