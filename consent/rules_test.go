package consent_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

var actor = identity.ActorAPIKey("test-admin")

func texts(title string) map[string]consent.Text {
	return map[string]consent.Text{
		"fi": {Title: title + " (fi)", Description: "Kuvaus: " + title},
		"en": {Title: title, Description: "Description: " + title},
	}
}

// newPurpose creates a purpose and publishes its first version.
func (e *env) newPurpose(t *testing.T, p consent.Purpose, d consent.VersionDetails) *consent.Purpose {
	t.Helper()
	ctx := context.Background()
	p.TenantID = e.tenant()
	np, err := e.svc.CreatePurpose(ctx, p, actor)
	if err != nil {
		t.Fatalf("create purpose %s: %v", p.Key, err)
	}
	if _, err := e.svc.CreateVersion(ctx, e.tenant(), np.Key, consent.VersionInput{Texts: texts(p.Key), Details: &d}, actor); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.PublishVersion(ctx, e.tenant(), np.Key, 1, actor); err != nil {
		t.Fatal(err)
	}
	return np
}

// draft creates the next version of a purpose as a draft.
func (e *env) draft(t *testing.T, purpose string, material bool, title string, d *consent.VersionDetails) *consent.Version {
	t.Helper()
	v, err := e.svc.CreateVersion(context.Background(), e.tenant(), purpose, consent.VersionInput{Material: &material,
		Texts: texts(title), Details: d}, actor)
	if err != nil {
		t.Fatalf("create version of %s: %v", purpose, err)
	}
	return v
}

func (e *env) deviceState(t *testing.T, deviceID, purpose string) consent.PurposeState {
	t.Helper()
	v, err := e.svc.DeviceState(context.Background(), e.demo.WebShop, deviceID)
	if err != nil {
		t.Fatalf("device state: %v", err)
	}
	return stateOf(v.State, purpose)
}

func (e *env) customerState(t *testing.T, number, purpose string) consent.PurposeState {
	t.Helper()
	v, err := e.svc.SubjectState(context.Background(), e.tenant(), *customer(number), nil)
	if err != nil {
		t.Fatalf("subject state: %v", err)
	}
	return stateOf(v.State, purpose)
}

func TestRecordRefusesWhatCannotBeRecorded(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.draft(t, "analytics", true, "Analytics v2", nil) // unpublished
		known := e.record(t, "", consent.MethodBannerCustom, grant("analytics", 1))
		e.recordCustomer(t, "C-7", grant("marketing_email", 1))
		cat, err := e.svc.Catalog(ctx, e.tenant())
		if err != nil {
			t.Fatal(err)
		}
		analytics, _ := cat.Purpose("analytics")
		fiHash, svHash := analytics.Versions[1].TextHashes["fi"], analytics.Versions[1].TextHashes["sv"]
		zero := strings.Repeat("0", 64)
		withHash := func(h string) consent.DecisionInput {
			return consent.DecisionInput{Purpose: "analytics", Version: 1, Decision: consent.Granted, TextHash: h}
		}
		serverDevice := &consent.RecordRequest{TenantID: e.tenant(), Identifier: &identity.Identifier{Kind: identity.IDDevice, Value: known.DeviceID},
			Method: consent.MethodAPI, Decisions: []consent.DecisionInput{grant("marketing_email", 1)}}

		cases := []struct {
			name         string
			req          *consent.RecordRequest
			field, words string
		}{
			{"refusing strictly necessary storage", e.deviceRequest("", consent.MethodBannerRejectAll, deny("necessary")),
				"decisions[0].purpose", "strictly necessary"},
			{"granting strictly necessary storage", e.deviceRequest("", consent.MethodBannerAcceptAll, grant("necessary", 1)),
				"decisions[0].purpose", "strictly necessary"},
			{"strictly necessary on the server path", e.customerRequest("C-7", consent.MethodAPI, "", deny("necessary")),
				"decisions[0].purpose", "strictly necessary"},
			{"unknown purpose", e.deviceRequest("", consent.MethodBannerCustom, grant("analytics", 1), deny("nope")),
				"decisions[1].purpose", "unknown purpose"},
			{"unpublished version", e.deviceRequest("", consent.MethodBannerCustom, grant("analytics", 2)),
				"decisions[0].version", "not published"},
			{"version that does not exist", e.deviceRequest("", consent.MethodBannerCustom, grant("analytics", 9)),
				"decisions[0].version", "not published"},
			{"text hash of nothing", e.deviceRequest("", consent.MethodBannerCustom, withHash(zero)),
				"decisions[0].text_hash", "is not the hash"},
			{"text hash of another language", e.deviceRequest("", consent.MethodBannerCustom, withHash(svHash)),
				"decisions[0].text_hash", "is not the hash"},
			{"person-level purpose from a banner", e.deviceRequest("", consent.MethodBannerAcceptAll, grant("analytics", 1), grant("marketing_email", 1)),
				"decisions[1].purpose", "identified person"},
			{"person-level purpose for a device on the server path", serverDevice,
				"decisions[0].purpose", "identified person"},
			{"objection to a consent purpose", e.customerRequest("C-7", consent.MethodAPI, "", object("marketing_email")),
				"decisions[0].decision", "legitimate-interest"},
			{"grant without a version", e.deviceRequest("", consent.MethodBannerCustom, grant("analytics", 0)),
				"decisions[0].version", "published version"},
			{"imported grant without a version", e.customerRequest("C-7", consent.MethodImport, "", grant("personalisation", 0)),
				"decisions[0].version", "published version"},
		}
		before := e.count(t, "consent_events", "")
		subjects := e.count(t, "subjects", "")
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				out, err := e.svc.Record(ctx, c.req)
				if out != nil {
					t.Fatalf("recorded: %+v", out)
				}
				wantField(t, wantCode(t, err, identity.EUnprocessable), c.field, c.words)
			})
		}
		if n := e.count(t, "consent_events", ""); n != before {
			t.Fatalf("refused requests wrote %d events", n-before)
		}
		if n := e.count(t, "subjects", ""); n != subjects {
			t.Fatalf("refused requests created %d subjects", n-subjects)
		}
		// The hash of the text actually shown is accepted and recorded.
		out := e.record(t, "", consent.MethodBannerCustom, withHash(fiHash))
		if h := out.Events[0]; h.Decision != consent.Granted {
			t.Fatalf("grant with the right text hash: %+v", out)
		}
		var recorded string
		e.db.Write.Raw("SELECT text_hash FROM consent_events WHERE id = ?", out.Events[0].ID).Scan(&recorded)
		if recorded != fiHash {
			t.Fatalf("recorded text hash %q, want the fi text's %q", recorded, fiHash)
		}
	})
}

func TestMaterialVersionOutdatesGrantsOnly(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		granted := e.record(t, "", consent.MethodBannerCustom, grant("analytics", 1), grant("social_advertising", 1))
		refused := e.record(t, "", consent.MethodBannerRejectAll, deny("analytics"), deny("social_advertising"))
		e.recordCustomer(t, "C-1", grant("marketing_email", 1))

		e.draft(t, "analytics", true, "Analytics, now with session replay", nil)
		if _, err := e.svc.PublishVersion(ctx, e.tenant(), "analytics", 2, actor); err != nil {
			t.Fatal(err)
		}
		// Immediately, before any sweep: the old grant no longer counts; refusals stand.
		if s := e.deviceState(t, granted.DeviceID, "analytics"); s.State != consent.StateOutdated || s.MayUse {
			t.Fatalf("grant of v1 after material v2: %+v", s)
		}
		if s := e.deviceState(t, granted.DeviceID, "social_advertising"); s.State != consent.StateGranted || !s.MayUse {
			t.Fatalf("another purpose's grant changed: %+v", s)
		}
		if s := e.deviceState(t, refused.DeviceID, "analytics"); s.State != consent.StateDenied {
			t.Fatalf("refusal after material v2: %+v", s)
		}
		if s := e.customerState(t, "C-1", "marketing_email"); s.State != consent.StateGranted {
			t.Fatalf("unrelated purpose: %+v", s)
		}
		// The old text can no longer be granted.
		_, err := e.svc.Record(ctx, e.deviceRequest(granted.DeviceID, consent.MethodBannerCustom, grant("analytics", 1)))
		wantCode(t, err, identity.EConflict)

		grantedID, refusedID := e.subjectID(t, device(granted.DeviceID)), e.subjectID(t, device(refused.DeviceID))
		n, err := e.svc.SweepOutdated(ctx)
		if err != nil || n != 1 {
			t.Fatalf("outdated sweep: wrote %d, err %v; want 1", n, err)
		}
		var ev consent.Event
		e.db.Write.Raw("SELECT kind, purpose_key, purpose_version, reason, method, seq FROM consent_events WHERE subject_id = ? ORDER BY seq DESC LIMIT 1",
			grantedID).Scan(&ev)
		if ev.Kind != consent.KindOutdated || ev.PurposeKey != "analytics" || ev.PurposeVersion != 1 ||
			ev.Reason != "material_version:2" || ev.Method != consent.MethodSystem || ev.Seq != 3 {
			t.Fatalf("outdated event: %+v", ev)
		}
		if n := e.count(t, "domain_events", "type = 'consent.outdated' AND subject_id = ? AND subject_seq = 3", grantedID); n != 1 {
			t.Fatalf("want one consent.outdated domain event, got %d", n)
		}
		if n := e.count(t, "consent_events", "subject_id = ?", refusedID); n != 2 {
			t.Fatalf("the refusal got new events: %d", n)
		}
		if n := e.count(t, "consent_state", "subject_id = ? AND state = 'outdated'", grantedID); n != 1 {
			t.Fatal("stored state is not outdated")
		}
		if n, err := e.svc.SweepOutdated(ctx); err != nil || n != 0 {
			t.Fatalf("second sweep wrote %d (err %v)", n, err)
		}
		// Within the grace period (other instances may still accept v1 for a moment) the
		// purpose is swept again each time; after it, it is marked done and left alone.
		swept := func() (v int) {
			e.db.Write.Raw("SELECT outdated_swept FROM purposes WHERE tenant_id = ? AND key = 'analytics'", e.tenant()).Scan(&v)
			return v
		}
		if v := swept(); v != 0 {
			t.Fatalf("marked swept for version %d within the grace period", v)
		}
		e.clock.Add(6 * time.Minute)
		if _, err := e.svc.SweepOutdated(ctx); err != nil {
			t.Fatal(err)
		}
		if v := swept(); v != 2 {
			t.Fatalf("after the grace period the purpose is marked swept for version %d, want 2", v)
		}
		// Asked again with the new text, the person decides again.
		out := e.record(t, granted.DeviceID, consent.MethodBannerCustom, grant("analytics", 2))
		if s := stateOf(out.State, "analytics"); s.State != consent.StateGranted || s.Version != 2 || !s.MayUse {
			t.Fatalf("grant of v2: %+v", s)
		}
		e.mustVerifyOK(t)
	})
}

func TestNonMaterialVersion(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		base := consent.VersionDetails{DataCategories: []string{"pages visited"}, Retention: "1 year", Transfers: "none"}
		e.newPurpose(t, consent.Purpose{Key: "surveys", Level: consent.LevelDevice, LegalBasis: consent.BasisConsent}, base)
		out := e.record(t, "", consent.MethodBannerCustom, grant("surveys", 1))

		// A typo fix carries the grant over.
		e.draft(t, "surveys", false, "Surveys (typo fixed)", &base)
		if _, err := e.svc.PublishVersion(ctx, e.tenant(), "surveys", 2, actor); err != nil {
			t.Fatalf("non-material version: %v", err)
		}
		if s := e.deviceState(t, out.DeviceID, "surveys"); s.State != consent.StateGranted || !s.MayUse {
			t.Fatalf("grant after a non-material version: %+v", s)
		}
		if n, err := e.svc.SweepOutdated(ctx); err != nil || n != 0 {
			t.Fatalf("outdated sweep after a non-material version wrote %d (err %v)", n, err)
		}
		// Either text may be granted: neither was replaced materially.
		e.record(t, "", consent.MethodBannerCustom, grant("surveys", 1))

		meta := e.demo.Recipients["Meta Platforms Ireland Ltd"].ID
		style := e.demo.Brands[1]
		setBusinessID := func(t *testing.T, id string) {
			if _, err := e.ids.UpdateBrand(ctx, e.tenant(), style.ID, identity.BrandPatch{BusinessID: &id}, actor); err != nil {
				t.Fatal(err)
			}
		}
		cases := []struct {
			name    string
			details consent.VersionDetails
			prepare func(t *testing.T)
			undo    func(t *testing.T)
		}{
			{name: "data categories", details: consent.VersionDetails{DataCategories: []string{"pages visited", "location"}, Retention: "1 year", Transfers: "none"}},
			{name: "retention", details: consent.VersionDetails{DataCategories: []string{"pages visited"}, Retention: "5 years", Transfers: "none"}},
			{name: "transfers", details: consent.VersionDetails{DataCategories: []string{"pages visited"}, Retention: "1 year", Transfers: "USA (SCC)"}},
			{name: "recipients", details: base,
				prepare: func(t *testing.T) {
					if _, err := e.svc.UpdatePurpose(ctx, e.tenant(), "surveys", consent.PurposePatch{RecipientIDs: &[]string{meta}}, actor); err != nil {
						t.Fatal(err)
					}
				},
				undo: func(t *testing.T) {
					if _, err := e.svc.UpdatePurpose(ctx, e.tenant(), "surveys", consent.PurposePatch{RecipientIDs: &[]string{}}, actor); err != nil {
						t.Fatal(err)
					}
				}},
			// One of the group's brands is now another company: a new controller.
			{name: "controller", details: base,
				prepare: func(t *testing.T) { setBusinessID(t, "9876543-2") },
				undo:    func(t *testing.T) { setBusinessID(t, style.BusinessID) }},
		}
		e.draft(t, "surveys", false, "Surveys v3", &base)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				if c.prepare != nil {
					c.prepare(t)
					defer c.undo(t)
				}
				material := false
				d := c.details
				if _, err := e.svc.UpdateVersion(ctx, e.tenant(), "surveys", 3, consent.VersionInput{Material: &material, Details: &d}, actor); err != nil {
					t.Fatal(err)
				}
				_, err := e.svc.PublishVersion(ctx, e.tenant(), "surveys", 3, actor)
				wantField(t, wantCode(t, err, identity.EUnprocessable), "material", c.name)
				if v, _ := e.svc.Version(ctx, e.tenant(), "surveys", 3); v.Status != consent.VersionDraft {
					t.Fatalf("the refused version was published")
				}
			})
		}
		// A new name for the same company (same business id) is no new controller, but the
		// version names the controller as it is now.
		newName := "Demo Style Group Oy"
		if _, err := e.ids.UpdateBrand(ctx, e.tenant(), style.ID, identity.BrandPatch{LegalName: &newName}, actor); err != nil {
			t.Fatal(err)
		}
		renamed, err := e.svc.PublishVersion(ctx, e.tenant(), "surveys", 3, actor)
		if err != nil {
			t.Fatalf("a version after a brand's new name: %v", err)
		}
		if got := renamed.Details.Controllers; len(got) != 3 || got[0].LegalName != e.demo.Tenant.LegalName ||
			!slices.ContainsFunc(got, func(c consent.ControllerRef) bool { return c.BrandID == style.ID && c.LegalName == newName }) {
			t.Fatalf("the version's controllers: %+v; want the tenant and both brands, Demo Style renamed", got)
		}
		if s := e.deviceState(t, out.DeviceID, "surveys"); s.State != consent.StateGranted {
			t.Fatalf("grant after a brand's new name: %+v", s)
		}
		e.draft(t, "surveys", false, "Surveys v4", &base)

		// Marked material, the same change is published and outdates the grants.
		material := true
		if _, err := e.svc.UpdateVersion(ctx, e.tenant(), "surveys", 4, consent.VersionInput{Material: &material, Details: &cases[0].details}, actor); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.PublishVersion(ctx, e.tenant(), "surveys", 4, actor); err != nil {
			t.Fatal(err)
		}
		if s := e.deviceState(t, out.DeviceID, "surveys"); s.State != consent.StateOutdated {
			t.Fatalf("after material v4: %+v", s)
		}
	})
}

func TestPublishedVersionNeverChanges(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		_, err := e.svc.UpdateVersion(ctx, e.tenant(), "analytics", 1, consent.VersionInput{Texts: texts("Changed")}, actor)
		wantCode(t, err, identity.EConflict)
		_, err = e.svc.PublishVersion(ctx, e.tenant(), "analytics", 1, actor)
		wantCode(t, err, identity.EConflict)

		p := e.demo.Purposes["analytics"]
		for _, q := range []string{
			"UPDATE purpose_versions SET texts = '{}' WHERE tenant_id = ? AND purpose_id = ? AND number = 1",
			"UPDATE purpose_versions SET status = 'draft' WHERE tenant_id = ? AND purpose_id = ? AND number = 1",
			"DELETE FROM purpose_versions WHERE tenant_id = ? AND purpose_id = ? AND number = 1",
		} {
			err := e.db.Write.Exec(q, e.tenant(), p.ID).Error
			if err == nil || !strings.Contains(err.Error(), "published purpose version never changes") {
				t.Errorf("%s: want the database to refuse, got %v", q, err)
			}
		}
		v, err := e.svc.Version(ctx, e.tenant(), "analytics", 1)
		if err != nil || v.Status != consent.VersionPublished || v.Texts["en"].Title != "Analytics" {
			t.Fatalf("published version changed: %+v %v", v, err)
		}
		// A draft can still change, in the service and in the database.
		e.draft(t, "analytics", true, "Draft", nil)
		if _, err := e.svc.UpdateVersion(ctx, e.tenant(), "analytics", 2, consent.VersionInput{Texts: texts("Draft, edited")}, actor); err != nil {
			t.Fatalf("draft update: %v", err)
		}
	})
}

func TestExpirySweep(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.newPurpose(t, consent.Purpose{Key: "loyalty_offers", Level: consent.LevelPerson, LegalBasis: consent.BasisLegitimateInterest},
			consent.VersionDetails{DataCategories: []string{"purchase history"}})
		dev := e.record(t, "", consent.MethodBannerCustom, grant("analytics", 1), deny("social_advertising"))
		e.recordCustomer(t, "C-1", grant("marketing_email", 1), object("loyalty_offers"))
		devID, custID := e.subjectID(t, device(dev.DeviceID)), e.subjectID(t, *customer("C-1"))

		e.clock.AddDate(1, 0, 0)
		e.clock.Add(-time.Minute)
		if n, err := e.svc.SweepExpiry(ctx); err != nil || n != 0 {
			t.Fatalf("a minute before the re-ask interval the sweep wrote %d (err %v)", n, err)
		}
		if s := e.deviceState(t, dev.DeviceID, "analytics"); s.State != consent.StateGranted {
			t.Fatalf("before the interval: %+v", s)
		}

		e.clock.Add(2 * time.Minute)
		// The read already says expired; the sweep then records it.
		if s := e.deviceState(t, dev.DeviceID, "analytics"); s.State != consent.StateExpired || s.MayUse {
			t.Fatalf("after the interval, before the sweep: %+v", s)
		}
		n, err := e.svc.SweepExpiry(ctx)
		if err != nil || n != 3 {
			t.Fatalf("expiry sweep wrote %d (err %v), want 3: a grant and a refusal of the device, the customer's grant", n, err)
		}
		for _, c := range []struct {
			subject string
			want    map[string]bool // purpose → expired
		}{
			{devID, map[string]bool{"analytics": true, "social_advertising": true}},
			{custID, map[string]bool{"marketing_email": true}},
		} {
			var evs []consent.Event
			e.db.Write.Raw("SELECT kind, purpose_key, reason, actor FROM consent_events WHERE subject_id = ? AND kind = 'expiry'", c.subject).Scan(&evs)
			if len(evs) != len(c.want) {
				t.Fatalf("subject %s: %d expiry events, want %d", c.subject, len(evs), len(c.want))
			}
			for _, ev := range evs {
				if !c.want[ev.PurposeKey] || ev.Reason != "reask_interval" || ev.Actor != "system" {
					t.Fatalf("expiry event %+v", ev)
				}
			}
			if n := e.count(t, "domain_events", "type = 'consent.expired' AND subject_id = ?", c.subject); n != 1 {
				t.Fatalf("subject %s: %d consent.expired domain events, want 1", c.subject, n)
			}
		}
		// An objection to a legitimate interest does not expire.
		if s := e.customerState(t, "C-1", "loyalty_offers"); s.State != consent.StateObjected || s.MayUse {
			t.Fatalf("objection after a year: %+v", s)
		}
		if s := e.deviceState(t, dev.DeviceID, "social_advertising"); s.State != consent.StateExpired {
			t.Fatalf("refusal after the sweep: %+v", s)
		}
		if n, err := e.svc.SweepExpiry(ctx); err != nil || n != 0 {
			t.Fatalf("second sweep wrote %d (err %v)", n, err)
		}
		e.mustVerifyOK(t)
	})
}

func TestEvidenceSweepErasesAfterEvidencePeriod(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		if e.demo.Tenant.EvidenceYears != 3 {
			t.Fatalf("default evidence period: %d years, want 3", e.demo.Tenant.EvidenceYears)
		}
		five := 60
		if _, err := e.svc.UpdatePurpose(ctx, e.tenant(), "marketing_email", consent.PurposePatch{ReaskMonths: &five}, actor); err != nil {
			t.Fatal(err)
		}
		// Client context is kept, so that its erasure shows.
		keep := true
		if _, err := e.ids.UpdateTenant(ctx, e.tenant(), identity.TenantPatch{KeepClientContext: &keep}, actor); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(3 * time.Second) // the consent catalog caches the tenant for two seconds
		// What another domain keeps about a subject (here: the address a connector wrote)
		// goes in the erasure's transaction, for the erased subject and those merged into it.
		e.svc.OnErase(func(tenantID, subjectID string, _ time.Time) []sqldb.Statement {
			return []sqldb.Statement{{SQL: "DELETE FROM connector_members WHERE tenant_id = ? AND subject_id = ?", Args: []any{tenantID, subjectID}}}
		})
		withContext := func(device string, decisions ...consent.DecisionInput) *consent.Outcome {
			req := e.deviceRequest(device, consent.MethodBannerCustom, decisions...)
			req.ClientIP, req.UserAgent = "203.0.113.77", "Mozilla/5.0"
			out, err := e.svc.Record(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		dev := withContext("", deny("analytics"), grant("social_advertising", 1))
		e.recordCustomer(t, "C-1", grant("marketing_email", 1)) // in force for five years
		// C-2 refused personalisation, and signed in on a device that had refused analytics:
		// the device's history is C-2's now.
		e.recordCustomer(t, "C-2", deny("personalisation"))
		dev2 := withContext("", deny("analytics"))
		devID, dev2ID := e.subjectID(t, device(dev.DeviceID)), e.subjectID(t, device(dev2.DeviceID))
		if _, err := e.svc.LinkDevice(ctx, e.demo.WebShop, device(dev2.DeviceID), *customer("C-2"), consent.MergeSignIn, "device"); err != nil {
			t.Fatal(err)
		}
		c1ID, c2ID := e.subjectID(t, *customer("C-1")), e.subjectID(t, *customer("C-2"))
		for _, id := range []string{c1ID, c2ID, dev2ID} {
			e.exec(t, `INSERT INTO connector_members (tenant_id, connector_id, subject_id, email_ct, email_kid, updated_at)
				VALUES (?, 'conn-1', ?, ?, 'k', 1)`, e.tenant(), id, []byte("sealed address"))
		}
		e.clock.AddDate(1, 0, 1)
		if n, err := e.svc.SweepExpiry(ctx); err != nil || n != 4 {
			t.Fatalf("expiry: %d %v, want the device's two, C-2's refusal and the refusal carried from its device", n, err)
		}

		e.clock.AddDate(3, 0, -2) // the consents ended 3 years minus a day ago
		if n, err := e.svc.SweepEvidence(ctx); err != nil || n != 0 {
			t.Fatalf("inside the evidence period the sweep erased %d (err %v)", n, err)
		}
		e.clock.AddDate(0, 0, 2)
		n, err := e.svc.SweepEvidence(ctx)
		if err != nil || n != 2 {
			t.Fatalf("evidence sweep erased %d (err %v), want the device and C-2: C-1's grant is in force", n, err)
		}
		// The device is no one now, and neither is C-2.
		if _, err := e.svc.DeviceState(ctx, e.demo.WebShop, dev.DeviceID); !identity.IsCode(err, identity.ENotFound) {
			t.Fatalf("erased device still found: %v", err)
		}
		if _, err := e.ids.FindSubject(ctx, e.tenant(), *customer("C-2")); !identity.IsCode(err, identity.ENotFound) {
			t.Fatalf("erased customer still found: %v", err)
		}
		// Nothing is left of the erased subjects — the device merged into C-2 included.
		for _, id := range []string{devID, c2ID, dev2ID} {
			for table, where := range map[string]string{
				"identifiers":         "subject_id = ?",
				"receipts":            "subject_id = ?",
				"consent_state":       "subject_id = ?",
				"interaction_context": "subject_id = ?",
				"connector_members":   "subject_id = ?",
				"subjects":            "id = ? AND (secret IS NOT NULL OR pseudonym IS NOT NULL OR erased_at IS NULL)",
			} {
				if n := e.count(t, table, where, id); n != 0 {
					t.Errorf("%s still holds %d rows of the erased subject %s", table, n, id)
				}
			}
		}
		var last consent.Event
		e.db.Write.Raw("SELECT kind, reason, seq FROM consent_events WHERE subject_id = ? ORDER BY seq DESC LIMIT 1", devID).Scan(&last)
		if last.Kind != consent.KindErasure || last.Reason != "evidence_period_ended" || last.Seq != 5 {
			t.Fatalf("the erasure is not chained: %+v", last)
		}
		if n := e.count(t, "domain_events", "type = 'subject.erased' AND subject_id = ?", devID); n != 1 {
			t.Fatalf("%d subject.erased domain events", n)
		}
		// The chains still verify, and C-1 is untouched.
		e.mustVerifyOK(t)
		if s := e.customerState(t, "C-1", "marketing_email"); s.State != consent.StateGranted {
			t.Fatalf("customer after the sweep: %+v", s)
		}
		if n := e.count(t, "connector_members", "subject_id = ?", c1ID); n != 1 {
			t.Fatal("the sweep erased what a connector keeps about a customer it did not erase")
		}
		if n, err := e.svc.SweepEvidence(ctx); err != nil || n != 0 {
			t.Fatalf("second evidence sweep erased %d (err %v)", n, err)
		}
	})
}

func TestClientContextOnlyWhenTenantKeepsIt(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		withContext := func(ip string) *consent.Outcome {
			req := e.deviceRequest("", consent.MethodBannerAcceptAll, grant("analytics", 1))
			req.ClientIP, req.UserAgent = ip, "Mozilla/5.0 "+strings.Repeat("x", 600)
			out, err := e.svc.Record(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		withContext("203.0.113.77")
		if n := e.count(t, "interaction_context", ""); n != 0 {
			t.Fatalf("client context kept by default: %d rows", n)
		}

		keep := true
		if _, err := e.ids.UpdateTenant(ctx, e.tenant(), identity.TenantPatch{KeepClientContext: &keep}, actor); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(3 * time.Second) // the consent catalog caches the tenant for two seconds
		for _, c := range []struct{ ip, prefix string }{
			{"203.0.113.77", "203.0.113.0/24"},
			{"::ffff:198.51.100.9", "198.51.100.0/24"},
			{"2001:db8:abcd:12:1::5", "2001:db8:abcd::/48"},
		} {
			out := withContext(c.ip)
			var row struct {
				IPPrefix  string
				UserAgent string
			}
			e.db.Write.Raw("SELECT ip_prefix, user_agent FROM interaction_context WHERE interaction_id = ?", out.InteractionID).Scan(&row)
			if row.IPPrefix != c.prefix || !strings.HasPrefix(row.UserAgent, "Mozilla/5.0") || len(row.UserAgent) != 512 {
				t.Fatalf("%s: kept %q and a %d-byte user agent", c.ip, row.IPPrefix, len(row.UserAgent))
			}
		}
		if n := e.count(t, "consent_events", "pseudonym LIKE '%203.0.113%' OR agent LIKE '%Mozilla%'"); n != 0 {
			t.Fatal("client context leaked into the ledger")
		}

		e.clock.AddDate(0, 0, 89)
		if _, err := e.svc.Housekeeping(ctx); err != nil {
			t.Fatal(err)
		}
		if n := e.count(t, "interaction_context", ""); n != 3 {
			t.Fatalf("after 89 days %d rows remain, want 3", n)
		}
		e.clock.AddDate(0, 0, 2)
		if _, err := e.svc.Housekeeping(ctx); err != nil {
			t.Fatal(err)
		}
		if n := e.count(t, "interaction_context", ""); n != 0 {
			t.Fatalf("after 91 days %d rows remain", n)
		}
	})
}

func TestEvidencePeriodIsSetPerTenant(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		one := 1
		if _, err := e.ids.UpdateTenant(ctx, e.tenant(), identity.TenantPatch{EvidenceYears: &one}, actor); err != nil {
			t.Fatal(err)
		}
		dev := e.record(t, "", consent.MethodBannerRejectAll, deny("analytics"), deny("social_advertising"))
		e.clock.AddDate(1, 0, 1)
		if n, err := e.svc.SweepExpiry(ctx); err != nil || n != 2 {
			t.Fatalf("expiry: %d %v", n, err)
		}
		e.clock.AddDate(1, 0, -1)
		if n, err := e.svc.SweepEvidence(ctx); err != nil || n != 0 {
			t.Fatalf("a day before the tenant's one-year period ends: erased %d (err %v)", n, err)
		}
		e.clock.AddDate(0, 0, 2)
		if n, err := e.svc.SweepEvidence(ctx); err != nil || n != 1 {
			t.Fatalf("after the tenant's one-year period: erased %d (err %v)", n, err)
		}
		if _, err := e.svc.DeviceState(ctx, e.demo.WebShop, dev.DeviceID); !identity.IsCode(err, identity.ENotFound) {
			t.Fatalf("erased device still found: %v", err)
		}
		e.mustVerifyOK(t)
	})
}
