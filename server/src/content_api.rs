//! `/api/v1/entity/{type}`: the content of the typed tables, through the engine's
//! content service (which validates against the schema live at that instant).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use marain::ErrorKind;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::AppState;

pub async fn create(
    State(state): State<AppState>,
    Path(entity): Path<String>,
    Json(body): Json<Value>,
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

pub async fn update(
    State(state): State<AppState>,
    Path((entity, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.engine.content().update(&entity, &id, &object(body)?).await?))
}

pub async fn delete(
    State(state): State<AppState>,
    Path((entity, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.engine.content().delete(&entity, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn get(
    State(state): State<AppState>,
    Path((entity, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.engine.content().get(&entity, &id).await?))
}

#[derive(Debug, Deserialize)]
pub struct Page {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    Path(entity): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let (limit, offset) = (page.limit.unwrap_or(50).clamp(1, 500), page.offset.unwrap_or(0).max(0));
    tracing::debug!(entity = %entity, limit, offset, "content list");
    let (items, total) = state.engine.content().list(&entity, limit, offset).await?;
    Ok(Json(json!({"items": items, "total": total, "limit": limit, "offset": offset})))
}
