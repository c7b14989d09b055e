package consent_test

import (
	"context"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
)

// storedExpiry reads the stored expires_at (the expiry sweep's index) of a device's purpose.
func (e *env) storedExpiry(t *testing.T, deviceID, purpose string) int64 {
	t.Helper()
	var exp int64
	if err := e.db.Write.Raw(`SELECT c.expires_at FROM consent_state c JOIN purposes p ON p.tenant_id = c.tenant_id AND p.id = c.purpose_id
		WHERE c.tenant_id = ? AND c.subject_id = ? AND p.key = ?`, e.tenant(), e.subjectID(t, device(deviceID)), purpose).Scan(&exp).Error; err != nil {
		t.Fatal(err)
	}
	return exp
}

func (e *env) setReask(t *testing.T, purpose string, months int) {
	t.Helper()
	if _, err := e.svc.UpdatePurpose(context.Background(), e.tenant(), purpose, consent.PurposePatch{ReaskMonths: &months}, actor); err != nil {
		t.Fatal(err)
	}
}

func (e *env) reaskApplied(t *testing.T, purpose string) int {
	t.Helper()
	var n int
	e.db.Write.Raw("SELECT reask_applied FROM purposes WHERE tenant_id = ? AND key = ?", e.tenant(), purpose).Scan(&n)
	return n
}

// wantExpires checks that a state expires the given months after its decision.
func wantExpires(t *testing.T, what string, s consent.PurposeState, months int) {
	t.Helper()
	if s.DecidedAt == nil || s.ExpiresAt == nil || !s.ExpiresAt.Equal(s.DecidedAt.AddDate(0, months, 0)) {
		t.Fatalf("%s: decided %v, expires %v; want %d months after the decision", what, s.DecidedAt, s.ExpiresAt, months)
	}
}

// TestShorterReaskAppliesToEarlierDecisions: shortening a purpose's re-ask interval from 12 to
// 6 months expires a grant made 7 months ago at once, as the banner (which counts from its
// cookie with the configuration's interval) does; the sweeper then moves the stored expiry
// and the expiry sweep records it. A grant made 2 months ago stands.
func TestShorterReaskAppliesToEarlierDecisions(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		old := e.record(t, "", consent.MethodBannerCustom, grant("analytics", 1))
		e.clock.AddDate(0, 5, 0)
		recent := e.record(t, "", consent.MethodBannerCustom, grant("analytics", 1))
		e.clock.AddDate(0, 2, 0)
		e.setReask(t, "analytics", 6)

		s := e.deviceState(t, old.DeviceID, "analytics")
		if s.State != consent.StateExpired || s.MayUse {
			t.Fatalf("grant of 7 months ago after the interval became 6 months: %+v", s)
		}
		wantExpires(t, "7 months old", s, 6)
		_, doc := e.bannerConfig(t, e.svc, "fi")
		seen := false
		for _, p := range doc.Purposes {
			if p.Key != "analytics" {
				continue
			}
			seen = true
			if p.ReaskMonths != 6 {
				t.Fatalf("the banner re-asks analytics after %d months, the purpose after 6", p.ReaskMonths)
			}
		}
		if !seen {
			t.Fatal("analytics is missing from the banner configuration")
		}
		s = e.deviceState(t, recent.DeviceID, "analytics")
		if s.State != consent.StateGranted || !s.MayUse {
			t.Fatalf("grant of 2 months ago: %+v", s)
		}
		wantExpires(t, "2 months old", s, 6)

		e.clock.Add(10 * time.Minute) // past the rewrite's grace
		if n, err := e.svc.RewriteExpiries(ctx); err != nil || n != 2 {
			t.Fatalf("rewrite moved %d (err %v), want both grants", n, err)
		}
		for _, d := range []*consent.Outcome{old, recent} {
			s := e.deviceState(t, d.DeviceID, "analytics")
			if got := e.storedExpiry(t, d.DeviceID, "analytics"); got != s.DecidedAt.AddDate(0, 6, 0).UnixMilli() {
				t.Fatalf("stored expiry %v, decided %v: not moved to 6 months", time.UnixMilli(got).UTC(), s.DecidedAt)
			}
		}
		if n, err := e.svc.SweepExpiry(ctx); err != nil || n != 1 {
			t.Fatalf("expiry sweep wrote %d (err %v), want the old grant's expiry", n, err)
		}
		if n := e.count(t, "domain_events", "type = 'consent.expired' AND subject_id = ?", e.subjectID(t, device(old.DeviceID))); n != 1 {
			t.Fatalf("%d consent.expired events for the old grant, want 1", n)
		}
		if n := e.count(t, "consent_events", "kind = 'expiry' AND subject_id = ?", e.subjectID(t, device(recent.DeviceID))); n != 0 {
			t.Fatalf("the recent grant got %d expiry events", n)
		}
		if s := e.deviceState(t, recent.DeviceID, "analytics"); s.State != consent.StateGranted {
			t.Fatalf("recent grant after the sweeps: %+v", s)
		}
		e.mustVerifyOK(t)
	})
}

// TestLongerReaskKeepsEarlierRefusals: lengthening the interval from 12 to 24 months keeps a
// refusal made 13 months ago in force: it reads denied, and the expiry sweep, which finds it
// by its stored 12-month expiry until the sweeper moves it, writes nothing.
func TestLongerReaskKeepsEarlierRefusals(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		d := e.record(t, "", consent.MethodBannerCustom, deny("social_advertising"))
		e.clock.AddDate(0, 13, 0)
		e.setReask(t, "social_advertising", 24)

		s := e.deviceState(t, d.DeviceID, "social_advertising")
		if s.State != consent.StateDenied || s.MayUse {
			t.Fatalf("refusal of 13 months ago after the interval became 24 months: %+v", s)
		}
		wantExpires(t, "13 months old", s, 24)
		if n, err := e.svc.SweepExpiry(ctx); err != nil || n != 0 {
			t.Fatalf("expiry sweep before the rewrite wrote %d (err %v)", n, err)
		}
		e.clock.Add(10 * time.Minute) // past the rewrite's grace
		if n, err := e.svc.RewriteExpiries(ctx); err != nil || n != 1 {
			t.Fatalf("rewrite moved %d (err %v), want the refusal", n, err)
		}
		if got := e.storedExpiry(t, d.DeviceID, "social_advertising"); got != s.DecidedAt.AddDate(0, 24, 0).UnixMilli() {
			t.Fatalf("stored expiry %v: not moved to 24 months", time.UnixMilli(got).UTC())
		}
		if n, err := e.svc.SweepExpiry(ctx); err != nil || n != 0 {
			t.Fatalf("expiry sweep after the rewrite wrote %d (err %v)", n, err)
		}
		if n := e.count(t, "domain_events", "type = 'consent.expired'"); n != 0 {
			t.Fatalf("%d consent.expired events", n)
		}
	})
}

// TestReaskRewriteKeepsNewerDecision: a decision recorded between the rewrite's read and its
// write keeps its own expiry, and the expiry sweep does not expire it.
func TestReaskRewriteKeepsNewerDecision(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		d := e.record(t, "", consent.MethodBannerCustom, grant("analytics", 1))
		e.clock.AddDate(0, 7, 0)
		e.setReask(t, "analytics", 6)
		e.clock.Add(10 * time.Minute) // past the rewrite's grace
		var newer consent.PurposeState
		if _, err := e.svc.RewriteExpiriesThen(ctx, e.tenant(), "analytics", func() {
			newer = stateOf(e.record(t, d.DeviceID, consent.MethodBannerCustom, deny("analytics")).State, "analytics")
		}); err != nil {
			t.Fatal(err)
		}
		if got := e.storedExpiry(t, d.DeviceID, "analytics"); newer.ExpiresAt == nil || got != newer.ExpiresAt.UnixMilli() {
			t.Fatalf("stored expiry %v, the newer decision's %v: the rewrite overwrote it", time.UnixMilli(got).UTC(), newer.ExpiresAt)
		}
		if s := e.deviceState(t, d.DeviceID, "analytics"); s.State != consent.StateDenied {
			t.Fatalf("after the rewrite: %+v", s)
		}
		e.clock.Add(10 * time.Minute)
		if _, err := e.svc.RewriteExpiries(ctx); err != nil || e.reaskApplied(t, "analytics") != 6 {
			t.Fatalf("a clean pass after the grace left reask_applied %d (err %v), want 6", e.reaskApplied(t, "analytics"), err)
		}
		if n, err := e.svc.SweepExpiry(ctx); err != nil || n != 0 {
			t.Fatalf("expiry sweep wrote %d (err %v) for a refusal of 10 minutes ago", n, err)
		}
	})
}

// TestReaskRewriteCatchesStaleCatalog: another instance records decisions with the old
// interval for up to its catalog's lifetime after a change. The rewrite waits a grace after
// the change before its pass, so that pass moves those too.
func TestReaskRewriteCatchesStaleCatalog(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		other := e.secondInstance(t)
		// The other instance reads the catalog, with the 12-month interval, before the change.
		if _, err := other.Catalog(ctx, e.tenant()); err != nil {
			t.Fatal(err)
		}
		e.setReask(t, "analytics", 6)
		// Within the grace the rewrite waits: it must not end before the decision below.
		if n, err := e.svc.RewriteExpiries(ctx); err != nil || n != 0 || e.reaskApplied(t, "analytics") == 6 {
			t.Fatalf("rewrite moved %d (err %v, reask_applied %d) within the grace", n, err, e.reaskApplied(t, "analytics"))
		}
		e.clock.Add(time.Second)
		out, err := other.Record(ctx, e.deviceRequest("", consent.MethodBannerCustom, grant("analytics", 1)))
		if err != nil {
			t.Fatal(err)
		}
		s := e.deviceState(t, out.DeviceID, "analytics")
		wantExpires(t, "recorded with a stale catalog", s, 6)
		e.clock.Add(10 * time.Minute) // past the rewrite's grace
		if n, err := e.svc.RewriteExpiries(ctx); err != nil || n != 1 {
			t.Fatalf("rewrite moved %d (err %v), want the decision recorded with the old interval", n, err)
		}
		if got := e.storedExpiry(t, out.DeviceID, "analytics"); got != s.ExpiresAt.UnixMilli() {
			t.Fatalf("stored expiry %v, want %v", time.UnixMilli(got).UTC(), s.ExpiresAt)
		}
		if got := e.reaskApplied(t, "analytics"); got != 6 {
			t.Fatalf("reask_applied %d after the pass, want 6", got)
		}
	})
}
