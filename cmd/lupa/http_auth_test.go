package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestHTTPAPIKeys: the server and admin APIs want a key, the right scope, and a key that
// has not been revoked.
func TestHTTPAPIKeys(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		cust := map[string]any{"identifier": map[string]any{"kind": "customer_number", "value": "C-5"}}
		record := map[string]any{"identifier": cust["identifier"], "method": "api",
			"decisions": []map[string]any{decision("marketing_email", 1, "granted")}}
		brand := map[string]any{"name": "Sneaky", "legal_name": "Sneaky Oy"}

		for _, c := range []struct {
			name    string
			method  string
			path    string
			body    any
			headers []string
		}{
			{"no key, server API", "POST", "/v1/subjects/state", cust, nil},
			{"no key, admin API", "GET", "/v1/admin/brands", nil, nil},
			{"no key, admin write", "POST", "/v1/admin/brands", brand, nil},
			{"empty bearer", "POST", "/v1/subjects/consents", record, []string{"Authorization", "Bearer "}},
			{"basic auth", "GET", "/v1/admin/brands", nil, []string{"Authorization", "Basic YWRtaW46YWRtaW4="}},
			{"unknown key", "POST", "/v1/consents/check", map[string]any{"purpose": "analytics", "identifiers": []any{cust["identifier"]}},
				[]string{"Authorization", "Bearer sk_thisisnotakeyofanyone0000000"}},
			{"property key as API key", "GET", "/v1/admin/tenant", nil, []string{"Authorization", "Bearer " + s.demo.WebShop.PublicKey}},
			{"unknown key, lower-case scheme", "GET", "/v1/admin/tenant", nil, []string{"Authorization", "bearer " + s.demo.AdminKey + "x"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				r := s.request(c.method, c.path, c.body, c.headers...)
				wantProblem(t, r, http.StatusUnauthorized)
				if h := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
					t.Fatalf("401 without a WWW-Authenticate challenge: %q", h)
				}
			})
		}

		// The scheme is case-insensitive (RFC 9110, section 11.1).
		for _, scheme := range []string{"bearer", "BEARER"} {
			if r := s.request(http.MethodGet, "/v1/admin/tenant", nil, "Authorization", scheme+" "+s.demo.AdminKey); r.Status != http.StatusOK {
				t.Fatalf("scheme %q: %d %s", scheme, r.Status, r.Body)
			}
		}

		readID, read := s.newKey(t, s.demo.AdminKey, "consent:read")
		_, write := s.newKey(t, s.demo.AdminKey, "consent:write")
		adminID, admin2 := s.newKey(t, s.demo.AdminKey, "admin")
		brandsBefore := string(s.admin(http.MethodGet, "/v1/admin/brands", nil).Body)

		// consent:read reads, but neither writes nor administers.
		wantProblem(t, s.withKey(read, http.MethodPost, "/v1/subjects/state", cust), http.StatusNotFound)
		wantProblem(t, s.withKey(read, http.MethodPost, "/v1/subjects/consents", record), http.StatusForbidden)
		wantProblem(t, s.withKey(read, http.MethodGet, "/v1/admin/brands", nil), http.StatusForbidden)
		wantProblem(t, s.withKey(read, http.MethodPost, "/v1/admin/brands", brand), http.StatusForbidden)
		wantProblem(t, s.withKey(read, http.MethodPost, "/v1/admin/api-keys", map[string]any{"name": "escalate", "scopes": []string{"admin"}}), http.StatusForbidden)
		wantProblem(t, s.withKey(read, http.MethodDelete, "/v1/admin/api-keys/"+adminID, nil), http.StatusForbidden)
		// consent:write writes and reads, but does not administer.
		recorded(t, s.withKey(write, http.MethodPost, "/v1/subjects/consents", record))
		if r := s.withKey(write, http.MethodPost, "/v1/subjects/state", cust); r.Status != http.StatusOK {
			t.Fatalf("consent:write reading state: %d %s", r.Status, r.Body)
		}
		wantProblem(t, s.withKey(write, http.MethodPatch, "/v1/admin/purposes/analytics", map[string]any{"reask_months": 1}), http.StatusForbidden)
		wantProblem(t, s.withKey(write, http.MethodPost, "/v1/admin/ledger/verify", nil), http.StatusForbidden)
		if got := string(s.admin(http.MethodGet, "/v1/admin/brands", nil).Body); got != brandsBefore {
			t.Fatalf("a refused key changed the brands:\n%s\n%s", brandsBefore, got)
		}
		// The key list never shows secrets.
		list := s.admin(http.MethodGet, "/v1/admin/api-keys", nil)
		if strings.Contains(string(list.Body), read) || strings.Contains(string(list.Body), s.demo.AdminKey) {
			t.Fatalf("key list shows a secret: %s", list.Body)
		}

		// A revoked key stops working at once.
		r := s.admin(http.MethodDelete, "/v1/admin/api-keys/"+readID, nil)
		if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"revoked_at"`) {
			t.Fatalf("revoke: %d %s", r.Status, r.Body)
		}
		wantProblem(t, s.withKey(read, http.MethodPost, "/v1/subjects/state", cust), http.StatusUnauthorized)
		// An admin key can revoke itself, and is then refused too.
		if r := s.withKey(admin2, http.MethodDelete, "/v1/admin/api-keys/"+adminID, nil); r.Status != http.StatusOK {
			t.Fatalf("self-revoke: %d %s", r.Status, r.Body)
		}
		wantProblem(t, s.withKey(admin2, http.MethodGet, "/v1/admin/brands", nil), http.StatusUnauthorized)
		// The audit log says who revoked what.
		a := s.admin(http.MethodGet, "/v1/admin/audit?action=api_key.revoke", nil)
		if strings.Count(string(a.Body), `"action":"api_key.revoke"`) != 2 || !strings.Contains(string(a.Body), "api_key:"+adminID) {
			t.Fatalf("audit of revocations: %s", a.Body)
		}
		// The other keys still work.
		recorded(t, s.withKey(write, http.MethodPost, "/v1/subjects/consents", record))
	})
}

// TestHTTPPublicAuth: the collection API knows its caller by the property key, the Origin
// allow-list for web properties, and answers CORS pre-flights.
func TestHTTPPublicAuth(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		web, app := s.demo.WebShop.PublicKey, s.demo.App.PublicKey
		before := s.ledger(t, s.demo.AdminKey)

		p := wantProblem(t, s.request(http.MethodPost, "/v1/consents", grantAnalytics(), "Origin", s.Origin), http.StatusUnauthorized, "property")
		_ = p
		wantProblem(t, s.request(http.MethodGet, "/v1/consents", nil, "Origin", s.Origin, "Lupa-Device-Id", "x"), http.StatusUnauthorized, "property")
		wantProblem(t, s.request(http.MethodPost, "/v1/consents?property="+s.demo.AdminKey, grantAnalytics(), "Origin", s.Origin), http.StatusUnauthorized)
		wantProblem(t, s.request(http.MethodPost, "/v1/consents?property=pk_nosuchpropertyatall00", grantAnalytics(), "Origin", s.Origin), http.StatusNotFound)
		wantProblem(t, s.request(http.MethodPost, "/v1/consents?property="+web, grantAnalytics(), "Origin", "https://evil.example"), http.StatusForbidden)
		wantProblem(t, s.request(http.MethodPost, "/v1/consents?property="+web, grantAnalytics(), "Origin", "https://shop.example.evil.example"), http.StatusForbidden)
		wantProblem(t, s.request(http.MethodPost, "/v1/consents?property="+web, grantAnalytics(), "Origin", "http://shop.example"), http.StatusForbidden)
		wantProblem(t, s.request(http.MethodPost, "/v1/consents?property="+web, grantAnalytics(), "Origin", "null"), http.StatusForbidden)
		wantProblem(t, s.request(http.MethodPost, "/v1/consents?property="+web, grantAnalytics()), http.StatusForbidden)
		wantProblem(t, s.request(http.MethodGet, "/v1/consents?property="+web, nil, "Lupa-Device-Id", "x"), http.StatusForbidden)
		// An app's key is not for web pages.
		wantProblem(t, s.request(http.MethodPost, "/v1/consents?property="+app, grantAnalytics(), "Origin", s.Origin), http.StatusForbidden)
		if after := s.ledger(t, s.demo.AdminKey); after != before {
			t.Fatalf("refused public requests were written: %+v → %+v", before, after)
		}

		// An app sends no Origin and may record device-level decisions.
		o := recorded(t, s.request(http.MethodPost, "/v1/consents?property="+app, grantAnalytics()))
		g := s.request(http.MethodGet, "/v1/consents?property="+app, nil, "Lupa-Device-Id", o.DeviceID)
		if g.Status != http.StatusOK || !strings.Contains(string(g.Body), `"purpose":"analytics","state":"granted"`) {
			t.Fatalf("app reads its device: %d %s", g.Status, g.Body)
		}
		wantProblem(t, s.request(http.MethodPost, "/v1/consents?property="+app, banner(decision("marketing_email", 1, "granted"))),
			http.StatusUnprocessableEntity, "decisions[0].purpose")

		// The web shop from its own origin works, and the page may read the answer.
		r := s.collect(grantAnalytics())
		recorded(t, r)
		if r.Header.Get("Access-Control-Allow-Origin") != s.Origin || !strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "Idempotent-Replayed") {
			t.Fatalf("CORS headers on an allowed POST: %v", r.Header)
		}
		if !strings.Contains(r.Header.Get("Vary"), "Origin") {
			t.Fatalf("answer varies by Origin but does not say so: %v", r.Header)
		}

		// CORS pre-flight.
		pre := s.request(http.MethodOptions, "/v1/consents?property="+web, nil, "Origin", s.Origin,
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type, idempotency-key")
		if pre.Status != http.StatusNoContent {
			t.Fatalf("pre-flight of an allowed origin: %d %s", pre.Status, pre.Body)
		}
		if pre.Header.Get("Access-Control-Allow-Origin") != s.Origin {
			t.Fatalf("pre-flight ACAO %q", pre.Header.Get("Access-Control-Allow-Origin"))
		}
		for _, m := range []string{"POST", "GET"} {
			if !strings.Contains(pre.Header.Get("Access-Control-Allow-Methods"), m) {
				t.Fatalf("pre-flight allows methods %q, not %s", pre.Header.Get("Access-Control-Allow-Methods"), m)
			}
		}
		for _, h := range []string{"Content-Type", "Idempotency-Key", "Lupa-Device-Id"} {
			if !strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), h) {
				t.Fatalf("pre-flight allows headers %q, not %s", pre.Header.Get("Access-Control-Allow-Headers"), h)
			}
		}
		for _, bad := range []struct{ origin, key string }{{"https://evil.example", web}, {s.Origin, app}} {
			pre := s.request(http.MethodOptions, "/v1/consents?property="+bad.key, nil, "Origin", bad.origin,
				"Access-Control-Request-Method", "POST")
			wantProblem(t, pre, http.StatusForbidden)
			if h := pre.Header.Get("Access-Control-Allow-Origin"); h != "" {
				t.Fatalf("pre-flight of a refused origin answered ACAO %q", h)
			}
		}
		pre = s.request(http.MethodOptions, "/v1/consents", nil, "Origin", s.Origin, "Access-Control-Request-Method", "POST")
		if pre.Status < 400 || pre.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("pre-flight without a property: %d %v", pre.Status, pre.Header)
		}

		// Allow-list changes take effect at once; an archived property stops working.
		r = s.admin(http.MethodPatch, "/v1/admin/properties/"+s.demo.WebShop.ID, map[string]any{"allowed_origins": []string{"https://new-shop.example"}})
		if r.Status != http.StatusOK {
			t.Fatalf("patch origins: %d %s", r.Status, r.Body)
		}
		wantProblem(t, s.collect(grantAnalytics()), http.StatusForbidden)
		recorded(t, s.request(http.MethodPost, "/v1/consents?property="+web, grantAnalytics(), "Origin", "https://new-shop.example"))
		if r := s.admin(http.MethodPatch, "/v1/admin/properties/"+s.demo.App.ID, map[string]any{"status": "archived"}); r.Status != http.StatusOK {
			t.Fatalf("archive: %d %s", r.Status, r.Body)
		}
		wantProblem(t, s.request(http.MethodPost, "/v1/consents?property="+app, grantAnalytics()), http.StatusNotFound)
	})
}
