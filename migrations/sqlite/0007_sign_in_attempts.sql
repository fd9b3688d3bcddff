-- Sign-in attempts that did not succeed, counted per key: `address:<ip>` and
-- `account:<name>`. Each attempt is counted before its password is checked (a
-- success takes its own back), so parallel guesses cannot all get through; a
-- success clears only its own account's count. Replaces the per-address table.
DROP TABLE marain_sign_in_failures;
CREATE TABLE marain_sign_in_attempts (
    key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    first_at BIGINT NOT NULL
);
