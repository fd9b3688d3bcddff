//! `secure.log`: every engine event as one JSON line, appended; and the audit
//! log, which reads it back.
//!
//! Each line carries `prev`, the SHA-256 of the line before it (across files),
//! so a line edited, removed or inserted breaks the chain ([`verify`]). The log
//! is rotated by size: `secure.log` becomes `secure.log.1`, `.1` becomes `.2`,
//! and so on, keeping [`Rotation::keep`] old files; the chain runs on across
//! them. Reading the audit back starts at the end and stops once it has the
//! lines it shows.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::events::EngineEvent;
use crate::hash::sha256_hex;

/// When the log is rotated, and how many old files stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub max_bytes: u64,
    pub keep: usize,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation { max_bytes: 10 * 1024 * 1024, keep: 5 }
    }
}

pub struct SecureLog {
    path: PathBuf,
    file: File,
    rotation: Rotation,
    /// SHA-256 of the last line written (of any file of the log); "" for none.
    last: String,
    size: u64,
}

/// One line as written: the event and the hash of the line before.
#[derive(Serialize)]
struct Line<'a> {
    #[serde(flatten)]
    event: &'a EngineEvent,
    prev: &'a str,
}

/// `path` with `.n` appended: the n-th older file of the log.
fn older(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// How the database names the log at `path` (`marain_secure_log_heads`):
/// this host and the log's absolute path. The server and `marain history
/// verify`, run on the log's host, name it alike.
pub fn anchor_name(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    format!("{}:{}", super::host_name(), absolute.display())
}

impl SecureLog {
    /// The hash of the newest line written (empty before the first).
    pub fn head(&self) -> &str {
        &self.last
    }

    /// The log's name in the database ([`anchor_name`]).
    pub fn anchor_name(&self) -> String {
        anchor_name(&self.path)
    }

    pub fn open(path: &Path) -> std::io::Result<Self> {
        Self::open_with(path, Rotation::default())
    }

    pub fn open_with(path: &Path, rotation: Rotation) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = private_append(path)?;
        let size = file.metadata()?.len();
        // The chain goes on from the newest line of the log, in this file or the last rotated one.
        let last = match last_line(path)? {
            Some(line) => sha256_hex(line.as_bytes()),
            None => last_line(&older(path, 1))?.map(|l| sha256_hex(l.as_bytes())).unwrap_or_default(),
        };
        Ok(Self { path: path.to_path_buf(), file, rotation, last, size })
    }

    /// Appends one line; a failure is logged, never fatal: the history table in
    /// the database is the record of truth, this is its mirror.
    pub fn append(&mut self, event: &EngineEvent) {
        let line = serde_json::to_string(&Line { event, prev: &self.last }).expect("events serialise");
        if let Err(e) = self.write_line(&line) {
            tracing::error!(path = %self.path.display(), error = %e, "cannot append to the secure log");
        }
    }

    fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 + 1 > self.rotation.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(format!("{line}\n").as_bytes())?;
        self.size += line.len() as u64 + 1;
        self.last = sha256_hex(line.as_bytes());
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let _ = std::fs::remove_file(older(&self.path, self.rotation.keep));
        for n in (1..self.rotation.keep).rev() {
            let from = older(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, older(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, older(&self.path, 1))?;
        self.file = private_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// `path` opened to append, created readable and writable by this user only
/// (0600): the log holds who did what (docs/security.md). A rotated file keeps
/// the mode it was made with.
fn private_append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

/// The last complete line of `path`, reading only its end.
fn last_line(path: &Path) -> std::io::Result<Option<String>> {
    let mut lines = ReverseLines::open(path)?;
    lines.next_line()
}

/// Lines of a file from the last to the first, reading it backwards in chunks:
/// only as much of the file as the lines asked for.
struct ReverseLines {
    file: Option<File>,
    /// Where the part not read yet ends.
    pos: u64,
    /// Read but not yet returned: the start of the file part read so far.
    pending: Vec<u8>,
}

impl ReverseLines {
    const CHUNK: u64 = 64 * 1024;

    fn open(path: &Path) -> std::io::Result<Self> {
        match File::open(path) {
            Ok(file) => {
                let pos = file.metadata()?.len();
                Ok(ReverseLines { file: Some(file), pos, pending: Vec::new() })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(ReverseLines { file: None, pos: 0, pending: Vec::new() })
            }
            Err(e) => Err(e),
        }
    }

    fn next_line(&mut self) -> std::io::Result<Option<String>> {
        loop {
            if let Some(at) = self.pending.iter().rposition(|b| *b == b'\n') {
                let line = self.pending.split_off(at + 1);
                self.pending.pop();
                // A trailing newline ends the last line; it does not start an empty one.
                if line.is_empty() {
                    continue;
                }
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            let Some(file) = self.file.as_mut() else { return Ok(None) };
            if self.pos == 0 {
                self.file = None;
                let line = std::mem::take(&mut self.pending);
                return Ok((!line.is_empty()).then(|| String::from_utf8_lossy(&line).into_owned()));
            }
            let start = self.pos.saturating_sub(Self::CHUNK);
            let mut chunk = vec![0; (self.pos - start) as usize];
            file.seek(SeekFrom::Start(start))?;
            file.read_exact(&mut chunk)?;
            chunk.extend_from_slice(&self.pending);
            self.pending = chunk;
            self.pos = start;
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

/// The audit log read back from `path` and its rotated files: events newest
/// first, those `filter` matches, at most `limit`, reading from the end only as
/// far as needed. A log that does not exist yet is empty; a line that is not an
/// event (a torn last line after a crash) is skipped.
pub async fn read_audit(path: &Path, filter: &AuditFilter, limit: usize) -> std::io::Result<Vec<EngineEvent>> {
    let (path, filter) = (path.to_path_buf(), filter.clone());
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for n in 0.. {
            let file = if n == 0 { path.clone() } else { older(&path, n) };
            if n > 0 && !file.exists() {
                break;
            }
            let mut lines = ReverseLines::open(&file)?;
            while let Some(line) = lines.next_line()? {
                if let Some(event) = serde_json::from_str::<EngineEvent>(&line).ok().filter(|e| filter.matches(e)) {
                    out.push(event);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Where the chain of `secure.log` breaks: the file and line (1-based), and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct LogBreak {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

/// Walks the log from its oldest kept file to `path` and checks that every line
/// names the hash of the line before; returns how many lines are intact. The
/// first line of the oldest kept file may name a line rotated away.
pub fn verify(path: &Path) -> Result<usize, LogBreak> {
    verify_anchored(path, None)
}

/// [`verify`], and that the chain holds the line whose hash is `anchor`
/// (the newest the database recorded, [`anchor_name`]): a log cut after it
/// was anchored no longer does.
pub fn verify_anchored(path: &Path, anchor: Option<&str>) -> Result<usize, LogBreak> {
    let mut files: Vec<PathBuf> = (1..).map(|n| older(path, n)).take_while(|p| p.exists()).collect();
    files.reverse();
    files.push(path.to_path_buf());
    let mut prev: Option<String> = None;
    let mut count = 0;
    let mut found = false;
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| LogBreak {
            file: file.display().to_string(),
            line: 0,
            reason: format!("cannot read: {e}"),
        })?;
        for (i, line) in text.lines().enumerate() {
            let broken =
                |reason: &str| LogBreak { file: file.display().to_string(), line: i + 1, reason: reason.into() };
            let value: serde_json::Value =
                serde_json::from_str(line).map_err(|_| broken("not a JSON line (edited, or torn by a crash)"))?;
            let named = value.get("prev").and_then(|p| p.as_str()).ok_or_else(|| broken("no `prev` hash"))?;
            if let Some(expected) = &prev {
                if named != expected {
                    return Err(broken("does not name the line before it (a line was edited, removed or inserted)"));
                }
            }
            prev = Some(sha256_hex(line.as_bytes()));
            count += 1;
            if anchor.is_some_and(|a| prev.as_deref() == Some(a)) {
                found = true;
            }
        }
    }
    match anchor.filter(|a| !a.is_empty() && !found) {
        Some(_) => Err(LogBreak {
            file: path.display().to_string(),
            line: count,
            reason: "the log ends before the newest line the database recorded for it: its tail was cut, \
                     or a file was replaced"
                .into(),
        }),
        None => Ok(count),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::EventKind;

    fn event(seq: u64) -> EngineEvent {
        EngineEvent {
            seq,
            at: "2026-12-02T00:00:00Z".into(),
            kind: EventKind::Applied,
            file: format!("schemas/e{seq}.schema.yaml"),
            change_id: None,
            version: Some(1),
            severity: None,
            actor: Some("watcher".into()),
            message: "x".repeat(100),
        }
    }

    #[tokio::test]
    async fn the_log_rotates_chains_across_files_and_is_read_from_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secure.log");
        let rotation = Rotation { max_bytes: 2_000, keep: 3 };
        let mut log = SecureLog::open_with(&path, rotation).unwrap();
        for seq in 1..=60 {
            log.append(&event(seq));
        }
        drop(log);
        // Reopened, the chain goes on.
        let mut log = SecureLog::open_with(&path, rotation).unwrap();
        log.append(&event(61));
        assert!(older(&path, 3).exists() && !older(&path, 4).exists(), "three old files kept");
        for file in [path.clone(), older(&path, 1), older(&path, 3)] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is {mode:o}", file.display());
        }
        let intact = verify(&path).unwrap();
        assert!(intact > 10 && intact < 61, "{intact}: the oldest were rotated away");
        let newest = read_audit(&path, &AuditFilter::default(), 20).await.unwrap();
        let seqs: Vec<u64> = newest.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (42..=61).rev().collect::<Vec<_>>(), "newest first, across files");

        // An edited line breaks the chain at the line after it.
        let text = std::fs::read_to_string(older(&path, 1)).unwrap();
        std::fs::write(older(&path, 1), text.replacen("\"actor\":\"watcher\"", "\"actor\":\"mallory\"", 1)).unwrap();
        let broken = verify(&path).unwrap_err();
        assert!(broken.file.ends_with("secure.log.1") && broken.line == 2, "{broken}");
        assert!(broken.reason.contains("line before"), "{broken}");
    }

    #[test]
    fn lines_come_back_last_first_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let lines: Vec<String> = (0..5000).map(|i| format!("line {i} {}", "y".repeat(i % 50))).collect();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let mut reader = ReverseLines::open(&path).unwrap();
        let mut back = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            back.push(line);
        }
        back.reverse();
        assert_eq!(back, lines);
    }
}
