package consent_test

import (
	"context"
	"testing"

	"github.com/lupa-cmp/lupa/consent"
)

func TestRecordChainsAndVerifies(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		out := e.record(t, "", consent.MethodBannerCustom, grant("analytics", 1), deny("social_advertising"))
		if out.DeviceID == "" || len(out.Events) != 2 || out.Receipt == "" {
			t.Fatalf("unexpected outcome %+v", out)
		}
		if s := stateOf(out.State, "analytics"); s.State != consent.StateGranted || !s.MayUse {
			t.Fatalf("analytics state %+v", s)
		}
		if s := stateOf(out.State, "social_advertising"); s.State != consent.StateDenied || s.MayUse {
			t.Fatalf("advertising state %+v", s)
		}
		// The same device withdraws: the refusal of a current grant is recorded as a withdrawal.
		out2 := e.record(t, out.DeviceID, consent.MethodBannerRejectAll, deny("analytics"), deny("social_advertising"))
		if out2.DeviceID != out.DeviceID || out2.Subject != out.Subject {
			t.Fatalf("second interaction landed on another subject")
		}
		if out2.Events[0].Decision != consent.Withdrawn || out2.Events[0].Seq != 3 {
			t.Fatalf("want withdrawn at seq 3, got %+v", out2.Events[0])
		}
		rep, err := e.svc.Verify(context.Background(), e.demo.Tenant.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK || rep.Events != 4 || rep.Chains != 1 {
			t.Fatalf("verify: %+v", rep)
		}
	})
}
