package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/integrations/mailchimp/mailchimptest"
)

// routeMatches says whether a concrete path (its query string aside) is one of a gin route
// pattern's: each :param matches one segment.
func routeMatches(pattern, path string) bool {
	path, _, _ = strings.Cut(path, "?")
	ps, cs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(cs) {
		return false
	}
	for i, p := range ps {
		if !strings.HasPrefix(p, ":") && p != cs[i] {
			return false
		}
	}
	return true
}

// auditExempt are the admin writes that leave no audit row, and why.
var auditExempt = map[string]string{
	"POST /v1/admin/subjects/lookup": "reads only; every lookup is written to the access log (GET /v1/admin/access-log) instead",
	"POST /v1/admin/ledger/verify":   "reads only: checks the ledger and changes nothing",
}

// TestHTTPAdminWritesAreAudited: every admin route that changes something leaves an audit
// row naming who (the API key), what, which object and when. The router's routes are the
// list: a new admin write route fails here until it is driven below or exempt with a reason.
func TestHTTPAdminWritesAreAudited(t *testing.T) {
	env := map[string]string{"LUPA_ALLOW_PRIVATE_WEBHOOKS": "true", "LUPA_RATE_LIMIT": "100000", "LUPA_RATE_BURST": "100000"}
	eachServer(t, env, func(t *testing.T, s *testServer) {
		ctx := context.Background()
		keyID, key := s.newKey(t, s.demo.AdminKey, "admin")
		actor := "api_key:" + keyID
		driven := map[string]bool{}
		var routes []gin.RouteInfo
		for _, r := range s.Config.Handler.(*gin.Engine).Routes() {
			if strings.HasPrefix(r.Path, "/v1/admin/") && r.Method != http.MethodGet {
				routes = append(routes, r)
			}
		}
		newest := func() string {
			var page struct {
				Items []identity.AuditEntry `json:"items"`
			}
			s.withKey(key, http.MethodGet, "/v1/admin/audit?limit=1", nil).JSON(t, &page)
			if len(page.Items) == 0 {
				return ""
			}
			return page.Items[0].ID
		}
		// write sends one admin write and returns its answer and the audit row with action that
		// it left.
		write := func(want int, method, path string, body any, action, objectType string) (*response, identity.AuditEntry) {
			t.Helper()
			route := ""
			for _, r := range routes {
				if r.Method == method && routeMatches(r.Path, path) {
					route = r.Method + " " + r.Path
				}
			}
			if route == "" {
				t.Fatalf("%s %s is no admin write route", method, path)
			}
			driven[route] = true
			last := newest()
			r := s.withKey(key, method, path, body)
			if r.Status != want {
				t.Fatalf("%s: %d, want %d: %s", route, r.Status, want, r.Body)
			}
			var page struct {
				Items []identity.AuditEntry `json:"items"`
			}
			s.withKey(key, http.MethodGet, "/v1/admin/audit?limit=20", nil).JSON(t, &page)
			for _, e := range page.Items {
				if e.ID == last {
					break
				}
				if e.Action == action {
					if e.Actor != actor || e.ObjectType != objectType || e.ObjectID == "" || time.Since(e.At) > time.Minute {
						t.Fatalf("%s: audit row by %s of %s %q at %s, want actor %s, object type %s, an object id and the time",
							route, e.Actor, e.ObjectType, e.ObjectID, e.At, actor, objectType)
					}
					return r, e
				}
			}
			var seen []string
			for _, e := range page.Items {
				seen = append(seen, e.Action+" "+e.ObjectType+" "+e.ObjectID)
			}
			t.Fatalf("%s left no audit row %s (newest rows: %v)", route, action, seen)
			return nil, identity.AuditEntry{}
		}
		// create sends an admin POST that creates an object, checks its audit row as write
		// does, and returns the new object's id.
		create := func(path string, body any, action, objectType string) string {
			t.Helper()
			r, _ := write(201, http.MethodPost, path, body, action, objectType)
			v, _ := r.Map(t)["id"].(string)
			if v == "" {
				t.Fatalf("no id: %s", r.Body)
			}
			return v
		}
		const admin = "/v1/admin"

		// The tenant, its brands, properties, banners and keys.
		write(200, "PATCH", admin+"/tenant", map[string]any{"phone": "+358 9 555 0100"}, "tenant.update", "tenant")
		brand := create(admin+"/brands", map[string]any{"name": "Audit", "legal_name": "Audit Oy"}, "brand.create", "brand")
		write(200, "PATCH", admin+"/brands/"+brand, map[string]any{"address": "Testikatu 1"}, "brand.update", "brand")
		prop := create(admin+"/properties", map[string]any{"name": "Audit app", "brand_id": brand, "kind": "app"},
			"property.create", "property")
		write(200, "PATCH", admin+"/properties/"+prop, map[string]any{"name": "Audit app 2"}, "property.update", "property")
		write(200, "PUT", admin+"/properties/"+prop+"/banner", map[string]any{"position": "dialog"}, "banner.update", "property")
		doomedKey := create(admin+"/api-keys", map[string]any{"name": "doomed", "scopes": []string{"consent:read"}},
			"api_key.create", "api_key")
		write(200, "DELETE", admin+"/api-keys/"+doomedKey, nil, "api_key.revoke", "api_key")

		// Identity providers.
		issuer := create(admin+"/ciam-issuers", map[string]any{"name": "Audit CIAM",
			"issuer": "https://id.audit.example", "audiences": []string{"lupa"}}, "ciam_issuer.create", "ciam_issuer")
		write(200, "PATCH", admin+"/ciam-issuers/"+issuer, map[string]any{"name": "Audit CIAM 2"}, "ciam_issuer.update", "ciam_issuer")
		write(204, "DELETE", admin+"/ciam-issuers/"+issuer, nil, "ciam_issuer.delete", "ciam_issuer")
		login := create(admin+"/login-providers", map[string]any{"kind": "oidc", "label": "Audit ID",
			"issuer": "https://login.audit.example", "client_id": "lupa", "client_secret": "s3cret"}, "login_provider.create", "login_provider")
		write(200, "PATCH", admin+"/login-providers/"+login, map[string]any{"label": "Audit ID 2"}, "login_provider.update", "login_provider")
		write(204, "DELETE", admin+"/login-providers/"+login, nil, "login_provider.delete", "login_provider")

		// Recipients, purposes, their versions and inventories.
		recipient := create(admin+"/recipients", map[string]any{"name": "Audit partner", "legal_name": "Audit Partner AB",
			"kind": "partner"}, "recipient.create", "recipient")
		write(200, "PATCH", admin+"/recipients/"+recipient, map[string]any{"name": "Audit partner 2"}, "recipient.update", "recipient")
		write(201, "POST", admin+"/purposes", map[string]any{"key": "audit_signals", "level": "device", "legal_basis": "consent"},
			"purpose.create", "purpose")
		write(200, "PATCH", admin+"/purposes/audit_signals", map[string]any{"reask_months": 6}, "purpose.update", "purpose")
		write(201, "POST", admin+"/purposes/audit_signals/versions", map[string]any{"texts": versionTexts("Audit")},
			"purpose_version.create", "purpose_version")
		write(200, "PATCH", admin+"/purposes/audit_signals/versions/1", map[string]any{"material": true}, "purpose_version.update", "purpose_version")
		write(200, "POST", admin+"/purposes/audit_signals/versions/1/publish", nil, "purpose_version.publish", "purpose_version")
		write(200, "PUT", admin+"/purposes/analytics/inventory", map[string]any{"vendors": []any{}}, "inventory.update", "purpose")

		// The ledger: a root signed on request names who asked.
		s.newDevice(t, grantAnalytics())
		r, row := write(201, "POST", admin+"/ledger/roots", nil, "ledger_root.sign", "ledger_root")
		if n := r.Map(t)["number"]; row.ObjectID != strconv.Itoa(int(n.(float64))) || !strings.Contains(string(row.After), `"root":"`) {
			t.Fatalf("the root's audit row: %+v for %s", row, r.Body)
		}

		// The data map and an erasure confirmation.
		system := create(admin+"/data-map/systems", accountingSystem("Audit books"),
			"data_map_system.create", "data_map_system")
		write(200, "PATCH", admin+"/data-map/systems/"+system, map[string]any{"description": "Books."}, "data_map_system.update", "data_map_system")
		_, request := openErasure(t, s, s.demo.Tenant.ID, "AUDIT-1", "audit@example.fi")
		write(200, "POST", admin+"/data-map/systems/"+system+"/erasures/"+request+"/confirm", map[string]any{"note": "Deleted."},
			"erasure.confirm", "dsr_request")
		write(204, "DELETE", admin+"/data-map/systems/"+system, nil, "data_map_system.delete", "data_map_system")

		// A webhook endpoint whose receiver refuses the first delivery (a dead letter).
		recv := refuseFirstReceiver(t)
		step := func() {
			t.Helper()
			if err := s.app.deliveries.Step(ctx); err != nil {
				t.Fatal(err)
			}
		}
		hook := create(admin+"/webhooks", map[string]any{"url": recv.URL, "event_types": []string{"consent.updated"},
			"recipient_kind": "processor"}, "webhook.create", "webhook")
		one := admin + "/webhooks/" + hook
		write(200, "PATCH", one, map[string]any{"description": "CRM"}, "webhook.update", "webhook")
		write(200, "POST", one+"/rotate-secret", map[string]any{"overlap_seconds": 0}, "webhook.rotate_secret", "webhook")
		write(200, "POST", one+"/disable", nil, "webhook.disable", "webhook")
		write(200, "POST", one+"/enable", nil, "webhook.enable", "webhook")
		s.newDevice(t, grantAnalytics())
		step()
		dead := deadLetter(t, s, key, one+"/dead-letters")
		_, row = write(200, "POST", one+"/deliveries/"+dead+"/replay", nil, "webhook.replay", "webhook")
		if row.ObjectID != hook {
			t.Fatalf("a webhook replay is audited on %s, want the endpoint %s", row.ObjectID, hook)
		}
		write(200, "POST", one+"/dead-letters/replay", nil, "webhook.replay", "webhook")
		write(204, "DELETE", one, nil, "webhook.delete", "webhook")

		// A Mailchimp connector that refuses the first sync; its replays and reconcile are the
		// connector's, not a webhook's.
		mc := mailchimptest.New(t, mailchimptest.Options{})
		mc.AddList("aud1")
		conn := create(admin+"/connectors", map[string]any{"vendor": "mailchimp", "name": "Audit newsletter",
			"recipient_kind": "processor", "base_url": mc.BaseURL(), "credentials": map[string]any{"api_key": mc.Key()},
			"mappings": []map[string]any{{"purpose": "marketing_email", "list_id": "aud1"}}}, "connector.create", "connector")
		one = admin + "/connectors/" + conn
		write(200, "PATCH", one, map[string]any{"description": "Weekly"}, "connector.update", "connector")
		write(200, "POST", one+"/disable", nil, "connector.disable", "connector")
		write(200, "POST", one+"/enable", nil, "connector.enable", "connector")
		write(200, "POST", one+"/rotate-inbound-secret", nil, "connector.rotate_inbound_secret", "connector")
		mc.FailNext(mailchimptest.BadRequest("Invalid Resource", "rejected"))
		if _, err := s.app.consent.Record(ctx, &consent.RecordRequest{TenantID: s.demo.Tenant.ID,
			Identifier: &identity.Identifier{Kind: identity.IDEmail, Value: "audit.person@example.com"}, Method: consent.MethodAPI,
			Language: "fi", Actor: "test", Decisions: []consent.DecisionInput{{Purpose: "marketing_email", Version: 1, Decision: consent.Granted}}}); err != nil {
			t.Fatal(err)
		}
		step()
		failed := deadLetter(t, s, key, one+"/dead-letters")
		for _, path := range []string{one + "/syncs/" + failed + "/replay", one + "/dead-letters/replay"} {
			if _, row := write(200, "POST", path, nil, "connector.replay", "connector"); row.ObjectID != conn {
				t.Fatalf("a sync replay is audited on %s, want the connector %s", row.ObjectID, conn)
			}
		}
		r, row = write(200, "POST", one+"/reconcile", nil, "connector.reconcile", "connector")
		var after struct {
			Recorded *int `json:"recorded"`
		}
		if err := json.Unmarshal(row.After, &after); err != nil || after.Recorded == nil || row.ObjectID != conn || len(row.Before) < 3 {
			t.Fatalf("the reconcile's audit row: %+v (%v) for %s", row, err, r.Body)
		}
		// A reconcile the vendor fails is audited too: it may have recorded some before failing.
		mc.FailNext(mailchimptest.ServerError(500), mailchimptest.ServerError(500), mailchimptest.ServerError(500))
		_, row = write(502, "POST", one+"/reconcile", nil, "connector.reconcile", "connector")
		var failedRun struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal(row.After, &failedRun); err != nil || !strings.Contains(failedRun.Error, "vendor") {
			t.Fatalf("the failed reconcile's audit row: %s (%v)", row.After, err)
		}
		write(204, "DELETE", one, nil, "connector.delete", "connector")

		for _, r := range routes {
			route := r.Method + " " + r.Path
			if _, ok := auditExempt[route]; !ok && !driven[route] {
				t.Errorf("%s changes something but no test shows its audit row: drive it above, or exempt it in auditExempt with the reason", route)
			}
		}
	})
}

// deadLetter returns the id of the only dead letter of an endpoint or connector.
func deadLetter(t *testing.T, s *testServer, key, path string) string {
	t.Helper()
	var page struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	r := s.withKey(key, http.MethodGet, path, nil)
	r.JSON(t, &page)
	if len(page.Items) != 1 {
		t.Fatalf("dead letters: %d %s", r.Status, r.Body)
	}
	return page.Items[0].ID
}
