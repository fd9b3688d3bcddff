//! `secure.log`: every engine event as one JSON line, appended; and the audit
//! log, which reads it back.

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

/// Which audit-log entries to show; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// A part of the file path.
    pub file: Option<String>,
    pub actor: Option<String>,
    /// An event kind (`applied`, `rejected`, …).
    pub kind: Option<String>,
}

impl AuditFilter {
    fn matches(&self, e: &EngineEvent) -> bool {
        self.file.as_ref().is_none_or(|f| e.file.contains(f.as_str()))
            && self.actor.as_ref().is_none_or(|a| e.actor.as_deref() == Some(a.as_str()))
            && self.kind.as_ref().is_none_or(|k| e.kind.as_str() == k)
    }
}

/// The audit log read back from `path`: events newest first, those `filter`
/// matches, at most `limit`. A log that does not exist yet is empty; a line that
/// is not an event (a torn last line after a crash) is skipped.
pub async fn read_audit(path: &Path, filter: &AuditFilter, limit: usize) -> std::io::Result<Vec<EngineEvent>> {
    let text = match tokio::fs::read_to_string(path).await {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<EngineEvent>(line).ok())
        .filter(|e| filter.matches(e))
        .take(limit)
        .collect())
}
