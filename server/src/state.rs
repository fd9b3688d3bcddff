//! What every HTTP handler can reach.

use marain::engine::Coordinator;
use tokio::sync::watch;

#[derive(Clone)]
pub struct AppState {
    pub engine: Coordinator,
    /// Flips to `true` at shutdown so long-lived streams can end.
    pub shutdown: watch::Receiver<bool>,
}
