-- Lupa schema, version 18 (postgres): identifiers of users a CIAM merged into another
-- (docs/identity-events.md).

-- +goose Up
-- user.merged moves the merged user's identifier to the remaining person. When the CIAM then
-- deletes the merged user (many do, after a merge), the identifier names the remaining
-- person: without this mark the deletion would withdraw and erase the person who stays.
-- merged_away_at is when the merge was applied (Unix milliseconds); NULL for the rest.
ALTER TABLE identifiers ADD COLUMN merged_away_at bigint;
