package main

import (
	"net/http"
	"testing"
)

// TestHTTPCheckEveryIdentifierKind: the check finds people by idp identities and ids in
// connected systems (under their namespace), answers a grant still waiting for its double
// opt-in, and every answer is what openapi.yaml describes.
func TestHTTPCheckEveryIdentifierKind(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		k := newContract(t, s)
		admin := bearer(s.demo.AdminKey)
		crm := map[string]any{"kind": "external", "namespace": "crm", "value": "CRM-1"}
		idp := map[string]any{"kind": "idp", "namespace": "https://id.demo-retail.example", "value": "user-1"}
		pending := map[string]any{"kind": "customer_number", "value": "C-9"}
		record := func(id map[string]any, d map[string]any) {
			t.Helper()
			k.call(http.StatusCreated, http.MethodPost, "/v1/subjects/consents",
				map[string]any{"identifier": id, "method": "api", "language": "fi", "decisions": []any{d}}, admin...)
		}
		record(crm, decision("marketing_email", 1, "granted"))
		record(idp, decision("marketing_email", 1, "denied"))
		k.call(http.StatusOK, http.MethodPatch, "/v1/admin/purposes/marketing_email", map[string]any{"double_opt_in": true}, admin...)
		record(pending, decision("marketing_email", 1, "granted"))

		r := k.call(http.StatusOK, http.MethodPost, "/v1/consents/check", map[string]any{"purpose": "marketing_email",
			"identifiers": []any{crm, idp, pending, map[string]any{"kind": "external", "namespace": "loyalty", "value": "CRM-1"}}}, admin...)
		var out struct {
			Results []struct {
				Identifier map[string]string `json:"identifier"`
				MayUse     bool              `json:"may_use"`
				State      string            `json:"state"`
				Reason     string            `json:"reason"`
			} `json:"results"`
		}
		r.JSON(t, &out)
		want := []struct {
			namespace, state, reason string
			mayUse                   bool
		}{{"crm", "granted", "granted", true}, {"https://id.demo-retail.example", "denied", "denied", false},
			{"", "pending_confirmation", "pending_confirmation", false}, {"loyalty", "not_asked", "unknown_subject", false}}
		if len(out.Results) != len(want) {
			t.Fatalf("%d results: %s", len(out.Results), r.Body)
		}
		for i, w := range want {
			got := out.Results[i]
			if got.Identifier["namespace"] != w.namespace || got.State != w.state || got.Reason != w.reason || got.MayUse != w.mayUse {
				t.Errorf("result %d: %+v, want %+v", i, got, w)
			}
		}

		// A purpose nobody has been told of yet may be used for no one, not even on a
		// legitimate interest.
		k.call(http.StatusCreated, http.MethodPost, "/v1/admin/purposes", map[string]any{"key": "loyalty_offers",
			"level": "person", "legal_basis": "legitimate_interest"}, admin...)
		r = k.call(http.StatusOK, http.MethodPost, "/v1/consents/check",
			map[string]any{"purpose": "loyalty_offers", "identifiers": []any{pending}}, admin...)
		r.JSON(t, &out)
		if got := out.Results[0]; got.MayUse || got.Reason != "not_published" {
			t.Errorf("an unpublished legitimate interest: %+v", got)
		}

		// Double opt-in is confirmed by email: never on a device-level purpose.
		r = k.call(http.StatusBadRequest, http.MethodPost, "/v1/admin/purposes", map[string]any{"key": "pixel_news",
			"level": "device", "legal_basis": "consent", "double_opt_in": true}, admin...)
		wantProblem(t, r, http.StatusBadRequest, "double_opt_in")

		// A level or legal basis changed after publication names the field.
		r = k.call(http.StatusConflict, http.MethodPatch, "/v1/admin/purposes/marketing_email",
			map[string]any{"legal_basis": "legitimate_interest"}, admin...)
		wantProblem(t, r, http.StatusConflict, "legal_basis")
	})
}
