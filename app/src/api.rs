//! Server functions: the dashboard's calls into the engine. The bodies run on the
//! server only; the browser gets typed stubs.

use leptos::prelude::*;

use crate::dto::{DashboardDto, VersionDto};
use crate::error::AppError;

/// How many history rows the overview shows.
pub const HISTORY_ROWS: i64 = 50;

#[server(prefix = "/_sfn", endpoint = "dashboard")]
pub async fn get_dashboard() -> Result<DashboardDto, AppError> {
    let engine = expect_context::<marain::engine::Coordinator>();
    let history = engine.history(None, HISTORY_ROWS).await?;
    Ok(crate::convert::dashboard(&engine.snapshot(), &history))
}

#[server(prefix = "/_sfn", endpoint = "approve")]
pub async fn approve_change(id: u64, reason: Option<String>, confirm: Option<String>) -> Result<VersionDto, AppError> {
    let engine = expect_context::<marain::engine::Coordinator>();
    let approval = marain::engine::Approval {
        actor: "dashboard".into(),
        reason: reason.filter(|r| !r.trim().is_empty()),
        confirm,
    };
    let row = engine.approve(id, approval).await?;
    Ok(VersionDto::from(&row))
}

/// Plans a file back to an applied version; the change then waits for approval.
#[server(prefix = "/_sfn", endpoint = "rollback")]
pub async fn rollback_to(file: String, version: i64) -> Result<u64, AppError> {
    let engine = expect_context::<marain::engine::Coordinator>();
    Ok(engine.rollback(&file, version).await?.id)
}
