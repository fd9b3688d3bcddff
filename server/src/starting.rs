//! What the server answers while the engine starts (docs/operating.md): it
//! listens before the start-up reconciliation, which on a big site takes a
//! while, so an orchestrator's probes get an answer instead of hanging.
//! `/healthz` answers as always; `/readyz` answers 503 saying what the start
//! is waiting for; every other path a 503 page saying the same, which
//! reloads itself. Once the engine runs, every request goes to the full
//! router.

use std::sync::{Arc, OnceLock};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use marain::engine::health::Starting;
use serde_json::json;
use tower::ServiceExt;

/// The full router, once the engine runs.
pub type Started = Arc<OnceLock<Router>>;

/// The router the listener serves from the first moment: the full one once
/// `started` holds it, the starting answers until then.
pub fn router(started: Started, starting: Arc<Starting>) -> Router {
    Router::new()
        .route(crate::health::HEALTHZ, get(crate::health::healthz))
        .fallback(gate)
        .with_state((started, starting))
}

async fn gate(State((started, starting)): State<(Started, Arc<Starting>)>, request: Request) -> Response {
    if let Some(app) = started.get() {
        let Ok(response) = app.clone().oneshot(request).await;
        return response;
    }
    let waiting_for = starting.waiting_for();
    let retry = [(header::RETRY_AFTER, "2")];
    if request.uri().path() == crate::health::READYZ {
        let body = Json(json!({"status": "starting", "waiting_for": waiting_for}));
        return (StatusCode::SERVICE_UNAVAILABLE, retry, body).into_response();
    }
    let page = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">\
         <title>Marain is starting</title></head><body><main><h1>Marain hot-reload is starting</h1>\
         <p data-testid=\"starting\">Starting: {waiting_for}. This page reloads by itself.</p></main></body></html>"
    );
    (StatusCode::SERVICE_UNAVAILABLE, retry, Html(page)).into_response()
}
