package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

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

// TestHTTPWebhookRotateSecretWithoutBody: every field of a rotation is optional, so a POST
// without a body (no Content-Type, no length) rotates with the defaults, as {} does, with an
// Idempotency-Key or without; a body that is sent must still be JSON (415) and valid (400).
func TestHTTPWebhookRotateSecretWithoutBody(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		hook := s.admin(http.MethodPost, "/v1/admin/webhooks", map[string]any{"url": "https://hooks.example/lupa",
			"event_types": []string{"consent.updated"}, "recipient_kind": "processor"})
		if hook.Status != http.StatusCreated {
			t.Fatalf("create webhook: %d %s", hook.Status, hook.Body)
		}
		rotate := "/v1/admin/webhooks/" + hook.Map(t)["id"].(string) + "/rotate-secret"
		secrets := map[string]bool{hook.Map(t)["secret"].(string): true}
		for name, r := range map[string]*response{
			"no body":                  s.admin(http.MethodPost, rotate, nil),
			"no body, keyed":           s.admin(http.MethodPost, rotate, nil, "Idempotency-Key", "rotate-nobody"),
			"{}":                       s.admin(http.MethodPost, rotate, "{}"),
			"{} with overlap 0, keyed": s.admin(http.MethodPost, rotate, `{"overlap_seconds":0}`, "Idempotency-Key", "rotate-zero"),
		} {
			if r.Status != http.StatusOK {
				t.Fatalf("rotate with %s: %d %s", name, r.Status, r.Body)
			}
			m := r.Map(t)
			secret, _ := m["secret"].(string)
			if !strings.HasPrefix(secret, "whsec_") || secrets[secret] {
				t.Fatalf("rotate with %s: no new secret: %s", name, r.Body)
			}
			secrets[secret] = true
			// The default overlap is a day; the old secret ends at once only when asked.
			expires, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(m["previous_secret_expires_at"]))
			if name != "{} with overlap 0, keyed" && time.Until(expires) < 23*time.Hour {
				t.Errorf("rotate with %s: the old secret ends at %v, want a day from now", name, m["previous_secret_expires_at"])
			}
		}
		wantProblem(t, s.admin(http.MethodPost, rotate, "x", "Content-Type", "text/plain"), http.StatusUnsupportedMediaType)
		wantProblem(t, s.admin(http.MethodPost, rotate, "x", "Content-Type", "text/plain", "Idempotency-Key", "rotate-text"), http.StatusUnsupportedMediaType)
		wantProblem(t, s.admin(http.MethodPost, rotate, "{not json"), http.StatusBadRequest)
		// A body declared JSON but empty is sent, and is not JSON, as on every route with a body.
		wantProblem(t, s.admin(http.MethodPost, rotate, []byte{}), http.StatusBadRequest)
		wantProblem(t, s.admin(http.MethodPost, rotate, `{"overlap_seconds":-1}`), http.StatusBadRequest, "overlap_seconds")
	})
}
