-- Lupa schema, version 17 (postgres): the signed roots refuse TRUNCATE like the events do.

-- +goose Up
-- Row triggers do not fire on TRUNCATE, so until now a TRUNCATE of the signed roots or of
-- their leaves went through where an UPDATE or DELETE was refused (docs/ledger.md).
CREATE TRIGGER ledger_roots_no_truncate BEFORE TRUNCATE ON ledger_roots
    FOR EACH STATEMENT EXECUTE FUNCTION lupa_append_only();
CREATE TRIGGER ledger_root_leaves_no_truncate BEFORE TRUNCATE ON ledger_root_leaves
    FOR EACH STATEMENT EXECUTE FUNCTION lupa_append_only();
