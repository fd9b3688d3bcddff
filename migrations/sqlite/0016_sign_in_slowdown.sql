-- Sign-in attempts are now counted per `pair:<account>|<address>` too, and an
-- account's failures from every address slow it down instead of locking it:
-- `next_at` (unix seconds) is when an address that already failed at this
-- account may try again (engine/sign_in.rs).
ALTER TABLE marain_sign_in_attempts ADD COLUMN next_at BIGINT NOT NULL DEFAULT 0;
