-- Lupa schema, version 19 (postgres): users the company's CIAM deleted, remembered for a
-- while (docs/identity-events.md).

-- +goose Up
-- After user.deleted, the CIAM's tokens for the user issued at or before the deletion are
-- refused, and its events about the user sent at or before it (late, retried, out of order)
-- do not bring the person back. Kept is only what that needs: user_hash, the HMAC-SHA256
-- under the lookup data key hash_kid of the tenant, the issuer and the user's sub (never the
-- sub itself), and deleted_at, the deletion's time (Unix milliseconds). A row is forgotten
-- at expires_at (30 days after the deletion reached Lupa).
CREATE TABLE ciam_deleted_users (
    tenant_id  text NOT NULL REFERENCES tenants (id),
    user_hash  bytea NOT NULL,
    hash_kid   text NOT NULL,
    deleted_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (tenant_id, user_hash)
);
CREATE INDEX ciam_deleted_users_expires ON ciam_deleted_users (expires_at);
