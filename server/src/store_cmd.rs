//! What the commands that work straight on the database (`history`, `backups`,
//! `admin`, `token`) share: open the store, run, close, and the exit code 2 with
//! the error for anything the database refuses.

use std::fmt::Display;
use std::process::ExitCode;

use marain::engine::Store;

/// Opens the store at `url`, runs `command` on it, closes it. A store that does
/// not open exits 2 naming why.
pub async fn with_store(url: &str, command: impl AsyncFnOnce(&Store) -> ExitCode) -> ExitCode {
    let store = match Store::open(url).await {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let code = command(&store).await;
    store.close().await;
    code
}

/// Prints `error: …` and returns exit code 2.
pub fn failed(e: impl Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}
