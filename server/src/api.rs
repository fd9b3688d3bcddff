//! The REST API under `/api/v1/hot-reload`. Handlers translate HTTP to the same
//! engine calls the dashboard's server functions make, and shapes via the shared
//! DTO conversions, so the two cannot drift apart.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use marain::engine::accounts::Identity;
use marain::engine::{Approval, EngineError};
use marain_app::dto::{ChangeDto, FileProblemDto, HazardDto, VersionDto};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::serve::AppState;

/// `{"error": {"code", "message"}}` with the matching status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: String) -> Self {
        ApiError { status, code, message }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": {"code": self.code, "message": self.message}}))).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let (status, code) = match &e {
            EngineError::UnknownChange(_) => (StatusCode::NOT_FOUND, "not_found"),
            EngineError::NotApprovable { .. } => (StatusCode::CONFLICT, "not_approvable"),
            EngineError::ConfirmationRequired { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "confirmation_required"),
            EngineError::Stale { .. } => (StatusCode::CONFLICT, "stale"),
            EngineError::Store(_) => (StatusCode::CONFLICT, "apply_failed"),
            EngineError::UnknownVersion { .. } => (StatusCode::NOT_FOUND, "not_found"),
            EngineError::InvalidRollback { .. } => (StatusCode::CONFLICT, "invalid_rollback"),
            EngineError::InvalidRecovery { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_recovery"),
            _ => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        };
        let message = match &e {
            // Database details stay in the server log.
            EngineError::Store(_) => "applying the change failed and was rolled back; see the file's status".into(),
            EngineError::Watch(_) | EngineError::Io { .. } | EngineError::Write { .. } | EngineError::Stopped => {
                tracing::error!(error = %e, "engine error");
                "the engine is unavailable".into()
            }
            other => other.to_string(),
        };
        ApiError { status, code, message }
    }
}

/// SPEC §6's compact `Change`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChangeSummary {
    pub id: u64,
    pub file: String,
    pub severity: String,
    pub hazards: Vec<HazardDto>,
    pub from_version: Option<i64>,
    pub to_hash: String,
    pub created_at: String,
}

impl From<ChangeDto> for ChangeSummary {
    fn from(c: ChangeDto) -> Self {
        ChangeSummary {
            id: c.id,
            file: c.file,
            severity: c.severity,
            hazards: c.hazards,
            from_version: c.from_version,
            to_hash: c.to_hash,
            created_at: c.created_at,
        }
    }
}

pub async fn status(State(state): State<AppState>) -> Json<serde_json::Value> {
    let snapshot = state.engine.snapshot();
    let pending: Vec<ChangeSummary> = snapshot.pending.iter().map(|c| ChangeDto::from(c).into()).collect();
    let rejected: Vec<FileProblemDto> =
        snapshot.rejected.iter().chain(&snapshot.failed).map(FileProblemDto::from).collect();
    Json(json!({
        "in_sync": snapshot.in_sync(),
        "last_sync": snapshot.last_sync,
        "pending": pending,
        "rejected": rejected,
        "drift": snapshot.drift,
    }))
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
) -> Result<(StatusCode, Json<ChangeSummary>), ApiError> {
    let change = state.engine.rollback(&body.file, body.version).await?;
    Ok((StatusCode::ACCEPTED, Json(ChangeDto::from(&change).into())))
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
    let changes: Vec<ChangeSummary> = changes.iter().map(|c| ChangeDto::from(c).into()).collect();
    Ok((StatusCode::ACCEPTED, Json(json!({ "changes": changes }))))
}

pub async fn backups(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let backups = state.engine.store().backups().await.map_err(EngineError::from)?;
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
    let cutoff = time::OffsetDateTime::now_utc() - time::Duration::days(i64::from(body.older_than_days));
    let pruned = state.engine.store().prune_backups(cutoff).await.map_err(EngineError::from)?;
    Ok(Json(json!({ "pruned": pruned })))
}

pub async fn reload(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    state.engine.rescan().await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"status": "rescanned"}))))
}

/// Unknown paths under `/api` answer in the API's error shape, not with HTML.
pub async fn not_found() -> ApiError {
    ApiError { status: StatusCode::NOT_FOUND, code: "not_found", message: "no such API endpoint".into() }
}
