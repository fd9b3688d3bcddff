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
