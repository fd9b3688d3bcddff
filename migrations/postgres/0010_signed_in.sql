-- Who is signed in: one row per dashboard session, written as the session store
-- creates, renews and deletes sessions (the store's own rows are opaque). Keyed
-- by the SHA-256 of the session id, never the id itself. A session whose row is
-- gone (ended from the dashboard) is signed out on its next request.
CREATE TABLE marain_signed_in (
    session_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    address TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    signed_in_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX marain_signed_in_username ON marain_signed_in (username);
