-- PostgreSQL's migration 0015 adds the function its online copies run their
-- batches with; SQLite's batches are plain statements (plan/sqlite/online.rs).
-- Kept so that both databases number their migrations alike.
SELECT 1;
