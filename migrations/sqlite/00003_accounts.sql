-- Lupa schema, version 3 (sqlite): customer accounts, their sessions and one-time email links.

-- +goose Up
-- An account lets a person (a subject of kind person) sign in to Lupa's own pages: the
-- privacy dashboard and the registration widget. The email address is an identifier of the
-- subject (kind email: encrypted, found by a keyed hash); the account holds what signing in
-- needs.
CREATE TABLE accounts (
    tenant_id         text NOT NULL REFERENCES tenants (id),
    id                text NOT NULL,
    subject_id        text NOT NULL,
    password_hash     text,
    email_verified_at integer,
    birth_year        integer,
    language          text NOT NULL DEFAULT '',
    status            text NOT NULL DEFAULT 'active',
    failed_signins    integer NOT NULL DEFAULT 0,
    locked_until      integer,
    created_at        integer NOT NULL,
    updated_at        integer NOT NULL,
    deleted_at        integer,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, subject_id),
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, id)
);

-- Server-side sessions. The cookie carries the tenant and a random token; only the token's
-- SHA-256 is stored.
CREATE TABLE sessions (
    tenant_id    text NOT NULL REFERENCES tenants (id),
    token_hash   blob NOT NULL,
    account_id   text NOT NULL,
    subject_id   text NOT NULL,
    created_at   integer NOT NULL,
    last_seen_at integer NOT NULL,
    expires_at   integer NOT NULL,
    revoked_at   integer,
    PRIMARY KEY (tenant_id, token_hash),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id)
);
CREATE INDEX sessions_account ON sessions (tenant_id, account_id);

-- One-time links sent by email: verify an address, reset a password, sign in without one,
-- confirm a double opt-in. Only the token's SHA-256 is stored; a link works once.
CREATE TABLE email_tokens (
    tenant_id  text NOT NULL REFERENCES tenants (id),
    token_hash blob NOT NULL,
    purpose    text NOT NULL,
    account_id text NOT NULL,
    data       text NOT NULL DEFAULT '{}',
    created_at integer NOT NULL,
    expires_at integer NOT NULL,
    used_at    integer,
    PRIMARY KEY (tenant_id, token_hash),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id)
);
CREATE INDEX email_tokens_account ON email_tokens (tenant_id, account_id, purpose);
