-- Lupa schema, version 4 (sqlite): who looked up whom.

-- +goose Up
-- Every lookup of a subject by support (the admin API's subject lookup) is recorded: who,
-- when, the kind of identifier used (never its value) and the reason given.
CREATE TABLE subject_access_log (
    tenant_id       text NOT NULL REFERENCES tenants (id),
    id              text NOT NULL,
    at              integer NOT NULL,
    actor           text NOT NULL,
    subject_id      text NOT NULL DEFAULT '',
    identifier_kind text NOT NULL,
    reason          text NOT NULL,
    found           integer NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX subject_access_log_at ON subject_access_log (tenant_id, at);
CREATE INDEX subject_access_log_subject ON subject_access_log (tenant_id, subject_id);
