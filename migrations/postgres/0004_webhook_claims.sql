-- One row per webhook delivery claimed by an instance: every instance that sees
-- an event tries to claim its delivery, and only the one whose insert lands
-- sends it, so a hook hears each event once however many instances run.
-- `claimed_at` is unix seconds; a claim older than the dedupe window lets an
-- identical later event through, and claims older than a day are deleted.
CREATE TABLE marain_webhook_claims (
    key TEXT PRIMARY KEY,
    claimed_at BIGINT NOT NULL
);
