//! What every HTTP handler can reach.

use std::sync::Arc;

use marain::engine::Coordinator;
use tokio::sync::{watch, Semaphore};

#[derive(Clone)]
pub struct AppState {
    pub engine: Coordinator,
    /// Flips to `true` at shutdown so long-lived streams can end.
    pub shutdown: watch::Receiver<bool>,
    /// One permit per open event stream: `api.max_event_streams` as applied
    /// at start-up (by default half of `api.max_connections`).
    pub event_streams: Arc<Semaphore>,
    /// How many permits `event_streams` started with (open streams = this
    /// less the permits available).
    pub event_stream_limit: usize,
}
