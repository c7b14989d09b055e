package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/ciam/ciamtest"
	"github.com/lupa-cmp/lupa/identity/identityweb"
)

// ciamContract is what the contract's CIAM step leaves for the failures step.
type ciamContract struct {
	p                *ciamtest.Provider
	issuerID, secret string
}

// ciam covers the CIAM issuers' admin routes, the collection API with a customer's token,
// and the identity events.
func (c *contractRun) ciam() {
	p := ciamtest.New(c.t)
	const path = "/v1/admin/ciam-issuers"
	body := map[string]any{"name": "Contract CIAM", "issuer": p.Issuer(), "audiences": []string{"lupa"},
		"algorithms": []string{"RS256", "ES256"}, "clock_skew_seconds": 30, "trusted_for_email": true}
	created := c.adm(201, post, path, body, "Idempotency-Key", "ciam-1").Map(c.t)
	id, _ := created["id"].(string)
	secret, _ := created["webhook_secret"].(string)
	if r := c.adm(201, post, path, body, "Idempotency-Key", "ciam-1"); r.Header.Get("Idempotent-Replayed") != "true" || r.Map(c.t)["webhook_secret"] != secret {
		c.t.Errorf("replayed issuer creation: %v %s", r.Header, r.Body)
	}
	c.adm(422, post, path, map[string]any{"name": "Other", "issuer": "https://other.example", "audiences": []string{"x"}}, "Idempotency-Key", "ciam-1")
	c.adm(409, post, path, body)
	c.reject(400, post, path, map[string]any{"name": "x", "issuer": p.Issuer(), "audiences": []string{"a"}, "algorithms": []string{"none"}}, c.admin...)
	c.reject(400, post, path, map[string]any{"name": "x", "issuer": p.Issuer()}, c.admin...)
	c.call(400, post, path, map[string]any{"name": "x", "issuer": "http://idp.example", "audiences": []string{"a"}}, c.admin...)
	c.pendingConflict(path, path, jsonBytes(c.t, body), c.admin...)
	c.adminErrors(post, path, body)
	c.adm(200, get, path, nil)
	c.adminErrors(get, path, nil)

	one := path + "/" + id
	c.adm(200, get, one, nil)
	c.adm(404, get, path+"/"+identity.NewID(), nil)
	c.adminErrors(get, one, nil)
	c.adm(200, patch, one, map[string]any{"name": "Contract CIAM 2", "clock_skew_seconds": 60})
	rotated := c.adm(200, patch, one, map[string]any{"rotate_webhook_secret": true}).Map(c.t)
	if s, _ := rotated["webhook_secret"].(string); s == "" || s == secret {
		c.t.Errorf("rotation: %v", rotated)
	}
	secret, _ = rotated["webhook_secret"].(string)
	c.reject(400, patch, one, map[string]any{"algorithms": []string{"HS256"}}, c.admin...)
	c.adm(404, patch, path+"/"+identity.NewID(), map[string]any{"name": "x"})
	other, _ := c.adm(201, post, path, map[string]any{"name": "Doomed", "issuer": "https://doomed.example", "audiences": []string{"x"}}).Map(c.t)["id"].(string)
	c.adm(409, patch, path+"/"+other, map[string]any{"issuer": p.Issuer()})
	// The same issuer written another way is one issuer: configured once.
	c.adm(422, patch, path+"/"+other, map[string]any{"issuer": p.Issuer() + "/"})
	c.adm(422, post, path, map[string]any{"name": "Slash", "issuer": p.Issuer() + "/", "audiences": []string{"x"}})
	c.adminErrors(patch, one, map[string]any{"name": "x"})
	doomed := path + "/" + other
	c.call(401, del, doomed, nil)
	c.call(401, del, doomed, nil, bearer("sk_not-a-key")...)
	c.call(403, del, doomed, nil, c.read...)
	c.call(400, del, doomed+"?x=%01", nil, c.admin...)
	c.adm(204, del, doomed, nil)
	c.adm(404, del, doomed, nil)

	// The collection API with a customer's token.
	app := "/v1/consents?property=" + c.s.demo.App.PublicKey
	tok := bearer(p.Token("contract-cust", "lupa"))
	grant := map[string]any{"method": "checkbox", "decisions": []map[string]any{
		{"purpose": "marketing_email", "version": 1, "decision": "granted"}, {"purpose": "analytics", "version": 1, "decision": "granted"}}}
	c.call(201, post, app, grant, tok...)
	c.call(200, get, app, nil, tok...)
	// The app's device joins the person with the token; another person cannot take it.
	anon := c.call(201, post, app, map[string]any{"method": "checkbox", "decisions": []map[string]any{
		{"purpose": "analytics", "decision": "denied"}}}).Map(c.t)
	dev, _ := anon["device_id"].(string)
	c.call(200, get, app, nil, append(slices.Clone(tok), "Lupa-Device-Id", dev)...)
	c.call(409, get, app, nil, append(bearer(p.Token("contract-other", "lupa")), "Lupa-Device-Id", dev)...)
	bad := bearer(ciamtest.Unsigned(p.Claims("contract-cust", "lupa", time.Now())))
	c.call(401, post, app, grant, bad...)
	c.call(401, get, app, nil, bad...)
	down := ciamtest.New(c.t)
	down.Down.Store(true)
	c.adm(201, post, path, map[string]any{"name": "Down", "issuer": down.Issuer(), "audiences": []string{"lupa"}})
	c.call(503, post, app, grant, bearer(down.Token("x", "lupa"))...)
	c.call(503, get, app, nil, bearer(down.Token("x", "lupa"))...)

	// Identity events.
	events := "/v1/identity/events/" + id
	now := time.Now()
	ev := event("user.created", "contract-cust", map[string]any{"email": "contract@example.fi", "email_verified": true})
	signed := ciamtest.WebhookHeaders(secret, "contract-1", now, ev)
	c.call(200, post, events, ev, signed...)
	if r := c.call(200, post, events, ev, signed...); r.Header.Get("Idempotent-Replayed") != "true" {
		c.t.Errorf("replayed event: %v", r.Header)
	}
	// user.merged joins a person Lupa knows into the remaining user's; a merged user Lupa never
	// met leaves nothing to join, and the answer still names the remaining person.
	gone := event("user.created", "contract-gone", nil)
	c.call(200, post, events, gone, ciamtest.WebhookHeaders(secret, "contract-merge-0", now, gone)...)
	for i, sub := range []string{"contract-gone", "contract-never-met"} {
		merged := event("user.merged", "contract-cust", map[string]any{"merged_sub": sub})
		c.call(200, post, events, merged, ciamtest.WebhookHeaders(secret, fmt.Sprintf("contract-merge-%d", i+1), now, merged)...)
	}
	changed := event("user.updated", "contract-cust", nil)
	c.call(422, post, events, changed, ciamtest.WebhookHeaders(secret, "contract-1", now, changed)...)
	unknown := event("user.renamed", "contract-cust", nil)
	c.call(422, post, events, unknown, ciamtest.WebhookHeaders(secret, "contract-2", now, unknown)...)
	noData := []byte(`{"type":"user.created"}`)
	c.reject(400, post, events, noData, ciamtest.WebhookHeaders(secret, "contract-3", now, noData)...)
	c.call(401, post, events, ev)
	c.call(401, post, events, ev, ciamtest.WebhookHeaders("whsec_"+secret[10:], "contract-4", now, ev)...)
	c.call(401, post, events, ev, ciamtest.WebhookHeaders(secret, "contract-5", now.Add(-10*time.Minute), ev)...)
	c.call(413, post, events, tooLarge(identityweb.PublicBodyLimit))
	c.call(415, post, events, ev, append(slices.Clone(signed), "Content-Type", "text/plain")...)
	c.call(400, post, events+"?x=%01", ev, signed...)
	// A delivery of the same webhook-id still being processed elsewhere: retry later.
	sum := sha256.Sum256(ev)
	if err := c.s.app.db.Write.Exec(`INSERT INTO ciam_webhook_ids (tenant_id, issuer_id, webhook_id, request_hash, status, response,
		created_at, expires_at) VALUES (?, ?, ?, ?, 0, ?, ?, ?)`, c.s.demo.Tenant.ID, id, "contract-busy", hex.EncodeToString(sum[:]),
		[]byte{}, now.UnixMilli(), now.Add(time.Hour).UnixMilli()).Error; err != nil {
		c.t.Fatal(err)
	}
	if r := c.call(409, post, events, ev, ciamtest.WebhookHeaders(secret, "contract-busy", now, ev)...); r.Header.Get("Retry-After") == "" {
		c.t.Errorf("409 without Retry-After: %v", r.Header)
	}
	c.ciamRun = &ciamContract{p: p, issuerID: id, secret: secret}
}

// ciamFailures runs with the writer stopped: a deleted user's consents cannot be withdrawn
// now, so the event is refused with 503 and the CIAM retries it.
func (c *contractRun) ciamFailures() {
	if c.ciamRun == nil {
		return
	}
	ev := event("user.deleted", "contract-cust", nil)
	c.call(503, post, "/v1/identity/events/"+c.ciamRun.issuerID, ev,
		ciamtest.WebhookHeaders(c.ciamRun.secret, "contract-deleted", time.Now(), ev)...)
}
