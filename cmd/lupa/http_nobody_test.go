package main

import (
	"net/http"
	"testing"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/identityweb"
)

// TestHTTPBodylessPOSTs: the admin POSTs that take no body refuse one that is sent anyway
// unless it is JSON, small and empty, with an Idempotency-Key or without: a body the
// client meant something by is never silently ignored.
func TestHTTPBodylessPOSTs(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		id := identity.NewID()
		paths := []string{
			"/v1/admin/purposes/analytics/versions/1/publish",
			"/v1/admin/ledger/verify",
			"/v1/admin/ledger/roots",
			"/v1/admin/webhooks/" + id + "/disable",
			"/v1/admin/webhooks/" + id + "/enable",
			"/v1/admin/webhooks/" + id + "/deliveries/" + id + "/replay",
			"/v1/admin/webhooks/" + id + "/dead-letters/replay",
			"/v1/admin/connectors/" + id + "/disable",
			"/v1/admin/connectors/" + id + "/enable",
			"/v1/admin/connectors/" + id + "/reconcile",
			"/v1/admin/connectors/" + id + "/rotate-inbound-secret",
			"/v1/admin/connectors/" + id + "/syncs/" + id + "/replay",
			"/v1/admin/connectors/" + id + "/dead-letters/replay",
		}
		for _, path := range paths {
			wantProblem(t, s.admin(http.MethodPost, path, "{not json"), http.StatusBadRequest)
			wantProblem(t, s.admin(http.MethodPost, path, "{not json", "Idempotency-Key", "nobody-"+path), http.StatusBadRequest)
			wantProblem(t, s.admin(http.MethodPost, path, `{"force":true}`), http.StatusBadRequest, "force")
			wantProblem(t, s.admin(http.MethodPost, path, "[]"), http.StatusBadRequest)
			wantProblem(t, s.admin(http.MethodPost, path, "x", "Content-Type", "text/plain"), http.StatusUnsupportedMediaType)
			wantProblem(t, s.admin(http.MethodPost, path, tooLarge(identityweb.PublicBodyLimit)), http.StatusRequestEntityTooLarge)
		}
		// Nothing, an empty body, {} and null are all no body.
		const verify = "/v1/admin/ledger/verify"
		for _, body := range []any{nil, []byte{}, "{}", "null", " {} "} {
			if r := s.admin(http.MethodPost, verify, body); r.Status != http.StatusOK {
				t.Fatalf("verify with body %q: %d %s", body, r.Status, r.Body)
			}
		}
		// A refused body does not use its Idempotency-Key up.
		if r := s.admin(http.MethodPost, verify, nil, "Idempotency-Key", "nobody-"+verify); r.Status != http.StatusOK {
			t.Fatalf("verify after a refused body with the same key: %d %s", r.Status, r.Body)
		}
	})
}
