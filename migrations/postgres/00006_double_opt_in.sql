-- Lupa schema, version 6 (postgres): double opt-in.

-- +goose Up
-- A grant of a double opt-in purpose (marketing email) is pending until the person follows
-- the link of a confirmation email.
ALTER TABLE purposes ADD COLUMN double_opt_in boolean NOT NULL DEFAULT false;
