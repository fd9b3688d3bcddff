//! `secure.log`: every engine event as one JSON line, appended.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::events::EngineEvent;

pub struct SecureLog {
    path: PathBuf,
    file: File,
}

impl SecureLog {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { path: path.to_path_buf(), file })
    }

    /// Appends one line; a failure is logged, never fatal: the history table in
    /// the database is the record of truth, this is its mirror.
    pub fn append(&mut self, event: &EngineEvent) {
        let mut line = serde_json::to_string(event).expect("events serialise");
        line.push('\n');
        if let Err(e) = self.file.write_all(line.as_bytes()) {
            tracing::error!(path = %self.path.display(), error = %e, "cannot append to the secure log");
        }
    }
}
