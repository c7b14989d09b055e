package consent_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/accounts"
)

// TestLinkDeviceKeepsThePersonsDecisions: an anonymous "Accept all" on a device, then the
// sign-in of a customer who refused advertising and marketing email: the customer's
// refusals stand, the device's other choice is carried over marked anonymous, the history
// holds both, and both chains verify.
func TestLinkDeviceKeepsThePersonsDecisions(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		anon := e.record(t, "", consent.MethodBannerAcceptAll, grant("analytics", 1), grant("social_advertising", 1))
		dev := device(anon.DeviceID)
		person := customer("C-100")
		e.recordCustomer(t, "C-100", deny("marketing_email"))
		req := e.customerRequest("C-100", consent.MethodAPI, "", deny("social_advertising"))
		req.Property = e.demo.WebShop
		if _, err := e.svc.Record(ctx, req); err != nil {
			t.Fatal(err)
		}
		deviceSubject := e.subjectID(t, dev)

		out, err := e.svc.LinkDevice(ctx, e.demo.WebShop, dev, *person, consent.MergeSignIn, "device")
		if err != nil {
			t.Fatalf("link: %v", err)
		}
		if out.AlreadyLinked || len(out.Carried) != 1 || out.Carried[0] != "analytics" {
			t.Fatalf("outcome %+v", out)
		}
		for purpose, want := range map[string]string{"analytics": "granted", "social_advertising": "denied", "marketing_email": "denied"} {
			if got := stateOf(out.State, purpose).State; got != want {
				t.Errorf("%s: %s, want %s", purpose, got, want)
			}
		}
		// The device now shows the person's state; the device id finds the person.
		if e.subjectID(t, dev) != e.subjectID(t, *person) {
			t.Fatal("the device identifier did not move to the person")
		}
		view, err := e.svc.DeviceState(ctx, e.demo.WebShop, anon.DeviceID)
		if err != nil || stateOf(view.State, "social_advertising").State != "denied" || stateOf(view.State, "analytics").Method != consent.MethodBannerAcceptAll {
			t.Fatalf("device state after linking: %+v %v", view, err)
		}
		// Evidence: the device chain keeps its decisions and ends in a merge naming the
		// person; the person's chain carries the device chain's head.
		if n := e.count(t, "consent_events", "subject_id = ? AND kind = 'decision'", deviceSubject); n != 2 {
			t.Fatalf("the device chain has %d decisions", n)
		}
		var last struct{ Kind, Reason, Ref string }
		e.db.Read.Raw("SELECT kind, reason, ref FROM consent_events WHERE subject_id = ? ORDER BY seq DESC LIMIT 1", deviceSubject).Scan(&last)
		if last.Kind != consent.KindMerge || last.Reason != consent.MergedInto+out.Subject {
			t.Fatalf("the device chain ends with %+v", last)
		}
		if n := e.count(t, "consent_events", "subject_id = ? AND kind = 'merge' AND reason = 'anonymous' AND purpose_key = 'analytics'", e.subjectID(t, *person)); n != 1 {
			t.Fatalf("%d carried analytics decisions on the person's chain", n)
		}
		var payload string
		e.db.Read.Raw("SELECT payload FROM domain_events WHERE type = 'subject.merged'").Scan(&payload)
		var d consent.DomainEvent
		if err := json.Unmarshal([]byte(payload), &d); err != nil || d.MergedFrom != deviceSubject {
			t.Fatalf("domain event %s", payload)
		}
		e.mustVerifyOK(t)

		// Idempotent: linking again writes nothing.
		before := e.count(t, "consent_events", "")
		again, err := e.svc.LinkDevice(ctx, e.demo.WebShop, dev, *person, consent.MergeSignIn, "device")
		if err != nil || !again.AlreadyLinked || e.count(t, "consent_events", "") != before {
			t.Fatalf("linking again: %+v %v", again, err)
		}
		// A device id never changes the person's person-level consents.
		if _, err := e.svc.Record(ctx, e.deviceRequest(anon.DeviceID, consent.MethodAPI, grant("marketing_email", 1))); !identity.IsCode(err, identity.EUnprocessable) {
			t.Fatalf("a device granted a person-level purpose: %v", err)
		}
	})
}

// TestDecisionsFollowThePerson: a device-level decision made on one device while linked
// shows on the person's second device once it is linked too.
func TestDecisionsFollowThePerson(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		person := customer("C-200")
		e.recordCustomer(t, "C-200", grant("marketing_email", 1))
		first := e.record(t, "", consent.MethodBannerRejectAll, deny("analytics"))
		if _, err := e.svc.LinkDevice(ctx, e.demo.WebShop, device(first.DeviceID), *person, consent.MergeSignIn, "device"); err != nil {
			t.Fatal(err)
		}
		// Signed in on the first device, the person changes their mind.
		e.record(t, first.DeviceID, consent.MethodBannerCustom, grant("analytics", 1))
		second := e.record(t, "", consent.MethodBannerRejectAll, deny("analytics"), deny("social_advertising"))
		out, err := e.svc.LinkDevice(ctx, e.demo.WebShop, device(second.DeviceID), *person, consent.MergeSignIn, "device")
		if err != nil {
			t.Fatal(err)
		}
		if got := stateOf(out.State, "analytics").State; got != "granted" {
			t.Fatalf("analytics on the second device: %s, want the person's grant", got)
		}
		if got := stateOf(out.State, "social_advertising").State; got != "denied" {
			t.Fatalf("social advertising: %s, want the second device's refusal carried over", got)
		}
		e.mustVerifyOK(t)
	})
}

func TestLinkDeviceRules(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		anon := e.record(t, "", consent.MethodBannerAcceptAll, grant("analytics", 1))
		e.recordCustomer(t, "C-300", deny("marketing_email"))
		e.recordCustomer(t, "C-301", deny("marketing_email"))
		kiosk, err := e.ids.CreateProperty(ctx, identity.Property{TenantID: e.tenant(), BrandID: e.demo.Brands[0].ID,
			Name: "Store kiosk", Kind: identity.PropertyKiosk, DefaultLanguage: "fi"}, identity.ActorSystem)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.LinkDevice(ctx, kiosk, device(anon.DeviceID), *customer("C-300"), consent.MergeSignIn, "device"); !identity.IsCode(err, identity.EUnprocessable) {
			t.Fatalf("a kiosk linked: %v", err)
		}
		if _, err := e.svc.LinkDevice(ctx, e.demo.WebShop, device(anon.DeviceID), *customer("C-300"), consent.MergeSignIn, "device"); err != nil {
			t.Fatal(err)
		}
		// The device belongs to C-300 now: another person signing in on it must sign out
		// first (which gives the device a new anonymous id); people are never merged.
		if _, err := e.svc.LinkDevice(ctx, e.demo.WebShop, device(anon.DeviceID), *customer("C-301"), consent.MergeSignIn, "device"); !identity.IsCode(err, identity.EConflict) {
			t.Fatalf("a linked device joined a second person: %v", err)
		}
		if _, err := e.svc.LinkDevice(ctx, e.demo.WebShop, device(identity.NewDeviceID()), *customer("C-300"), consent.MergeSignIn, "device"); !identity.IsCode(err, identity.ENotFound) {
			t.Fatalf("an unknown device: %v", err)
		}
	})
}

// TestConcurrentLinksMergeOnce: two sign-ins of one device at the same moment, on two
// instances, merge it once.
func TestConcurrentLinksMergeOnce(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		anon := e.record(t, "", consent.MethodBannerAcceptAll, grant("analytics", 1), grant("social_advertising", 1))
		e.recordCustomer(t, "C-400", deny("marketing_email"))
		other := e.secondInstance(t)
		var wg sync.WaitGroup
		outs := make([]*consent.MergeOutcome, 2)
		errs := make([]error, 2)
		for i, svc := range []*consent.Service{e.svc, other} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				outs[i], errs[i] = svc.LinkDevice(ctx, e.demo.WebShop, device(anon.DeviceID), *customer("C-400"), consent.MergeSignIn, "device")
			}()
		}
		wg.Wait()
		for i := range errs {
			if errs[i] != nil {
				t.Fatalf("link %d: %v", i, errs[i])
			}
		}
		if outs[0].AlreadyLinked == outs[1].AlreadyLinked {
			t.Fatalf("want one merge and one no-op, got %+v and %+v", outs[0], outs[1])
		}
		if n := e.count(t, "consent_events", "kind = 'merge' AND purpose_key = ''"); n != 2 {
			t.Fatalf("%d merge events, want one on each chain", n)
		}
		e.mustVerifyOK(t)
	})
}

// TestDecisionsDuringALink: decisions sent with the device id while it is being linked end
// up on one chain or the other, never on the device's chain after its merge event, and every
// chain verifies.
func TestDecisionsDuringALink(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		anon := e.record(t, "", consent.MethodBannerAcceptAll, grant("analytics", 1))
		e.recordCustomer(t, "C-500", deny("marketing_email"))
		deviceSubject := e.subjectID(t, device(anon.DeviceID))
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				d := grant("social_advertising", 1)
				if i%2 == 1 {
					d = deny("social_advertising")
				}
				if _, err := e.svc.Record(ctx, e.deviceRequest(anon.DeviceID, consent.MethodBannerCustom, d)); err != nil {
					t.Errorf("record during the link: %v", err)
				}
			}(i)
		}
		if _, err := e.svc.LinkDevice(ctx, e.demo.WebShop, device(anon.DeviceID), *customer("C-500"), consent.MergeSignIn, "device"); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		var last struct{ Kind, Reason string }
		e.db.Read.Raw("SELECT kind, reason FROM consent_events WHERE subject_id = ? ORDER BY seq DESC LIMIT 1", deviceSubject).Scan(&last)
		if last.Kind != consent.KindMerge {
			t.Fatalf("a decision was written on the device's chain after its merge: %+v", last)
		}
		e.mustVerifyOK(t)
	})
}

// TestMergePersons: when a CIAM merges two users, the newer explicit decision of the two
// stands for every purpose, the identifiers move, both chains verify, and a repeat changes
// nothing.
func TestMergePersons(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a, b := customer("P-A"), customer("P-B")
		e.recordCustomer(t, "P-A", grant("marketing_email", 1), deny("personalisation"))
		e.clock.Add(time.Hour)
		e.recordCustomer(t, "P-B", deny("marketing_email"), grant("partner_sharing", 1))
		e.clock.Add(time.Hour)
		e.recordCustomer(t, "P-A", grant("personalisation", 1))
		out, err := e.svc.MergePersons(ctx, e.tenant(), *b, *a)
		if err != nil {
			t.Fatal(err)
		}
		for purpose, want := range map[string]string{"marketing_email": "denied", "personalisation": "granted", "partner_sharing": "granted"} {
			if got := stateOf(out.State, purpose).State; got != want {
				t.Errorf("%s: %s, want %s (the newer decision)", purpose, got, want)
			}
		}
		if e.subjectID(t, *a) != e.subjectID(t, *b) {
			t.Fatal("the merged person's identifier did not move")
		}
		e.mustVerifyOK(t)
		again, err := e.svc.MergePersons(ctx, e.tenant(), *b, *a)
		if err != nil || !again.AlreadyLinked {
			t.Fatalf("again: %+v %v", again, err)
		}
		// Devices are not persons.
		dev := e.record(t, "", consent.MethodBannerAcceptAll, grant("analytics", 1))
		if _, err := e.svc.MergePersons(ctx, e.tenant(), device(dev.DeviceID), *a); !identity.IsCode(err, identity.EUnprocessable) {
			t.Fatalf("a device merged as a person: %v", err)
		}
	})
}

// TestMergePersonsMovesTheAccount: the merged person's account goes with its email to the
// survivor when the survivor has none: the password still signs in, to the survivor, and
// its session goes along. When both have accounts, the survivor's stays and the merged one
// is closed with its sessions.
func TestMergePersonsMovesTheAccount(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		acc, _ := e.accounts(t)
		register := func(email, pw string) {
			t.Helper()
			prep, err := acc.PrepareRegistration(ctx, e.tenant(), consent.DemoSlug, accounts.Registration{Email: email, Password: pw, Language: "fi"})
			if err != nil || prep == nil {
				t.Fatal(err)
			}
			if _, err := e.svc.Register(ctx, consent.Registration{Property: e.demo.WebShop, Email: prep.Email(), Language: "fi",
				Boxes: boxes(map[string]bool{"marketing_email": false}), Account: prep.Statements}); err != nil {
				t.Fatal(err)
			}
			prep.Done(ctx)
			if err := e.db.Write.Exec("UPDATE accounts SET email_verified_at = 1").Error; err != nil {
				t.Fatal(err)
			}
		}
		email := func(v string) identity.Identifier { return identity.Identifier{Kind: identity.IDEmail, Value: v} }

		// Only the merged person has an account.
		register("yksi@esimerkki.fi", "ensimmäinen hyvä salasana")
		before, err := acc.SignIn(ctx, e.tenant(), "yksi@esimerkki.fi", "ensimmäinen hyvä salasana", "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		e.recordCustomer(t, "K-1", grant("partner_sharing", 1))
		if _, err := e.svc.MergePersons(ctx, e.tenant(), email("yksi@esimerkki.fi"), *customer("K-1")); err != nil {
			t.Fatal(err)
		}
		survivor := e.subjectID(t, *customer("K-1"))
		after, err := acc.SignIn(ctx, e.tenant(), "yksi@esimerkki.fi", "ensimmäinen hyvä salasana", "192.0.2.1")
		if err != nil {
			t.Fatalf("the merged person's password no longer signs in: %v", err)
		}
		if after.SubjectID != survivor {
			t.Fatalf("signed in to %s, not the survivor %s", after.SubjectID, survivor)
		}
		if s, err := acc.Session(ctx, before.Token); err != nil || s.SubjectID != survivor {
			t.Fatalf("the open session did not follow the account: %+v %v", s, err)
		}

		// Both have accounts: the survivor's stays, the merged one closes.
		register("kaksi@esimerkki.fi", "toisen ihmisen salasana")
		register("kolme@esimerkki.fi", "kolmannen ihmisen salasana")
		closed, err := acc.SignIn(ctx, e.tenant(), "kolme@esimerkki.fi", "kolmannen ihmisen salasana", "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.MergePersons(ctx, e.tenant(), email("kolme@esimerkki.fi"), email("kaksi@esimerkki.fi")); err != nil {
			t.Fatal(err)
		}
		if _, err := acc.Session(ctx, closed.Token); err == nil {
			t.Fatal("the merged account's session still works")
		}
		if _, err := acc.SignIn(ctx, e.tenant(), "kaksi@esimerkki.fi", "toisen ihmisen salasana", "192.0.2.1"); err != nil {
			t.Fatalf("the survivor's account: %v", err)
		}
		if n := e.count(t, "accounts", "status = 'merged'"); n != 1 {
			t.Fatalf("%d closed accounts, want 1", n)
		}
		e.mustVerifyOK(t)
	})
}
