package datamap_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
	"github.com/lupa-cmp/lupa/identity/sqldb/sqldbtest"
	"github.com/lupa-cmp/lupa/integrations/datamap"
)

// connector inserts a minimal connectors row (the connector package owns the table; the
// data map only checks that the id exists for the tenant and vendor).
func (e *env) connector(t *testing.T, tenant, id, vendor string) {
	t.Helper()
	now := time.Now().UnixMilli()
	if err := e.db.Write.Exec(`INSERT INTO connectors (tenant_id, id, vendor, name, recipient_kind, credentials, credentials_kid, status, created_at, updated_at)
		VALUES (?, ?, ?, ?, 'processor', ?, 'test', 'disabled', ?, ?)`, tenant, id, vendor, vendor+" "+id, []byte{0}, now, now).Error; err != nil {
		t.Fatal(err)
	}
}

// endpoint inserts a minimal webhook_endpoints row.
func (e *env) endpoint(t *testing.T, tenant, id string) {
	t.Helper()
	now := time.Now().UnixMilli()
	if err := e.db.Write.Exec(`INSERT INTO webhook_endpoints (tenant_id, id, url, recipient_kind, status, secret, secret_kid, created_at, updated_at)
		VALUES (?, ?, 'https://crm.example/hook', 'processor', 'disabled', ?, 'test', ?, ?)`, tenant, id, []byte{0}, now, now).Error; err != nil {
		t.Fatal(err)
	}
}

// person creates a person known by the emails and a customer number, with an open erasure
// request; it returns the subject's and the request's ids.
func (e *env) person(t *testing.T, tenant, number string, emails ...string) (string, string) {
	t.Helper()
	ctx := context.Background()
	var subject, request string
	err := e.db.Write.Transaction(func(tx *gorm.DB) error {
		subj, _, err := e.ids.EnsurePerson(ctx, tx, tenant, identity.Identifier{Kind: identity.IDCustomerNumber, Value: number})
		if err != nil {
			return err
		}
		for _, m := range emails {
			if _, _, err := e.ids.AttachIdentifier(ctx, tx, subj, identity.Identifier{Kind: identity.IDEmail, Value: m}); err != nil {
				return err
			}
		}
		subject = subj.ID
		request, _, err = e.ids.OpenErasureRequest(ctx, tx, tenant, subj.ID, "test", time.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return subject, request
}

func (e *env) identifiers(t *testing.T, tenant, subject, kind string) int64 {
	t.Helper()
	var n int64
	if err := e.db.Read.Raw(`SELECT COUNT(*) FROM identifiers WHERE tenant_id = ? AND subject_id = ? AND kind = ?`,
		tenant, subject, kind).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *env) confirmations(t *testing.T, tenant, request string) int64 {
	t.Helper()
	var n int64
	if err := e.db.Read.Raw(`SELECT COUNT(*) FROM erasure_confirmations WHERE tenant_id = ? AND request_id = ?`,
		tenant, request).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// delivered is what the delivery engine does when an endpoint or connector acknowledges
// subject.erasure_approved: ErasureDelivered in its own transaction.
func (e *env) delivered(t *testing.T, tenant, subject, request, connection string, at time.Time) {
	t.Helper()
	if err := e.db.Write.Transaction(func(tx *gorm.DB) error {
		return e.svc.ErasureDelivered(tx, tenant, subject, request, connection, at)
	}); err != nil {
		t.Fatalf("ErasureDelivered(%s): %v", connection, err)
	}
}

// connected adds a webhook-connected and a connector-connected system to the tenant's map.
func (e *env) connected(t *testing.T, tenant string) (hook, mc *datamap.System) {
	t.Helper()
	ctx := context.Background()
	e.endpoint(t, tenant, "wh-1")
	e.connector(t, tenant, "mc-1", "mailchimp")
	s := tills(tenant)
	s.Name, s.Connection, s.DSR.Method = "CRM", &datamap.Connection{Kind: "webhook", ID: "wh-1"}, "webhook"
	hook, err := e.svc.Create(ctx, s, identity.ActorSystem)
	if err != nil {
		t.Fatal(err)
	}
	s = tills(tenant)
	s.Name, s.Connection, s.DSR.Method = "Newsletter", &datamap.Connection{Kind: "mailchimp", ID: "mc-1"}, "connector"
	if mc, err = e.svc.Create(ctx, s, identity.ActorSystem); err != nil {
		t.Fatal(err)
	}
	return hook, mc
}

// TestErasureConfirmations: each system confirms once, by delivery or by an admin; the
// email identifiers go only with the last confirmation, the rest of the subject stays.
func TestErasureConfirmations(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e, seeded := newEnv(t, db)
		ctx := context.Background()
		a := e.demo.Tenant.ID
		hook, _ := e.connected(t, a)
		subject, request := e.person(t, a, "C-1", "anna@example.fi", "anna.work@example.fi")
		at := time.Now().UTC().Truncate(time.Millisecond)

		// The webhook's acknowledgement confirms the CRM, once.
		e.delivered(t, a, subject, request, "wh-1", at)
		e.delivered(t, a, subject, request, "wh-1", at.Add(time.Minute))
		if n := e.confirmations(t, a, request); n != 1 {
			t.Fatalf("%d confirmations after the webhook's two acknowledgements, want 1", n)
		}
		// A connection no system names, an empty or unknown request: nothing, and no error.
		e.delivered(t, a, subject, request, "wh-unmapped", at)
		e.delivered(t, a, subject, "", "mc-1", at)
		e.delivered(t, a, subject, "no-such-request", "mc-1", at)
		// Another tenant's acknowledgement names its own requests only.
		e.delivered(t, e.other, subject, request, "mc-1", at)
		if n := e.confirmations(t, a, request); n != 1 {
			t.Fatalf("%d confirmations, want 1", n)
		}
		e.delivered(t, a, subject, request, "mc-1", at)

		p, err := e.svc.ErasureProgress(ctx, a, request)
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != 6 || p.Confirmed != 2 || p.Complete || p.EmailErased || p.SubjectID != subject || p.Status != "open" {
			t.Fatalf("progress: %+v", p)
		}
		for _, s := range p.Systems {
			if s.SystemID == hook.ID && (!s.Confirmed || s.ConfirmedBy != "delivery:wh-1" || !s.ConfirmedAt.Equal(at)) {
				t.Fatalf("the CRM's confirmation: %+v", s)
			}
		}
		if n := e.identifiers(t, a, subject, identity.IDEmail); n != 2 {
			t.Fatalf("%d email identifiers before every system confirmed, want 2", n)
		}

		// The manual systems, by an admin; the last one takes the email with it.
		actor := identity.ActorAPIKey("k1")
		for i, s := range seeded {
			p, err := e.svc.ConfirmErasure(ctx, a, s.ID, request, " done by hand ", actor)
			if err != nil {
				t.Fatal(err)
			}
			last := i == len(seeded)-1
			if p.EmailErased != last || p.Complete != last || (e.identifiers(t, a, subject, identity.IDEmail) == 0) != last {
				t.Fatalf("after %d manual confirmations: %+v", i+1, p)
			}
		}
		if n := e.identifiers(t, a, subject, identity.IDCustomerNumber); n != 1 {
			t.Fatalf("the customer number went too (%d left)", n)
		}
		p, _ = e.svc.ErasureProgress(ctx, a, request)
		if !p.EmailErased || p.EmailErasedAt == nil || p.Confirmed != 6 {
			t.Fatalf("final progress: %+v", p)
		}
		for _, s := range p.Systems {
			if s.SystemID == seeded[0].ID && (s.ConfirmedBy != string(actor) || s.Note != "done by hand") {
				t.Fatalf("a manual confirmation: %+v", s)
			}
		}
		// Confirming again keeps the first confirmation.
		again, err := e.svc.ConfirmErasure(ctx, a, seeded[0].ID, request, "again", identity.ActorAPIKey("k2"))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range again.Systems {
			if s.SystemID == seeded[0].ID && s.Note != "done by hand" {
				t.Fatalf("a second confirmation replaced the first: %+v", s)
			}
		}

		// In the audit log: six confirmations and the erasure of the email.
		confirms, _, _ := e.ids.Audit(ctx, a, identity.AuditFilter{ObjectID: request, Action: datamap.ActionErasureConfirm})
		erased, _, _ := e.ids.Audit(ctx, a, identity.AuditFilter{ObjectID: request, Action: datamap.ActionEmailErased})
		if len(confirms) != 6 || len(erased) != 1 || !strings.Contains(string(erased[0].After), `"email_identifiers":2`) {
			t.Fatalf("audit: %d confirmations, %+v", len(confirms), erased)
		}

		// A system added afterwards must confirm too; the email stays erased.
		late, err := e.svc.Create(ctx, func() datamap.System { s := tills(a); s.Name = "Late"; return s }(), actor)
		if err != nil {
			t.Fatal(err)
		}
		p, _ = e.svc.ErasureProgress(ctx, a, request)
		if p.Complete || !p.EmailErased || p.Total != 7 {
			t.Fatalf("after a system was added: %+v", p)
		}
		if _, err := e.svc.ConfirmErasure(ctx, a, late.ID, request, "", actor); err != nil {
			t.Fatal(err)
		}
	})
}

// TestErasureRefusals: unknown or foreign systems and requests are 404, a request that
// is not a confirmable erasure 409, a long note 400.
func TestErasureRefusals(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e, seeded := newEnv(t, db)
		ctx := context.Background()
		a := e.demo.Tenant.ID
		actor := identity.ActorAPIKey("k1")
		_, request := e.person(t, a, "C-1", "anna@example.fi")
		_, otherRequest := e.person(t, e.other, "C-1", "anna@example.fi")
		theirs, err := e.svc.Create(ctx, tills(e.other), actor)
		if err != nil {
			t.Fatal(err)
		}
		sys := seeded[0].ID
		_, err = e.svc.ConfirmErasure(ctx, a, identity.NewID(), request, "", actor)
		wantCode(t, err, identity.ENotFound)
		_, err = e.svc.ConfirmErasure(ctx, a, sys, identity.NewID(), "", actor)
		wantCode(t, err, identity.ENotFound)
		_, err = e.svc.ConfirmErasure(ctx, a, sys, otherRequest, "", actor) // another tenant's request
		wantCode(t, err, identity.ENotFound)
		_, err = e.svc.ConfirmErasure(ctx, a, theirs.ID, request, "", actor) // another tenant's system
		wantCode(t, err, identity.ENotFound)
		_, err = e.svc.ConfirmErasure(ctx, e.other, sys, request, "", actor)
		wantCode(t, err, identity.ENotFound)
		_, err = e.svc.ErasureProgress(ctx, e.other, request)
		wantCode(t, err, identity.ENotFound)
		_, err = e.svc.ConfirmErasure(ctx, a, sys, request, strings.Repeat("x", 1001), actor)
		wantCode(t, err, identity.EInvalid, "note")

		if err := e.db.Write.Exec(`UPDATE dsr_requests SET status = 'rejected' WHERE tenant_id = ? AND id = ?`, a, request).Error; err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.ConfirmErasure(ctx, a, sys, request, "", actor)
		wantCode(t, err, identity.EConflict, "request_id")
		if n := e.confirmations(t, a, request); n != 0 {
			t.Fatalf("%d confirmations of refused requests", n)
		}
	})
}

// A late acknowledgement of a request no longer open to confirmations (here rejected)
// records nothing, as an admin's confirmation would not.
func TestErasureDeliveredAfterRejection(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e, _ := newEnv(t, db)
		a := e.demo.Tenant.ID
		e.connected(t, a)
		subject, request := e.person(t, a, "C-1", "anna@example.fi")
		if err := e.db.Write.Exec(`UPDATE dsr_requests SET status = 'rejected' WHERE tenant_id = ? AND id = ?`, a, request).Error; err != nil {
			t.Fatal(err)
		}
		e.delivered(t, a, subject, request, "wh-1", time.Now())
		if n := e.confirmations(t, a, request); n != 0 {
			t.Fatalf("%d confirmations of a rejected request", n)
		}
		if n := e.identifiers(t, a, subject, identity.IDEmail); n != 1 {
			t.Fatalf("%d email identifiers left, want the one kept", n)
		}
	})
}

// TestErasureEmptyMapAndRemovedSystems: with nothing in the map, the first check forgets
// the email; removing the last system that had not confirmed completes the request.
func TestErasureEmptyMapAndRemovedSystems(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e, seeded := newEnv(t, db)
		ctx := context.Background()
		actor := identity.ActorAPIKey("k1")

		// The other tenant's map is empty: the first acknowledgement (of an endpoint the
		// map does not name) is the check, and so is CheckErasure.
		subject, request := e.person(t, e.other, "E-1", "empty@example.fi")
		e.delivered(t, e.other, subject, request, "wh-anything", time.Now())
		if n := e.identifiers(t, e.other, subject, identity.IDEmail); n != 0 {
			t.Fatalf("an empty map kept %d email identifiers", n)
		}
		subject2, request2 := e.person(t, e.other, "E-2", "empty2@example.fi")
		var erased bool
		if err := e.db.Write.Transaction(func(tx *gorm.DB) (err error) {
			erased, err = e.svc.CheckErasure(tx, e.other, request2, actor, time.Now())
			return err
		}); err != nil || !erased || e.identifiers(t, e.other, subject2, identity.IDEmail) != 0 {
			t.Fatalf("CheckErasure on an empty map: %v %v", erased, err)
		}
		p, err := e.svc.ErasureProgress(ctx, e.other, request2)
		if err != nil || !p.Complete || !p.EmailErased || p.Total != 0 || len(p.Systems) != 0 {
			t.Fatalf("empty map progress: %+v %v", p, err)
		}

		// The demo tenant: every seeded system but the last confirms; removing that one
		// leaves a map that has all confirmed.
		a := e.demo.Tenant.ID
		subject, request = e.person(t, a, "D-1", "dora@example.fi")
		for _, s := range seeded[:len(seeded)-1] {
			if _, err := e.svc.ConfirmErasure(ctx, a, s.ID, request, "", actor); err != nil {
				t.Fatal(err)
			}
		}
		if n := e.identifiers(t, a, subject, identity.IDEmail); n != 1 {
			t.Fatalf("email erased before every system confirmed (%d left)", n)
		}
		if err := e.svc.Delete(ctx, a, seeded[len(seeded)-1].ID, actor); err != nil {
			t.Fatal(err)
		}
		if n := e.identifiers(t, a, subject, identity.IDEmail); n != 0 {
			t.Fatalf("%d email identifiers after the last unconfirmed system left the map", n)
		}
	})
}

// TestConnectionMustExist: a connection names a webhook endpoint or a connector of the
// vendor, of the system's own tenant (422 connection.id otherwise); only a new or changed
// connection is checked.
func TestConnectionMustExist(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e, _ := newEnv(t, db)
		ctx := context.Background()
		a, actor := e.demo.Tenant.ID, identity.ActorSystem
		e.endpoint(t, e.other, "wh-theirs")
		e.connector(t, e.other, "mc-theirs", "mailchimp")
		e.connector(t, a, "hs-1", "hubspot")
		e.endpoint(t, a, "wh-1")
		mk := func(kind, id string) error {
			s := tills(a)
			s.Name, s.Connection = "System "+id, &datamap.Connection{Kind: kind, ID: id}
			s.DSR.Method = "connector"
			if kind == "webhook" {
				s.DSR.Method = "webhook"
			}
			_, err := e.svc.Create(ctx, s, actor)
			return err
		}
		for _, c := range []struct{ name, kind, id string }{
			{"an unknown endpoint", "webhook", "wh-none"},
			{"another tenant's endpoint", "webhook", "wh-theirs"},
			{"another tenant's connector", "mailchimp", "mc-theirs"},
			{"a connector of another vendor", "mailchimp", "hs-1"},
			{"a connector id as an endpoint", "webhook", "hs-1"},
		} {
			t.Run(c.name, func(t *testing.T) { wantCode(t, mk(c.kind, c.id), identity.EUnprocessable, "connection.id") })
		}
		if err := mk("hubspot", "hs-1"); err != nil {
			t.Fatal(err)
		}
		if err := mk("webhook", "wh-1"); err != nil {
			t.Fatal(err)
		}
		// A change to another tenant's endpoint is refused; once the endpoint is gone, the
		// system can still be changed otherwise.
		m, _ := e.svc.Map(ctx, a)
		var hooked *datamap.System
		for _, s := range m.Systems {
			if s.Connection != nil && s.Connection.ID == "wh-1" {
				hooked = s
			}
		}
		_, err := e.svc.Update(ctx, a, hooked.ID, datamap.Patch{Connection: &datamap.Connection{Kind: "webhook", ID: "wh-theirs"}}, actor)
		wantCode(t, err, identity.EUnprocessable, "connection.id")
		if err := e.db.Write.Exec(`DELETE FROM webhook_endpoints WHERE tenant_id = ? AND id = 'wh-1'`, a).Error; err != nil {
			t.Fatal(err)
		}
		desc := "endpoint retired"
		if _, err := e.svc.Update(ctx, a, hooked.ID, datamap.Patch{Description: &desc}, actor); err != nil {
			t.Fatalf("a change beside a dangling connection: %v", err)
		}
	})
}

// TestErasureFollowsMerges: the request's subject was merged into another since (a device's
// record joined the customer's): the person's addresses now sit on the surviving subject,
// and they are what Lupa erases.
func TestErasureFollowsMerges(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e, _ := newEnv(t, db)
		from, request := e.person(t, e.other, "M-1", "merged@example.fi")
		into, _ := e.person(t, e.other, "M-2", "survivor@example.fi")
		// What a merge leaves behind: the old subject points at the survivor, which holds
		// its identifiers.
		for _, q := range []string{`UPDATE identifiers SET subject_id = ? WHERE tenant_id = ? AND subject_id = ?`,
			`UPDATE subjects SET merged_into = ? WHERE tenant_id = ? AND id = ?`} {
			if err := e.db.Write.Exec(q, into, e.other, from).Error; err != nil {
				t.Fatal(err)
			}
		}
		if n := e.identifiers(t, e.other, into, identity.IDEmail); n != 2 {
			t.Fatalf("the survivor holds %d addresses before, want 2", n)
		}
		e.delivered(t, e.other, from, request, "wh-anything", time.Now()) // the other tenant's map is empty
		if n := e.identifiers(t, e.other, into, identity.IDEmail); n != 0 {
			t.Fatalf("the merged person's addresses stayed: %d", n)
		}
		if n := e.identifiers(t, e.other, into, identity.IDCustomerNumber); n != 2 {
			t.Fatalf("erasing the email took other identifiers: %d customer numbers left", n)
		}
	})
}

// TestErasureReachesSubjectsMergedIn: the request names the surviving person; another
// person merged into it since still has the address a connector wrote under its own
// subject (a merge moves identifiers, not connector_members). Lupa's copy of that address
// goes too, and so does one under a subject merged into that one in turn.
func TestErasureReachesSubjectsMergedIn(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e, _ := newEnv(t, db)
		tenant := e.other // an empty map: the first check completes the request
		into, request := e.person(t, tenant, "S-1", "survivor@example.fi")
		from, _ := e.person(t, tenant, "S-2", "merged@example.fi")
		device, _ := e.person(t, tenant, "S-3")
		for _, m := range [][2]string{{from, into}, {device, from}} {
			for _, q := range []string{`UPDATE identifiers SET subject_id = ? WHERE tenant_id = ? AND subject_id = ?`,
				`UPDATE subjects SET merged_into = ? WHERE tenant_id = ? AND id = ?`} {
				if err := e.db.Write.Exec(q, m[1], tenant, m[0]).Error; err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, s := range []string{into, from, device} {
			if err := e.db.Write.Exec(`INSERT INTO connector_members (tenant_id, connector_id, subject_id, email_ct, email_kid, updated_at)
				VALUES (?, 'con_1', ?, ?, 'test', 0)`, tenant, s, []byte("sealed address")).Error; err != nil {
				t.Fatal(err)
			}
		}
		e.delivered(t, tenant, into, request, "wh-anything", time.Now())
		if n := e.identifiers(t, tenant, into, identity.IDEmail); n != 0 {
			t.Fatalf("%d email identifiers left", n)
		}
		var left int64
		if err := e.db.Read.Raw(`SELECT COUNT(*) FROM connector_members WHERE tenant_id = ?`, tenant).Scan(&left).Error; err != nil {
			t.Fatal(err)
		}
		if left != 0 {
			t.Fatalf("%d addresses a connector wrote are still kept after the erasure", left)
		}
	})
}

// TestDeliveryConfirmsOnlyItsRoute: a system the tenant's webhook endpoint informs of
// consent changes, but whose erasures a person carries out (dsr method manual), is not
// confirmed by the endpoint's acknowledgement: a 2xx says the event arrived, not that the
// owner's task is done. Only its owner's confirmation counts, and the email stays until then.
func TestDeliveryConfirmsOnlyItsRoute(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		e, _ := newEnv(t, db)
		ctx := context.Background()
		tenant := e.other // an empty map but this system
		e.endpoint(t, tenant, "wh-1")
		s := tills(tenant)
		s.Name, s.Connection = "CRM", &datamap.Connection{Kind: datamap.ConnectionWebhook, ID: "wh-1"}
		crm, err := e.svc.Create(ctx, s, identity.ActorSystem)
		if err != nil {
			t.Fatal(err)
		}
		subject, request := e.person(t, tenant, "R-1", "rita@example.fi")
		e.delivered(t, tenant, subject, request, "wh-1", time.Now())
		if n := e.confirmations(t, tenant, request); n != 0 {
			t.Fatalf("the endpoint's acknowledgement confirmed a manual task (%d confirmations)", n)
		}
		if n := e.identifiers(t, tenant, subject, identity.IDEmail); n != 1 {
			t.Fatalf("the email went before the owner confirmed (%d left)", n)
		}
		if _, err := e.svc.ConfirmErasure(ctx, tenant, crm.ID, request, "deleted in the CRM", identity.ActorAPIKey("k1")); err != nil {
			t.Fatal(err)
		}
		if n := e.identifiers(t, tenant, subject, identity.IDEmail); n != 0 {
			t.Fatalf("%d email identifiers after the owner confirmed", n)
		}
	})
}
