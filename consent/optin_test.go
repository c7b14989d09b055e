package consent_test

import (
	"context"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/mail"
	"github.com/lupa-cmp/lupa/identity/mail/mailtest"
)

var optInLinkRe = regexp.MustCompile(`https://lupa\.example/optin\?lang=[a-z]+&t=(\S+)`)

// TestDoubleOptIn: a grant of a double opt-in purpose stays pending — not a grant, not
// usable — until the person follows the emailed link; the link works once in effect, not
// after it expires, and not for a grant withdrawn meanwhile.
func TestDoubleOptIn(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		srv := mailtest.NewServer(t)
		sender, err := mail.NewSMTP(mail.SMTPConfig{Host: srv.Host(), Port: srv.Port(), From: "noreply@demo-retail.example", TLS: mail.NoTLS})
		if err != nil {
			t.Fatal(err)
		}
		e.svc.SetMailer(sender, "https://lupa.example")
		if _, err := e.svc.UpdatePurpose(ctx, e.tenant(), "marketing_email", consent.PurposePatch{DoubleOptIn: ptr(true)}, identity.ActorSystem); err != nil {
			t.Fatal(err)
		}
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
