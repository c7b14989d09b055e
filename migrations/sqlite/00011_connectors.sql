-- Lupa schema, version 11 (sqlite): connectors to vendors' APIs (Mailchimp, HubSpot,
-- Klaviyo) that the delivery engine sends to beside webhook endpoints (docs/connectors.md).

-- +goose Up
-- One connector. mappings is a JSON array: purpose → the vendor's audience, list or
-- subscription. credentials is a JSON object (API key or token, webhook secrets) sealed with
-- a data key (AAD: tenant and connector). reconcile_cursor is the vendor-side time up to
-- which unsubscribes were read back.
CREATE TABLE connectors (
    tenant_id        text NOT NULL REFERENCES tenants (id),
    id               text NOT NULL,
    vendor           text NOT NULL,
    name             text NOT NULL,
    description      text NOT NULL DEFAULT '',
    recipient_kind   text NOT NULL,
    recipient_id     text NOT NULL DEFAULT '',
    mappings         text NOT NULL DEFAULT '[]',
    credentials      blob NOT NULL,
    credentials_kid  text NOT NULL,
    base_url         text NOT NULL DEFAULT '',
    status           text NOT NULL,
    disabled_reason  text NOT NULL DEFAULT '',
    reconcile_cursor text NOT NULL DEFAULT '',
    reconciled_at    integer,
    created_at       integer NOT NULL,
    updated_at       integer NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- The address a connector last wrote for a subject, sealed: when the person's address
-- changes, the vendor's record is moved from this one (Mailchimp's member id is the hash of
-- the old address) instead of a second record being made.
CREATE TABLE connector_members (
    tenant_id    text NOT NULL,
    connector_id text NOT NULL,
    subject_id   text NOT NULL,
    email_ct     blob NOT NULL,
    email_kid    text NOT NULL,
    updated_at   integer NOT NULL,
    PRIMARY KEY (tenant_id, connector_id, subject_id)
);

-- The outbox takes a tenant's domain events only while it has an endpoint or a connector
-- (the PostgreSQL file explains why).
DROP TRIGGER domain_events_outbox;
-- +goose StatementBegin
CREATE TRIGGER domain_events_outbox AFTER INSERT ON domain_events
WHEN EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.tenant_id = NEW.tenant_id)
  OR EXISTS (SELECT 1 FROM connectors c WHERE c.tenant_id = NEW.tenant_id)
BEGIN
    INSERT INTO delivery_outbox (tenant_id, event_id, subject_id, subject_seq, created_at)
        VALUES (NEW.tenant_id, NEW.id, NEW.subject_id, NEW.subject_seq, NEW.created_at);
END;
-- +goose StatementEnd
