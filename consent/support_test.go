package consent_test

import (
	"context"
	"testing"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
)

// TestLookupSubjectIsLogged: support finds a person by email with the identifiers, state
// and history (a merged device's included); every lookup, found or not, is in the access
// log with the reason and never the identifier's value; another tenant finds nothing.
func TestLookupSubjectIsLogged(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		email := identity.Identifier{Kind: identity.IDEmail, Value: "maija@esimerkki.fi"}
		req := e.customerRequest("", consent.MethodVerbal, "agent-7", grant("marketing_email", 1))
		req.Identifier = &email
		if _, err := e.svc.Record(ctx, req); err != nil {
			t.Fatal(err)
		}
		anon := e.record(t, "", consent.MethodBannerAcceptAll, grant("analytics", 1))
		if _, err := e.svc.LinkDevice(ctx, e.demo.WebShop, device(anon.DeviceID), email, consent.MergeSignIn, "device"); err != nil {
			t.Fatal(err)
		}
		agent := identity.ActorAPIKey("support-key")
		_, err := e.svc.LookupSubject(ctx, e.tenant(), email, "", agent)
		wantField(t, wantCode(t, err, identity.EInvalid), "reason", "access log")

		got, err := e.svc.LookupSubject(ctx, e.tenant(), identity.Identifier{Kind: "email", Value: " Maija@Esimerkki.FI"}, "ticket 31: what do we hold", agent)
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[string]string{}
		for _, id := range got.Identifiers {
			kinds[id.Kind] = id.Value
		}
		if kinds["email"] != "maija@esimerkki.fi" || kinds["device"] != anon.DeviceID || stateOf(got.State, "marketing_email").State != "granted" {
			t.Fatalf("lookup %+v", got)
		}
		chains := map[string]bool{}
		for _, ev := range got.History {
			chains[ev.Pseudonym] = true
		}
		if len(chains) != 2 {
			t.Fatalf("history from %d chains, want the person's and the merged device's", len(chains))
		}
		if _, err := e.svc.LookupSubject(ctx, e.tenant(), identity.Identifier{Kind: "email", Value: "nobody@esimerkki.fi"}, "ticket 32", agent); !identity.IsCode(err, identity.ENotFound) {
			t.Fatalf("unknown: %v", err)
		}
		other, _, err := e.ids.CreateTenant(ctx, identity.TenantInput{Slug: "other", Name: "Other", LegalName: "Other Oy",
			ContactEmail: "privacy@other.example", Jurisdiction: "FI", DefaultLanguage: "fi"}, identity.ActorSystem)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.LookupSubject(ctx, other.ID, email, "ticket 33", agent); !identity.IsCode(err, identity.ENotFound) {
			t.Fatalf("another tenant found the person: %v", err)
		}
		log, _, err := e.svc.AccessLog(ctx, e.tenant(), "", "", 0)
		if err != nil || len(log) != 2 {
			t.Fatalf("access log %+v %v", log, err)
		}
		if log[0].Found || log[1].Subject != got.Subject || log[1].Reason != "ticket 31: what do we hold" || log[1].Actor != string(agent) || log[1].IdentifierKind != "email" {
			t.Fatalf("entries %+v %+v", log[0], log[1])
		}
		if n := e.count(t, "subject_access_log", "reason LIKE '%maija%'"); n != 0 {
			t.Fatal("the access log holds the address")
		}
		mine, _, _ := e.svc.AccessLog(ctx, e.tenant(), got.Subject, "", 0)
		if len(mine) != 1 {
			t.Fatalf("filtered by subject: %+v", mine)
		}
	})
}
