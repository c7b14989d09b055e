package main

import (
	"context"
	"net/http"
	"testing"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/identityweb"
)

// TestHTTPIdempotencyInProgress: a retry that arrives while the first request with its
// Idempotency-Key is still being processed gets one answer on every route that takes a
// key — the collection API, the server API and the admin API alike: 409, problem type
// urn:lupa:problem:idempotency, Retry-After — and writes nothing. Once the first request
// has failed and let its key go, the retry is processed.
func TestHTTPIdempotencyInProgress(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		ctx := context.Background()
		_, write := s.newKey(t, s.demo.AdminKey, "consent:write")
		collect := encodeBody(t, grantAnalytics())
		record := encodeBody(t, map[string]any{"identifier": map[string]any{"kind": "customer_number", "value": "C-BUSY"},
			"method": "api", "decisions": []any{decision("marketing_email", 1, "granted")}})
		brand := encodeBody(t, map[string]any{"name": "Busy", "legal_name": "Busy Oy"})
		routes := []struct {
			route string
			hash  string // what the route fingerprints the request by
			send  func() *response
		}{
			{"/v1/consents", identityweb.RequestHash([]byte(s.demo.WebShop.ID), collect), func() *response {
				return s.collect(collect, "Idempotency-Key", "busy-request-key")
			}},
			{"/v1/subjects/consents", identityweb.RequestHash(record), func() *response {
				return s.withKey(write, http.MethodPost, "/v1/subjects/consents", record, "Idempotency-Key", "busy-request-key")
			}},
			{"/v1/admin/brands", identityweb.RequestHash([]byte(http.MethodPost+" /v1/admin/brands"), brand), func() *response {
				return s.admin(http.MethodPost, "/v1/admin/brands", brand, "Idempotency-Key", "busy-request-key")
			}},
		}
		before := s.ledger(t, s.demo.AdminKey)
		for _, r := range routes {
			// The first request holds its claim: it is still being processed.
			claim, stored, err := s.app.ids.ClaimIdempotency(ctx, s.demo.Tenant.ID, r.route, "busy-request-key", r.hash)
			if err != nil || stored != nil {
				t.Fatalf("%s: claim: %v %v", r.route, stored, err)
			}
			answer := r.send()
			p := wantProblem(t, answer, http.StatusConflict)
			if p.Type != "urn:lupa:problem:idempotency" || p.Title != "Conflict" || len(p.Errors) != 0 ||
				p.Detail != identity.ErrIdempotencyInProgress.Message {
				t.Errorf("%s: a key in progress answered %s", r.route, answer.Body)
			}
			if answer.Header.Get("Retry-After") != "1" {
				t.Errorf("%s: a key in progress without Retry-After: %v", r.route, answer.Header)
			}
			// The first request failed: its key is free again, and the retry is processed.
			if err := s.app.ids.ReleaseIdempotency(ctx, claim); err != nil {
				t.Fatal(err)
			}
			if again := r.send(); again.Status != http.StatusCreated || again.Header.Get("Idempotent-Replayed") != "" {
				t.Fatalf("%s: retry after the first request failed: %d %s", r.route, again.Status, again.Body)
			}
		}
		after := s.ledger(t, s.demo.AdminKey)
		if after.Chains != before.Chains+2 || after.Events != before.Events+2 {
			t.Fatalf("keys in progress wrote to the ledger: %+v → %+v, want the two retries only", before, after)
		}
	})
}
