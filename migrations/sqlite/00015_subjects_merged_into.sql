-- Lupa schema, version 15 (sqlite): the subjects merged into a subject, found from it
-- (docs/ledger.md, "Pseudonyms and erasure").

-- +goose Up
-- Erasing a person erases every subject merged into it too (its devices, and persons a
-- CIAM merged into it, with theirs): the erasure walks merged_into backwards from the
-- person, in its transaction. Most subjects are never merged.
CREATE INDEX subjects_merged_into ON subjects (tenant_id, merged_into) WHERE merged_into IS NOT NULL;
