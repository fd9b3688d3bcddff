//! `api.cors.allowed_origins`: the allowed list is read from the live snapshot for
//! each request, so a config edit takes effect on the next one.

use axum::http::{header, HeaderValue, Method};
use marain::engine::Coordinator;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub fn layer(engine: Coordinator) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            engine.snapshot().settings.cors_allowed_origins.iter().any(|o| o.as_bytes() == origin.as_bytes())
        }))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
}
