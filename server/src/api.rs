//! The REST API under `/api/v1/hot-reload`. Handlers translate HTTP to the same
//! engine calls the dashboard's server functions make, and shapes via the shared
//! DTO conversions, so the two cannot drift apart.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Extension;
use axum::Json;
use marain::engine::accounts::Identity;
use marain::engine::{Approval, EngineError};
use marain::ErrorKind;
use marain_app::dto::{ChangeDto, ChangeSummaryDto, StatusDto, VersionDto};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

pub async fn status(State(state): State<AppState>) -> Json<StatusDto> {
    Json(marain_app::convert::status(&state.engine.snapshot(), &state.engine.lock_waits()))
}

pub async fn change(State(state): State<AppState>, Path(id): Path<u64>) -> Result<Json<ChangeDto>, ApiError> {
    let snapshot = state.engine.snapshot();
    let change = snapshot.pending.iter().find(|c| c.id == id).ok_or(EngineError::UnknownChange(id))?;
    Ok(Json(ChangeDto::from(change)))
}

#[derive(Debug, Default, Deserialize)]
pub struct ApproveBody {
    pub reason: Option<String>,
    pub confirm: Option<String>,
}

pub async fn approve(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(id): Path<u64>,
    body: Option<Json<ApproveBody>>,
) -> Result<Json<VersionDto>, ApiError> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let approval = Approval { actor: identity.name, reason: body.reason, confirm: body.confirm };
    let row = state.engine.approve(id, approval).await?;
    Ok(Json(VersionDto::from(&row)))
}

#[derive(Debug, Default, Deserialize)]
pub struct RejectBody {
    pub reason: Option<String>,
}

pub async fn reject(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(id): Path<u64>,
    body: Option<Json<RejectBody>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let reason = body.and_then(|Json(b)| b.reason);
    state.engine.reject(id, &identity.name, reason).await?;
    Ok(Json(json!({"rejected": id})))
}

#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    pub file_path: Option<String>,
    pub limit: Option<i64>,
}

pub async fn history(
    State(state): State<AppState>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let rows = state.engine.history(q.file_path.as_deref(), q.limit.unwrap_or(100).clamp(1, 1000)).await?;
    let versions: Vec<VersionDto> = rows.iter().map(VersionDto::from).collect();
    Ok(Json(json!({ "versions": versions })))
}

#[derive(Debug, Deserialize)]
pub struct RollbackBody {
    pub file: String,
    pub version: i64,
    /// Recorded when the rollback is approved (the approval's own reason wins).
    #[serde(default)]
    pub reason: Option<String>,
}

/// 202 and the pending change; it is approved like any other.
pub async fn rollback(
    State(state): State<AppState>,
    Json(body): Json<RollbackBody>,
) -> Result<(StatusCode, Json<ChangeSummaryDto>), ApiError> {
    let change = state.engine.rollback(&body.file, body.version, body.reason).await?;
    Ok((StatusCode::ACCEPTED, Json(ChangeSummaryDto::from(&change))))
}

#[derive(Debug, Deserialize)]
pub struct RecoverBody {
    /// RFC 3339, e.g. `2026-11-26T10:00:00Z`.
    pub at: String,
}

/// Point-in-time recovery: 202 and one pending change per file that differs
/// from its version at `at`, in the order they must be approved.
pub async fn recover(
    State(state): State<AppState>,
    Json(body): Json<RecoverBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let changes = state.engine.recover_to(&body.at).await?;
    let changes: Vec<ChangeSummaryDto> = changes.iter().map(ChangeSummaryDto::from).collect();
    Ok((StatusCode::ACCEPTED, Json(json!({ "changes": changes }))))
}

pub async fn backups(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let backups = state.engine.backups().await?;
    Ok(Json(json!({ "backups": backups })))
}

#[derive(Debug, Deserialize)]
pub struct PruneBody {
    pub older_than_days: u32,
}

/// Drops the backups of versions applied more than `older_than_days` ago.
pub async fn prune_backups(
    State(state): State<AppState>,
    Json(body): Json<PruneBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let pruned = state.engine.prune_backups(body.older_than_days).await?;
    Ok(Json(json!({ "pruned": pruned })))
}

pub async fn reload(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    state.engine.rescan().await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"status": "rescanned"}))))
}

/// Unknown paths under `/api` answer in the API's error shape, not with HTML.
pub async fn not_found() -> ApiError {
    ApiError::new(ErrorKind::NotFound, "no such API endpoint")
}
