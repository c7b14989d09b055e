package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// TestAccountDeletion: deleting an account needs a ticked confirmation; it then ends every
// session, withdraws every consent the person gave (as ledger events, delivered downstream
// through domain events) and opens an erasure request.
func TestAccountDeletion(t *testing.T) {
	eachAccountServer(t, nil, func(t *testing.T, s *accountServer) {
		const email = "poistuja@esimerkki.fi"
		a := s.customer(t)
		a.register(demoSlug, email)
		b := s.customer(t)
		b.signIn(demoSlug, email)
		_, writeKey := s.newKey(t, s.demo.AdminKey, "consent:write")
		id := map[string]any{"kind": "email", "value": email}
		r := s.withKey(writeKey, http.MethodPost, "/v1/subjects/consents", map[string]any{"identifier": id, "method": "checkbox",
			"decisions": []map[string]any{{"purpose": "marketing_email", "version": 1, "decision": "granted"},
				{"purpose": "personalisation", "version": 1, "decision": "granted"}, {"purpose": "partner_sharing", "decision": "denied"}}})
		if r.Status != http.StatusCreated {
			t.Fatalf("record: %d %s", r.Status, r.Body)
		}
		if !strings.Contains(wantPage(t, a.get("/account"), http.StatusOK), `action="/account/delete"`) {
			t.Fatal("the account page offers no deletion")
		}
		// Without the confirmation nothing happens.
		wantRedirect(t, a.post("/account/delete", form("lang", "en")), "/account?lang=en")
		if a.signedInAs() != email {
			t.Fatal("an unconfirmed deletion ended the session")
		}
		page := wantPage(t, a.post("/account/delete", form("confirm", "yes", "lang", "en")), http.StatusOK)
		if !strings.Contains(page, "Account deleted") || a.signedInAs() != "" || b.signedInAs() != "" {
			t.Fatalf("after deletion: %s", page)
		}
		state := s.withKey(writeKey, http.MethodPost, "/v1/subjects/state", map[string]any{"identifier": id}).Map(t)
		for _, p := range state["state"].([]any) {
			st := p.(map[string]any)
			switch st["purpose"] {
			case "marketing_email", "personalisation":
				if st["state"] != "withdrawn" {
					t.Fatalf("%s after deletion: %v", st["purpose"], st["state"])
				}
			case "partner_sharing":
				if st["state"] != "denied" {
					t.Fatalf("a refusal changed: %v", st["state"])
				}
			}
		}
		ctx := context.Background()
		subj, err := s.app.ids.FindSubject(ctx, s.demo.Tenant.ID, identity.Identifier{Kind: "email", Value: email})
		if err != nil {
			t.Fatal(err)
		}
		var open int64
		s.app.db.Read.Raw("SELECT count(*) FROM dsr_requests WHERE subject_id = ? AND kind = 'erasure' AND status = 'open' AND source = 'account'", subj.ID).Scan(&open)
		var withdrawn int64
		s.app.db.Read.Raw(`SELECT count(*) FROM domain_events WHERE subject_id = ? AND payload LIKE '%withdrawn%'
			AND payload LIKE '%"reason":"`+consent.WithdrawAccountDeleted+`"%'`, subj.ID).Scan(&withdrawn)
		if open != 1 || withdrawn == 0 {
			t.Fatalf("erasure requests %d, withdrawal domain events %d", open, withdrawn)
		}
		// The account is gone: its password no longer signs in.
		wantPage(t, a.post("/t/"+demoSlug+"/signin", form("email", email, "password", goodPW)), http.StatusUnprocessableEntity)
	})
}

// TestAccountRegisterAsksBirthYear: with the tenant's minimum age rule on, the registration
// page asks the year of birth and will not go on without one.
func TestAccountRegisterAsksBirthYear(t *testing.T) {
	eachAccountServer(t, nil, func(t *testing.T, s *accountServer) {
		a := s.customer(t)
		if strings.Contains(wantPage(t, a.get("/t/"+demoSlug+"/register?lang=en"), http.StatusOK), `name="birth_year"`) {
			t.Fatal("the year of birth is asked with the rule off")
		}
		s.admin(http.MethodPatch, "/v1/admin/tenant", map[string]any{"age_of_consent": 13})
		if !strings.Contains(wantPage(t, a.get("/t/"+demoSlug+"/register?lang=en"), http.StatusOK), `name="birth_year"`) {
			t.Fatal("the year of birth is not asked with the rule on")
		}
		page := wantPage(t, a.post("/t/"+demoSlug+"/register", form("email", "ika@esimerkki.fi", "password", goodPW, "lang", "en")), http.StatusUnprocessableEntity)
		if !strings.Contains(page, "four digits") {
			t.Fatalf("no birth year error: %s", page)
		}
		wantPage(t, a.post("/t/"+demoSlug+"/register", form("email", "ika@esimerkki.fi", "password", goodPW, "birth_year", "2001", "lang", "en")), http.StatusOK)
		var year int
		s.app.db.Read.Raw("SELECT birth_year FROM accounts").Scan(&year)
		if year != 2001 {
			t.Fatalf("birth year stored %d", year)
		}
	})
}

// TestAccountDeletionWithdrawsFirst: when the withdrawal of the person's consents fails (here
// the database refuses the events), the account is left as it was: the person is still
// signed in, can sign in again, and a second try, once the database takes the events, deletes
// the account and withdraws. Never an account gone with its consents still given.
func TestAccountDeletionWithdrawsFirst(t *testing.T) {
	eachAccountServer(t, nil, func(t *testing.T, s *accountServer) {
		const email = "yrittaja@esimerkki.fi"
		a := s.customer(t)
		a.register(demoSlug, email)
		_, writeKey := s.newKey(t, s.demo.AdminKey, "consent:write")
		id := map[string]any{"kind": "email", "value": email}
		if r := s.withKey(writeKey, http.MethodPost, "/v1/subjects/consents", map[string]any{"identifier": id, "method": "checkbox",
			"decisions": []map[string]any{{"purpose": "marketing_email", "version": 1, "decision": "granted"}}}); r.Status != http.StatusCreated {
			t.Fatalf("record: %d %s", r.Status, r.Body)
		}
		marketing := func() any {
			for _, p := range s.withKey(writeKey, http.MethodPost, "/v1/subjects/state", map[string]any{"identifier": id}).Map(t)["state"].([]any) {
				if st := p.(map[string]any); st["purpose"] == "marketing_email" {
					return st["state"]
				}
			}
			return nil
		}

		refuse, allow := []string{`CREATE TRIGGER refuse_withdrawals BEFORE INSERT ON consent_events
			WHEN NEW.reason = 'account_deleted' BEGIN SELECT RAISE(ABORT, 'the disk is full'); END`}, []string{`DROP TRIGGER refuse_withdrawals`}
		if s.app.db.Dialect == sqldb.Postgres {
			refuse = []string{`CREATE FUNCTION refuse_withdrawals() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN IF NEW.reason = 'account_deleted' THEN RAISE EXCEPTION 'the disk is full'; END IF; RETURN NEW; END $$`,
				`CREATE TRIGGER refuse_withdrawals BEFORE INSERT ON consent_events FOR EACH ROW EXECUTE FUNCTION refuse_withdrawals()`}
			allow = []string{`DROP TRIGGER refuse_withdrawals ON consent_events`, `DROP FUNCTION refuse_withdrawals()`}
		}
		for _, q := range refuse {
			if err := s.app.db.Write.Exec(q).Error; err != nil {
				t.Fatal(err)
			}
		}
		if r := a.post("/account/delete", form("confirm", "yes", "lang", "en")); r.Status < 500 {
			t.Fatalf("the deletion did not fail: %d", r.Status)
		}
		if a.signedInAs() != email || marketing() != "granted" {
			t.Fatalf("after a failed deletion: signed in as %q, marketing %v", a.signedInAs(), marketing())
		}
		b := s.customer(t)
		if b.signIn(demoSlug, email); b.signedInAs() != email {
			t.Fatal("after a failed deletion the account no longer signs in")
		}

		for _, q := range allow {
			if err := s.app.db.Write.Exec(q).Error; err != nil {
				t.Fatal(err)
			}
		}
		if page := wantPage(t, a.post("/account/delete", form("confirm", "yes", "lang", "en")), http.StatusOK); !strings.Contains(page, "Account deleted") {
			t.Fatalf("the second try: %s", page)
		}
		if a.signedInAs() != "" || marketing() != "withdrawn" {
			t.Fatalf("after the second try: signed in as %q, marketing %v", a.signedInAs(), marketing())
		}
	})
}
