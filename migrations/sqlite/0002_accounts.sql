-- Who may use the dashboard and the API. Passwords are argon2id PHC strings;
-- tokens are stored as the SHA-256 of their secret, shown once at creation.
CREATE TABLE marain_accounts (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'approver')),
    created_at TEXT NOT NULL
);
CREATE TABLE marain_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'approver')),
    created_at TEXT NOT NULL
);
