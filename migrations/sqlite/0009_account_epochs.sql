-- Sessions follow their account: every change of an account's password or role
-- raises its epoch, and a session signed in under an older epoch (or for an
-- account that is gone) is signed out on its next request. Tokens may expire.
ALTER TABLE marain_accounts ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE marain_tokens ADD COLUMN expires_at TEXT;
