-- Where a run of online phases can go on from (docs/online-changes.md): an
-- instance that takes over the run of one that died goes on from the last
-- batch recorded instead of starting over, when it plans the same phases
-- (`plan_hash`, a hash of their SQL). `phase` counts the phases done before
-- it; `batch` is the index of the current phase's batch query that ran last
-- (NULL: the phase's statements have not all run, so the phase starts over)
-- and `after_key` the last key it committed. A batch is written again
-- harmlessly (each is an upsert or a recomputation), so a record one batch
-- behind what committed is safe.
ALTER TABLE marain_online_runs ADD COLUMN plan_hash TEXT;
ALTER TABLE marain_online_runs ADD COLUMN batch INTEGER;
ALTER TABLE marain_online_runs ADD COLUMN after_key TEXT;
