package consent_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
)

// TestVerbalConsentIsConfirmedByEmail: a consent an agent records by phone is confirmed to
// the person by email, with a receipt that verifies; a retry sends nothing more.
func TestVerbalConsentIsConfirmedByEmail(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		srv, _ := e.mailer(t)
		email := identity.Identifier{Kind: identity.IDEmail, Value: "ville@esimerkki.fi"}
		req := e.customerRequest("", consent.MethodVerbal, "agent-12", grant("marketing_email", 1), deny("partner_sharing"))
		req.Identifier = &email
		req.Language = "fi"
		req.Idempotency = &consent.IdempotencyKey{Route: "/v1/subjects/consents", Key: "call-1", RequestHash: "h1"}
		out, err := e.svc.Record(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		e.svc.ConfirmVerbal(ctx, req, out)
		m := srv.WaitFor(t, "ville@esimerkki.fi", 5*time.Second)
		if m.Subject != "Vahvistus puhelimessa antamistasi valinnoista" ||
			!strings.Contains(m.Text, "Markkinointisähköpostit: annettu suostumus") ||
			!strings.Contains(m.Text, "Tietojen luovutus kumppaneille: ei suostumusta") ||
			!strings.Contains(m.Text, "https://lupa.example/v1/receipts/verify") {
			t.Fatalf("mail %q: %q", m.Subject, m.Text)
		}
		receipt := strings.TrimSpace(m.Text[strings.LastIndex(strings.TrimSpace(m.Text), "\n")+1:])
		check, err := e.svc.VerifyReceipt(ctx, receipt)
		if err != nil || !check.Valid {
			t.Fatalf("the mailed receipt does not verify: %+v %v", check, err)
		}
		again, err := e.svc.Record(ctx, req)
		if err != nil || !again.Replayed {
			t.Fatalf("retry: %v", err)
		}
		e.svc.ConfirmVerbal(ctx, req, again)
		// A customer known only by number gets no email, and recording still works.
		if _, err := e.svc.Record(ctx, e.customerRequest("C-9", consent.MethodVerbal, "agent-12", grant("marketing_email", 1))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		if n := len(srv.Messages()); n != 1 {
			t.Fatalf("%d emails, want only the first confirmation", n)
		}
	})
}

// A verbal consent recorded in a language the confirmation has no text for (de) is
// confirmed in the recording property's default language (fi), not the tenant's (en) or
// English, with the titles in that language.
func TestVerbalConfirmationInThePropertysLanguage(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.tenantLanguage(t, "en")
		srv, _ := e.mailer(t)
		email := identity.Identifier{Kind: identity.IDEmail, Value: "kieli@esimerkki.fi"}
		req := e.webShopPerson(&email, consent.MethodVerbal, "agent-12", "de", grant("marketing_email", 1))
		out, err := e.svc.Record(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		e.svc.ConfirmVerbal(ctx, req, out)
		m := srv.WaitFor(t, email.Value, 5*time.Second)
		if m.Subject != "Vahvistus puhelimessa antamistasi valinnoista" ||
			!strings.Contains(m.Text, "Markkinointisähköpostit: annettu suostumus") {
			t.Fatalf("mail %q: %q", m.Subject, m.Text)
		}
	})
}
