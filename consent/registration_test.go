package consent_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/accounts"
	"github.com/lupa-cmp/lupa/identity/mail/mailtest"
	"github.com/lupa-cmp/lupa/identity/password"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

func (e *env) accounts(t *testing.T) (*accounts.Service, *mailtest.Server) {
	t.Helper()
	srv, sender := e.mailer(t)
	hasher := password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 2, 8)
	return accounts.New(e.db, e.ids, hasher, sender, e.clock.Now, slog.New(slog.NewTextHandler(io.Discard, nil)),
		accounts.Options{LinkBase: "https://lupa.example"}), srv
}

func boxes(ticked map[string]bool) []consent.DecisionInput {
	var out []consent.DecisionInput
	for p, on := range ticked {
		if on {
			out = append(out, grant(p, 1))
		} else {
			out = append(out, deny(p))
		}
	}
	return out
}

// TestRegistrationWritesAccountAndBoxesTogether: the account and each box's decision are
// one transaction; the decisions name the registration channel and the text shown.
func TestRegistrationWritesAccountAndBoxesTogether(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		acc, smtp := e.accounts(t)
		prep, err := acc.PrepareRegistration(ctx, e.tenant(), consent.DemoSlug, accounts.Registration{Email: "Reija@Esimerkki.fi",
			Password: "rekisteröidyn nyt kaupan tilille", Language: "fi"})
		if err != nil || prep == nil {
			t.Fatal(err)
		}
		out, err := e.svc.Register(ctx, consent.Registration{Property: e.demo.WebShop, Email: prep.Email(), Language: "fi",
			Boxes: boxes(map[string]bool{"marketing_email": true, "partner_sharing": false}), Account: prep.Statements})
		if err != nil {
			t.Fatalf("register: %v", err)
		}
		prep.Done(ctx)
		if stateOf(out.State, "marketing_email").State != "granted" || stateOf(out.State, "partner_sharing").State != "denied" {
			t.Fatalf("state %+v", out.State)
		}
		if n := e.count(t, "consent_events", "channel = 'registration' AND method = 'checkbox' AND text_hash <> ''"); n != 2 {
			t.Fatalf("%d registration events", n)
		}
		subject := e.subjectID(t, identity.Identifier{Kind: "email", Value: "reija@esimerkki.fi"})
		if n := e.count(t, "accounts", "subject_id = ?", subject); n != 1 {
			t.Fatal("no account for the person")
		}
		m := smtp.WaitFor(t, "reija@esimerkki.fi", 5*time.Second)
		if m.Subject != "Vahvista sähköpostiosoitteesi" {
			t.Fatalf("mail %q", m.Subject)
		}

		// Both or neither: when the account cannot be written, no decision is either.
		before := e.count(t, "consent_events", "")
		prep2, _ := acc.PrepareRegistration(ctx, e.tenant(), consent.DemoSlug, accounts.Registration{Email: "kalle@esimerkki.fi",
			Password: "toinen pitkä salasana tähän", Language: "fi"})
		failing := func(subjectID string) ([]sqldb.Statement, error) {
			sts, _ := prep2.Statements(subjectID)
			return append(sts, sts[0]), nil // the same account twice: a unique violation
		}
		if _, err := e.svc.Register(ctx, consent.Registration{Property: e.demo.WebShop, Email: prep2.Email(), Language: "fi",
			Boxes: boxes(map[string]bool{"marketing_email": true}), Account: failing}); err == nil {
			t.Fatal("a failed account was registered")
		}
		if e.count(t, "consent_events", "") != before {
			t.Fatal("decisions were written without their account")
		}
		if _, err := e.ids.FindSubject(ctx, e.tenant(), identity.Identifier{Kind: "email", Value: "kalle@esimerkki.fi"}); !identity.IsCode(err, identity.ENotFound) {
			t.Fatalf("the person was created without the account: %v", err)
		}
		e.mustVerifyOK(t)
	})
}

// TestRegistrationDoesNotOverrideTheOwner: someone registering an address that already
// names a person (known from the shop's till, say) decides only what that person left open.
func TestRegistrationDoesNotOverrideTheOwner(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		acc, _ := e.accounts(t)
		email := identity.Identifier{Kind: "email", Value: "omistaja@esimerkki.fi"}
		req := e.customerRequest("", consent.MethodVerbal, "agent-1", grant("marketing_email", 1))
		req.Identifier = &email
		if _, err := e.svc.Record(ctx, req); err != nil {
			t.Fatal(err)
		}
		prep, _ := acc.PrepareRegistration(ctx, e.tenant(), consent.DemoSlug, accounts.Registration{Email: email.Value,
			Password: "joku aivan muu ihminen tässä", Language: "fi"})
		out, err := e.svc.Register(ctx, consent.Registration{Property: e.demo.WebShop, Email: prep.Email(), Language: "fi",
			Boxes: boxes(map[string]bool{"marketing_email": false, "partner_sharing": true}), Account: prep.Statements})
		if err != nil {
			t.Fatal(err)
		}
		if got := stateOf(out.State, "marketing_email").State; got != "granted" {
			t.Fatalf("the registration overrode the owner's grant: %s", got)
		}
		if got := stateOf(out.State, "partner_sharing").State; got != "granted" {
			t.Fatalf("an undecided purpose: %s", got)
		}
	})
}

// TestRegistrationAgeRule: with the rule on, the year of birth is required; below the age
// of digital consent no consent is accepted, below the marketing age marketing is not; an
// unticked box a child could not decide is not recorded.
func TestRegistrationAgeRule(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		thirteen, fifteen := 13, 15
		if _, err := e.ids.UpdateTenant(ctx, e.tenant(), identity.TenantPatch{AgeOfConsent: &thirteen, MarketingAge: &fifteen}, identity.ActorSystem); err != nil {
			t.Fatal(err)
		}
		acc, _ := e.accounts(t)
		year := e.clock.Now().Year()
		register := func(email string, birthYear int, ticked map[string]bool) (*consent.Outcome, error) {
			prep, err := acc.PrepareRegistration(ctx, e.tenant(), consent.DemoSlug, accounts.Registration{Email: email,
				Password: "salasana joka on riittävän pitkä", Language: "fi", BirthYear: birthYear})
			if err != nil {
				return nil, err
			}
			return e.svc.Register(ctx, consent.Registration{Property: e.demo.WebShop, Email: prep.Email(), Language: "fi",
				Boxes: boxes(ticked), Account: prep.Statements, BirthYear: birthYear})
		}
		_, err := register("ei-vuotta@esimerkki.fi", 0, map[string]bool{"personalisation": true})
		wantField(t, wantCode(t, err, identity.EInvalid), "birth_year", "required")

		// Twelve (or thirteen, if the birthday has passed): no consent at all.
		_, err = register("lapsi@esimerkki.fi", year-13, map[string]bool{"personalisation": true})
		wantField(t, wantCode(t, err, identity.EUnprocessable), "purpose_personalisation", "below the age of 13")
		out, err := register("lapsi@esimerkki.fi", year-13, map[string]bool{"personalisation": false, "marketing_email": false})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Events) != 0 {
			t.Fatalf("a child's unticked boxes were recorded: %+v", out.Events)
		}
		// Fourteen: consent yes, marketing no.
		_, err = register("nuori@esimerkki.fi", year-15, map[string]bool{"marketing_email": true, "personalisation": true})
		wantField(t, wantCode(t, err, identity.EUnprocessable), "purpose_marketing_email", "below the age of 15")
		out, err = register("nuori@esimerkki.fi", year-15, map[string]bool{"marketing_email": false, "personalisation": true})
		if err != nil || len(out.Events) != 1 || stateOf(out.State, "personalisation").State != "granted" {
			t.Fatalf("a fourteen-year-old: %+v %v", out, err)
		}
		// Adults decide everything.
		out, err = register("aikuinen@esimerkki.fi", year-30, map[string]bool{"marketing_email": true, "personalisation": false})
		if err != nil || len(out.Events) != 2 {
			t.Fatalf("an adult: %+v %v", out, err)
		}
	})
}
