-- Webhook deliveries as an outbox: every instance that sees an event adds its
-- delivery under the event's key (one row however many instances see it), and
-- whichever instance is alive leases due rows, sends them and records the
-- outcome. A lease that runs out (its instance died, or hangs) lets another
-- instance take the row. Times are milliseconds since the Unix epoch by the
-- database's clock.
-- `done_at` is set once the row was delivered or given up (`outcome`); done
-- rows older than a day are deleted. Replaces marain_webhook_claims, which is
-- kept for instances of earlier releases during a rolling upgrade.
CREATE TABLE marain_webhook_outbox (
    key TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL,
    leased_by TEXT,
    leased_until BIGINT,
    done_at BIGINT,
    outcome TEXT
);
CREATE INDEX idx_marain_webhook_outbox_due ON marain_webhook_outbox (done_at, next_at);
