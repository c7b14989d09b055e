package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
)

// dataMapConnectorFor inserts a minimal connectors row for the connection of
// dataMapSystem(name) in the tenant: a data-map system may name only a connector that
// exists. The connector package owns the table and its API; the returned drop removes the
// row again once the systems that need it are made (only a new or changed connection is
// checked), so that the connectors' own tests never see it.
func dataMapConnectorFor(t testing.TB, s *testServer, tenant, name string) (drop func()) {
	t.Helper()
	id := dataMapSystem(name)["connection"].(map[string]any)["id"].(string)
	now := time.Now().UnixMilli()
	if err := s.app.db.Write.Exec(`INSERT INTO connectors (tenant_id, id, vendor, name, recipient_kind, credentials, credentials_kid, status, created_at, updated_at)
		VALUES (?, ?, 'mailchimp', ?, 'processor', ?, 'test', 'disabled', ?, ?)`, tenant, id, "data-map test "+id, []byte{0}, now, now).Error; err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := s.app.db.Write.Exec(`DELETE FROM connectors WHERE tenant_id = ? AND id = ?`, tenant, id).Error; err != nil {
			t.Fatal(err)
		}
	}
}

// openErasure creates a person known by a customer number and an email address, with an
// open erasure request (as deleting their account would); it returns the subject's and the
// request's ids.
func openErasure(t testing.TB, s *testServer, tenant, number, email string) (string, string) {
	t.Helper()
	ctx := context.Background()
	var subject, request string
	err := s.app.db.Write.Transaction(func(tx *gorm.DB) error {
		subj, _, err := s.app.ids.EnsurePerson(ctx, tx, tenant, identity.Identifier{Kind: identity.IDCustomerNumber, Value: number})
		if err != nil {
			return err
		}
		if _, _, err := s.app.ids.AttachIdentifier(ctx, tx, subj, identity.Identifier{Kind: identity.IDEmail, Value: email}); err != nil {
			return err
		}
		subject = subj.ID
		request, _, err = s.app.ids.OpenErasureRequest(ctx, tx, tenant, subj.ID, "account", time.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return subject, request
}

func emailIdentifiers(t testing.TB, s *testServer, tenant, subject string) int64 {
	t.Helper()
	var n int64
	if err := s.app.db.Read.Raw(`SELECT COUNT(*) FROM identifiers WHERE tenant_id = ? AND subject_id = ? AND kind = 'email'`,
		tenant, subject).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// TestHTTPErasureConfirmations: a webhook-connected system confirms when its endpoint
// acknowledges subject.erasure_approved (the engine cmd/lupa builds records it), the
// manual systems are confirmed by an admin, and the email goes with the last one.
func TestHTTPErasureConfirmations(t *testing.T) {
	eachServer(t, map[string]string{"LUPA_ALLOW_PRIVATE_WEBHOOKS": "true"}, func(t *testing.T, s *testServer) {
		ctx := context.Background()
		tenant := s.demo.Tenant.ID
		receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
		defer receiver.Close()
		hook := s.admin(http.MethodPost, "/v1/admin/webhooks", map[string]any{"url": receiver.URL + "/erase",
			"event_types": []string{"subject.erasure_approved"}, "recipient_kind": "processor"}).Map(t)["id"].(string)
		crm := with(accountingSystem("CRM"), "connection", map[string]any{"kind": "webhook", "id": hook})
		crm["dsr"] = map[string]any{"method": "webhook"}
		crmID := s.admin(http.MethodPost, "/v1/admin/data-map/systems", crm).Map(t)["id"].(string)
		wantProblem(t, s.admin(http.MethodPost, "/v1/admin/data-map/systems", with(with(crm, "name", "CRM 2"), "connection",
			map[string]any{"kind": "webhook", "id": identity.NewID()})), http.StatusUnprocessableEntity, "connection.id")

		for _, name := range []string{"Accounting", "Loyalty database"} {
			s.admin(http.MethodPost, "/v1/admin/data-map/systems", accountingSystem(name))
		}

		subject, request := openErasure(t, s, tenant, "E-1", "erika@example.fi")
		progress := "/v1/admin/erasures/" + request
		p := s.admin(http.MethodGet, progress, nil).Map(t)
		if p["total"] != 3.0 || p["confirmed"] != 0.0 || p["email_erased"] != false {
			t.Fatalf("progress before: %v", p)
		}

		// The approval's event (the request queue will write it; here the test does).
		subj, err := s.app.ids.SubjectByID(ctx, s.app.db.Write, tenant, subject)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.app.db.Write.Exec(`INSERT INTO domain_events (tenant_id, id, type, schema_version, subject_id, subject_seq, payload, created_at)
			VALUES (?, ?, 'subject.erasure_approved', 1, ?, 1, ?, ?)`, tenant, identity.NewID(), subject,
			`{"subject":"`+subj.Pseudonym+`","subject_id":"`+subject+`","at":"2026-11-26T10:00:00Z","request_id":"`+request+`"}`,
			time.Now().UnixMilli()).Error; err != nil {
			t.Fatal(err)
		}
		if err := s.app.deliveries.Step(ctx); err != nil {
			t.Fatal(err)
		}
		p = s.admin(http.MethodGet, progress, nil).Map(t)
		for _, x := range p["systems"].([]any) {
			sys := x.(map[string]any)
			if (sys["system_id"] == crmID) != (sys["confirmed"] == true) {
				t.Fatalf("after the endpoint's acknowledgement: %v", p)
			}
			if sys["system_id"] == crmID && sys["confirmed_by"] != "delivery:"+hook {
				t.Fatalf("the CRM's confirmation: %v", sys)
			}
		}

		// The manual systems, by an admin.
		m := s.admin(http.MethodGet, "/v1/admin/data-map", nil).Map(t)
		var manual []string
		for _, x := range m["systems"].([]any) {
			if sys := x.(map[string]any); sys["id"] != crmID {
				manual = append(manual, sys["id"].(string))
			}
		}
		for i, id := range manual {
			if n := emailIdentifiers(t, s, tenant, subject); n != 1 {
				t.Fatalf("the email went before every system confirmed (%d confirmed)", i+1)
			}
			r := s.admin(http.MethodPost, "/v1/admin/data-map/systems/"+id+"/erasures/"+request+"/confirm", map[string]any{"note": "done"})
			if r.Status != http.StatusOK {
				t.Fatalf("confirm: %d %s", r.Status, r.Body)
			}
		}
		if n := emailIdentifiers(t, s, tenant, subject); n != 0 {
			t.Fatalf("%d email identifiers after every system confirmed", n)
		}
		p = s.admin(http.MethodGet, progress, nil).Map(t)
		if p["complete"] != true || p["email_erased"] != true || p["confirmed"] != 3.0 {
			t.Fatalf("progress after: %v", p)
		}
		audit := s.admin(http.MethodGet, "/v1/admin/audit?object_type=dsr_request&object_id="+request, nil)
		if !strings.Contains(string(audit.Body), "erasure.email_erased") || strings.Count(string(audit.Body), `"erasure.confirm"`) != 3 {
			t.Fatalf("audit: %s", audit.Body)
		}
	})
}
