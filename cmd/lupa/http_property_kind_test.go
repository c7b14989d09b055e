package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestHTTPCollectionPropertyKinds: the public collection API takes the keys of the
// properties people use themselves — web sites, apps, stores, kiosks — and refuses a call
// centre's key with 403 (the key is known, but not for this API) on every method, and on
// the banner's configuration, writing nothing; the call centre records through the server
// API with an API key, its channel and its agent.
func TestHTTPCollectionPropertyKinds(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		newProperty := func(kind string) (id, pk string) {
			t.Helper()
			r := s.admin(http.MethodPost, "/v1/admin/properties", map[string]any{"name": "Kind " + kind, "brand_id": s.demo.Brands[0].ID, "kind": kind})
			if r.Status != http.StatusCreated {
				t.Fatalf("create a %s property: %d %s", kind, r.Status, r.Body)
			}
			m := r.Map(t)
			id, _ = m["id"].(string)
			pk, _ = m["public_key"].(string)
			return id, pk
		}
		for _, kind := range []string{"app", "store", "kiosk"} {
			_, pk := newProperty(kind)
			o := recorded(t, s.request(http.MethodPost, "/v1/consents?property="+pk, grantAnalytics()))
			if r := s.request(http.MethodGet, "/v1/consents?property="+pk, nil, "Lupa-Device-Id", o.DeviceID); r.Status != http.StatusOK {
				t.Fatalf("%s: state of its device: %d %s", kind, r.Status, r.Body)
			}
		}

		callCentre, pk := newProperty("call_centre")
		before := s.ledger(t, s.demo.AdminKey)
		device := s.newDevice(t, grantAnalytics())
		before.Chains, before.Events = before.Chains+1, before.Events+1
		onDevice := grantAnalytics()
		onDevice["identifier"] = map[string]any{"kind": "device", "value": device}
		for _, c := range []struct {
			name    string
			method  string
			body    any
			headers []string
		}{
			{"a new device", http.MethodPost, grantAnalytics(), nil},
			{"a known device", http.MethodPost, onDevice, nil},
			{"with an Idempotency-Key", http.MethodPost, grantAnalytics(), []string{"Idempotency-Key", "call-centre-1"}},
			{"a device's state", http.MethodGet, nil, []string{"Lupa-Device-Id", device}},
			{"a pre-flight", http.MethodOptions, nil, nil},
			{"from a page", http.MethodPost, grantAnalytics(), []string{"Origin", s.Origin}},
			{"a banner configuration", http.MethodGet, nil, nil},
		} {
			path := "/v1/consents?property=" + pk
			if c.name == "a banner configuration" {
				path = "/v1/properties/" + pk + "/config?lang=fi" // a call centre has no banner either
			}
			r := s.request(c.method, path, c.body, c.headers...)
			p := wantProblem(t, r, http.StatusForbidden, "property")
			if !strings.HasSuffix(p.Type, ":forbidden") || !strings.Contains(p.Detail, "/v1/subjects/consents") {
				t.Errorf("%s: the answer does not say what to use instead: %s", c.name, r.Body)
			}
			if r.Header.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("%s: a refused key's answer lets the page read it with credentials: %v", c.name, r.Header)
			}
		}
		if after := s.ledger(t, s.demo.AdminKey); after != before {
			t.Fatalf("a call centre's key wrote to the ledger: %+v → %+v", before, after)
		}

		// What the call centre does instead: the server API, with its property, naming the agent.
		_, write := s.newKey(t, s.demo.AdminKey, "consent:write")
		r := s.withKey(write, http.MethodPost, "/v1/subjects/consents", map[string]any{
			"identifier": map[string]any{"kind": "customer_number", "value": "C-CALL-1"}, "property_id": callCentre,
			"method": "verbal", "agent": "agent-7", "language": "fi", "decisions": []any{decision("marketing_email", 1, "granted")}})
		recorded(t, r)
		h := s.withKey(write, http.MethodPost, "/v1/subjects/history", map[string]any{
			"identifier": map[string]any{"kind": "customer_number", "value": "C-CALL-1"}})
		if h.Status != http.StatusOK || !strings.Contains(string(h.Body), `"channel":"call_centre"`) {
			t.Fatalf("the call centre's decision is not on its channel: %d %s", h.Status, h.Body)
		}
	})
}
