-- Lupa schema, version 14 (sqlite): stored idempotent answers are encrypted
-- (docs/api.md, "Idempotency").

-- +goose Up
-- An answer kept for retries may hold a secret shown once (an API key, a webhook secret) or
-- an identifier (a device id), so it is sealed with the keyring's encryption key named by
-- response_kid, and carries the headers a retry must see again. Rows written before this
-- migration have no kid: their response is the plain body, replayed as it is until it
-- expires (24 hours).
ALTER TABLE idempotency_keys ADD COLUMN response_kid text;
