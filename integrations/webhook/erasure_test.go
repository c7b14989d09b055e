package webhook_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/integrations"
	"github.com/lupa-cmp/lupa/integrations/datamap"
	"github.com/lupa-cmp/lupa/integrations/webhook"
)

// TestErasureConfirmedByDelivery: with the data map as the engine's ErasureRecorder, the
// endpoint's acknowledgement of subject.erasure_approved — not a failed attempt — is the
// confirmation of the system that names the endpoint; the email stays until the last
// system (a manual one here) confirms too.
func TestErasureConfirmedByDelivery(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		tenant := e.tenant()
		dm := datamap.New(e.db, e.svc, e.clock.Now)
		engine := integrations.New(e.db, e.svc, e.hooks, e.hooks, e.clock.Now, integrations.Options{
			Jitter: func(d time.Duration) time.Duration { return d }, Batch: 50, Erasures: dm})
		r := newReceiver(t)
		ep, secret := e.endpoint(t, r.srv.URL, webhook.Input{EventTypes: []string{integrations.TypeSubjectErasureApproved}})
		r.secret = secret
		r.setAnswer(func(n int) (int, http.Header) {
			if n == 1 {
				return http.StatusServiceUnavailable, nil
			}
			return http.StatusNoContent, nil
		})

		base := datamap.System{TenantID: tenant, DataCategories: []string{"contact"}, OtherPurposes: []string{"customer service"},
			LegalBases: []string{datamap.BasisContract}, Locations: []string{"FI"},
			Retention: datamap.Retention{Years: 1, Anchor: datamap.AnchorContractEnd}}
		crm := base
		crm.Name, crm.Connection, crm.DSR = "CRM", &datamap.Connection{Kind: datamap.ConnectionWebhook, ID: ep.ID},
			datamap.DSRRoute{Method: datamap.DSRWebhook}
		crmSys, err := dm.Create(ctx, crm, identity.ActorSystem)
		if err != nil {
			t.Fatal(err)
		}
		desk := base
		desk.Name, desk.DSR = "Help desk", datamap.DSRRoute{Method: datamap.DSRManual, Owner: &datamap.Owner{Name: "Support", Email: "support@example.fi"}}
		deskSys, err := dm.Create(ctx, desk, identity.ActorSystem)
		if err != nil {
			t.Fatal(err)
		}

		// A person with an email address and an open erasure request, and its approval's
		// event (the request queue will write it; here the test does).
		var subj *identity.Subject
		var request string
		if err := e.db.Write.Transaction(func(tx *gorm.DB) (err error) {
			if subj, _, err = e.ids.EnsurePerson(ctx, tx, tenant, identity.Identifier{Kind: identity.IDEmail, Value: "erik@example.fi"}); err != nil {
				return err
			}
			request, _, err = e.ids.OpenErasureRequest(ctx, tx, tenant, subj.ID, "account", e.clock.Now())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if err := e.db.Write.Exec(`INSERT INTO domain_events (tenant_id, id, type, schema_version, subject_id, subject_seq, payload, created_at)
			VALUES (?, ?, 'subject.erasure_approved', 1, ?, 1, ?, ?)`, tenant, identity.NewID(), subj.ID,
			`{"subject":"`+subj.Pseudonym+`","subject_id":"`+subj.ID+`","at":"2026-11-26T10:00:00Z","request_id":"`+request+`"}`,
			e.clock.Now().UnixMilli()).Error; err != nil {
			t.Fatal(err)
		}
		confirmed := func() int64 {
			return e.count(t, "erasure_confirmations", "tenant_id = ? AND request_id = ? AND system_id = ? AND confirmed_by = ?",
				tenant, request, crmSys.ID, "delivery:"+ep.ID)
		}
		emails := func() int64 {
			return e.count(t, "identifiers", "tenant_id = ? AND subject_id = ? AND kind = 'email'", tenant, subj.ID)
		}

		// The first attempt fails: nothing is confirmed.
		if err := engine.Step(ctx); err != nil {
			t.Fatal(err)
		}
		if n := confirmed(); n != 0 || len(r.messages()) != 0 {
			t.Fatalf("a failed attempt confirmed the erasure (%d)", n)
		}
		// The retry is acknowledged: the CRM has confirmed, at the engine's time.
		e.clock.Add(time.Hour)
		if err := engine.Step(ctx); err != nil {
			t.Fatal(err)
		}
		if len(r.messages()) != 1 || confirmed() != 1 {
			t.Fatalf("after the acknowledgement: %d messages, %d confirmations", len(r.messages()), confirmed())
		}
		p, err := dm.ErasureProgress(ctx, tenant, request)
		if err != nil {
			t.Fatal(err)
		}
		if p.Confirmed != 1 || p.EmailErased || !p.Systems[0].ConfirmedAt.Equal(e.clock.Now().Truncate(time.Millisecond)) {
			t.Fatalf("progress: %+v", p)
		}
		if n := emails(); n != 1 {
			t.Fatalf("the email went before the help desk confirmed (%d left)", n)
		}
		if _, err := dm.ConfirmErasure(ctx, tenant, deskSys.ID, request, "ticket closed", identity.ActorAPIKey("k1")); err != nil {
			t.Fatal(err)
		}
		if n := emails(); n != 0 {
			t.Fatalf("%d email identifiers after every system confirmed", n)
		}
	})
}
