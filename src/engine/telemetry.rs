//! What the engine counts, through the `metrics` facade. Recording costs
//! nothing until a recorder is installed; the server installs the Prometheus
//! exporter and serves `GET /metrics` (names and labels in `docs/operating.md`).
//! Gauges of the engine's state (pending changes, rejected files, drift) are
//! read from the snapshot when scraped, so they are never stale.

use std::time::SystemTime;

use crate::hazard::Severity;

pub const SAVE_TO_APPLIED: &str = "marain_save_to_applied_seconds";
pub const APPLIES: &str = "marain_applies_total";
pub const REJECTIONS: &str = "marain_rejections_total";
pub const SYNC_LAG: &str = "marain_sync_lag_seconds";
pub const ONLINE_PHASE: &str = "marain_online_phase_seconds";
pub const ONLINE_PHASES_RUNNING: &str = "marain_online_phases_running";
pub const ONLINE_ROWS_DONE: &str = "marain_online_rows_done";
pub const ONLINE_ROWS_TOTAL: &str = "marain_online_rows_total";
pub const ONLINE_ROWS_PER_SECOND: &str = "marain_online_rows_per_second";
pub const ONLINE_PAUSED: &str = "marain_online_paused";

/// Why a change did not apply, as the `reason` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotApplied {
    /// The file does not parse, validate or fit the site.
    Invalid,
    /// A person declined the change.
    Declined,
    /// The apply failed and was rolled back.
    Failed,
}

impl NotApplied {
    fn label(self) -> &'static str {
        match self {
            NotApplied::Invalid => "invalid",
            NotApplied::Declined => "declined",
            NotApplied::Failed => "failed",
        }
    }
}

/// Describes every metric the engine records (help texts in the exposition).
pub fn describe() {
    metrics::describe_histogram!(
        SAVE_TO_APPLIED,
        metrics::Unit::Seconds,
        "From the file's last modification to its change committed, by severity (WARNING and BREAKING include the wait for approval)"
    );
    metrics::describe_counter!(APPLIES, "Changes applied by this instance, by file kind and severity");
    metrics::describe_counter!(
        REJECTIONS,
        "Changes that did not apply: invalid files, declined by a person, failed applies"
    );
    metrics::describe_histogram!(
        ONLINE_PHASE,
        metrics::Unit::Seconds,
        "How long each phase of an online change took (an index built concurrently, a constraint validated), by table"
    );
    metrics::describe_gauge!(ONLINE_PHASES_RUNNING, "Phases of online changes running on this instance now");
    metrics::describe_gauge!(ONLINE_ROWS_DONE, "Rows the running online phase has taken so far, by table");
    metrics::describe_gauge!(ONLINE_ROWS_TOTAL, "Rows the running online change was planned on, by table");
    metrics::describe_gauge!(ONLINE_ROWS_PER_SECOND, "The running online phase's rate so far, by table");
    metrics::describe_gauge!(ONLINE_PAUSED, "1 while an approver holds the online change on the table paused");
    metrics::describe_histogram!(
        SYNC_LAG,
        metrics::Unit::Seconds,
        "From another instance committing a version to this instance taking it in"
    );
}

/// One change applied here; `saved` is the file's modification time when the
/// change came from a save (not for deletions and rollbacks).
pub fn applied(path: &str, severity: Severity, saved: Option<SystemTime>) {
    let kind = crate::kind::kind_of(path).map(|k| k.name()).unwrap_or("unknown");
    let severity = severity.as_str().to_ascii_lowercase();
    metrics::counter!(APPLIES, "kind" => kind, "severity" => severity.clone()).increment(1);
    if let Some(elapsed) = saved.and_then(|at| at.elapsed().ok()) {
        metrics::histogram!(SAVE_TO_APPLIED, "severity" => severity).record(elapsed.as_secs_f64());
    }
}

pub fn not_applied(why: NotApplied) {
    metrics::counter!(REJECTIONS, "reason" => why.label()).increment(1);
}

/// A version another instance applied at `applied_at` (RFC 3339) is taken in now.
pub fn synced(applied_at: &str) {
    let Ok(at) = time::OffsetDateTime::parse(applied_at, &time::format_description::well_known::Rfc3339) else {
        return;
    };
    let lag = (time::OffsetDateTime::now_utc() - at).as_seconds_f64().max(0.0);
    metrics::histogram!(SYNC_LAG).record(lag);
}

/// An online change's phase on `table` started: counted as running until
/// the guard returned is dropped, when its duration is recorded.
pub fn phase_started(table: &str) -> PhaseRunning {
    metrics::gauge!(ONLINE_PHASES_RUNNING).increment(1.0);
    PhaseRunning { table: table.to_string(), started: std::time::Instant::now() }
}

/// A phase running; see [`phase_started`].
pub struct PhaseRunning {
    table: String,
    started: std::time::Instant,
}

impl Drop for PhaseRunning {
    fn drop(&mut self) {
        metrics::gauge!(ONLINE_PHASES_RUNNING).decrement(1.0);
        let table = std::mem::take(&mut self.table);
        metrics::histogram!(ONLINE_PHASE, "table" => table).record(self.started.elapsed().as_secs_f64());
    }
}

/// How far the online phases on `run.table` are, for the gauges.
pub fn online_progress(run: &crate::engine::store::OnlineRun) {
    let table = run.table.clone();
    metrics::gauge!(ONLINE_ROWS_DONE, "table" => table.clone()).set(run.rows_done as f64);
    metrics::gauge!(ONLINE_ROWS_TOTAL, "table" => table.clone()).set(run.rows_total.unwrap_or(0) as f64);
    metrics::gauge!(ONLINE_ROWS_PER_SECOND, "table" => table.clone()).set(run.rows_per_second);
    let paused = run.state == crate::engine::store::RunState::Paused;
    metrics::gauge!(ONLINE_PAUSED, "table" => table).set(if paused { 1.0 } else { 0.0 });
}

/// The online phases on `table` are over: their gauges go back to zero.
pub fn online_over(table: &str) {
    for gauge in [ONLINE_ROWS_DONE, ONLINE_ROWS_TOTAL, ONLINE_ROWS_PER_SECOND, ONLINE_PAUSED] {
        metrics::gauge!(gauge, "table" => table.to_string()).set(0.0);
    }
}
