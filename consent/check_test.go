package consent_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
)

func TestCheckAnswersPerIdentifierInOrder(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.newPurpose(t, consent.Purpose{Key: "loyalty_offers", Level: consent.LevelPerson, LegalBasis: consent.BasisLegitimateInterest},
			consent.VersionDetails{DataCategories: []string{"purchase history"}})
		e.recordCustomer(t, "C-1", grant("marketing_email", 1))
		e.recordCustomer(t, "C-2", deny("marketing_email"))
		e.recordCustomer(t, "C-3", object("loyalty_offers"))
		dev := e.record(t, "", consent.MethodBannerAcceptAll, grant("analytics", 1))

		ids := []identity.Identifier{*customer("C-1"), *customer("C-404"), *customer("C-2"), *customer("C-1"),
			*customer("C-3"), device(dev.DeviceID)}
		type want struct {
			mayUse        bool
			state, reason string
		}
		for _, c := range []struct {
			purpose string
			want    []want
		}{
			{"marketing_email", []want{
				{true, "granted", "granted"}, {false, "not_asked", "unknown_subject"}, {false, "denied", "denied"},
				{true, "granted", "granted"}, {false, "not_asked", "not_asked"}, {false, "not_asked", "not_asked"}}},
			// Legitimate interest needs no consent: it may be used unless the person objected,
			// for people Lupa has never heard of too.
			{"loyalty_offers", []want{
				{true, "not_asked", "legitimate_interest"}, {true, "not_asked", "legitimate_interest"},
				{true, "not_asked", "legitimate_interest"}, {true, "not_asked", "legitimate_interest"},
				{false, "objected", "objected"}, {true, "not_asked", "legitimate_interest"}}},
			{"analytics", []want{
				{false, "not_asked", "not_asked"}, {false, "not_asked", "unknown_subject"}, {false, "not_asked", "not_asked"},
				{false, "not_asked", "not_asked"}, {false, "not_asked", "not_asked"}, {true, "granted", "granted"}}},
			{"necessary", []want{
				{true, "not_asked", "strictly_necessary"}, {true, "not_asked", "strictly_necessary"}, {true, "not_asked", "strictly_necessary"},
				{true, "not_asked", "strictly_necessary"}, {true, "not_asked", "strictly_necessary"}, {true, "not_asked", "strictly_necessary"}}},
		} {
			t.Run(c.purpose, func(t *testing.T) {
				res, err := e.svc.Check(ctx, e.tenant(), c.purpose, ids)
				if err != nil {
					t.Fatal(err)
				}
				if len(res) != len(ids) {
					t.Fatalf("%d answers for %d identifiers", len(res), len(ids))
				}
				for i, r := range res {
					if r.Identifier != ids[i] {
						t.Fatalf("answer %d is for %+v, asked %+v: order not kept", i, r.Identifier, ids[i])
					}
					if w := c.want[i]; r.MayUse != w.mayUse || r.State != w.state || r.Reason != w.reason {
						t.Errorf("%s for %s: got may_use=%v state=%s reason=%s, want %+v", c.purpose, ids[i].Value, r.MayUse, r.State, r.Reason, w)
					}
				}
			})
		}

		// A year on, the grant has expired: it no longer may be used, before any sweep.
		e.clock.AddDate(1, 0, 1)
		res, err := e.svc.Check(ctx, e.tenant(), "marketing_email", ids[:1])
		if err != nil || res[0].MayUse || res[0].State != consent.StateExpired {
			t.Fatalf("after the re-ask interval: %+v %v", res, err)
		}

		_, err = e.svc.Check(ctx, e.tenant(), "nope", ids)
		wantCode(t, err, identity.EUnprocessable)
		_, err = e.svc.Check(ctx, e.tenant(), "marketing_email", []identity.Identifier{{Kind: "phone", Value: "+358401234567"}})
		wantField(t, wantCode(t, err, identity.EInvalid), "identifiers[0].kind", "must be")
		_, err = e.svc.Check(ctx, e.tenant(), "marketing_email", nil)
		wantCode(t, err, identity.EInvalid)
		_, err = e.svc.Check(ctx, e.tenant(), "marketing_email", make([]identity.Identifier, consent.MaxCheck+1))
		wantCode(t, err, identity.EInvalid)
	})
}

// More identifiers than SQLite takes in one statement: the answers come from several
// queries and must still line up with the question.
func TestCheckManyIdentifiers(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		known := map[int]string{0: "K-0", 4999: "K-4999", 5000: "K-5000", 7311: "K-7311", consent.MaxCheck - 1: "K-last"}
		granted := map[string]bool{"K-0": true, "K-5000": true, "K-last": true}
		for _, number := range known {
			if granted[number] {
				e.recordCustomer(t, number, grant("marketing_email", 1))
			} else {
				e.recordCustomer(t, number, deny("marketing_email"))
			}
		}
		ids := make([]identity.Identifier, consent.MaxCheck)
		for i := range ids {
			number, ok := known[i]
			if !ok {
				number = fmt.Sprintf("U-%d", i)
			}
			ids[i] = *customer(number)
		}
		res, err := e.svc.Check(ctx, e.tenant(), "marketing_email", ids)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			number, isKnown := known[i]
			switch {
			case r.Identifier != ids[i]:
				t.Fatalf("answer %d is for %+v", i, r.Identifier)
			case isKnown && granted[number] && (!r.MayUse || r.State != consent.StateGranted):
				t.Fatalf("%s: %+v", number, r)
			case isKnown && !granted[number] && (r.MayUse || r.State != consent.StateDenied):
				t.Fatalf("%s: %+v", number, r)
			case !isKnown && (r.MayUse || r.Reason != "unknown_subject"):
				t.Fatalf("unknown %s: %+v", ids[i].Value, r)
			}
		}
	})
}
