-- Lupa schema, version 13 (postgres): where a connector's reconcile walk stopped
-- (docs/connectors.md, "The reconcile").

-- +goose Up
-- HubSpot cannot list what changed since a time, so its reconcile reads the statuses of the
-- addresses the connector wrote, a bounded number per run: reconcile_position is the last
-- subject id the previous run read ('' = start from the beginning).
ALTER TABLE connectors ADD COLUMN reconcile_position text NOT NULL DEFAULT '';
