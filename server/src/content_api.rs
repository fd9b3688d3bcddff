//! `/api/v1/entity/{type}`: the content of the typed tables, validated against the
//! schema live at the moment the request arrives.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use marain::engine::content::{self, ContentError};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::ApiError;
use crate::serve::AppState;

impl From<ContentError> for ApiError {
    fn from(e: ContentError) -> Self {
        match &e {
            ContentError::UnknownEntity(_) | ContentError::NotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            ContentError::Invalid { .. } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string()),
            ContentError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            ContentError::Store(inner) => {
                tracing::error!(error = %inner, "content request failed");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the content store is unavailable".into())
            }
        }
    }
}

pub async fn create(
    State(state): State<AppState>,
    Path(entity): Path<String>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let _gate = state.engine.content_gate().await;
    let schema = state.engine.live_entity(&entity)?;
    let stored = content::create(state.engine.store(), &schema, &object(body)?).await?;
    Ok((StatusCode::CREATED, Json(stored)))
}

fn object(body: Value) -> Result<serde_json::Map<String, Value>, ApiError> {
    match body {
        Value::Object(input) => Ok(input),
        _ => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", "the body must be a JSON object".into())),
    }
}

pub async fn update(
    State(state): State<AppState>,
    Path((entity, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let _gate = state.engine.content_gate().await;
    let schema = state.engine.live_entity(&entity)?;
    Ok(Json(content::update(state.engine.store(), &schema, &id, &object(body)?).await?))
}

pub async fn delete(
    State(state): State<AppState>,
    Path((entity, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let _gate = state.engine.content_gate().await;
    let schema = state.engine.live_entity(&entity)?;
    content::delete(state.engine.store(), &schema, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn get(
    State(state): State<AppState>,
    Path((entity, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let _gate = state.engine.content_gate().await;
    let schema = state.engine.live_entity(&entity)?;
    Ok(Json(content::get(state.engine.store(), &schema, &id).await?))
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
    let _gate = state.engine.content_gate().await;
    let schema = state.engine.live_entity(&entity)?;
    tracing::debug!(entity = %entity, "content list");
    let (limit, offset) = (page.limit.unwrap_or(50).clamp(1, 500), page.offset.unwrap_or(0).max(0));
    let (items, total) = content::list(state.engine.store(), &schema, limit, offset).await?;
    Ok(Json(json!({"items": items, "total": total, "limit": limit, "offset": offset})))
}
