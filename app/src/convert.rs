//! Engine types → DTOs. Server-only; the REST API and the server functions both
//! use these, so the two never disagree on a shape.

use marain::engine::drift::Drift;
use std::collections::BTreeMap;
use std::sync::Arc;

use marain::engine::store::OnlineRun;
use marain::engine::{Behind, Coordinator, EngineError, EngineEvent, LockWait, PendingChange, Snapshot, VersionRow};
use marain::text_diff::LineTag;
use marain::{FileError, Hazard};

use crate::dto::*;
use crate::error::AppError;
use marain::engine::accounts::Identity;

impl From<&Hazard> for HazardDto {
    fn from(h: &Hazard) -> Self {
        HazardDto { code: h.code.as_str().into(), severity: h.severity, message: h.message.clone() }
    }
}

impl From<&PendingChange> for ChangeDto {
    fn from(c: &PendingChange) -> Self {
        ChangeDto {
            brief: ChangeSummaryDto::from(c),
            entity: c.entity.clone(),
            rollback_to: c.rollback_to,
            headline: c.headline.clone(),
            summary: c.summary.clone(),
            diff: diff_lines(&c.text_diff),
            sql: c.plan.cut_over_sql(),
            rollback_sql: c.plan.rollback_sql(),
            path: c.plan.path.as_str().into(),
            table_rows: c.plan.table_rows,
            phases: c
                .plan
                .phases()
                .into_iter()
                .map(|p| PhaseDto { summary: p.summary.clone(), sql: p.sql.clone(), batches: p.batches.clone() })
                .collect(),
            rows: c
                .rows
                .iter()
                .map(|r| RowDiffDto { id: r.id.clone(), op: r.op.clone(), fields: r.fields.clone() })
                .collect(),
        }
    }
}

impl From<&FileError> for FileProblemDto {
    fn from(e: &FileError) -> Self {
        FileProblemDto {
            file: e.file.clone(),
            line: e.line,
            column: e.column,
            message: e.message.clone(),
            excerpt: Vec::new(),
        }
    }
}

/// The problem with the lines around it (one before, one after) from `text`.
pub fn problem_in(e: &FileError, text: Option<&String>, redaction: &marain::secrets::Redaction) -> FileProblemDto {
    let mut dto = FileProblemDto::from(e);
    if let Some(text) = text {
        let text = marain::kind::shown_text(&e.file, text, redaction);
        let first = e.line.saturating_sub(1).max(1);
        dto.excerpt = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.to_string()))
            .filter(|(n, _)| *n >= first && *n <= e.line + 1)
            .collect();
    }
    dto
}

impl From<&VersionRow> for VersionDto {
    fn from(r: &VersionRow) -> Self {
        VersionDto {
            file: r.file.clone(),
            version: r.version,
            hash: r.hash.clone(),
            severity: r.severity,
            status: r.status.as_str().into(),
            actor: r.actor.clone(),
            reason: r.reason.clone(),
            applied_at: r.applied_at.clone(),
            duration_ms: r.duration_ms,
            sql: r.sql.clone(),
        }
    }
}

impl From<&EngineEvent> for EventDto {
    fn from(e: &EngineEvent) -> Self {
        EventDto {
            seq: e.seq,
            at: e.at.clone(),
            kind: e.kind,
            file: e.file.clone(),
            change_id: e.change_id,
            version: e.version,
            severity: e.severity,
            actor: e.actor.clone(),
            message: e.message.clone(),
        }
    }
}

/// What approved changes are doing right now, beside the snapshot: waiting
/// for a table lock, or running their online phases.
pub struct InFlight {
    pub waits: Arc<BTreeMap<String, LockWait>>,
    pub runs: Arc<BTreeMap<String, OnlineRun>>,
}

impl InFlight {
    /// What this instance's changes wait for, and the online phases running
    /// on any instance.
    pub async fn of(engine: &Coordinator) -> Self {
        InFlight { waits: engine.lock_waits(), runs: engine.online_runs_everywhere().await }
    }

    /// Marks each change of `changes` that waits for a table lock with who
    /// holds it, and each whose online phases run with how far they are.
    pub fn mark<'a>(&self, changes: impl Iterator<Item = &'a mut ChangeSummaryDto>) {
        for change in changes {
            change.waiting = self.waits.get(&change.file).map(LockWait::summary);
            change.running = self.runs.get(&change.file).filter(|r| r.change_id == change.id).map(OnlineRunDto::from);
        }
    }
}

impl From<&OnlineRun> for OnlineRunDto {
    fn from(r: &OnlineRun) -> Self {
        OnlineRunDto {
            state: r.state.as_str().to_string(),
            state_by: r.state_by.clone(),
            phase: r.phase,
            phases: r.phases,
            summary: r.summary.clone(),
            rows_done: r.rows_done,
            rows_total: r.rows_total,
            rows_per_second: r.rows_per_second,
            seconds_left: r.seconds_left,
            slowed: r.slowed,
            text: r.describe(),
        }
    }
}

pub fn dashboard(snapshot: &Snapshot, history: &[VersionRow], in_flight: &InFlight) -> DashboardDto {
    let mut pending: Vec<ChangeDto> = snapshot.pending.iter().map(ChangeDto::from).collect();
    in_flight.mark(pending.iter_mut().map(|c| &mut c.brief));
    let redaction = snapshot.settings.redaction();
    DashboardDto {
        in_sync: snapshot.in_sync(),
        last_sync: snapshot.last_sync.clone(),
        files: snapshot
            .files
            .iter()
            .map(|f| FileDto { path: f.path.clone(), entity: f.entity.clone(), version: f.version, state: f.state })
            .collect(),
        pending,
        rejected: snapshot
            .rejected
            .iter()
            .map(|e| problem_in(e, snapshot.rejected_sources.get(&e.file), &redaction))
            .collect(),
        failed: snapshot.failed.iter().map(FileProblemDto::from).collect(),
        drift: snapshot.drift.iter().map(DriftDto::from).collect(),
        behind: snapshot.behind.iter().map(BehindDto::from).collect(),
        history: history.iter().map(VersionDto::from).collect(),
        user: None,
        now: Some(marain::engine::now_rfc3339()),
    }
}

impl From<EngineError> for AppError {
    fn from(e: EngineError) -> Self {
        e.log_internal();
        AppError::new(e.kind(), e.public_message())
    }
}

impl From<&PendingChange> for ChangeSummaryDto {
    fn from(c: &PendingChange) -> Self {
        ChangeSummaryDto {
            id: c.id,
            file: c.file.clone(),
            severity: c.severity,
            hazards: c.hazards.iter().map(HazardDto::from).collect(),
            from_version: c.from_version,
            to_hash: c.to_hash.clone(),
            created_at: c.created_at.clone(),
            origin: c.origin.clone(),
            conflict: c.conflict,
            waiting: None,
            running: None,
        }
    }
}

impl From<&Behind> for BehindDto {
    fn from(b: &Behind) -> Self {
        BehindDto {
            file: b.file.clone(),
            copy_version: b.copy_version,
            applied_version: b.applied_version,
            message: b.summary(),
        }
    }
}

impl From<&Drift> for DriftDto {
    fn from(d: &Drift) -> Self {
        DriftDto { table: d.table.clone(), problem: d.problem.clone(), file: d.file.clone() }
    }
}

/// The sync status, as `GET /api/v1/hot-reload/status` answers it.
pub fn status(snapshot: &Snapshot, in_flight: &InFlight) -> StatusDto {
    let mut pending: Vec<ChangeSummaryDto> = snapshot.pending.iter().map(ChangeSummaryDto::from).collect();
    in_flight.mark(pending.iter_mut());
    StatusDto {
        in_sync: snapshot.in_sync(),
        last_sync: snapshot.last_sync.clone(),
        pending,
        rejected: snapshot.rejected.iter().chain(&snapshot.failed).map(FileProblemDto::from).collect(),
        drift: snapshot.drift.iter().map(DriftDto::from).collect(),
        behind: snapshot.behind.iter().map(BehindDto::from).collect(),
    }
}

/// The core's line diff as DTOs.
pub fn diff_lines(lines: &[marain::text_diff::DiffLine]) -> Vec<DiffLineDto> {
    lines
        .iter()
        .map(|l| DiffLineDto {
            tag: match l.tag {
                LineTag::Same => "same",
                LineTag::Added => "added",
                LineTag::Removed => "removed",
            }
            .into(),
            old_line: l.old_line,
            new_line: l.new_line,
            segments: l.segments.clone(),
        })
        .collect()
}

/// A live session as `viewer` may see it: the address and browser only for an
/// approver (`full`).
pub fn session(s: marain::engine::signed_in::SignedIn, viewer: &Identity, full: bool) -> SessionDto {
    SessionDto {
        current: viewer.session.as_deref() == Some(s.handle.as_str()),
        handle: if full { s.handle } else { String::new() },
        username: s.username,
        role: s.role,
        address: full.then_some(s.address),
        browser: full.then(|| browser(&s.user_agent)),
        signed_in_at: s.signed_in_at,
        last_seen: s.last_seen,
    }
}

/// A token as listed; `now` (RFC 3339) tells whether it has expired.
pub fn token(t: marain::engine::accounts::TokenInfo, now: &str) -> TokenDto {
    let at = |s: &str| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok();
    let expired = t.expires_at.as_deref().and_then(at).zip(at(now)).is_some_and(|(end, now)| end <= now);
    TokenDto { name: t.name, role: t.role, created_at: t.created_at, expires_at: t.expires_at, expired }
}

/// A user agent as a person reads it: the browser and the system, when known.
pub fn browser(agent: &str) -> String {
    let name =
        ["Edg/", "Firefox/", "Chrome/", "Safari/", "curl/"].iter().find(|b| agent.contains(*b)).map(|b| match *b {
            "Edg/" => "Edge",
            other => other.trim_end_matches('/'),
        });
    let system = ["Windows", "Android", "iPhone", "Mac OS X", "Linux"].iter().find(|s| agent.contains(*s));
    match (name, system) {
        (Some(n), Some(s)) => format!("{n} on {}", s.replace("Mac OS X", "macOS")),
        (Some(n), None) => n.to_string(),
        _ if agent.is_empty() => "unknown".into(),
        _ => agent.chars().take(40).collect(),
    }
}

/// The Migration page's data. A misfit's value is shown to approvers only,
/// hidden under a secret key (a legacy `password_hash`) by the site's key
/// rules, and without a URL's password (docs/security.md).
pub fn legacy_move(
    view: marain::engine::legacy::LegacyMoveView,
    may_change: bool,
    redaction: &marain::secrets::Redaction,
) -> crate::dto::LegacyMoveDto {
    let shown = |key: &str, value: String| match may_change && !redaction.is_secret_key(key) {
        true => marain::secrets::redact_urls(&value),
        false => marain::secrets::REDACTED.to_string(),
    };
    use crate::dto::{LegacyMoveDto, MisfitDto, MoveDto, TypeProgressDto};
    LegacyMoveDto {
        moves: view
            .moves
            .into_iter()
            .map(|m| MoveDto {
                legacy_table: m.legacy_table,
                dual_write: m.dual_write,
                running: m.running,
                started_at: m.started_at,
                updated_at: m.updated_at,
                finished_at: m.finished_at,
                renamed_to: m.renamed_to,
                types: m
                    .progress
                    .into_iter()
                    .map(|(entity_type, p)| TypeProgressDto {
                        entity_type,
                        entity: p.entity,
                        total: p.total,
                        copied: p.copied,
                        misfits: p.misfits,
                        waiting: p.waiting,
                    })
                    .collect(),
            })
            .collect(),
        misfits: view
            .misfits
            .into_iter()
            .map(|m| MisfitDto {
                entity_type: m.entity_type,
                id: m.id,
                value: shown(&m.json_key, m.value),
                key: m.json_key,
                reason: m.reason,
            })
            .collect(),
        startable: view.startable,
        may_change,
    }
}

/// What Verify found, for the page.
pub fn verified(report: marain::engine::legacy::VerifyReport) -> crate::dto::VerifyDto {
    crate::dto::VerifyDto {
        compared: report.types.values().map(|t| t.compared).sum(),
        not_copied: report.types.values().map(|t| t.not_copied).sum(),
        difference_count: report.differences.len(),
        differences: report
            .differences
            .iter()
            .take(100)
            .map(|d| format!("{} `{}`: legacy {} ≠ typed {}", d.id, d.field, d.legacy, d.typed))
            .collect(),
    }
}
