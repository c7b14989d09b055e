-- Lupa schema, version 16 (postgres): the re-ask interval a purpose's stored expiries follow
-- (docs/api.md, "The banner's configuration").

-- +goose Up
-- A decision expires the purpose's current reask_months after it was made. The stored
-- consent_state.expires_at is the expiry sweep's index: when the interval changes, the
-- purpose's reask_applied becomes 0 and the sweeper rewrites the index, then sets it to the
-- interval it applied. Existing purposes start at 0: decisions made before an earlier
-- change of the interval still carry the old one, and the first sweep moves them.
ALTER TABLE purposes ADD COLUMN reask_applied integer NOT NULL DEFAULT 0;
