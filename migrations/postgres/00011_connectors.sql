-- Lupa schema, version 11 (postgres): connectors to vendors' APIs (Mailchimp, HubSpot,
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
    credentials      bytea NOT NULL,
    credentials_kid  text NOT NULL,
    base_url         text NOT NULL DEFAULT '',
    status           text NOT NULL,
    disabled_reason  text NOT NULL DEFAULT '',
    reconcile_cursor text NOT NULL DEFAULT '',
    reconciled_at    bigint,
    created_at       bigint NOT NULL,
    updated_at       bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- The address a connector last wrote for a subject, sealed: when the person's address
-- changes, the vendor's record is moved from this one (Mailchimp's member id is the hash of
-- the old address) instead of a second record being made.
CREATE TABLE connector_members (
    tenant_id    text NOT NULL,
    connector_id text NOT NULL,
    subject_id   text NOT NULL,
    email_ct     bytea NOT NULL,
    email_kid    text NOT NULL,
    updated_at   bigint NOT NULL,
    PRIMARY KEY (tenant_id, connector_id, subject_id)
);

-- The outbox takes a tenant's domain events only while it has somewhere to send them (an
-- endpoint or a connector), and NOTIFY fires only then: a tenant without integrations pays
-- nothing on its write path (NOTIFY serialises commits). A target hears of the changes
-- committed after it was made — as before, when the engine fanned out with no targets.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION lupa_delivery_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO delivery_outbox (tenant_id, event_id, subject_id, subject_seq, created_at)
        SELECT n.tenant_id, n.id, n.subject_id, n.subject_seq, n.created_at FROM new_rows n
        WHERE EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.tenant_id = n.tenant_id)
           OR EXISTS (SELECT 1 FROM connectors c WHERE c.tenant_id = n.tenant_id);
    IF FOUND THEN
        PERFORM pg_notify('lupa_deliveries', '');
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
