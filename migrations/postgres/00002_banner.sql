-- Lupa schema, version 2 (postgres): the consent banner's configuration and its evidence.

-- +goose Up
-- Banner settings per property (position, theme, languages, Consent Mode mapping, cookie …),
-- as one JSON document validated by consent.BannerSettings.
CREATE TABLE banner_settings (
    tenant_id   text NOT NULL REFERENCES tenants (id),
    property_id text NOT NULL,
    settings    text NOT NULL,
    updated_at  bigint NOT NULL,
    PRIMARY KEY (tenant_id, property_id),
    FOREIGN KEY (tenant_id, property_id) REFERENCES properties (tenant_id, id)
);

-- The vendors and storage items (cookies, localStorage, pixels) of each purpose, listed in
-- the banner's second layer.
CREATE TABLE purpose_inventory (
    tenant_id  text NOT NULL REFERENCES tenants (id),
    purpose_id text NOT NULL,
    inventory  text NOT NULL,
    updated_at bigint NOT NULL,
    PRIMARY KEY (tenant_id, purpose_id),
    FOREIGN KEY (tenant_id, purpose_id) REFERENCES purposes (tenant_id, id)
);

-- Every banner configuration that was ever shown, by the hash of its exact bytes.
CREATE TABLE shown_configs (
    tenant_id   text NOT NULL REFERENCES tenants (id),
    hash        text NOT NULL,
    property_id text NOT NULL,
    body        text NOT NULL,
    first_shown bigint NOT NULL,
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
    first_shown  bigint NOT NULL,
    PRIMARY KEY (tenant_id, ui_hash),
    FOREIGN KEY (tenant_id, config_hash) REFERENCES shown_configs (tenant_id, hash)
);

-- Every widget build a Lupa version has served, with its files, so an interface hash can be
-- reproduced after upgrades. Global: the widget is the same for every tenant.
CREATE TABLE widget_builds (
    build      text PRIMARY KEY,
    files      text NOT NULL,
    created_at bigint NOT NULL
);

CREATE TRIGGER shown_configs_append_only BEFORE UPDATE OR DELETE ON shown_configs
    FOR EACH ROW EXECUTE FUNCTION lupa_append_only();
CREATE TRIGGER shown_interfaces_append_only BEFORE UPDATE OR DELETE ON shown_interfaces
    FOR EACH ROW EXECUTE FUNCTION lupa_append_only();
CREATE TRIGGER widget_builds_append_only BEFORE UPDATE OR DELETE ON widget_builds
    FOR EACH ROW EXECUTE FUNCTION lupa_append_only();
