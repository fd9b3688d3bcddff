//! Our wrapper around notify and its debouncer: directory watching, trailing-edge
//! debouncing, editor-noise filtering, and notify's errors as our own variants.
//!
//! Beside the debounced signals, a second, raw watcher reports the events that
//! say a file is complete at once ([`WatchSignal::Complete`]): a file renamed
//! into place (how most editors, `sed -i` and deployment tools save) and a file
//! closed after writing. The coordinator plans such a file without waiting for
//! the debounce when its content parses; anything else waits for the debounced
//! signal, so a torn write is never judged while more writes may come.
//!
//! A file removed or renamed away is reported too ([`WatchSignal::Gone`]): the
//! debouncer folds a create and a remove within its window into nothing, and
//! the create may already have been applied early, so the coordinator looks
//! at such a path again once the debounce has passed (an editor that moves the
//! old file aside and writes the new one is not taken for a deletion).

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use tokio::sync::mpsc::UnboundedSender;

use super::activity::Activity;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("site directory {0} does not exist")]
    RootMissing(PathBuf),
    #[error("the inotify watch limit is reached; raise fs.inotify.max_user_watches (sysctl) and restart")]
    WatchLimit,
    #[error("cannot watch {path}: {message}")]
    Notify { path: PathBuf, message: String },
}

/// What the watcher tells the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchSignal {
    /// These site-relative paths (`/`-separated) may have changed, and have
    /// been quiet for the debounce.
    Paths(Vec<String>),
    /// These paths were just renamed into place or closed after writing: they
    /// may be complete now (the debounced [`WatchSignal::Paths`] follows).
    Complete(Vec<String>),
    /// These paths were removed or renamed away: look at them again once the
    /// debounce has passed, whatever the debouncer reports.
    Gone(Vec<String>),
    /// Events may have been lost (queue overflow, a new directory): re-read everything.
    Rescan,
}

/// The sending end of the watcher's signals, counting what it sends.
#[derive(Clone)]
pub struct Signals {
    tx: UnboundedSender<WatchSignal>,
    activity: std::sync::Arc<Activity>,
}

impl Signals {
    pub fn new(tx: UnboundedSender<WatchSignal>, activity: std::sync::Arc<Activity>) -> Self {
        Self { tx, activity }
    }

    pub fn activity(&self) -> &Activity {
        &self.activity
    }

    /// Sends a signal to the worker (dropped only during shutdown, when the
    /// worker is gone).
    pub fn send(&self, signal: WatchSignal) {
        self.activity.sent();
        if self.tx.send(signal).is_err() {
            self.activity.handled(1);
        }
    }
}

/// Watches a site directory for as long as it lives.
pub struct SiteWatcher {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    _complete: RecommendedWatcher,
    /// The directory it was started on, as the file system knows it: watches
    /// follow a directory, not its path, so one moved away and another put in
    /// its place is watched no more.
    identity: Option<DirIdentity>,
    /// Directories under the site it may not look into (their permissions
    /// deny this process): their files are refused as unreadable, not taken
    /// for deleted, and the watcher is started again once they open.
    blind: Vec<PathBuf>,
}

/// A directory's device and inode (Unix); elsewhere only that it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirIdentity(u64, u64);

fn identity(dir: &Path) -> Option<DirIdentity> {
    let meta = std::fs::metadata(dir).ok().filter(std::fs::Metadata::is_dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(DirIdentity(meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        Some(DirIdentity(0, 0))
    }
}

impl SiteWatcher {
    /// Watches `root` recursively; debounced signals go to `signals`.
    pub fn start(root: &Path, debounce: Duration, signals: Signals) -> Result<Self, WatchError> {
        let root = root.canonicalize().map_err(|_| WatchError::RootMissing(root.to_path_buf()))?;
        let base = root.clone();
        let signals_early = signals.clone();
        let activity = std::sync::Arc::clone(&signals.activity);
        // The debouncer checks for quiet paths every tick; its default (a quarter of
        // the timeout) adds up to 6 ms to every reload at 25 ms.
        let tick = (debounce / 8).max(Duration::from_millis(1));
        let mut debouncer = new_debouncer(debounce, Some(tick), move |result: DebounceEventResult| {
            let signal = match result {
                Ok(events) => to_signal(&base, &events),
                Err(errors) => {
                    for e in errors {
                        tracing::warn!(error = %e, "file watcher error; rescanning");
                    }
                    Some(WatchSignal::Rescan)
                }
            };
            if let Some(signal) = signal {
                signals.send(signal);
            }
        })
        .map_err(|e| map_notify(&root, e))?;
        let blind = watch_tree(&root, |path, mode| debouncer.watch(path, mode))?;
        let base = root.clone();
        let early = signals_early;
        let mut complete = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
            // A lost raw event costs only the debounce: the debouncer sees it too.
            let Ok(event) = result else { return };
            early.activity().saw_event();
            if let Some(signal) = settled(&base, &event) {
                early.send(signal);
            }
        })
        .map_err(|e| map_notify(&root, e))?;
        watch_tree(&root, |path, mode| complete.watch(path, mode))?;
        activity.watching_with(debounce);
        for dir in &blind {
            tracing::error!(
                directory = %dir.display(),
                "cannot read this directory (permission denied): its files are refused as unreadable, their \
                 applied versions stay live, until it can be read"
            );
        }
        Ok(Self { _debouncer: debouncer, _complete: complete, identity: identity(&root), blind })
    }

    /// Whether a directory this watcher could not look into opens now: then it
    /// is started again, so the directory is watched and its files read.
    pub fn blind_opened(&self) -> bool {
        self.blind.iter().any(|dir| std::fs::read_dir(dir).is_ok())
    }

    /// The directory at `root` is still the one being watched: not removed,
    /// moved away, or replaced.
    pub fn intact(&self, root: &Path) -> bool {
        self.identity.is_some() && identity(root) == self.identity
    }
}

/// What a raw event says at once: a file complete (the target of a rename, a
/// file closed after writing) or gone (removed, the source of a rename).
fn settled(root: &Path, event: &notify::Event) -> Option<WatchSignal> {
    let site = |paths: &[PathBuf]| -> Vec<String> {
        paths.iter().filter_map(|p| relative(root, p)).filter(|rel| !is_editor_noise(rel)).collect()
    };
    let signal = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => WatchSignal::Complete(site(&event.paths)),
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) | EventKind::Remove(_) => {
            WatchSignal::Gone(site(&event.paths))
        }
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if event.paths.len() == 2 => {
            // The source half arrives as its own `From` event.
            WatchSignal::Complete(site(&event.paths[1..]))
        }
        EventKind::Modify(ModifyKind::Name(_)) => WatchSignal::Complete(site(&event.paths)),
        _ => return None,
    };
    match &signal {
        WatchSignal::Complete(p) | WatchSignal::Gone(p) if p.is_empty() => None,
        _ => Some(signal),
    }
}

/// Watches everything under `root` with `watch`; returns the directories that
/// deny this process (skipped, and reported), so one closed directory does not
/// keep the whole site from being watched. `root` itself must be readable.
fn watch_tree(
    root: &Path,
    mut watch: impl FnMut(&Path, RecursiveMode) -> notify::Result<()>,
) -> Result<Vec<PathBuf>, WatchError> {
    let denied = |e: &notify::Error| matches!(&e.kind, notify::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied);
    match watch(root, RecursiveMode::Recursive) {
        Ok(()) => return Ok(Vec::new()),
        Err(e) if denied(&e) => {}
        Err(e) => return Err(map_notify(root, e)),
    }
    // One directory at a time, skipping those that deny us.
    let mut blind = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        match watch(&dir, RecursiveMode::NonRecursive) {
            Ok(()) => {}
            Err(e) if denied(&e) && dir != root => {
                blind.push(dir);
                continue;
            }
            Err(e) => return Err(map_notify(&dir, e)),
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            blind.push(dir);
            continue;
        };
        for entry in entries.flatten() {
            // Not through symlinks: as the recursive watch does.
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                dirs.push(entry.path());
            }
        }
    }
    blind.sort();
    Ok(blind)
}

fn map_notify(path: &Path, e: notify::Error) -> WatchError {
    match e.kind {
        notify::ErrorKind::MaxFilesWatch => WatchError::WatchLimit,
        notify::ErrorKind::PathNotFound => WatchError::RootMissing(path.to_path_buf()),
        _ => WatchError::Notify { path: path.to_path_buf(), message: e.to_string() },
    }
}

fn to_signal(root: &Path, events: &[notify_debouncer_full::DebouncedEvent]) -> Option<WatchSignal> {
    let mut paths = Vec::new();
    for event in events {
        if event.need_rescan() {
            return Some(WatchSignal::Rescan);
        }
        // Reads (ours included) raise access events; they never change content,
        // and reacting to them would loop.
        if matches!(event.kind, EventKind::Access(_)) {
            continue;
        }
        for p in &event.paths {
            if let Some(rel) = relative(root, p) {
                // A directory created or moved in may arrive with its files already
                // inside, and no event for them.
                if matches!(event.kind, EventKind::Create(_)) && p.is_dir() {
                    return Some(WatchSignal::Rescan);
                }
                // A directory's permissions or owner changed: the files under
                // it may have become unreadable (each is then refused, never
                // taken for deleted) or readable again.
                if matches!(event.kind, EventKind::Modify(ModifyKind::Metadata(_))) && p.is_dir() {
                    return Some(WatchSignal::Rescan);
                }
                if !is_editor_noise(&rel) && !paths.contains(&rel) {
                    paths.push(rel);
                }
            }
        }
    }
    (!paths.is_empty()).then_some(WatchSignal::Paths(paths))
}

/// `root`-relative path with `/` separators, if `path` is under `root`.
pub fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Swap files, backups and dotfiles that editors write next to the real file.
pub fn is_editor_noise(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.starts_with('.')
        || name.ends_with('~')
        || [".swp", ".swx", ".tmp", ".bak"].iter().any(|s| name.ends_with(s))
        || name.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise() {
        for n in ["schemas/.a.schema.yaml.swp", "schemas/a.schema.yaml~", "schemas/4913", "schemas/x.tmp"] {
            assert!(is_editor_noise(n), "{n}");
        }
        assert!(!is_editor_noise("schemas/article.schema.yaml"));
    }
}
