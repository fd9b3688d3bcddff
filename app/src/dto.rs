//! The shapes the dashboard and the REST API exchange. They are plain data (and
//! the core's own small types, such as `Severity`, which serialises as `"SAFE"` …),
//! so the browser build needs nothing from the engine.

use marain::{EventKind, FileState, Severity};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DashboardDto {
    pub in_sync: bool,
    pub last_sync: Option<String>,
    pub files: Vec<FileDto>,
    pub pending: Vec<ChangeDto>,
    pub rejected: Vec<FileProblemDto>,
    pub failed: Vec<FileProblemDto>,
    /// Where the database no longer matches the applied files.
    pub drift: Vec<DriftDto>,
    /// Files whose copy on this instance is an older applied version.
    pub behind: Vec<BehindDto>,
    pub history: Vec<VersionDto>,
    /// Who is looking; approve and roll-back controls show for approvers only.
    pub user: Option<UserDto>,
    /// When the server answered: times show relative to it.
    pub now: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct UserDto {
    pub name: String,
    pub role: String,
    pub may_change: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DriftDto {
    pub table: String,
    pub problem: String,
    /// The data file whose rows drifted, for drift of rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// This instance's copy of a file is an older applied version (each instance
/// has its own copy, and this host has not been updated yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct BehindDto {
    pub file: String,
    pub copy_version: i64,
    pub applied_version: i64,
    /// `this copy is v3; v4 is applied`.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FileDto {
    pub path: String,
    pub entity: Option<String>,
    pub version: Option<i64>,
    /// `in_sync`, `pending`, `rejected`, `failed` or `behind`.
    #[cfg_attr(feature = "ssr", schema(value_type = String))]
    pub state: FileState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct HazardDto {
    pub code: String,
    #[cfg_attr(feature = "ssr", schema(value_type = crate::dto::SeveritySchema))]
    pub severity: Severity,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DiffLineDto {
    /// `same`, `added` or `removed`.
    pub tag: String,
    pub old_line: Option<usize>,
    pub new_line: Option<usize>,
    /// Text runs of the line; `true` marks the words that changed.
    #[cfg_attr(feature = "ssr", schema(value_type = Vec<Vec<Object>>, example = json!([[false, "type: "], [true, "text"]])))]
    pub segments: Vec<(bool, String)>,
}

/// A pending change in full: [`ChangeSummaryDto`] plus what a reviewer needs to
/// decide (the YAML diff, the SQL and its inverse). `docs/api.md` lists the fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ChangeDto {
    /// The brief fields, at the top level of the JSON as in a status's list.
    #[serde(flatten)]
    pub brief: ChangeSummaryDto,
    /// What a BREAKING approval must type to confirm.
    pub entity: String,
    /// Set when the change rolls the file back to this version.
    pub rollback_to: Option<i64>,
    /// What the change does, in words: "field `body` removed · 1 value backed up".
    #[serde(default)]
    pub headline: String,
    pub summary: Vec<String>,
    pub diff: Vec<DiffLineDto>,
    /// What the change's transaction runs (on the online path, its cut-over).
    pub sql: Vec<String>,
    pub rollback_sql: Vec<String>,
    /// How it applies: `transaction` or `online` (docs/online-changes.md).
    #[serde(default)]
    pub path: String,
    /// The rows of the table its online steps read, when counted: what the
    /// path was chosen from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_rows: Option<i64>,
    /// On the online path, the phases that run before the cut-over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<PhaseDto>,
    /// The rows a change to reference data writes or deletes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<RowDiffDto>,
}

/// Work an online change does before its cut-over, beside live traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PhaseDto {
    pub summary: String,
    pub sql: Vec<String>,
    /// Queries run again and again, each batch its own transaction, with the
    /// batch size as `$1` and the last key done as `$2`, until one takes no
    /// row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batches: Vec<String>,
}

/// One record of a data file's change: its id, what happens to it, and each
/// field that differs as (field, before, after).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RowDiffDto {
    pub id: String,
    /// `added`, `changed` or `removed`.
    pub op: String,
    pub fields: Vec<(String, String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FileProblemDto {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The lines around the problem, numbered, when the file's text is known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excerpt: Vec<(usize, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct VersionDto {
    pub file: String,
    pub version: i64,
    pub hash: String,
    #[cfg_attr(feature = "ssr", schema(value_type = crate::dto::SeveritySchema))]
    pub severity: Severity,
    pub status: String,
    pub actor: String,
    pub reason: Option<String>,
    pub applied_at: String,
    pub duration_ms: i64,
    pub sql: Vec<String>,
}

/// One engine event, as the SSE stream sends it and as the audit log lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct EventDto {
    pub seq: u64,
    pub at: String,
    /// `detected`, `rejected`, `pending`, … (`EventKind`'s wire names).
    #[cfg_attr(feature = "ssr", schema(value_type = String))]
    pub kind: EventKind,
    pub file: String,
    pub change_id: Option<u64>,
    pub version: Option<i64>,
    #[cfg_attr(feature = "ssr", schema(value_type = Option<crate::dto::SeveritySchema>))]
    pub severity: Option<Severity>,
    /// Who caused it (the approver, `watcher`, …); none for what the file
    /// system did.
    #[serde(default)]
    pub actor: Option<String>,
    pub message: String,
}

/// One file's versions, and the diff between two of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FileHistoryDto {
    pub file: String,
    /// Newest first.
    pub versions: Vec<VersionDto>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub diff: Vec<DiffLineDto>,
    pub may_change: bool,
    pub now: Option<String>,
}

/// A pending change in brief, as the status, rollback and recovery answers list it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ChangeSummaryDto {
    pub id: u64,
    pub file: String,
    #[cfg_attr(feature = "ssr", schema(value_type = crate::dto::SeveritySchema))]
    pub severity: Severity,
    pub hazards: Vec<HazardDto>,
    pub from_version: Option<i64>,
    pub to_hash: String,
    pub created_at: String,
    /// The instance whose copy of the site proposes it, when that is another
    /// instance (each instance having its own copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Copies of the site propose different texts for this file: none applies
    /// by itself, and approving one supersedes the others.
    #[serde(default)]
    pub conflict: bool,
    /// Set while the approved change waits for a table lock: who holds it and
    /// what that session runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// Set while the approved change's online phases run on this instance:
    /// how far they are (docs/online-changes.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<OnlineRunDto>,
}

/// How far a change's online phases are, while they run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct OnlineRunDto {
    /// `running`, `paused` or `aborting`.
    pub state: String,
    /// Who paused or aborted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_by: Option<String>,
    /// From 1; `phases + 1` while the cut-over runs.
    pub phase: usize,
    pub phases: usize,
    pub summary: String,
    /// Rows the current phase took so far, of about `rows_total`.
    pub rows_done: i64,
    pub rows_total: Option<i64>,
    pub rows_per_second: f64,
    pub seconds_left: Option<f64>,
    /// The batches rest longer because content requests slowed down.
    pub slowed: bool,
    /// All of it in words, as the event stream says it.
    pub text: String,
}

/// `GET /api/v1/hot-reload/status`: is the database what the files say, and if
/// not, what waits, what was refused and where the database drifted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct StatusDto {
    pub in_sync: bool,
    pub last_sync: Option<String>,
    pub pending: Vec<ChangeSummaryDto>,
    /// Files rejected (invalid, or turned down) and files whose apply failed.
    pub rejected: Vec<FileProblemDto>,
    pub drift: Vec<DriftDto>,
    /// Files whose copy on this instance is an older applied version.
    pub behind: Vec<BehindDto>,
}

/// A dashboard session, as the Access page lists it. The address and browser
/// are shown to approvers only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SessionDto {
    /// Ends the session; not the session id, and useless as one.
    pub handle: String,
    pub username: String,
    pub role: String,
    pub address: Option<String>,
    pub browser: Option<String>,
    pub signed_in_at: String,
    pub last_seen: String,
    /// The session this page was asked for.
    pub current: bool,
}

/// An API token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TokenDto {
    pub name: String,
    pub role: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub expired: bool,
}

/// The Access page: who is signed in, and the API tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AccessDto {
    pub sessions: Vec<SessionDto>,
    pub tokens: Vec<TokenDto>,
    pub may_change: bool,
    pub now: String,
}

/// The Migration page: the moves from the legacy JSON `content` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct LegacyMoveDto {
    pub moves: Vec<MoveDto>,
    pub misfits: Vec<MisfitDto>,
    /// A legacy table a move could start from (when none is recorded yet).
    pub startable: Option<String>,
    pub may_change: bool,
}

/// One move: per legacy type, where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct MoveDto {
    pub legacy_table: String,
    pub dual_write: bool,
    pub running: bool,
    pub started_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
    pub renamed_to: Option<String>,
    pub types: Vec<TypeProgressDto>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TypeProgressDto {
    pub entity_type: String,
    pub entity: String,
    pub total: i64,
    pub copied: i64,
    pub misfits: i64,
    pub waiting: i64,
}

/// One reason a legacy row does not fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct MisfitDto {
    pub entity_type: String,
    pub id: String,
    pub key: String,
    pub value: String,
    pub reason: String,
}

/// What Verify found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct VerifyDto {
    pub compared: i64,
    pub not_copied: i64,
    /// `id field: legacy ≠ typed`, the first hundred.
    pub differences: Vec<String>,
    pub difference_count: usize,
}

/// How `Severity` is described in the OpenAPI document (the core stays free of
/// utoipa): one of the grades, in the order of `docs/grading.md`.
#[cfg(feature = "ssr")]
#[derive(utoipa::ToSchema)]
#[schema(as = Severity)]
#[allow(dead_code, clippy::upper_case_acronyms)]
pub enum SeveritySchema {
    SAFE,
    WARNING,
    BREAKING,
    BLOCKED,
    REJECTED,
}

/// The Schema page: the picture (SVG, drawn on the server) and one row per
/// entity, with the links the picture cannot hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaDto {
    pub svg: String,
    pub entities: Vec<SchemaEntityDto>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaEntityDto {
    pub id: String,
    pub name: String,
    pub file: String,
    pub fields: usize,
    /// `None` when the count could not be read.
    pub rows: Option<i64>,
    /// Entities it references.
    pub references: Vec<String>,
    /// The severity of the change waiting for this entity's file, if any.
    pub pending: Option<Severity>,
    /// What that change does, in words.
    pub pending_headline: Option<String>,
}

/// The History timeline: applied versions and, beside them, what went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineDto {
    pub versions: Vec<VersionDto>,
    /// `rejected` and `failed` events from the audit log.
    pub problems: Vec<EventDto>,
}
