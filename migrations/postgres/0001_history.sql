-- Append-only history of every applied file version. Each row carries the hash of
-- the row before it, so any edit or deletion breaks the chain. The same columns
-- as on SQLite; (file, version) is unique, the second guard (after the advisory
-- lock every apply takes) against two instances applying the same change.
CREATE TABLE marain_history (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file TEXT NOT NULL,
    version BIGINT NOT NULL,
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
    duration_ms BIGINT NOT NULL,
    prev_row_hash TEXT NOT NULL,
    row_hash TEXT NOT NULL,
    UNIQUE (file, version)
);
