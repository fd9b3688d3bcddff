-- The newest history row, kept apart from the rows and written in the same
-- transaction: deleting rows from the end of the history (which leaves an
-- intact, shorter chain) no longer passes `marain history verify`.
CREATE TABLE marain_history_head (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    row_id BIGINT NOT NULL,
    row_hash TEXT NOT NULL,
    rows BIGINT NOT NULL
);
INSERT INTO marain_history_head (singleton, row_id, row_hash, rows)
SELECT 1, id, row_hash, (SELECT COUNT(*) FROM marain_history) FROM marain_history ORDER BY id DESC LIMIT 1;
