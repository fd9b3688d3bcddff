-- With a copy of the site per instance, what each instance's copy proposes: one
-- row per file and instance, kept while the change waits there. Other instances
-- show these on their dashboards (and may approve them), and mark proposals of
-- different texts for one file as a conflict. NULL `text`: the copy deletes it.
CREATE TABLE marain_proposals (
    file TEXT NOT NULL,
    instance TEXT NOT NULL,
    base_hash TEXT NOT NULL,
    to_hash TEXT NOT NULL,
    text TEXT,
    proposed_at TEXT NOT NULL,
    PRIMARY KEY (file, instance)
);
