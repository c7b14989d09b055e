package main

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/integrations/hubspot/hubspottest"
	"github.com/lupa-cmp/lupa/integrations/mailchimp/mailchimptest"
)

// connectors covers the connectors' admin routes against a local Mailchimp: create, read,
// change, disable and enable, the sync log with its statuses, failed syncs and replays, a
// reconcile (and a vendor that fails it), removal.
func (c *contractRun) connectors() {
	// Mailchimp's times have whole seconds: its clock runs a little ahead, so an unsubscribe
	// there is later than the grant made here just before.
	mc := mailchimptest.New(c.t, mailchimptest.Options{Now: func() time.Time { return time.Now().Add(2 * time.Second) }})
	mc.AddList("aud1", "perm1")
	step := func() {
		if err := c.s.app.deliveries.Step(context.Background()); err != nil {
			c.t.Fatal(err)
		}
	}

	const path = "/v1/admin/connectors"
	body := map[string]any{"vendor": "mailchimp", "name": "Newsletter", "recipient_kind": "processor", "base_url": mc.BaseURL(),
		"mappings":    []map[string]any{{"purpose": "marketing_email", "list_id": "aud1", "marketing_permissions": []string{"perm1"}}},
		"credentials": map[string]any{"api_key": mc.Key()}}
	created := c.adm(201, post, path, body, "Idempotency-Key", "connector-1").Map(c.t)
	id, _ := created["id"].(string)
	if u, _ := created["inbound_url"].(string); !strings.Contains(u, "/hooks/mailchimp/") || !strings.Contains(u, "secret=") || created["credentials"] != nil {
		c.t.Errorf("created connector: %v", created)
	}
	if r := c.adm(201, post, path, body, "Idempotency-Key", "connector-1"); r.Header.Get("Idempotent-Replayed") != "true" {
		c.t.Errorf("replayed connector creation: %v", r.Header)
	}
	c.adm(422, post, path, with(body, "name", "other"), "Idempotency-Key", "connector-1")
	c.adm(422, post, path, with(with(body, "recipient_kind", "third_party"), "recipient_id", identity.NewID()))
	c.reject(400, post, path, with(body, "vendor", "sendgrid"), c.admin...)
	c.reject(400, post, path, map[string]any{"vendor": "mailchimp"}, c.admin...)
	c.call(400, post, path, with(body, "credentials", map[string]any{"api_key": "nodatacentre"}), c.admin...)
	c.call(400, post, path, with(body, "mappings", []map[string]any{{"purpose": "marketing_email"}}), c.admin...)
	c.pendingConflict(path, path, jsonBytes(c.t, body), c.admin...)
	c.adminErrors(post, path, body)
	list := c.adm(200, get, path, nil).Map(c.t)
	if items, _ := list["items"].([]any); len(items) != 1 {
		c.t.Errorf("connectors: %v", list)
	}
	c.adminErrors(get, path, nil)

	one := path + "/" + id
	if got := c.adm(200, get, one, nil).Map(c.t); got["inbound_url"] != nil {
		c.t.Errorf("Mailchimp's inbound URL (with its secret) was shown again: %v", got)
	}
	c.adm(404, get, path+"/con_"+identity.NewID(), nil)
	c.adminErrors(get, one, nil)
	c.adm(200, patch, one, map[string]any{"description": "Weekly newsletter", "credentials": map[string]any{"api_key": mc.Key()}})
	c.reject(400, patch, one, map[string]any{"mappings": []any{}}, c.admin...)
	c.adm(404, patch, path+"/con_"+identity.NewID(), map[string]any{"description": "x"})
	c.adm(422, patch, one, map[string]any{"recipient_kind": "third_party", "recipient_id": "nope"})
	c.adminErrors(patch, one, map[string]any{"description": "x"})

	for _, action := range []string{"/disable", "/enable"} {
		c.keyed(200, path+"/:id"+action, one+action, "connector"+action)
		c.adm(404, post, path+"/con_"+identity.NewID()+action, nil)
		c.adminErrors(post, one+action, nil)
	}

	// Two changes: Mailchimp refuses the first (400, final), takes the second.
	mc.FailNext(mailchimptest.BadRequest("Invalid Resource", "rejected"))
	c.grantEmail("contract.a@example.com")
	step()
	c.grantEmail("contract.b@example.com")
	step()
	syncs := one + "/syncs"
	page := c.adm(200, get, syncs+"?limit=1", nil).Map(c.t)
	items, _ := page["items"].([]any)
	next, _ := page["next"].(string)
	if len(items) != 1 || next == "" || items[0].(map[string]any)["sync_status"] != "synced" {
		c.t.Fatalf("first page: %v", page)
	}
	synced := items[0].(map[string]any)["id"].(string)
	c.adm(200, get, syncs+"?limit=1&cursor="+next, nil)
	c.adm(200, get, syncs+"?status=skipped", nil)
	c.reject(400, get, syncs+"?status=lost", nil, c.admin...)
	c.reject(400, get, syncs+"?limit=0", nil, c.admin...)
	c.adm(404, get, path+"/con_"+identity.NewID()+"/syncs", nil)
	c.adminErrors(get, syncs, nil)

	dead := one + "/dead-letters"
	dl := c.adm(200, get, dead, nil).Map(c.t)
	deadItems, _ := dl["items"].([]any)
	if len(deadItems) != 1 || deadItems[0].(map[string]any)["sync_status"] != "failed" {
		c.t.Fatalf("failed syncs: %v", dl)
	}
	deadID := deadItems[0].(map[string]any)["id"].(string)
	c.reject(400, get, dead+"?limit=500", nil, c.admin...)
	c.adm(404, get, path+"/con_"+identity.NewID()+"/dead-letters", nil)
	c.adminErrors(get, dead, nil)

	d := c.adm(200, get, syncs+"/"+deadID, nil).Map(c.t)
	if e, _ := d["last_error"].(string); !strings.Contains(e, "Invalid Resource") || strings.Contains(e, "contract.a@") {
		c.t.Errorf("failed sync: %v", d)
	}
	c.adm(404, get, syncs+"/msg_nope", nil)
	c.adminErrors(get, syncs+"/"+deadID, nil)

	replayOne := syncs + "/" + deadID + "/replay"
	if r := c.keyed(200, path+"/:id/syncs/:delivery/replay", replayOne, "sync-replay-1").Map(c.t); r["queued"] != float64(1) {
		c.t.Errorf("replay: %v", r)
	}
	c.adm(409, post, syncs+"/"+synced+"/replay", nil)
	c.adm(404, post, syncs+"/msg_nope/replay", nil)
	c.adminErrors(post, replayOne, nil)
	step()
	if _, ok := mc.Member("aud1", "contract.a@example.com"); !ok {
		c.t.Error("the replayed sync did not reach Mailchimp")
	}
	replayAll := dead + "/replay"
	c.keyed(200, path+"/:id/dead-letters/replay", replayAll, "sync-replay-all")
	c.adm(404, post, path+"/con_"+identity.NewID()+"/dead-letters/replay", nil)
	c.adminErrors(post, replayAll, nil)

	reconcile := one + "/reconcile"
	mc.PersonUnsubscribes("aud1", "contract.b@example.com")
	if r := c.keyed(200, path+"/:id/reconcile", reconcile, "reconcile-1").Map(c.t); r["recorded"] != float64(1) {
		c.t.Errorf("reconcile: %v", r)
	}
	mc.FailNext(mailchimptest.ServerError(500), mailchimptest.ServerError(500), mailchimptest.ServerError(500))
	c.adm(502, post, reconcile, nil)
	c.adm(404, post, path+"/con_"+identity.NewID()+"/reconcile", nil)
	c.adminErrors(post, reconcile, nil)

	c.call(401, del, one, nil)
	c.call(403, del, one, nil, c.read...)
	c.call(400, del, one+"?x=%01", nil, c.admin...)
	c.adm(204, del, one, nil)
	c.adm(404, del, one, nil)
}

// grantEmail records a grant of marketing email for the person with this address, as the
// shop's back end would.
func (c *contractRun) grantEmail(email string) {
	c.t.Helper()
	_, err := c.s.app.consent.Record(context.Background(), &consent.RecordRequest{TenantID: c.s.demo.Tenant.ID,
		Identifier: &identity.Identifier{Kind: identity.IDEmail, Value: email}, Method: consent.MethodAPI, Language: "fi",
		Actor: "test", Decisions: []consent.DecisionInput{{Purpose: "marketing_email", Version: 1, Decision: consent.Granted}}})
	if err != nil {
		c.t.Fatal(err)
	}
}

// vendorHooks covers the inbound webhook routes: Mailchimp's URL check and audience
// events, HubSpot's signed events; the connectors stay for failures() to find the database
// gone.
func (c *contractRun) vendorHooks() {
	mc := mailchimptest.New(c.t, mailchimptest.Options{})
	mc.AddList("aud9")
	hs := hubspottest.New(c.t, hubspottest.Options{})
	hs.AddSubscription(9001, "Newsletter")
	const admin = "/v1/admin/connectors"
	mcc := c.adm(201, post, admin, map[string]any{"vendor": "mailchimp", "name": "Inbound MC", "recipient_kind": "processor",
		"base_url": mc.BaseURL(), "mappings": []map[string]any{{"purpose": "marketing_email", "list_id": "aud9"}},
		"credentials": map[string]any{"api_key": mc.Key()}}).Map(c.t)
	hsc := c.adm(201, post, admin, map[string]any{"vendor": "hubspot", "name": "Inbound HS", "recipient_kind": "processor",
		"base_url": hs.URL(), "mappings": []map[string]any{{"purpose": "marketing_email", "subscription_id": 9001}},
		"credentials": map[string]any{"access_token": hs.Token(), "client_secret": hs.ClientSecret()}}).Map(c.t)
	inbound := func(m map[string]any) string {
		u, _ := m["inbound_url"].(string)
		return strings.TrimPrefix(u, c.s.app.cfg.PublicURL)
	}
	mcPath, hsPath := inbound(mcc), inbound(hsc)
	mcBase, _, _ := strings.Cut(mcPath, "?")
	c.vendor = vendorRun{mcPath: mcPath, hsPath: hsPath, mc: mc, hs: hs}

	c.call(200, get, mcPath, nil)
	// A new inbound secret: the old URL stops working, the new one works.
	rotate := admin + "/" + mcc["id"].(string) + "/rotate-inbound-secret"
	rotated := c.keyed(200, admin+"/:id/rotate-inbound-secret", rotate, "inbound-1").Map(c.t)
	c.call(404, get, mcPath, nil)
	mcPath = inbound(rotated)
	c.vendor.mcPath = mcPath
	c.call(200, get, mcPath, nil)
	c.adm(409, post, admin+"/"+hsc["id"].(string)+"/rotate-inbound-secret", nil)
	c.adm(404, post, admin+"/con_"+identity.NewID()+"/rotate-inbound-secret", nil)
	c.adminErrors(post, rotate, nil)
	c.call(404, get, mcBase+"?secret=wrong", nil)
	c.call(404, get, "/hooks/mailchimp/"+identity.NewID()+"/"+mcc["id"].(string)+"?secret=x", nil)
	c.call(400, get, mcPath+"&x=%01", nil)

	c.grantEmail("hook.a@example.com")
	// Mailchimp says when it happened, to the second: a second after the grant.
	form := func(email string) string {
		f := mc.UnsubscribeForm("aud9", email, "manual")
		f.Set("fired_at", time.Now().Add(time.Second).UTC().Format(time.DateTime))
		return f.Encode()
	}
	formType := []string{"Content-Type", "application/x-www-form-urlencoded"}
	c.vendorCall(200, mcPath, form("hook.a@example.com"), formType...)
	if st := c.personState("hook.a@example.com", "marketing_email"); st != "withdrawn" {
		c.t.Errorf("after Mailchimp's unsubscribe: %s", st)
	}
	c.vendorCall(200, mcPath, form("nobody@example.com"), formType...) // unknown person: ignored
	c.vendorCall(404, mcBase+"?secret=wrong", form("hook.a@example.com"), formType...)
	c.vendorCall(400, mcPath, "type=unsubscribe&data%5Blist_id%5D=other&data%5Bemail%5D=x%40example.com", formType...)
	c.vendorCall(413, mcPath, "type=unsubscribe&x="+strings.Repeat("a", 70<<10), formType...)

	c.grantEmail("hook.b@example.com")
	c.grantEmail("hook.c@example.com")                                    // for vendorFailures
	if err := c.s.app.deliveries.Step(context.Background()); err != nil { // the contacts exist at HubSpot after the sync
		c.t.Fatal(err)
	}
	c.hubspotEvent(204, hsPath, "hook.b@example.com", 9001, "")
	if st := c.personState("hook.b@example.com", "marketing_email"); st != "withdrawn" {
		c.t.Errorf("after HubSpot's opt-out: %s", st)
	}
	c.hubspotEvent(401, hsPath, "hook.b@example.com", 9001, "tampered")
	c.hubspotRaw(400, hsPath, []byte("[1,"))
	c.vendorCall(404, "/hooks/hubspot/"+identity.NewID()+"/"+hsc["id"].(string), "[]",
		"X-HubSpot-Signature-v3", "x", "X-HubSpot-Request-Timestamp", "1")
	c.vendorCall(413, hsPath, "["+strings.Repeat(" ", 2<<20)+"]", "X-HubSpot-Signature-v3", "x", "X-HubSpot-Request-Timestamp", "1")
}

// vendorRun is what vendorHooks leaves for failures().
type vendorRun struct {
	mcPath, hsPath string
	mc             *mailchimptest.Server
	hs             *hubspottest.Server
}

// hubspotEvent sends HubSpot's opt-out event for the contact, signed for Lupa's public URL
// (tamper: signed, then changed).
func (c *contractRun) hubspotEvent(want int, path, email string, subscription int64, tamper string) {
	c.t.Helper()
	id := c.vendor.hs.PersonOptsOut(email, subscription)
	body := jsonBytes(c.t, []any{c.vendor.hs.OptOutEvent(id, subscription)})
	ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
	sig := hubspottest.Sign(c.vendor.hs.ClientSecret(), post, c.s.app.cfg.PublicURL+path, body, ts)
	if tamper != "" {
		body = append(body[:len(body)-1], []byte(`,{}]`)...)
	}
	c.vendorCall(want, path, body, "X-HubSpot-Signature-v3", sig, "X-HubSpot-Request-Timestamp", ts)
}

// hubspotRaw posts body to the HubSpot route, correctly signed.
func (c *contractRun) hubspotRaw(want int, path string, body []byte) {
	c.t.Helper()
	ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
	sig := hubspottest.Sign(c.vendor.hs.ClientSecret(), post, c.s.app.cfg.PublicURL+path, body, ts)
	c.vendorCall(want, path, body, "X-HubSpot-Signature-v3", sig, "X-HubSpot-Request-Timestamp", ts)
}

// vendorCall posts a vendor's own format: the answer is checked against the document, the
// request is the vendor's (form-encoded, or HubSpot's event array).
func (c *contractRun) vendorCall(want int, path string, body any, headers ...string) *response {
	c.t.Helper()
	return c.exchange(requestAny, want, post, path, body, headers...)
}

// vendorFailures: with the writer closed the webhooks answer 503 (the vendors retry), and
// with the database gone the URL check does too.
func (c *contractRun) vendorFailures() {
	formType := []string{"Content-Type", "application/x-www-form-urlencoded"}
	c.vendorCall(503, c.vendor.mcPath, c.vendor.mc.UnsubscribeForm("aud9", "hook.c@example.com", "manual").Encode(), formType...)
	c.hubspotEvent(503, c.vendor.hsPath, "hook.c@example.com", 9001, "")
}

// personState is the state of a purpose of the person with this address.
func (c *contractRun) personState(email, purpose string) string {
	c.t.Helper()
	v, err := c.s.app.consent.SubjectState(context.Background(), c.s.demo.Tenant.ID, identity.Identifier{Kind: identity.IDEmail, Value: email}, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, p := range v.State {
		if p.Purpose == purpose {
			return p.State
		}
	}
	return ""
}
