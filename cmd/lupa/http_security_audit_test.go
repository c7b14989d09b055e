package main

// Findings of the security audit of the JSON APIs, each a test that failed before its fix.

import (
	"net/http"
	"testing"
)

// TestSecurityAuditAPINoStore: the server and admin APIs' answers are Cache-Control:
// no-store unless a handler says they may be cached. Only some handlers said so (the
// secrets shown once, the subject lookups), so the tenant with its contact address, the
// audit log with the people who acted and the addresses they changed, API keys, webhook
// deliveries and erasure progress could be kept by a browser's cache (an admin console
// calling the API) or a proxy's.
func TestSecurityAuditAPINoStore(t *testing.T) {
	eachServer(t, nil, func(t *testing.T, s *testServer) {
		_, readKey := s.newKey(t, s.demo.AdminKey, "consent:read")
		for _, c := range []struct {
			key, method, path string
			body              any
		}{
			{s.demo.AdminKey, http.MethodGet, "/v1/admin/tenant", nil},
			{s.demo.AdminKey, http.MethodGet, "/v1/admin/audit", nil},
			{s.demo.AdminKey, http.MethodGet, "/v1/admin/api-keys", nil},
			{s.demo.AdminKey, http.MethodGet, "/v1/admin/properties", nil},
			{s.demo.AdminKey, http.MethodGet, "/v1/admin/webhooks", nil},
			{s.demo.AdminKey, http.MethodGet, "/v1/admin/data-map", nil},
			{readKey, http.MethodPost, "/v1/consents/check", map[string]any{"purpose": "analytics",
				"identifiers": []any{map[string]any{"kind": "email", "value": "nobody@esimerkki.fi"}}}},
		} {
			r := s.withKey(c.key, c.method, c.path, c.body)
			if r.Status != http.StatusOK {
				t.Fatalf("%s %s: %d %s", c.method, c.path, r.Status, r.Body)
			}
			if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("%s %s: Cache-Control %q, want no-store", c.method, c.path, cc)
			}
		}
		// A handler that lets its answer be cached still says so: the vocabulary is the same
		// for everyone.
		if r := s.withKey(s.demo.AdminKey, http.MethodGet, "/v1/admin/data-map/vocabulary", nil); r.Status != http.StatusOK ||
			r.Header.Get("Cache-Control") != "private, max-age=300" {
			t.Errorf("vocabulary: %d, Cache-Control %q", r.Status, r.Header.Get("Cache-Control"))
		}
	})
}
