-- The online phases running now, one row per changed file, so that an
-- approver on any instance can pause, resume or abort them and see how far
-- they are (docs/online-changes.md). The instance running the phases writes
-- the row as they start, updates it after each batch (reading `state` back:
-- `running`, `paused` or `aborting`, which the control requests set) and
-- deletes it, before it lets go of the table's lease, when they end. A row
-- whose lease nobody holds was left by an instance that died: another
-- instance claims it (`updated_at` as it saw it) and applies the change again
-- under the approval recorded here (`approved_by`, `reason`, `confirm`).
-- Times are milliseconds since the Unix epoch.
CREATE TABLE marain_online_runs (
    file TEXT PRIMARY KEY,
    change_id TEXT NOT NULL,
    table_name TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'running',
    state_by TEXT,
    phase INTEGER NOT NULL,
    phases INTEGER NOT NULL,
    summary TEXT NOT NULL,
    rows_done BIGINT NOT NULL DEFAULT 0,
    rows_total BIGINT,
    started_at BIGINT NOT NULL,
    phase_started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    approved_by TEXT NOT NULL,
    reason TEXT,
    confirm TEXT
);
