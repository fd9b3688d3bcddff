-- Failed sign-ins per client address, shared by every instance on this database,
-- so spreading guesses over instances or restarts gains nothing. `first_at` is
-- the unix time of the first failure of the current window.
CREATE TABLE marain_sign_in_failures (
    address TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    first_at BIGINT NOT NULL
);
