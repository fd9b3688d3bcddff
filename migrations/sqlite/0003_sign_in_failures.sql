-- Failed sign-ins per client address, kept in the database so that a restart
-- (or, later, another instance) does not reset the count. `first_at` is the unix
-- time of the first failure of the current window.
CREATE TABLE marain_sign_in_failures (
    address TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    first_at INTEGER NOT NULL
);
