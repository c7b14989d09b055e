-- Lupa schema, version 9 (sqlite): durable delivery of domain events to webhook endpoints.
-- The PostgreSQL file explains each table.

-- +goose Up
CREATE TABLE webhook_endpoints (
    tenant_id           text NOT NULL REFERENCES tenants (id),
    id                  text NOT NULL,
    url                 text NOT NULL,
    description         text NOT NULL DEFAULT '',
    event_types         text NOT NULL DEFAULT '[]',
    purposes            text NOT NULL DEFAULT '[]',
    recipient_kind      text NOT NULL,
    recipient_id        text NOT NULL DEFAULT '',
    status              text NOT NULL,
    disabled_reason     text NOT NULL DEFAULT '',
    secret              blob NOT NULL,
    secret_kid          text NOT NULL,
    previous_secret     blob,
    previous_secret_kid text,
    previous_expires_at integer,
    created_at          integer NOT NULL,
    updated_at          integer NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE delivery_outbox (
    tenant_id   text NOT NULL,
    event_id    text NOT NULL,
    subject_id  text NOT NULL,
    subject_seq integer NOT NULL,
    created_at  integer NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX delivery_outbox_order ON delivery_outbox (created_at, subject_id, subject_seq);

-- +goose StatementBegin
CREATE TRIGGER domain_events_outbox AFTER INSERT ON domain_events
BEGIN
    INSERT INTO delivery_outbox (tenant_id, event_id, subject_id, subject_seq, created_at)
        VALUES (NEW.tenant_id, NEW.id, NEW.subject_id, NEW.subject_seq, NEW.created_at);
END;
-- +goose StatementEnd

CREATE TABLE delivery_keys (
    tenant_id          text NOT NULL,
    endpoint_id        text NOT NULL,
    subject_id         text NOT NULL,
    purpose            text NOT NULL,
    last_seq           integer NOT NULL,
    held               integer NOT NULL DEFAULT 0,
    delivered_seq      integer NOT NULL DEFAULT 0,
    delivered_decision text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, endpoint_id, subject_id, purpose)
);

CREATE TABLE deliveries (
    tenant_id       text NOT NULL,
    id              text NOT NULL,
    endpoint_id     text NOT NULL,
    subject_id      text NOT NULL,
    purpose         text NOT NULL,
    seq             integer NOT NULL,
    event_type      text NOT NULL,
    decision        text NOT NULL DEFAULT '',
    previous_decision text,
    payload         text NOT NULL,
    status          text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    schedule_base   integer NOT NULL DEFAULT 0,
    next_attempt_at integer NOT NULL,
    lease_until     integer NOT NULL DEFAULT 0,
    last_status     integer NOT NULL DEFAULT 0,
    last_error      text NOT NULL DEFAULT '',
    created_at      integer NOT NULL,
    updated_at      integer NOT NULL,
    delivered_at    integer,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, endpoint_id, subject_id, purpose, seq)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_endpoint ON deliveries (tenant_id, endpoint_id, created_at, id);
CREATE INDEX deliveries_retrying ON deliveries (tenant_id, endpoint_id) WHERE status = 'pending' AND attempts > 0;

CREATE TABLE delivery_attempts (
    tenant_id   text NOT NULL,
    delivery_id text NOT NULL,
    number      integer NOT NULL,
    endpoint_id text NOT NULL,
    status      integer NOT NULL,
    outcome     text NOT NULL,
    latency_ms  integer NOT NULL,
    response    text NOT NULL DEFAULT '',
    created_at  integer NOT NULL,
    PRIMARY KEY (tenant_id, delivery_id, number)
);
