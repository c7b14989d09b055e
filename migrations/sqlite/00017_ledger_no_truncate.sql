-- Lupa schema, version 17 (sqlite): nothing to change. On PostgreSQL this version makes the
-- signed roots refuse TRUNCATE; SQLite has no TRUNCATE (its DELETE triggers already refuse).
-- The version exists so that both dialects count their schema alike.

-- +goose Up
SELECT 1;
