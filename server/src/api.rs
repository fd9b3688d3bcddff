//! The REST API under `/api/v1/hot-reload`. Handlers translate HTTP to the same
//! engine calls the dashboard's server functions make, and shapes via the shared
//! DTO conversions, so the two cannot drift apart.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Extension;
use axum::Json;
use marain::engine::accounts::Identity;
use marain::engine::store::RunControl;
use marain::engine::{Approval, EngineError};
use marain::ErrorKind;
use marain_app::convert::InFlight;
use marain_app::dto::{ChangeDto, ChangeSummaryDto, StatusDto, VersionDto};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::json_body::JsonBody;
use crate::state::AppState;

/// What is applied, pending, rejected and drifted, in one look.
#[utoipa::path(get, path = "/api/v1/hot-reload/status", tag = "hot-reload", responses((status = 200, body = StatusDto)))]
pub async fn status(State(state): State<AppState>) -> Json<StatusDto> {
    Json(marain_app::convert::status(&state.engine.snapshot(), &InFlight::of(&state.engine).await))
}

/// One pending change in full: diff, hazards, SQL and its inverse.
#[utoipa::path(get, path = "/api/v1/hot-reload/changes/{id}", tag = "hot-reload",
    params(("id" = u64, Path, description = "The pending change")),
    responses((status = 200, body = ChangeDto), (status = 404, body = ErrorBody)))]
pub async fn change(State(state): State<AppState>, Path(id): Path<u64>) -> Result<Json<ChangeDto>, ApiError> {
    let snapshot = state.engine.snapshot();
    let change = snapshot.pending.iter().find(|c| c.id == id).ok_or(EngineError::UnknownChange(id))?;
    let mut dto = ChangeDto::from(change);
    InFlight::of(&state.engine).await.mark(std::iter::once(&mut dto.brief));
    Ok(Json(dto))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ApproveBody {
    pub reason: Option<String>,
    pub confirm: Option<String>,
}

/// Applies a pending change (approver role). A BREAKING change needs
/// `confirm` set to the entity id it concerns.
#[utoipa::path(post, path = "/api/v1/hot-reload/changes/{id}/approve", tag = "hot-reload",
    params(("id" = u64, Path, description = "The pending change")),
    request_body(content = Option<ApproveBody>),
    responses((status = 200, body = VersionDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn approve(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(id): Path<u64>,
    body: Option<JsonBody<ApproveBody>>,
) -> Result<Json<VersionDto>, ApiError> {
    let body = body.map(|JsonBody(b)| b).unwrap_or_default();
    let approval = Approval { actor: identity.name, reason: body.reason, confirm: body.confirm };
    let row = state.engine.approve(id, approval).await?;
    Ok(Json(VersionDto::from(&row)))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct DeclineBody {
    pub reason: Option<String>,
}

/// The answer to a decline. `rejected` repeats the id under the name the
/// former `/reject` route answered with, for clients that read it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Declined {
    pub declined: u64,
    pub rejected: u64,
}

/// Declines a pending change (approver role): the file shows as rejected, with
/// who and why, until it changes; the applied version stays live.
#[utoipa::path(post, path = "/api/v1/hot-reload/changes/{id}/decline", tag = "hot-reload",
    params(("id" = u64, Path, description = "The pending change")),
    request_body(content = Option<DeclineBody>),
    responses((status = 200, body = Declined), (status = 404, body = ErrorBody)))]
pub async fn decline(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(id): Path<u64>,
    body: Option<JsonBody<DeclineBody>>,
) -> Result<Json<Declined>, ApiError> {
    let reason = body.and_then(|JsonBody(b)| b.reason);
    state.engine.decline(id, &identity.name, reason).await?;
    Ok(Json(Declined { declined: id, rejected: id }))
}

/// Deprecated: the former name of `/decline`, kept for clients that call it.
#[utoipa::path(post, path = "/api/v1/hot-reload/changes/{id}/reject", tag = "hot-reload",
    params(("id" = u64, Path, description = "The pending change")),
    request_body(content = Option<DeclineBody>),
    responses((status = 200, body = Declined), (status = 404, body = ErrorBody)))]
pub async fn reject(
    state: State<AppState>,
    identity: Extension<Identity>,
    id: Path<u64>,
    body: Option<JsonBody<DeclineBody>>,
) -> Result<Json<Declined>, ApiError> {
    decline(state, identity, id, body).await
}

/// What a control request answers: the change, and what was asked of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Controlled {
    pub id: u64,
    /// `pause`, `resume` or `abort`.
    pub asked: &'static str,
}

async fn control(state: &AppState, identity: &Identity, id: u64, control: RunControl) -> Result<(), ApiError> {
    Ok(state.engine.control_online(id, control, &identity.name).await?)
}

/// Pauses the running online phases of an approved change (approver role),
/// on whichever instance runs them: they stop between two batches and hold
/// nothing but their lease until resumed or aborted (docs/online-changes.md).
#[utoipa::path(post, path = "/api/v1/hot-reload/changes/{id}/pause", tag = "hot-reload",
    params(("id" = u64, Path, description = "The approved change whose online phases run")),
    responses((status = 200, body = Controlled), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn pause(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(id): Path<u64>,
) -> Result<Json<Controlled>, ApiError> {
    control(&state, &identity, id, RunControl::Pause).await?;
    Ok(Json(Controlled { id, asked: "pause" }))
}

/// Resumes paused online phases (approver role) where they stopped.
#[utoipa::path(post, path = "/api/v1/hot-reload/changes/{id}/resume", tag = "hot-reload",
    params(("id" = u64, Path, description = "The approved change whose online phases are paused")),
    responses((status = 200, body = Controlled), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn resume(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(id): Path<u64>,
) -> Result<Json<Controlled>, ApiError> {
    control(&state, &identity, id, RunControl::Resume).await?;
    Ok(Json(Controlled { id, asked: "resume" }))
}

/// Aborts running or paused online phases (approver role): at their next
/// batch or phase they clear what they made (shadow column, backup, trigger,
/// index), the applied schema stays live, and the change waits for approval
/// again.
#[utoipa::path(post, path = "/api/v1/hot-reload/changes/{id}/abort", tag = "hot-reload",
    params(("id" = u64, Path, description = "The approved change whose online phases run")),
    responses((status = 200, body = Controlled), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn abort(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(id): Path<u64>,
) -> Result<Json<Controlled>, ApiError> {
    control(&state, &identity, id, RunControl::Abort).await?;
    Ok(Json(Controlled { id, asked: "abort" }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct HistoryQuery {
    /// Only this file's versions (site-relative, e.g. `schemas/article.schema.yaml`).
    pub file_path: Option<String>,
    /// At most this many, newest first (1–1000, default 100).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    pub versions: Vec<VersionDto>,
}

/// Applied versions, newest first.
#[utoipa::path(get, path = "/api/v1/hot-reload/history", tag = "hot-reload", params(HistoryQuery),
    responses((status = 200, body = History)))]
pub async fn history(State(state): State<AppState>, Query(q): Query<HistoryQuery>) -> Result<Json<History>, ApiError> {
    let rows = state.engine.history(q.file_path.as_deref(), q.limit.unwrap_or(100).clamp(1, 1000)).await?;
    Ok(Json(History { versions: rows.iter().map(VersionDto::from).collect() }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RollbackBody {
    pub file: String,
    pub version: i64,
    /// Recorded when the rollback is approved (the approval's own reason wins).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Asks to return a file to an earlier version: 202 and the pending change;
/// it is approved like any other.
#[utoipa::path(post, path = "/api/v1/hot-reload/rollback", tag = "hot-reload", request_body = RollbackBody,
    responses((status = 202, body = ChangeSummaryDto), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn rollback(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RollbackBody>,
) -> Result<(StatusCode, Json<ChangeSummaryDto>), ApiError> {
    let change = state.engine.rollback(&body.file, body.version, body.reason).await?;
    Ok((StatusCode::ACCEPTED, Json(ChangeSummaryDto::from(&change))))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RecoverBody {
    /// RFC 3339, e.g. `2026-11-26T10:00:00Z`.
    pub at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Changes {
    pub changes: Vec<ChangeSummaryDto>,
}

/// Point-in-time recovery: 202 and one pending change per file that differs
/// from its version at `at`, in the order they must be approved.
#[utoipa::path(post, path = "/api/v1/hot-reload/recover", tag = "hot-reload", request_body = RecoverBody,
    responses((status = 202, body = Changes), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn recover(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RecoverBody>,
) -> Result<(StatusCode, Json<Changes>), ApiError> {
    let changes = state.engine.recover_to(&body.at).await?;
    Ok((StatusCode::ACCEPTED, Json(Changes { changes: changes.iter().map(ChangeSummaryDto::from).collect() })))
}

/// A backup table: the rows a version's change deleted or rewrote.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupDto {
    pub table: String,
    pub file: String,
    pub version: i64,
    pub applied_at: String,
    /// `null` once pruned.
    pub rows: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Backups {
    pub backups: Vec<BackupDto>,
}

/// Every backup table, with the version that made it.
#[utoipa::path(get, path = "/api/v1/hot-reload/backups", tag = "hot-reload", responses((status = 200, body = Backups)))]
pub async fn backups(State(state): State<AppState>) -> Result<Json<Backups>, ApiError> {
    let backups = state.engine.backups().await?;
    let backups = backups
        .into_iter()
        .map(|b| BackupDto { table: b.table, file: b.file, version: b.version, applied_at: b.applied_at, rows: b.rows })
        .collect();
    Ok(Json(Backups { backups }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PruneBody {
    pub older_than_days: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Pruned {
    /// The backup tables dropped.
    pub pruned: Vec<String>,
}

/// Drops the backups of versions applied more than `older_than_days` ago.
#[utoipa::path(post, path = "/api/v1/hot-reload/backups/prune", tag = "hot-reload", request_body = PruneBody,
    responses((status = 200, body = Pruned)))]
pub async fn prune_backups(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<PruneBody>,
) -> Result<Json<Pruned>, ApiError> {
    let pruned = state.engine.prune_backups(body.older_than_days).await?;
    Ok(Json(Pruned { pruned }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Rescanned {
    /// Always `rescanned`.
    pub status: String,
}

/// Reads every file again, as at start-up.
#[utoipa::path(post, path = "/api/v1/hot-reload/reload", tag = "hot-reload", responses((status = 202, body = Rescanned)))]
pub async fn reload(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    state.engine.rescan().await?;
    Ok((StatusCode::ACCEPTED, Json(Rescanned { status: "rescanned".to_string() })))
}

/// Unknown paths under `/api` answer in the API's error shape, not with HTML.
pub async fn not_found() -> ApiError {
    ApiError::new(ErrorKind::NotFound, "no such API endpoint")
}
