-- Lupa schema, version 10 (sqlite): the data map — the systems that hold each tenant's
-- customers' data, what they hold, why, where, for how long, and how a data-subject
-- request reaches them (docs/data-map.md).

-- +goose Up
-- One system. A connected system names its connector or webhook endpoint by kind and id,
-- as text: those tables belong to the delivery engine, and a system may be mapped before
-- its connector exists. Lists (data categories, purposes, legal bases, recipients,
-- locations, transfers) are JSON arrays; the retention rule is columns, so that the
-- data-subject-request work can read it without parsing. The DSR owner is staff (a name
-- and a work address), not a data subject: stored as text like other staff contacts.
CREATE TABLE data_map_systems (
    tenant_id             text NOT NULL REFERENCES tenants (id),
    id                    text NOT NULL,
    name                  text NOT NULL,
    description           text NOT NULL DEFAULT '',
    connection_kind       text,
    connection_id         text,
    data_categories       text NOT NULL DEFAULT '[]',
    other_data_categories text NOT NULL DEFAULT '[]',
    purposes              text NOT NULL DEFAULT '[]',
    other_purposes        text NOT NULL DEFAULT '[]',
    legal_bases           text NOT NULL DEFAULT '[]',
    recipients            text NOT NULL DEFAULT '[]',
    locations             text NOT NULL DEFAULT '[]',
    transfers             text NOT NULL DEFAULT '[]',
    retention_preset      text NOT NULL DEFAULT '',
    retention_years       integer NOT NULL DEFAULT 0,
    retention_months      integer NOT NULL DEFAULT 0,
    retention_days        integer NOT NULL DEFAULT 0,
    retention_anchor      text NOT NULL,
    retention_fy_end      text NOT NULL DEFAULT '',
    retention_reference   text NOT NULL DEFAULT '',
    retention_notes       text NOT NULL DEFAULT '',
    dsr_method            text NOT NULL,
    dsr_owner_name        text NOT NULL DEFAULT '',
    dsr_owner_email       text NOT NULL DEFAULT '',
    dsr_instructions      text NOT NULL DEFAULT '',
    created_at            integer NOT NULL,
    updated_at            integer NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name),
    CHECK ((connection_kind IS NULL) = (connection_id IS NULL))
);
-- A connector or endpoint is one system of the map.
CREATE UNIQUE INDEX data_map_systems_connection ON data_map_systems (tenant_id, connection_kind, connection_id)
    WHERE connection_kind IS NOT NULL;
