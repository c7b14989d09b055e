-- Lupa schema, version 7 (sqlite): the minimum age rule.

-- +goose Up
-- age_of_consent: 0 turns the rule off; else registration asks the year of birth, and below
-- this age (the age of digital consent, 13 in Finland) no consent-based purpose is
-- accepted. marketing_age: below it marketing purposes are not offered.
ALTER TABLE tenants ADD COLUMN age_of_consent integer NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN marketing_age integer NOT NULL DEFAULT 15;
