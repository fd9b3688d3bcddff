//! The engine's errors: one enum, lower-case messages with the context to act on,
//! classified once here ([`EngineError::kind`]) and given one public message
//! ([`EngineError::public_message`]) that every interface shows.

use crate::error::ErrorKind;
use crate::hazard::Severity;

use super::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("watcher: {0}")]
    Watch(#[from] super::watcher::WatchError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("reading {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("no pending change with id {0}")]
    UnknownChange(u64),
    #[error("change {id} to {file} is {severity} and cannot be applied until the data or the file changes")]
    NotApprovable { id: u64, file: String, severity: Severity },
    #[error("change {id} is BREAKING: confirm it by typing `{expected}`")]
    ConfirmationRequired { id: u64, expected: String },
    #[error("change {id} to {file} needs the change to {first}, which waits for approval: approve that one first")]
    WaitsFor { id: u64, file: String, first: String },
    #[error("change {id} was planned from a state of {file} that is no longer applied; it has been re-planned")]
    Stale { id: u64, file: String },
    #[error("change {id} to {file} was applied already, as version {version}, by another instance")]
    AlreadyApplied { id: u64, file: String, version: i64 },
    #[error("{what} is {given}; use at most {max}")]
    OutOfRange { what: &'static str, given: u64, max: u64 },
    #[error("change {id} to {file} runs no online phases that can be {asked} now (none run, they are at their cut-over, or they are {asked} already)")]
    NotRunning { id: u64, file: String, asked: &'static str },
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
    #[error("{0}")]
    Legacy(#[from] super::legacy::LegacyError),
}

impl EngineError {
    /// What kind of failure this is, for every interface.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::UnknownChange(_) | EngineError::UnknownVersion { .. } => ErrorKind::NotFound,
            EngineError::NotApprovable { .. } => ErrorKind::NotApprovable,
            EngineError::ConfirmationRequired { .. } => ErrorKind::ConfirmationRequired,
            EngineError::Stale { .. } => ErrorKind::Stale,
            EngineError::WaitsFor { .. } | EngineError::NotRunning { .. } => ErrorKind::Conflict,
            EngineError::AlreadyApplied { .. } => ErrorKind::AlreadyApplied,
            EngineError::OutOfRange { .. } => ErrorKind::Invalid,
            EngineError::InvalidRollback { .. } => ErrorKind::InvalidRollback,
            EngineError::InvalidRecovery { .. } => ErrorKind::InvalidRecovery,
            EngineError::Store(e) => e.kind(),
            EngineError::Legacy(e) => e.kind(),
            EngineError::Watch(_) | EngineError::Io { .. } | EngineError::Write { .. } | EngineError::Stopped => {
                ErrorKind::Unavailable
            }
        }
    }

    /// The message a person may see: this error's own words where they carry
    /// no internals, otherwise a plain sentence. Database text, paths on the
    /// server and I/O details stay in the server log ([`Self::log_internal`]).
    pub fn public_message(&self) -> String {
        match self {
            EngineError::Store(e) => e.public_message(),
            EngineError::Legacy(e) => e.public_message(),
            EngineError::Watch(_) | EngineError::Io { .. } | EngineError::Write { .. } | EngineError::Stopped => {
                "the engine is unavailable; the server log has the details".into()
            }
            other => other.to_string(),
        }
    }

    /// Writes the whole error to the server log when its public message leaves
    /// something out; the interfaces call this once before answering.
    pub fn log_internal(&self) {
        if matches!(self.kind(), ErrorKind::Unavailable | ErrorKind::ApplyFailed) {
            tracing::error!(error = %self, "engine error");
        }
    }
}

impl StoreError {
    /// Refusals of a change are `apply_failed`; a database that cannot be read
    /// or written is `unavailable`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Statement { .. }
            | StoreError::Disproved { .. }
            | StoreError::ForeignKeys(_)
            | StoreError::SeverityRose { .. } => ErrorKind::ApplyFailed,
            StoreError::HeadMoved { .. } => ErrorKind::AlreadyApplied,
            StoreError::Aborted { .. } => ErrorKind::Conflict,
            StoreError::NotCommitted { .. } | StoreError::DiskFull { .. } => ErrorKind::Unavailable,
            StoreError::Open { .. } | StoreError::Migrate(_) | StoreError::Sql(_) | StoreError::Corrupt { .. } => {
                ErrorKind::Unavailable
            }
        }
    }

    /// The database's own error code, where the database gave one.
    pub fn database_code(&self) -> Option<String> {
        let source = match self {
            StoreError::Statement { source, .. } | StoreError::Sql(source) => source,
            _ => return None,
        };
        source.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned())
    }

    /// Whether PostgreSQL gave up waiting for a lock (`lock_timeout`, SQLSTATE
    /// 55P03): the apply was rolled back and may simply be tried again.
    pub fn is_lock_timeout(&self) -> bool {
        self.database_code().is_some_and(|code| code == "55P03")
    }

    /// The part of a store error an operator can act on, without the
    /// database's own text (which names internals and may quote data).
    pub fn public_message(&self) -> String {
        match self {
            StoreError::Statement { .. } => {
                "the database refused a statement of the change, which was rolled back; the server log has the \
                 statement and the database's reason"
                    .into()
            }
            StoreError::ForeignKeys(n) => {
                format!("the change was rolled back: {n} rows would reference rows that do not exist")
            }
            StoreError::Disproved { found, .. } => {
                format!(
                    "the change was not applied: {found} rows hold what it cannot take; the server log has the query"
                )
            }
            e @ StoreError::SeverityRose { .. } => format!("the change was rolled back: {e}"),
            e @ (StoreError::HeadMoved { .. }
            | StoreError::NotCommitted { .. }
            | StoreError::DiskFull { .. }
            | StoreError::Aborted { .. }) => e.to_string(),
            StoreError::Open { .. } | StoreError::Migrate(_) | StoreError::Sql(_) | StoreError::Corrupt { .. } => {
                "the database is unavailable; the server log has the details".into()
            }
        }
    }
}
