//! The error that crosses the server-function boundary: typed, safe to show, and
//! never a raw database message.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    #[error("change {0} is not pending any more")]
    UnknownChange(u64),
    #[error("{0}")]
    NotApprovable(String),
    #[error("{0}")]
    Stale(String),
    #[error("{0}")]
    ConfirmationRequired(String),
    #[error("{0}")]
    ApplyFailed(String),
    #[error("the server is unavailable; try again")]
    Unavailable,
    #[error("you are not signed in, or your session has expired; sign in again")]
    Unauthenticated,
    #[error("your role ({0}) may not do this; an approver can")]
    Forbidden(String),
    #[error("request failed: {0}")]
    Transport(String),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Transport(value.to_string())
    }
}
