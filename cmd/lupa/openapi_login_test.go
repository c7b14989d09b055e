package main

import (
	"github.com/lupa-cmp/lupa/identity"
)

// loginProviders covers the login providers' admin routes. The flows themselves are pages
// (http_login_test.go), not part of the API.
func (c *contractRun) loginProviders() {
	const path = "/v1/admin/login-providers"
	body := map[string]any{"kind": "oidc", "label": "Kauppa ID", "labels": map[string]any{"sv": "Butiks-ID"},
		"issuer": "https://id.contract.example", "client_id": "lupa", "client_secret": "s3cret-contract",
		"scopes": []string{"openid", "email"}, "trusted_for_email": true, "token_auth_method": "client_secret_post"}
	created := c.adm(201, post, path, body, "Idempotency-Key", "login-1").Map(c.t)
	id, _ := created["id"].(string)
	if _, shown := created["client_secret"]; shown || id == "" {
		c.t.Errorf("created login provider: %v", created)
	}
	if r := c.adm(201, post, path, body, "Idempotency-Key", "login-1"); r.Header.Get("Idempotent-Replayed") != "true" {
		c.t.Errorf("replayed login provider creation: %v", r.Header)
	}
	c.adm(422, post, path, map[string]any{"kind": "facebook", "label": "Facebook", "client_id": "1", "client_secret": "x"},
		"Idempotency-Key", "login-1")
	c.adm(409, post, path, body)
	fb := c.adm(201, post, path, map[string]any{"kind": "facebook", "label": "Facebook", "client_id": "1234", "client_secret": "app-secret"}).Map(c.t)
	fbID, _ := fb["id"].(string)
	c.reject(400, post, path, map[string]any{"kind": "saml", "label": "x", "client_id": "x", "client_secret": "x"}, c.admin...)
	c.reject(400, post, path, map[string]any{"kind": "oidc", "label": "x"}, c.admin...)
	c.reject(400, post, path, with(body, "labels", map[string]any{"de": "Anmelden"}), c.admin...)
	c.call(400, post, path, with(body, "issuer", "http://id.example"), c.admin...)
	c.call(400, post, path, with(body, "scopes", []string{"email"}), c.admin...)
	c.call(400, post, path, map[string]any{"kind": "facebook", "label": "F", "client_id": "1", "client_secret": "x", "trusted_for_email": true}, c.admin...)
	c.pendingConflict(path, path, jsonBytes(c.t, with(body, "issuer", "https://pending.example")), c.admin...)
	c.adminErrors(post, path, body)
	list := c.adm(200, get, path, nil).Map(c.t)
	if items, _ := list["items"].([]any); len(items) != 2 {
		c.t.Errorf("login providers: %v", list)
	}
	c.adminErrors(get, path, nil)

	one := path + "/" + id
	c.adm(200, get, one, nil)
	c.adm(404, get, path+"/"+identity.NewID(), nil)
	c.adminErrors(get, one, nil)
	c.adm(200, patch, one, map[string]any{"label": "Kauppa-tunnus", "client_secret": "rotated-secret", "trusted_for_email": false})
	c.reject(400, patch, one, map[string]any{"kind": "facebook"}, c.admin...)
	c.reject(400, patch, one, map[string]any{"token_auth_method": "private_key_jwt"}, c.admin...)
	c.call(400, patch, path+"/"+fbID, map[string]any{"trusted_for_email": true}, c.admin...)
	c.adm(404, patch, path+"/"+identity.NewID(), map[string]any{"label": "x"})
	other, _ := c.adm(201, post, path, with(body, "issuer", "https://other.contract.example")).Map(c.t)["id"].(string)
	c.adm(409, patch, path+"/"+other, map[string]any{"issuer": "https://id.contract.example"})
	c.adminErrors(patch, one, map[string]any{"label": "Kauppa ID"})
	doomed := path + "/" + fbID
	c.call(401, del, doomed, nil)
	c.call(401, del, doomed, nil, bearer("sk_not-a-key")...)
	c.call(403, del, doomed, nil, c.read...)
	c.call(400, del, doomed+"?x=%01", nil, c.admin...)
	c.adm(204, del, doomed, nil)
	c.adm(404, del, doomed, nil)
}
