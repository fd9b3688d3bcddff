//! `GET /healthz` and `GET /readyz`, for load balancers and orchestrators.
//! Neither needs an identity, and neither says more than ok or not: what is
//! wrong is in the server log, not in an answer anyone may read.
//!
//! - `/healthz`: the process answers HTTP (liveness).
//! - `/readyz`: the start-up reconciliation has finished, the watcher watches
//!   the site directory, the database answers within 2 s, and the server is not
//!   shutting down (readiness; see `marain::engine::health`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::state::AppState;

pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";

pub fn is_probe(path: &str) -> bool {
    path == HEALTHZ || path == READYZ
}

/// The process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process answers", body = Object, example = json!({"status": "ok"}))))]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The server can do its work now.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready", body = Object, example = json!({"status": "ok"})),
    (status = 503, description = "Not ready: still starting, the site directory is gone, the database does not answer, or shutting down", body = Object, example = json!({"status": "not ready"})),
))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let stopping = *state.shutdown.borrow();
    let readiness = state.engine.readiness().await;
    if readiness.ready() && !stopping {
        (StatusCode::OK, Json(json!({ "status": "ok" })))
    } else {
        tracing::debug!(?readiness, stopping, "readyz: not ready");
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not ready" })))
    }
}
