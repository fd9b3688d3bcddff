//! The REST API's routes and their OpenAPI 3.1 document, made together: every
//! route is registered through `utoipa_axum`'s `routes!`, which takes the path
//! and method from the handler's own `#[utoipa::path]`, so a route cannot be
//! served without being described (`tidy::http_routes_are_described` keeps
//! other routes out). Served at `GET /api/v1/openapi.json`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Marain hot-reload",
        description = "YAML schema and config files as the live source of truth. Reference: docs/api.md.",
        license(name = "MIT")
    ),
    tags(
        (name = "hot-reload", description = "Changes, approvals, history, rollback, events"),
        (name = "content", description = "Records of the typed per-entity tables"),
        (name = "operations", description = "Health, readiness, metrics, this document")
    ),
    modifiers(&Credentials),
    security(("token" = []), ("session" = []))
)]
struct ApiDoc;

/// How a client proves who it is: an API token (`marain token add`) or the
/// dashboard's session cookie.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("id"))));
    }
}

/// The hot-reload API, the operations' routes and the document; the content
/// API comes separately (it has its own layers).
pub fn operator_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(crate::api::status))
        .routes(routes!(crate::sse::events))
        .routes(routes!(crate::api::change))
        .routes(routes!(crate::api::approve))
        .routes(routes!(crate::api::decline))
        .routes(routes!(crate::api::reject))
        .routes(routes!(crate::api::pause))
        .routes(routes!(crate::api::resume))
        .routes(routes!(crate::api::abort))
        .routes(routes!(crate::api::history))
        .routes(routes!(crate::api::reload))
        .routes(routes!(crate::api::rollback))
        .routes(routes!(crate::api::recover))
        .routes(routes!(crate::api::backups))
        .routes(routes!(crate::api::prune_backups))
        .routes(routes!(crate::health::healthz))
        .routes(routes!(crate::health::readyz))
        .routes(routes!(crate::metrics_export::metrics))
        .routes(routes!(document))
}

pub fn content_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(crate::content_api::list, crate::content_api::create)).routes(routes!(
        crate::content_api::get,
        crate::content_api::update,
        crate::content_api::delete
    ))
}

/// The document, with the routes merged into one router.
pub fn finish(routes: OpenApiRouter<AppState>, state: AppState) -> Router {
    let (router, doc) = routes.split_for_parts();
    router.with_state(state).layer(axum::Extension(Arc::new(doc)))
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub async fn document(axum::Extension(doc): axum::Extension<Arc<Document>>) -> Json<Document> {
    Json((*doc).clone())
}
