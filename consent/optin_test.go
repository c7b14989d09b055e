package consent_test

import (
	"context"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
)

var optInLinkRe = regexp.MustCompile(`https://lupa\.example/optin\?lang=[a-z]+&t=(\S+)`)

// TestDoubleOptIn: a grant of a double opt-in purpose stays pending — not a grant, not
// usable — until the person follows the emailed link; the link works once in effect, not
// after it expires, and not for a grant withdrawn meanwhile.
func TestDoubleOptIn(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		srv := e.doubleOptIn(t)
		email := identity.Identifier{Kind: identity.IDEmail, Value: "tiina@esimerkki.fi"}
		record := func(d ...consent.DecisionInput) *consent.Outcome {
			req := e.customerRequest("", consent.MethodCheckbox, "", d...)
			req.Identifier, req.Language = &email, "sv"
			out, err := e.svc.Record(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			e.svc.SendOptInConfirmation(ctx, req, out)
			return out
		}
		out := record(grant("marketing_email", 1), grant("personalisation", 1))
		if st := stateOf(out.State, "marketing_email"); st.State != consent.StatePending || st.MayUse {
			t.Fatalf("marketing email before confirmation: %+v", st)
		}
		if st := stateOf(out.State, "personalisation"); st.State != "granted" {
			t.Fatalf("a purpose without double opt-in: %+v", st)
		}
		res, err := e.svc.Check(ctx, e.tenant(), "marketing_email", []identity.Identifier{email})
		if err != nil || res[0].MayUse {
			t.Fatalf("a pending grant may be used: %+v %v", res, err)
		}
		m := srv.WaitFor(t, "tiina@esimerkki.fi", 5*time.Second)
		link := optInLinkRe.FindStringSubmatch(m.Text)
		if m.Subject != "Bekräfta din prenumeration" || link == nil {
			t.Fatalf("mail %q %q", m.Subject, m.Text)
		}
		token, _ := url.QueryUnescape(link[1])
		if _, err := e.svc.ConfirmOptIn(ctx, token[:len(token)-3]+"abc"); err != consent.ErrOptInLink {
			t.Fatalf("a tampered link: %v", err)
		}
		got, err := e.svc.ConfirmOptIn(ctx, token)
		if err != nil || len(got.Confirmed) != 1 || got.Confirmed[0] != "marketing_email" {
			t.Fatalf("confirm: %+v %v", got, err)
		}
		res, _ = e.svc.Check(ctx, e.tenant(), "marketing_email", []identity.Identifier{email})
		if !res[0].MayUse {
			t.Fatalf("after confirmation: %+v", res[0])
		}
		again, err := e.svc.ConfirmOptIn(ctx, token)
		if err != nil || len(again.Confirmed) != 0 {
			t.Fatalf("a second use: %+v %v", again, err)
		}
		if n := e.count(t, "consent_events", "method = 'double_opt_in'"); n != 1 {
			t.Fatalf("%d confirmation events", n)
		}
		// Withdrawn before confirming: the old link grants nothing.
		record(deny("marketing_email"))
		record(grant("marketing_email", 1))
		m = srv.WaitFor(t, "tiina@esimerkki.fi", 5*time.Second)
		second, _ := url.QueryUnescape(optInLinkRe.FindStringSubmatch(m.Text)[1])
		record(deny("marketing_email"))
		if got, err := e.svc.ConfirmOptIn(ctx, second); err != nil || len(got.Confirmed) != 0 {
			t.Fatalf("a link after withdrawal: %+v %v", got, err)
		}
		// Expired.
		record(grant("marketing_email", 1))
		m = srv.WaitFor(t, "tiina@esimerkki.fi", 5*time.Second)
		third, _ := url.QueryUnescape(optInLinkRe.FindStringSubmatch(m.Text)[1])
		e.clock.Add(8 * 24 * time.Hour)
		if _, err := e.svc.ConfirmOptIn(ctx, third); err != consent.ErrOptInLink {
			t.Fatalf("an expired link: %v", err)
		}
		// A receipt is signed by the same key, but it is no confirmation.
		if _, err := e.svc.ConfirmOptIn(ctx, out.Receipt); err != consent.ErrOptInLink {
			t.Fatalf("a receipt as a link: %v", err)
		}
		e.mustVerifyOK(t)
	})
}

func ptr[T any](v T) *T { return &v }

// TestDoubleOptInAfterMaterialVersion: a link sent before a material version cannot grant
// the replaced text. Followed before the outdated sweep, the confirmation grants nothing and
// reads already say outdated; the sweep then ends that pending grant and the one whose link
// is never followed alike. Either way the state is outdated (so the person is asked again),
// downstream systems hear consent.outdated once, the page says the text changed, and a
// pending grant of the new text from a newer link is left alone.
func TestDoubleOptInAfterMaterialVersion(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		srv := e.doubleOptIn(t)
		tiina := identity.Identifier{Kind: identity.IDEmail, Value: "tiina@esimerkki.fi"}
		timo := identity.Identifier{Kind: identity.IDEmail, Value: "timo@esimerkki.fi"}
		link := func(email identity.Identifier, d consent.DecisionInput) string {
			req := e.customerRequest("", consent.MethodCheckbox, "", d)
			req.Identifier = &email
			out, err := e.svc.Record(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			e.svc.SendOptInConfirmation(ctx, req, out)
			m := srv.WaitFor(t, email.Value, 5*time.Second)
			token, _ := url.QueryUnescape(optInLinkRe.FindStringSubmatch(m.Text)[1])
			return token
		}
		// readsOutdated: nothing granted, and reads say outdated (Effective) even before the
		// sweep has written it.
		readsOutdated := func(email identity.Identifier) {
			t.Helper()
			subject := e.subjectID(t, email)
			if n := e.count(t, "consent_events", "subject_id = ? AND decision = 'granted'", subject); n != 0 {
				t.Fatalf("%d grants recorded for a text the person was not shown", n)
			}
			res, err := e.svc.Check(ctx, e.tenant(), "marketing_email", []identity.Identifier{email})
			if err != nil || res[0].MayUse || res[0].State != consent.StateOutdated {
				t.Fatalf("%s: %+v %v", email.Value, res, err)
			}
		}
		ended := func(email identity.Identifier) {
			t.Helper()
			readsOutdated(email)
			subject := e.subjectID(t, email)
			if n := e.count(t, "consent_state", "subject_id = ? AND state = 'outdated'", subject); n != 1 {
				t.Fatalf("%s: stored state is not outdated", email.Value)
			}
			if n := e.count(t, "domain_events", "type = 'consent.outdated' AND subject_id = ?", subject); n != 1 {
				t.Fatalf("%s: %d consent.outdated domain events, want 1", email.Value, n)
			}
		}
		old, never := link(tiina, grant("marketing_email", 1)), link(timo, grant("marketing_email", 1))
		e.draft(t, "marketing_email", true, "Newsletter, now with partner offers", nil)
		if _, err := e.svc.PublishVersion(ctx, e.tenant(), "marketing_email", 2, actor); err != nil {
			t.Fatal(err)
		}

		// Tiina follows her link before any sweep has run.
		got, err := e.svc.ConfirmOptIn(ctx, old)
		if err != nil || len(got.Confirmed) != 0 || len(got.Changed) != 1 || got.Changed[0] != "marketing_email" {
			t.Fatalf("confirming the replaced text: %+v %v", got, err)
		}
		readsOutdated(tiina)

		// Timo never follows his: the sweep, past its grace period, ends both pending grants.
		e.clock.Add(10 * time.Minute)
		if n, err := e.svc.SweepOutdated(ctx); err != nil || n != 2 {
			t.Fatalf("outdated sweep: wrote %d, err %v; want 2 (the pending grants)", n, err)
		}
		ended(tiina)
		ended(timo)
		if got, err := e.svc.ConfirmOptIn(ctx, never); err != nil || len(got.Confirmed) != 0 || len(got.Changed) != 1 {
			t.Fatalf("Timo's link after the sweep: %+v %v", got, err)
		}
		ended(timo)
		subject, email := e.subjectID(t, tiina), tiina

		// Asked again, the person grants the new text; the old link still grants nothing and
		// leaves the new pending grant alone.
		fresh := link(tiina, grant("marketing_email", 2))
		if got, err := e.svc.ConfirmOptIn(ctx, old); err != nil || len(got.Confirmed) != 0 || len(got.Changed) != 1 {
			t.Fatalf("the old link again: %+v %v", got, err)
		}
		if st := e.count(t, "consent_state", "subject_id = ? AND state = 'pending_confirmation' AND version = 2", subject); st != 1 {
			t.Fatal("the old link changed the pending grant of the new text")
		}
		if got, err := e.svc.ConfirmOptIn(ctx, fresh); err != nil || len(got.Confirmed) != 1 || len(got.Changed) != 0 {
			t.Fatalf("confirming the new text: %+v %v", got, err)
		}
		if res, _ := e.svc.Check(ctx, e.tenant(), "marketing_email", []identity.Identifier{email}); !res[0].MayUse {
			t.Fatalf("after confirming the new text: %+v", res[0])
		}
		e.mustVerifyOK(t)
	})
}
