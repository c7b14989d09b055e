package connector_test

import (
	"context"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/mail"
	"github.com/lupa-cmp/lupa/identity/mail/mailtest"
	"github.com/lupa-cmp/lupa/integrations"
	"github.com/lupa-cmp/lupa/integrations/connector"
	"github.com/lupa-cmp/lupa/integrations/hubspot/hubspottest"
	"github.com/lupa-cmp/lupa/integrations/klaviyo/klaviyotest"
	"github.com/lupa-cmp/lupa/integrations/mailchimp/mailchimptest"
)

// TestOptInAuditConnectors: a grant waiting for its double opt-in confirmation subscribes
// no one at Mailchimp, HubSpot or Klaviyo (each delivery is skipped with the reason); the
// confirmation subscribes the person everywhere; and the same grant sent again later (a
// shop's sync) keeps the confirmed grant: the person is not put back to pending in Lupa
// while the vendors keep them subscribed.
func TestOptInAuditConnectors(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		smtp := mailtest.NewServer(t)
		sender, err := mail.NewSMTP(mail.SMTPConfig{Host: smtp.Host(), Port: smtp.Port(), From: "noreply@demo-retail.example", TLS: mail.NoTLS})
		if err != nil {
			t.Fatal(err)
		}
		e.svc.SetMailer(sender, "https://lupa.example")
		on := true
		if _, err := e.svc.UpdatePurpose(ctx, e.tenant(), "marketing_email", consent.PurposePatch{DoubleOptIn: &on}, identity.ActorSystem); err != nil {
			t.Fatal(err)
		}
		mc := mailchimptest.New(t, mailchimptest.Options{})
		mcc := mailchimpConnector(t, e, mc)
		hs := hubspottest.New(t, hubspottest.Options{})
		hs.AddSubscription(7001, "Newsletter")
		hsc := e.connector(t, connector.Input{Vendor: connector.HubSpot, BaseURL: hs.URL(),
			Credentials: connector.Credentials{AccessToken: hs.Token(), ClientSecret: hs.ClientSecret()},
			Mappings:    []connector.Mapping{{Purpose: "marketing_email", SubscriptionID: 7001}}})
		kv := klaviyotest.New(t, klaviyotest.Options{})
		kv.AddList("L1")
		kvc := e.connector(t, connector.Input{Vendor: connector.Klaviyo, BaseURL: kv.URL(),
			Credentials: connector.Credentials{APIKey: kv.Key()},
			Mappings:    []connector.Mapping{{Purpose: "marketing_email", ListID: "L1"}}})

		const who = "anna@example.com"
		grantNow := func() {
			req := &consent.RecordRequest{TenantID: e.tenant(), Identifier: &identity.Identifier{Kind: identity.IDEmail, Value: who},
				Method: consent.MethodAPI, Language: "fi", Actor: identity.ActorAPIKey("test"), Decisions: []consent.DecisionInput{grant("marketing_email")}}
			out, err := e.svc.Record(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			e.svc.SendOptInConfirmation(ctx, req, out)
		}
		subscribed := func() (bool, bool, bool) {
			m, _ := mc.Member("aud1", who)
			ct, _ := hs.Contact(who)
			p, _ := kv.Profile(who)
			return m.Status == "subscribed", ct.Statuses[7001].State == "SUBSCRIBED", p.Consent == "SUBSCRIBED"
		}

		grantNow()
		e.step(t)
		if a, b, c := subscribed(); a || b || c {
			t.Fatalf("a pending grant subscribed: mailchimp %v hubspot %v klaviyo %v", a, b, c)
		}
		for _, id := range []string{mcc.ID, hsc.ID, kvc.ID} {
			d := lastOf(t, e.deliveries(t, id))
			if d.Status != integrations.StatusSkipped || !strings.Contains(d.LastError, "double opt-in") {
				t.Fatalf("pending grant's delivery: %s %q", d.Status, d.LastError)
			}
		}

		m := smtp.WaitFor(t, who, 5*time.Second)
		found := regexp.MustCompile(`/optin\?lang=[a-z]+&t=(\S+)`).FindStringSubmatch(m.Text)
		if found == nil {
			t.Fatalf("no link in %q", m.Text)
		}
		token, _ := url.QueryUnescape(found[1])
		if res, err := e.svc.ConfirmOptIn(ctx, token); err != nil || len(res.Confirmed) != 1 {
			t.Fatalf("confirm: %+v %v", res, err)
		}
		e.step(t)
		if a, b, c := subscribed(); !a || !b || !c {
			t.Fatalf("after the confirmation: mailchimp %v hubspot %v klaviyo %v", a, b, c)
		}

		e.clock.Add(time.Hour)
		grantNow() // the shop's sync says "granted" again
		e.step(t)
		if st := e.state(t, who, "marketing_email"); st != consent.StateGranted {
			t.Fatalf("Lupa's state after the repeated grant: %s, while the vendors keep the person subscribed", st)
		}
		if a, b, c := subscribed(); !a || !b || !c {
			t.Fatalf("after the repeated grant: mailchimp %v hubspot %v klaviyo %v", a, b, c)
		}
		if n := len(smtp.Messages()); n != 1 {
			t.Fatalf("%d confirmation emails, want 1", n)
		}
	})
}
