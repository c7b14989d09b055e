-- Lupa schema, version 5 (sqlite): the company's CIAM — issuers whose access tokens apps
-- send to the collection API, their inbound identity events — and the first table of
-- data-subject requests.

-- +goose Up
-- One identity provider (issuer) a tenant trusts. Apps send its access tokens as
-- Authorization: Bearer; its identity events are signed with the webhook secret, which is
-- stored encrypted with a data key (the AAD binds it to the tenant and the issuer's id).
CREATE TABLE ciam_issuers (
    tenant_id             text NOT NULL REFERENCES tenants (id),
    id                    text NOT NULL,
    name                  text NOT NULL,
    issuer                text NOT NULL,
    audiences             text NOT NULL DEFAULT '[]',
    jwks_url              text NOT NULL DEFAULT '',
    algorithms            text NOT NULL DEFAULT '["RS256","ES256"]',
    clock_skew_seconds    integer NOT NULL DEFAULT 60,
    trusted_for_email     integer NOT NULL DEFAULT 0,
    webhook_secret        blob NOT NULL,
    webhook_secret_kid    text NOT NULL,
    webhook_secret_prefix text NOT NULL,
    created_at            integer NOT NULL,
    updated_at            integer NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, issuer)
);
-- Identity events name the issuer by its id alone (the tenant follows from it).
CREATE INDEX ciam_issuers_id ON ciam_issuers (id);

-- Webhook ids of identity events already taken, against replays and for idempotent
-- retries: status 0 while the first delivery is being processed, then the answer.
CREATE TABLE ciam_webhook_ids (
    tenant_id    text NOT NULL,
    issuer_id    text NOT NULL,
    webhook_id   text NOT NULL,
    request_hash text NOT NULL,
    status       integer NOT NULL,
    response     blob NOT NULL,
    created_at   integer NOT NULL,
    expires_at   integer NOT NULL,
    PRIMARY KEY (tenant_id, issuer_id, webhook_id)
);
CREATE INDEX ciam_webhook_ids_expires ON ciam_webhook_ids (expires_at);

-- Data-subject requests (GDPR Art. 15–22). For now erasure requests opened when a
-- customer's identity is deleted; the request queue of a later issue builds on this.
-- At most one open request of a kind per subject.
CREATE TABLE dsr_requests (
    tenant_id  text NOT NULL REFERENCES tenants (id),
    id         text NOT NULL,
    subject_id text NOT NULL,
    kind       text NOT NULL,
    status     text NOT NULL,
    source     text NOT NULL,
    created_at integer NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id)
);
CREATE UNIQUE INDEX dsr_requests_open ON dsr_requests (tenant_id, subject_id, kind) WHERE status = 'open';
