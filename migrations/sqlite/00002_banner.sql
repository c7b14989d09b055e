-- Lupa schema, version 2 (sqlite): the consent banner's configuration and its evidence.

-- +goose Up
-- Banner settings per property (position, theme, languages, Consent Mode mapping, cookie …),
-- as one JSON document validated by consent.BannerSettings.
CREATE TABLE banner_settings (
    tenant_id   text NOT NULL REFERENCES tenants (id),
    property_id text NOT NULL,
    settings    text NOT NULL,
    updated_at  integer NOT NULL,
    PRIMARY KEY (tenant_id, property_id),
    FOREIGN KEY (tenant_id, property_id) REFERENCES properties (tenant_id, id)
);

-- The vendors and storage items (cookies, localStorage, pixels) of each purpose, listed in
-- the banner's second layer.
CREATE TABLE purpose_inventory (
    tenant_id  text NOT NULL REFERENCES tenants (id),
    purpose_id text NOT NULL,
    inventory  text NOT NULL,
    updated_at integer NOT NULL,
    PRIMARY KEY (tenant_id, purpose_id),
    FOREIGN KEY (tenant_id, purpose_id) REFERENCES purposes (tenant_id, id)
);

-- Every banner configuration that was ever shown, by the hash of its exact bytes.
CREATE TABLE shown_configs (
    tenant_id   text NOT NULL REFERENCES tenants (id),
    hash        text NOT NULL,
    property_id text NOT NULL,
    body        text NOT NULL,
    first_shown integer NOT NULL,
    PRIMARY KEY (tenant_id, hash)
);

-- What a visitor saw, as one hash: a configuration, a widget build and an interface
-- language. Consent events carry it as ui_hash.
CREATE TABLE shown_interfaces (
    tenant_id    text NOT NULL REFERENCES tenants (id),
    ui_hash      text NOT NULL,
    config_hash  text NOT NULL,
    widget_build text NOT NULL,
    language     text NOT NULL,
    first_shown  integer NOT NULL,
    PRIMARY KEY (tenant_id, ui_hash),
    FOREIGN KEY (tenant_id, config_hash) REFERENCES shown_configs (tenant_id, hash)
);

-- Every widget build a Lupa version has served, with its files, so an interface hash can be
-- reproduced after upgrades. Global: the widget is the same for every tenant.
CREATE TABLE widget_builds (
    build      text PRIMARY KEY,
    files      text NOT NULL,
    created_at integer NOT NULL
);

-- +goose StatementBegin
CREATE TRIGGER shown_configs_no_update BEFORE UPDATE ON shown_configs
BEGIN
    SELECT RAISE(ABORT, 'lupa: UPDATE on shown_configs is refused: it is append-only');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER shown_configs_no_delete BEFORE DELETE ON shown_configs
BEGIN
    SELECT RAISE(ABORT, 'lupa: DELETE on shown_configs is refused: it is append-only');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER shown_interfaces_no_update BEFORE UPDATE ON shown_interfaces
BEGIN
    SELECT RAISE(ABORT, 'lupa: UPDATE on shown_interfaces is refused: it is append-only');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER shown_interfaces_no_delete BEFORE DELETE ON shown_interfaces
BEGIN
    SELECT RAISE(ABORT, 'lupa: DELETE on shown_interfaces is refused: it is append-only');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER widget_builds_no_update BEFORE UPDATE ON widget_builds
BEGIN
    SELECT RAISE(ABORT, 'lupa: UPDATE on widget_builds is refused: it is append-only');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER widget_builds_no_delete BEFORE DELETE ON widget_builds
BEGIN
    SELECT RAISE(ABORT, 'lupa: DELETE on widget_builds is refused: it is append-only');
END;
-- +goose StatementEnd
