-- Lupa schema, version 8 (sqlite): sign-in to customer accounts through identity providers
-- the tenant configures (OpenID Connect, Facebook), the sign-ins under way, and the name a
-- provider gives.

-- +goose Up
-- One "Continue with …" button. The client secret is stored encrypted with a data key
-- (the AAD binds it to the tenant and the provider's id); it is never shown again. The
-- issuer is the namespace of the identities the provider vouches for, so a tenant has one
-- provider per issuer.
CREATE TABLE login_providers (
    tenant_id         text NOT NULL REFERENCES tenants (id),
    id                text NOT NULL,
    kind              text NOT NULL,
    label             text NOT NULL,
    labels            text NOT NULL DEFAULT '{}',
    issuer            text NOT NULL,
    client_id         text NOT NULL,
    client_secret     blob NOT NULL,
    client_secret_kid text NOT NULL,
    scopes            text NOT NULL DEFAULT '[]',
    trusted_for_email integer NOT NULL DEFAULT 0,
    token_auth_method text NOT NULL DEFAULT 'auto',
    created_at        integer NOT NULL,
    updated_at        integer NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, issuer)
);

-- Sign-ins under way, one per browser: the key is the SHA-256 of the random value in the
-- browser's __Host-lupa_oidc cookie, the state is stored as its SHA-256, and nonce, PKCE
-- verifier and an identity waiting to be connected are sealed in data. A flow is used once
-- (status started → used, or pending → connected); expired rows are deleted as new flows
-- begin.
CREATE TABLE login_flows (
    tenant_id    text NOT NULL REFERENCES tenants (id),
    binding_hash blob NOT NULL,
    provider_id  text NOT NULL,
    state_hash   blob NOT NULL,
    status       text NOT NULL,
    data         blob NOT NULL,
    data_kid     text NOT NULL,
    pending_at   integer,
    created_at   integer NOT NULL,
    expires_at   integer NOT NULL,
    PRIMARY KEY (tenant_id, binding_hash)
);
CREATE INDEX login_flows_expires ON login_flows (tenant_id, expires_at);

-- The name an identity provider gave at sign-in, encrypted (AAD: the tenant and account).
ALTER TABLE accounts ADD COLUMN name_ct blob;
ALTER TABLE accounts ADD COLUMN name_kid text;
