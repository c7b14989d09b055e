-- Lupa schema, version 12 (postgres): erasure confirmations — which system of the data map has
-- confirmed an approved erasure request, and when Lupa forgot the person's email addresses
-- (docs/data-map.md, "Erasure confirmations").

-- +goose Up
-- One system's confirmation of one erasure request: by the delivery engine when the
-- system's webhook endpoint or connector acknowledged subject.erasure_approved
-- (confirmed_by 'delivery:<connection id>'), or by an admin (confirmed_by the actor, with a
-- note). system_id is not a foreign key: a system removed from the map keeps its record.
CREATE TABLE erasure_confirmations (
    tenant_id    text NOT NULL REFERENCES tenants (id),
    request_id   text NOT NULL,
    system_id    text NOT NULL,
    subject_id   text NOT NULL,
    confirmed_at bigint NOT NULL,
    confirmed_by text NOT NULL,
    note         text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, request_id, system_id),
    FOREIGN KEY (tenant_id, request_id) REFERENCES dsr_requests (tenant_id, id)
);

-- When Lupa erased its own copy of the person's email addresses (the identifiers of kind
-- email: the sealed address and its lookup hash): once every system of the data map had
-- confirmed the request. NULL until then.
ALTER TABLE dsr_requests ADD COLUMN email_erased_at bigint;
