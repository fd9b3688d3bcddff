//! The core's error: a problem in one file, always with a position.

use serde::{Deserialize, Serialize};

/// A file that cannot be accepted, with the place to fix it.
///
/// `line` and `column` are 1-based. `field` is the dotted path of the offending key
/// (`fields[2].type`) when the problem belongs to one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct FileError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub field: Option<String>,
    pub message: String,
}

impl FileError {
    pub fn new(file: &str, (line, column): (usize, usize), field: Option<String>, message: impl Into<String>) -> Self {
        Self { file: file.to_string(), line, column, field, message: message.into() }
    }
}

/// What kind of failure an error is. Each layer's error decides its kind once
/// (`EngineError::kind`, `ContentError::kind`); the REST API, the dashboard's
/// server functions and the CLI only translate the kind, so they cannot disagree
/// on a code. The codes and statuses are listed in `docs/api.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No session and no API token.
    Unauthenticated,
    /// The role may not do this.
    Forbidden,
    /// A state change made with a session from another site's page.
    OriginMismatch,
    /// No such change, version, entity, record or endpoint.
    NotFound,
    /// The request is not well-formed: its body is not JSON, or not sent as
    /// JSON, or a server function's arguments cannot be read.
    Malformed,
    /// The request's body does not fit what it asks for.
    Invalid,
    /// The request fits, but the data refuses it (a taken unique value, a
    /// record others reference).
    Conflict,
    /// The change is BLOCKED until the data or the file changes.
    NotApprovable,
    /// A BREAKING change needs its entity id typed to confirm it.
    ConfirmationRequired,
    /// The change was planned from a state that is no longer applied.
    Stale,
    /// Another instance applied a change to the same file first.
    AlreadyApplied,
    /// The database refused the change; it was rolled back.
    ApplyFailed,
    /// The version asked for cannot be rolled back to now.
    InvalidRollback,
    /// The site cannot be recovered as of the time asked for.
    InvalidRecovery,
    /// Too many requests from this client; `Retry-After` says when to return.
    RateLimited,
    /// The engine or the database is not available; the details are in the
    /// server log.
    Unavailable,
}

impl ErrorKind {
    /// The stable code in `{"error": {"code"}}`.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::OriginMismatch => "origin_mismatch",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Malformed => "malformed",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Conflict => "conflict",
            ErrorKind::NotApprovable => "not_approvable",
            ErrorKind::ConfirmationRequired => "confirmation_required",
            ErrorKind::Stale => "stale",
            ErrorKind::AlreadyApplied => "already_applied",
            ErrorKind::ApplyFailed => "apply_failed",
            ErrorKind::InvalidRollback => "invalid_rollback",
            ErrorKind::InvalidRecovery => "invalid_recovery",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Unavailable => "unavailable",
        }
    }

    /// The HTTP status that goes with it.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::Malformed => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::Forbidden | ErrorKind::OriginMismatch => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict
            | ErrorKind::NotApprovable
            | ErrorKind::Stale
            | ErrorKind::AlreadyApplied
            | ErrorKind::ApplyFailed
            | ErrorKind::InvalidRollback => 409,
            ErrorKind::Invalid | ErrorKind::ConfirmationRequired | ErrorKind::InvalidRecovery => 422,
            ErrorKind::RateLimited => 429,
            ErrorKind::Unavailable => 503,
        }
    }
}
