-- The newest line each secure log has written, by its hash: `marain history
-- verify --secure-log` finds it in the log's chain, so a log whose tail was
-- cut is found out (engine/secure_log.rs). One row per log, named
-- `<host>:<absolute path>`.
CREATE TABLE marain_secure_log_heads (
    log TEXT PRIMARY KEY,
    head TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
