//! A server function's error answered with the HTTP status of its kind, as
//! the REST API answers the same kind (`ErrorKind::http_status`: 400, 401,
//! 403, 404, 409, 413, 429, 503 …), instead of the 500 the server-function
//! layer gives every error: a proxy, a log search or a browser's network
//! panel can then tell a refused approval from a crash. The body (the kind
//! and the message the dashboard shows) is unchanged; the dashboard's client
//! reads an error body under any 4xx or 5xx status.

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use marain::ErrorKind;

/// Where server functions are served.
const PREFIX: &str = "/_sfn/";
/// An error body is a kind and a message; nothing longer is read.
const MAX_ERROR_BYTES: usize = 64 * 1024;

#[derive(serde::Deserialize)]
struct Kinded {
    kind: ErrorKind,
}

pub async fn statuses(request: Request, next: Next) -> Response {
    let server_fn = request.uri().path().starts_with(PREFIX);
    let response = next.run(request).await;
    if !server_fn || response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ERROR_BYTES).await else {
        return Response::from_parts(parts, Body::from("the server function's error could not be read"));
    };
    let kind = serde_json::from_slice::<Kinded>(&bytes).ok().map(|k| k.kind);
    if let Some(status) = kind.and_then(|k| StatusCode::from_u16(k.http_status()).ok()) {
        parts.status = status;
    }
    Response::from_parts(parts, Body::from(bytes))
}
