-- Changes a person turned down, by file and the text they would have brought:
-- every instance that plans the same text shows it rejected (not pending), and
-- so does this one after a restart. A version of the file applying clears them.
CREATE TABLE marain_rejections (
    file TEXT NOT NULL,
    to_hash TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT,
    rejected_at TEXT NOT NULL,
    PRIMARY KEY (file, to_hash)
);
