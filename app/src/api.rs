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
        .map_err(|_| AppError::unauthenticated())
}

/// The identity, if it may change things.
#[cfg(feature = "ssr")]
async fn approver() -> Result<marain::engine::accounts::Identity, AppError> {
    let identity = identity().await?;
    match identity.role.may_change() {
        true => Ok(identity),
        false => Err(AppError::forbidden(identity.role.as_str())),
    }
}

#[server(prefix = "/_sfn", endpoint = "dashboard")]
pub async fn get_dashboard() -> Result<DashboardDto, AppError> {
    let user = identity().await?;
    let engine = expect_context::<marain::engine::Coordinator>();
    let history = engine.history(None, HISTORY_ROWS).await?;
    let mut dashboard =
        crate::convert::dashboard(&engine.snapshot(), &history, &crate::convert::InFlight::of(&engine).await);
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
    Ok(engine.rollback(&file, version, None).await?.id)
}

/// One file's versions (newest first) and the YAML diff from version `from` to
/// version `to` (by default the newest and the one before it).
#[server(prefix = "/_sfn", endpoint = "file_history")]
pub async fn get_file_history(
    file: String,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<crate::dto::FileHistoryDto, AppError> {
    let user = identity().await?;
    let engine = expect_context::<marain::engine::Coordinator>();
    let rows = engine.history(Some(&file), 1000).await?;
    let versions: Vec<VersionDto> = rows.iter().map(VersionDto::from).collect();
    let to = to.or_else(|| rows.first().map(|r| r.version));
    let from = from.or_else(|| to.map(|t| t - 1).filter(|f| *f >= 1));
    // Secrets in configuration files are never shown, whatever the role: the
    // keys the site names now, as well as the built-in ones.
    let redaction = engine.snapshot().settings.redaction();
    let text = |v: Option<i64>| {
        let yaml = rows.iter().find(|r| Some(r.version) == v).and_then(|r| r.yaml.as_deref()).unwrap_or_default();
        marain::kind::shown_text(&file, yaml, &redaction)
    };
    let diff = match (from, to) {
        (Some(_), Some(_)) => crate::convert::diff_lines(&marain::text_diff::text_diff(&text(from), &text(to))),
        _ => Vec::new(),
    };
    Ok(crate::dto::FileHistoryDto {
        file,
        versions,
        from,
        to,
        diff,
        may_change: user.role.may_change(),
        now: Some(marain::engine::now_rfc3339()),
    })
}

/// The audit log, newest first, filtered by file, actor and event kind.
#[server(prefix = "/_sfn", endpoint = "audit")]
pub async fn get_audit(
    file: Option<String>,
    actor: Option<String>,
    kind: Option<String>,
) -> Result<Vec<crate::dto::EventDto>, AppError> {
    identity().await?;
    let engine = expect_context::<marain::engine::Coordinator>();
    let keep = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    let filter = marain::engine::AuditFilter { file: keep(file), actor: keep(actor), kind: keep(kind) };
    let events = engine.audit(filter, 500).await?;
    Ok(events.iter().map(crate::dto::EventDto::from).collect())
}

/// Who is signed in, and the API tokens (addresses and browsers for approvers only).
#[server(prefix = "/_sfn", endpoint = "access")]
pub async fn get_access() -> Result<crate::dto::AccessDto, AppError> {
    let user = identity().await?;
    let engine = expect_context::<marain::engine::Coordinator>();
    let may_change = user.role.may_change();
    let now = marain::engine::now_rfc3339();
    let sessions = engine.signed_in().await?;
    let tokens = engine.tokens().await?;
    Ok(crate::dto::AccessDto {
        sessions: sessions.into_iter().map(|s| crate::convert::session(s, &user, may_change)).collect(),
        tokens: tokens.into_iter().map(|t| crate::convert::token(t, &now)).collect(),
        may_change,
        now,
    })
}

/// Revokes an API token at once.
#[server(prefix = "/_sfn", endpoint = "revoke_token")]
pub async fn revoke_token(name: String) -> Result<String, AppError> {
    let user = approver().await?;
    let engine = expect_context::<marain::engine::Coordinator>();
    match engine.revoke_token(&name, &user.name).await? {
        true => Ok(name),
        false => Err(AppError::new(marain::ErrorKind::NotFound, format!("no token `{name}`"))),
    }
}

/// Ends a dashboard session: it is signed out on its next request.
#[server(prefix = "/_sfn", endpoint = "end_session")]
pub async fn end_session(handle: String) -> Result<(), AppError> {
    let user = approver().await?;
    let engine = expect_context::<marain::engine::Coordinator>();
    match engine.end_session(&handle, &user.name).await? {
        true => Ok(()),
        false => Err(AppError::new(marain::ErrorKind::NotFound, "that session has already ended")),
    }
}

/// Turns a pending change down, with a reason.
#[server(prefix = "/_sfn", endpoint = "reject")]
pub async fn decline_change(id: u64, reason: Option<String>) -> Result<(), AppError> {
    let user = approver().await?;
    let engine = expect_context::<marain::engine::Coordinator>();
    Ok(engine.decline(id, &user.name, reason.filter(|r| !r.trim().is_empty())).await?)
}

/// Pauses, resumes or aborts (`action`) the running online phases of an
/// approved change, on whichever instance runs them.
#[server(prefix = "/_sfn", endpoint = "control_change")]
pub async fn control_change(id: u64, action: String) -> Result<(), AppError> {
    use marain::engine::store::RunControl;
    let user = approver().await?;
    let engine = expect_context::<marain::engine::Coordinator>();
    let control = match action.as_str() {
        "pause" => RunControl::Pause,
        "resume" => RunControl::Resume,
        "abort" => RunControl::Abort,
        other => {
            let message = format!("`{other}` is not something a running change can do; use pause, resume or abort");
            return Err(AppError::new(marain::ErrorKind::Invalid, message));
        }
    };
    Ok(engine.control_online(id, control, &user.name).await?)
}

/// The Migration page: the moves from the legacy JSON table.
#[server(prefix = "/_sfn", endpoint = "migration")]
pub async fn get_legacy_move() -> Result<crate::dto::LegacyMoveDto, AppError> {
    let user = identity().await?;
    let engine = expect_context::<marain::engine::Coordinator>();
    let redaction = engine.snapshot().settings.redaction();
    Ok(crate::convert::legacy_move(engine.legacy_move().await?, user.role.may_change(), &redaction))
}

/// Starts a legacy run (default options) on the server; progress comes as
/// `migration` events.
#[server(prefix = "/_sfn", endpoint = "start_legacy_move")]
pub async fn start_legacy_move() -> Result<(), AppError> {
    let user = approver().await?;
    let engine = expect_context::<marain::engine::Coordinator>();
    Ok(engine.start_legacy_move(&user.name).await?)
}

/// Compares every copied row with its legacy row.
#[server(prefix = "/_sfn", endpoint = "verify_legacy_move")]
pub async fn verify_legacy_move() -> Result<crate::dto::VerifyDto, AppError> {
    let user = approver().await?;
    let engine = expect_context::<marain::engine::Coordinator>();
    Ok(crate::convert::verified(engine.verify_legacy_move(&user.name).await?))
}

/// Verifies again and, when every row is copied and equal, renames the legacy
/// table; returns its new name.
#[server(prefix = "/_sfn", endpoint = "finish_legacy_move")]
pub async fn finish_legacy_move() -> Result<String, AppError> {
    let user = approver().await?;
    let engine = expect_context::<marain::engine::Coordinator>();
    Ok(engine.finish_legacy_move(&user.name).await?)
}

/// The site as a picture: entities, fields, references, row counts, and what
/// the waiting changes do to them.
#[server(prefix = "/_sfn", endpoint = "schema")]
pub async fn get_schema() -> Result<crate::dto::SchemaDto, AppError> {
    identity().await?;
    let engine = expect_context::<marain::engine::Coordinator>();
    Ok(crate::picture::schema(&engine).await)
}

/// Applied versions of every file, newest first, and the files rejected and
/// applies failed over the same span (from the audit log), for the timeline.
#[server(prefix = "/_sfn", endpoint = "timeline")]
pub async fn get_timeline() -> Result<crate::dto::TimelineDto, AppError> {
    identity().await?;
    let engine = expect_context::<marain::engine::Coordinator>();
    let versions = engine.history(None, crate::api::TIMELINE_ROWS).await?.iter().map(VersionDto::from).collect();
    let mut problems = Vec::new();
    for kind in [marain::EventKind::Rejected, marain::EventKind::Failed] {
        let filter = marain::engine::AuditFilter { file: None, actor: None, kind: Some(kind.as_str().to_string()) };
        problems.extend(engine.audit(filter, 200).await?.iter().map(crate::dto::EventDto::from));
    }
    Ok(crate::dto::TimelineDto { versions, problems })
}

/// How many versions the timeline shows (the newest).
pub const TIMELINE_ROWS: i64 = 500;
