//! The error that crosses the server-function boundary: the engine's own
//! classification ([`ErrorKind`], decided once where the error is made) and its
//! public message, so the dashboard and the REST API cannot disagree on what a
//! failure is, and no raw database text ever reaches the browser.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use marain::ErrorKind;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    pub kind: ErrorKind,
    pub message: String,
}

impl AppError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        AppError { kind, message: message.into() }
    }

    pub fn unauthenticated() -> Self {
        AppError::new(ErrorKind::Unauthenticated, "you are not signed in, or your session has expired; sign in again")
    }

    pub fn forbidden(role: &str) -> Self {
        AppError::new(ErrorKind::Forbidden, format!("your role ({role}) may not do this; an approver can"))
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    /// A call whose arguments cannot be read is the caller's fault
    /// (`malformed`, 400, as the REST API answers a body that is not JSON);
    /// anything else (the network, the server) is `unavailable`.
    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        let kind = match value {
            ServerFnErrorErr::Args(_)
            | ServerFnErrorErr::MissingArg(_)
            | ServerFnErrorErr::UnsupportedRequestMethod(_) => ErrorKind::Malformed,
            _ => ErrorKind::Unavailable,
        };
        AppError::new(kind, format!("request failed: {value}"))
    }
}
