//! What the server answers while the engine starts (docs/operating.md): it
//! listens before the start-up reconciliation, which on a big site takes a
//! while, so an orchestrator's probes get an answer instead of hanging.
//! `/healthz` answers as always; `/readyz` answers 503 saying what the start
//! is waiting for; the sign-in page and its files are served (a sign-in sent
//! meanwhile comes back to it saying the server is starting); every other
//! path gets a 503 page saying what the start waits for, which reloads
//! itself. Once the engine runs, every request goes to the full router.

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
/// `sign_in` serves `GET /login` and `/pkg/…` until then.
pub fn router(started: Started, starting: Arc<Starting>, sign_in: Router) -> Router {
    Router::new().route(crate::health::HEALTHZ, get(crate::health::healthz)).fallback(gate).with_state(Gate {
        started,
        starting,
        sign_in,
    })
}

#[derive(Clone)]
struct Gate {
    started: Started,
    starting: Arc<Starting>,
    sign_in: Router,
}

async fn gate(State(Gate { started, starting, sign_in }): State<Gate>, request: Request) -> Response {
    if let Some(app) = started.get() {
        let Ok(response) = app.clone().oneshot(request).await;
        return response;
    }
    let path = request.uri().path();
    if path.starts_with("/pkg/") || (path == "/login" && request.method() == axum::http::Method::GET) {
        let Ok(response) = sign_in.oneshot(request).await;
        return response;
    }
    if path == "/login" {
        // Accounts are read once the engine runs: the form comes back saying so.
        return axum::response::Redirect::to("/login?error=starting").into_response();
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
