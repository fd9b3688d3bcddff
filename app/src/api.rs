//! Server functions: the dashboard's calls into the engine. The bodies run on the
//! server only; the browser gets typed stubs.

use leptos::prelude::*;

use crate::dto::{DashboardDto, VersionDto};
use crate::error::AppError;

/// How many history rows the overview shows.
pub const HISTORY_ROWS: i64 = 50;

/// The signed-in identity the server's auth layer attached to this request.
#[cfg(feature = "ssr")]
async fn identity() -> Result<marain::engine::accounts::Identity, AppError> {
    leptos_axum::extract::<axum::Extension<marain::engine::accounts::Identity>>()
        .await
        .map(|axum::Extension(identity)| identity)
        .map_err(|_| AppError::Unauthenticated)
}

/// The identity, if it may change things.
#[cfg(feature = "ssr")]
async fn approver() -> Result<marain::engine::accounts::Identity, AppError> {
    let identity = identity().await?;
    match identity.role.may_change() {
        true => Ok(identity),
        false => Err(AppError::Forbidden(identity.role.as_str().into())),
    }
}

#[server(prefix = "/_sfn", endpoint = "dashboard")]
pub async fn get_dashboard() -> Result<DashboardDto, AppError> {
    let user = identity().await?;
    let engine = expect_context::<marain::engine::Coordinator>();
    let history = engine.history(None, HISTORY_ROWS).await?;
    let mut dashboard = crate::convert::dashboard(&engine.snapshot(), &history);
    dashboard.user = Some(crate::dto::UserDto {
        name: user.name.clone(),
        role: user.role.as_str().into(),
        may_change: user.role.may_change(),
    });
    Ok(dashboard)
}

#[server(prefix = "/_sfn", endpoint = "approve")]
pub async fn approve_change(id: u64, reason: Option<String>, confirm: Option<String>) -> Result<VersionDto, AppError> {
    let user = approver().await?;
    let engine = expect_context::<marain::engine::Coordinator>();
    let approval =
        marain::engine::Approval { actor: user.name, reason: reason.filter(|r| !r.trim().is_empty()), confirm };
    let row = engine.approve(id, approval).await?;
    Ok(VersionDto::from(&row))
}

/// Plans a file back to an applied version; the change then waits for approval.
#[server(prefix = "/_sfn", endpoint = "rollback")]
pub async fn rollback_to(file: String, version: i64) -> Result<u64, AppError> {
    approver().await?;
    let engine = expect_context::<marain::engine::Coordinator>();
    Ok(engine.rollback(&file, version).await?.id)
}
