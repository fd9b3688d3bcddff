-- Bringing content across from the legacy JSON `content` table (docs/legacy.md).
-- One row per legacy table being moved: while `finished_at` is NULL the content
-- API also serves that table's rows not yet copied and (with `dual_write`)
-- writes through to them. `types` maps each legacy entity_type to its entity
-- (JSON object); `progress` is the newest batch's counts per type (JSON), for
-- the dashboard.
CREATE TABLE marain_legacy (
    legacy_table TEXT PRIMARY KEY,
    same_database BOOLEAN NOT NULL,
    dual_write BOOLEAN NOT NULL,
    keep_unmapped BOOLEAN NOT NULL,
    types TEXT NOT NULL,
    progress TEXT NOT NULL,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    running BOOLEAN NOT NULL,
    finished_at TEXT,
    renamed_to TEXT
);
-- Why each legacy row that was looked at could not be copied (one row per
-- reason); rewritten each time the row is looked at, emptied as it is copied.
CREATE TABLE marain_legacy_misfits (
    entity_type TEXT NOT NULL,
    id TEXT NOT NULL,
    json_key TEXT NOT NULL,
    value TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX marain_legacy_misfits_row ON marain_legacy_misfits (entity_type, id);
-- `run --keep-unmapped`: the keys of a copied row that no field takes, kept
-- beside its typed row (a column no schema names would be dropped by the next
-- table rebuild).
CREATE TABLE marain_legacy_extra (
    entity TEXT NOT NULL,
    id TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (entity, id)
);
