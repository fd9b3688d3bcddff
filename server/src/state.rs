//! What every HTTP handler can reach.

use std::sync::Arc;

use marain::engine::Coordinator;
use tokio::sync::{watch, Semaphore};

#[derive(Clone)]
pub struct AppState {
    pub engine: Coordinator,
    /// Flips to `true` at shutdown so long-lived streams can end.
    pub shutdown: watch::Receiver<bool>,
    /// One permit per open event stream: `api.max_connections` as applied at
    /// start-up (default [`DEFAULT_EVENT_STREAMS`]).
    pub event_streams: Arc<Semaphore>,
}

/// Open event streams allowed when `api.max_connections` does not say.
pub const DEFAULT_EVENT_STREAMS: usize = 256;
