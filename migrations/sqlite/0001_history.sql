-- Append-only history of every applied file version. Each row carries the hash of
-- the row before it, so any edit or deletion breaks the chain.
CREATE TABLE marain_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file TEXT NOT NULL,
    version INTEGER NOT NULL,
    -- SHA-256 of the file text; empty when this version deleted the file.
    hash TEXT NOT NULL,
    -- The full file text; NULL when this version deleted the file.
    yaml TEXT,
    severity TEXT NOT NULL,
    hazards TEXT NOT NULL,
    sql TEXT NOT NULL,
    rollback_sql TEXT NOT NULL,
    backups TEXT NOT NULL,
    status TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT,
    applied_at TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    prev_row_hash TEXT NOT NULL,
    row_hash TEXT NOT NULL,
    UNIQUE (file, version)
);
CREATE INDEX idx_marain_history_file ON marain_history (file, version);
