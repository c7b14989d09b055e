package consent_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
)

// A request whose SQL fails inside a group-committed batch is taken out and answered on its
// own; the rest of the batch commits. (TestConflictingKeyInABatchFailsAlone shows the same
// through Record; here the batch is put together exactly, so the failure is inside it.)
func TestBadRequestInABatchFailsAlone(t *testing.T) {
	for _, c := range []struct {
		sabotage string
		code     string
	}{
		{consent.SabotageDuplicateInteraction, identity.EConflict},
		{consent.SabotageDeletedTenant, identity.EInternal},
	} {
		t.Run(c.sabotage, func(t *testing.T) {
			each(t, func(t *testing.T, e *env) {
				ctx := context.Background()
				existing := e.record(t, "", consent.MethodBannerCustom, grant("analytics", 1))
				e.recordCustomer(t, "C-1", grant("marketing_email", 1))
				before := e.tableCounts(t)
				var reqs []*consent.RecordRequest
				for i := range 8 {
					switch i % 3 {
					case 0:
						reqs = append(reqs, e.deviceRequest("", consent.MethodBannerCustom, grant("analytics", 1), deny("social_advertising")))
					case 1:
						reqs = append(reqs, e.customerRequest(fmt.Sprintf("N-%d", i), consent.MethodAPI, "", grant("marketing_email", 1)))
					case 2:
						reqs = append(reqs, e.deviceRequest(existing.DeviceID, consent.MethodBannerCustom, deny("analytics")))
					}
				}
				const bad = 4 // a new customer: it has a new subject for the tenant sabotage
				outs, errs, err := e.svc.CommitAsOneBatch(ctx, reqs, bad, c.sabotage)
				if err != nil {
					t.Fatal(err)
				}
				wantCode(t, errs[bad], c.code)
				if outs[bad] != nil {
					t.Fatalf("the failed request got an outcome: %+v", outs[bad])
				}
				events := 0
				for i := range reqs {
					if i == bad {
						continue
					}
					if errs[i] != nil {
						t.Fatalf("request %d failed with the bad one: %v", i, errs[i])
					}
					if outs[i].Receipt == "" || len(outs[i].Events) == 0 {
						t.Fatalf("request %d: %+v", i, outs[i])
					}
					for _, ev := range outs[i].Events {
						events++
						if n := e.count(t, "consent_events", "id = ? AND hash = ?", ev.ID, ev.Hash); n != 1 {
							t.Fatalf("request %d's event %s is not in the ledger", i, ev.ID)
						}
					}
				}
				got := e.grew(t, before)
				if got["consent_events"] != int64(events) || got["receipts"] != int64(len(reqs)-1) {
					t.Fatalf("the batch wrote %v; want %d events and %d receipts", got, events, len(reqs)-1)
				}
				if _, err := e.ids.FindSubject(ctx, e.tenant(), *customer(fmt.Sprintf("N-%d", bad))); !identity.IsCode(err, identity.ENotFound) {
					t.Fatalf("the failed request's customer exists: %v", err)
				}
				// The existing device's chain took its two withdrawals in order.
				if n := e.count(t, "consent_events", "subject_id = ?", e.subjectID(t, device(existing.DeviceID))); n != 3 {
					t.Fatalf("existing device has %d events, want 3", n)
				}
				e.mustVerifyOK(t)
			})
		})
	}
}
