//! `/api/v1/entity/{type}`: the content of the typed tables, through the engine's
//! content service (which validates against the schema live at that instant).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use marain::ErrorKind;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{ApiError, ErrorBody};
use crate::json_body::JsonBody;
use crate::state::AppState;

/// Stores a new record, validated against the entity's live schema.
#[utoipa::path(post, path = "/api/v1/entity/{entity}", tag = "content",
    params(("entity" = String, Path, description = "The entity id")),
    request_body(content = Object, description = "The record's fields (an `id` is made when none is given)"),
    responses((status = 201, body = Object), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Path(entity): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let stored = state.engine.content().create(&entity, &object(body)?).await?;
    Ok((StatusCode::CREATED, Json(stored)))
}

fn object(body: Value) -> Result<serde_json::Map<String, Value>, ApiError> {
    match body {
        Value::Object(input) => Ok(input),
        _ => Err(ApiError::new(ErrorKind::Invalid, "the body must be a JSON object")),
    }
}

/// Replaces the fields given of one record.
#[utoipa::path(put, path = "/api/v1/entity/{entity}/{id}", tag = "content",
    params(("entity" = String, Path, description = "The entity id"), ("id" = String, Path, description = "The record id")),
    request_body(content = Object),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Path((entity, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.engine.content().update(&entity, &id, &object(body)?).await?))
}

#[utoipa::path(delete, path = "/api/v1/entity/{entity}/{id}", tag = "content",
    params(("entity" = String, Path, description = "The entity id"), ("id" = String, Path, description = "The record id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Path((entity, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.engine.content().delete(&entity, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/entity/{entity}/{id}", tag = "content",
    params(("entity" = String, Path, description = "The entity id"), ("id" = String, Path, description = "The record id")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path((entity, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.engine.content().get(&entity, &id).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Page {
    /// 1–500, default 50.
    pub limit: Option<i64>,
    /// Default 0.
    pub offset: Option<i64>,
}

/// A page of records in id order.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RecordPage {
    pub items: Vec<Value>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

#[utoipa::path(get, path = "/api/v1/entity/{entity}", tag = "content",
    params(("entity" = String, Path, description = "The entity id"), Page),
    responses((status = 200, body = RecordPage), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Path(entity): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<RecordPage>, ApiError> {
    let (limit, offset) = (page.limit.unwrap_or(50).clamp(1, 500), page.offset.unwrap_or(0).max(0));
    tracing::debug!(entity = %entity, limit, offset, "content list");
    let (items, total) = state.engine.content().list(&entity, limit, offset).await?;
    Ok(Json(RecordPage { items, total, limit, offset }))
}
