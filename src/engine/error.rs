//! The engine's errors: one enum, lower-case messages with the context to act on.

use crate::hazard::Severity;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("watcher: {0}")]
    Watch(#[from] super::watcher::WatchError),
    #[error("store: {0}")]
    Store(#[from] super::store::StoreError),
    #[error("reading {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("no pending change with id {0}")]
    UnknownChange(u64),
    #[error("change {id} to {file} is {severity} and cannot be applied until the data or the file changes")]
    NotApprovable { id: u64, file: String, severity: Severity },
    #[error("change {id} is BREAKING: confirm it by typing `{expected}`")]
    ConfirmationRequired { id: u64, expected: String },
    #[error("change {id} was planned from a state of {file} that is no longer applied; it has been re-planned")]
    Stale { id: u64, file: String },
    #[error("{file} has no applied version {version}")]
    UnknownVersion { file: String, version: i64 },
    #[error("rolling {file} back to version {version} is not valid now: {reason}")]
    InvalidRollback { file: String, version: i64, reason: String },
    #[error("cannot recover the site as of `{at}`: {reason}")]
    InvalidRecovery { at: String, reason: String },
    #[error("writing {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("the engine has stopped")]
    Stopped,
}
