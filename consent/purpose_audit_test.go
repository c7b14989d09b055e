package consent_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
)

// The check finds people by every kind of identifier: an idp identity under its issuer, an
// id in a connected system under that system's name. The same value under another
// namespace is someone else.
func TestCheckFindsNamespacedIdentifiers(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		crm := identity.Identifier{Kind: identity.IDExternal, Namespace: "crm", Value: "CRM-1"}
		idp := identity.Identifier{Kind: identity.IDIdP, Namespace: "https://id.demo-retail.example", Value: "user-1"}
		for _, c := range []struct {
			id       identity.Identifier
			decision consent.DecisionInput
		}{{crm, grant("marketing_email", 1)}, {idp, deny("marketing_email")}} {
			id := c.id
			req := &consent.RecordRequest{TenantID: e.tenant(), Identifier: &id, Method: consent.MethodAPI, Language: "fi",
				Actor: identity.ActorAPIKey("test"), Decisions: []consent.DecisionInput{c.decision}}
			if _, err := e.svc.Record(ctx, req); err != nil {
				t.Fatalf("record for %+v: %v", id, err)
			}
		}
		elsewhere := identity.Identifier{Kind: identity.IDExternal, Namespace: "loyalty", Value: "CRM-1"}
		ids := []identity.Identifier{crm, *customer("C-404"), idp, elsewhere}
		res, err := e.svc.Check(ctx, e.tenant(), "marketing_email", ids)
		if err != nil {
			t.Fatal(err)
		}
		want := []struct {
			mayUse        bool
			state, reason string
		}{{true, "granted", "granted"}, {false, "not_asked", "unknown_subject"}, {false, "denied", "denied"},
			{false, "not_asked", "unknown_subject"}}
		for i, r := range res {
			if r.Identifier != ids[i] || r.MayUse != want[i].mayUse || r.State != want[i].state || r.Reason != want[i].reason {
				t.Errorf("%+v: got may_use=%v state=%s reason=%s, want %+v", ids[i], r.MayUse, r.State, r.Reason, want[i])
			}
		}
	})
}

// A purpose nobody has been told of may be used for no one: not a consent nobody was asked
// for, and not a legitimate interest nobody could object to.
func TestCheckPurposeWithoutPublishedVersion(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		for _, p := range []consent.Purpose{
			{Key: "loyalty_offers", Level: consent.LevelPerson, LegalBasis: consent.BasisLegitimateInterest},
			{Key: "surveys", Level: consent.LevelPerson, LegalBasis: consent.BasisConsent},
		} {
			p.TenantID = e.tenant()
			if _, err := e.svc.CreatePurpose(ctx, p, actor); err != nil {
				t.Fatal(err)
			}
			e.draft(t, p.Key, true, p.Key, nil) // a draft is not published
			e.recordCustomer(t, "C-1", grant("marketing_email", 1))
			res, err := e.svc.Check(ctx, e.tenant(), p.Key, []identity.Identifier{*customer("C-1"), *customer("C-404")})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if r.MayUse || r.State != consent.StateNotAsked || r.Reason != "not_published" {
					t.Errorf("%s for %s: %+v, want may_use false, not_asked, not_published", p.Key, r.Identifier.Value, r)
				}
			}
		}
	})
}

// A purpose's row is saved whole by every change of it. A change made while a version is
// being published must not write back the row as it was before the publication: the
// material version would stop counting and its grants would count again.
func TestPurposeChangeWhilePublishingKeepsTheVersion(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		dev := e.record(t, "", consent.MethodBannerAcceptAll, grant("analytics", 1))
		e.draft(t, "analytics", true, "Analytics, now with session replay", nil)

		// Right after the patch has read the purpose, the version is published elsewhere (a
		// second admin, on another instance). The publication waits for the patch, or the
		// patch for it; it is given a second.
		type marker struct{}
		var once sync.Once
		published := make(chan error, 1)
		name := "test:publish-while-patching"
		cb := e.db.Write.Callback().Query()
		if err := cb.After("gorm:query").Register(name, func(db *gorm.DB) {
			if db.Statement.Context.Value(marker{}) == nil || db.Statement.Table != "purposes" {
				return
			}
			once.Do(func() {
				go func() {
					_, err := e.svc.PublishVersion(context.Background(), e.tenant(), "analytics", 2, actor)
					published <- err
				}()
				select {
				case err := <-published:
					published <- err
				case <-time.After(time.Second):
				}
			})
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cb.Remove(name) })

		on := true
		if _, err := e.svc.UpdatePurpose(context.WithValue(ctx, marker{}, true), e.tenant(), "analytics",
			consent.PurposePatch{GPCOptOut: &on}, actor); err != nil {
			t.Fatalf("patch: %v", err)
		}
		if err := <-published; err != nil {
			t.Fatalf("publish: %v", err)
		}
		p, err := e.svc.Purpose(ctx, e.tenant(), "analytics")
		if err != nil {
			t.Fatal(err)
		}
		if p.LatestVersion != 2 || p.MaterialVersion != 2 || !p.GPCOptOut {
			t.Fatalf("after a patch and a publication at once: latest %d, material %d, gpc_opt_out %v; want 2, 2, true",
				p.LatestVersion, p.MaterialVersion, p.GPCOptOut)
		}
		if s := e.deviceState(t, dev.DeviceID, "analytics"); s.State != consent.StateOutdated || s.MayUse {
			t.Fatalf("a grant of v1 after material v2: %+v", s)
		}
	})
}

// The level and the legal basis are what people decided about: once a version is
// published they are fixed, and the refusal names the field.
func TestLevelAndBasisFixedOncePublished(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.record(t, "", consent.MethodBannerAcceptAll, grant("analytics", 1))
		li, person := consent.BasisLegitimateInterest, consent.LevelPerson
		_, err := e.svc.UpdatePurpose(ctx, e.tenant(), "analytics", consent.PurposePatch{LegalBasis: &li}, actor)
		wantField(t, wantCode(t, err, identity.EConflict), "legal_basis", "fixed once a version is published")
		_, err = e.svc.UpdatePurpose(ctx, e.tenant(), "analytics", consent.PurposePatch{Level: &person}, actor)
		wantField(t, wantCode(t, err, identity.EConflict), "level", "fixed once a version is published")
		if p, _ := e.svc.Purpose(ctx, e.tenant(), "analytics"); p.Level != consent.LevelDevice || p.LegalBasis != consent.BasisConsent {
			t.Fatalf("the refused change was saved: %+v", p)
		}
	})
}

// A non-material version must have the facts of the version before it. A recipient whose
// country (a transfer) or kind (a processor become a partner) changed makes the version
// material; a recipient's new display or legal name, and data categories written in
// another order, do not.
func TestNonMaterialVersionAndRecipientDetails(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		v1, err := e.svc.Version(ctx, e.tenant(), "social_advertising", 1)
		if err != nil {
			t.Fatal(err)
		}
		out := e.record(t, "", consent.MethodBannerAcceptAll, grant("social_advertising", 1))
		meta := e.demo.Recipients["Meta Platforms Ireland Ltd"]
		patch := func(t *testing.T, p consent.RecipientPatch) {
			t.Helper()
			if _, err := e.svc.UpdateRecipient(ctx, e.tenant(), meta.ID, p, actor); err != nil {
				t.Fatal(err)
			}
		}
		same := v1.Details
		same.Recipients, same.Controllers = nil, nil
		e.draft(t, "social_advertising", false, "Advertising on social media (typo fixed)", &same)
		for _, c := range []struct {
			name         string
			change, undo consent.RecipientPatch
		}{
			{"country", consent.RecipientPatch{Country: ptr("US")}, consent.RecipientPatch{Country: ptr(meta.Country)}},
			{"kind", consent.RecipientPatch{Kind: ptr("processor")}, consent.RecipientPatch{Kind: ptr(meta.Kind)}},
		} {
			t.Run(c.name, func(t *testing.T) {
				patch(t, c.change)
				defer patch(t, c.undo)
				_, err := e.svc.PublishVersion(ctx, e.tenant(), "social_advertising", 2, actor)
				wantField(t, wantCode(t, err, identity.EUnprocessable), "material", "recipients changed")
				if v, _ := e.svc.Version(ctx, e.tenant(), "social_advertising", 2); v.Status != consent.VersionDraft {
					t.Fatal("the refused version was published")
				}
			})
		}
		// A new name of the same company, and the categories in another order.
		patch(t, consent.RecipientPatch{Name: ptr("Meta (Facebook, Instagram)"), LegalName: ptr("Meta Platforms Ireland Limited")})
		reordered := same
		reordered.DataCategories = slices.Clone(same.DataCategories)
		slices.Reverse(reordered.DataCategories)
		if _, err := e.svc.UpdateVersion(ctx, e.tenant(), "social_advertising", 2, consent.VersionInput{Details: &reordered}, actor); err != nil {
			t.Fatal(err)
		}
		v2, err := e.svc.PublishVersion(ctx, e.tenant(), "social_advertising", 2, actor)
		if err != nil {
			t.Fatalf("a non-material version after a recipient's new name: %v", err)
		}
		if got := v2.Details.Recipients; len(got) != 1 || got[0].LegalName != "Meta Platforms Ireland Limited" {
			t.Fatalf("the version names its recipients as they are at publication: %+v", got)
		}
		if s := e.deviceState(t, out.DeviceID, "social_advertising"); s.State != consent.StateGranted || !s.MayUse {
			t.Fatalf("grant after a non-material version: %+v", s)
		}
		if !strings.Contains(strings.Join(v2.Details.DataCategories, ","), same.DataCategories[0]) {
			t.Fatalf("categories: %v", v2.Details.DataCategories)
		}
	})
}

// The check gives the right answer in every state a person can be in for a consent
// purpose, and for a legitimate interest: merged devices answer as their person, erased
// people are no one.
func TestCheckAnswersEveryState(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.newPurpose(t, consent.Purpose{Key: "loyalty_offers", Level: consent.LevelPerson, LegalBasis: consent.BasisLegitimateInterest},
			consent.VersionDetails{})
		e.recordCustomer(t, "expired", grant("marketing_email", 1), grant("personalisation", 1))
		e.clock.AddDate(1, 0, 1)
		e.recordCustomer(t, "granted", grant("marketing_email", 1), grant("personalisation", 1), grant("loyalty_offers", 1))
		e.recordCustomer(t, "denied", deny("marketing_email"), deny("personalisation"))
		e.recordCustomer(t, "withdrawn", grant("marketing_email", 1), grant("personalisation", 1))
		e.recordCustomer(t, "withdrawn", deny("marketing_email"), deny("personalisation"))
		e.recordCustomer(t, "objected", object("loyalty_offers"), grant("personalisation", 1))
		e.recordCustomer(t, "erased", grant("marketing_email", 1), grant("personalisation", 1))
		e.recordCustomer(t, "asked_other", grant("partner_sharing", 1))
		// A device signed in as "granted": it answers as that person.
		dev := e.record(t, "", consent.MethodBannerRejectAll, deny("analytics"))
		if _, err := e.svc.LinkDevice(ctx, e.demo.WebShop, device(dev.DeviceID), *customer("granted"), consent.MergeSignIn, "device"); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.EraseSubject(ctx, e.tenant(), e.subjectID(t, *customer("erased")), "request", actor); err != nil {
			t.Fatal(err)
		}
		// personalisation's material version 2 outdates its grants, and only those.
		e.draft(t, "personalisation", true, "Personalisation, now with partners' data", nil)
		if _, err := e.svc.PublishVersion(ctx, e.tenant(), "personalisation", 2, actor); err != nil {
			t.Fatal(err)
		}

		ids := []identity.Identifier{*customer("granted"), *customer("denied"), *customer("withdrawn"), *customer("objected"),
			*customer("expired"), *customer("asked_other"), *customer("unknown"), device(dev.DeviceID), *customer("erased")}
		type answer struct {
			mayUse        bool
			state, reason string
		}
		un := answer{false, "not_asked", "unknown_subject"}
		na := answer{false, "not_asked", "not_asked"}
		li := answer{true, "not_asked", "legitimate_interest"}
		for purpose, want := range map[string][]answer{
			"marketing_email": {{true, "granted", "granted"}, {false, "denied", "denied"}, {false, "withdrawn", "withdrawn"},
				na, {false, "expired", "expired"}, na, un, {true, "granted", "granted"}, un},
			// A grant both past its interval and of a replaced version reads outdated.
			"personalisation": {{false, "outdated", "outdated"}, {false, "denied", "denied"}, {false, "withdrawn", "withdrawn"},
				{false, "outdated", "outdated"}, {false, "outdated", "outdated"}, na, un, {false, "outdated", "outdated"}, un},
			"loyalty_offers": {{true, "granted", "legitimate_interest"}, li, li, {false, "objected", "objected"}, li, li, li,
				{true, "granted", "legitimate_interest"}, li},
		} {
			res, err := e.svc.Check(ctx, e.tenant(), purpose, ids)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if got := (answer{r.MayUse, r.State, r.Reason}); got != want[i] {
					t.Errorf("%s for %s: %+v, want %+v", purpose, ids[i].Value, got, want[i])
				}
			}
		}
		// The sweeps record what the reads already say; the answers stay.
		if _, err := e.svc.SweepExpiry(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.SweepOutdated(ctx); err != nil {
			t.Fatal(err)
		}
		res, err := e.svc.Check(ctx, e.tenant(), "personalisation", ids[:1])
		if err != nil || res[0].State != consent.StateOutdated || res[0].MayUse {
			t.Fatalf("after the sweep: %+v %v", res, err)
		}
		e.mustVerifyOK(t)
	})
}

// Re-ask intervals are calendar months in UTC, counted as the banner counts them from its
// cookie (JavaScript's Date.setUTCMonth, which Go's AddDate matches): a day the month lacks
// rolls over into the next, so 31 January + 1 month is 3 March and 29 February + 12 months
// is 1 March. Server and banner must agree to the millisecond, or one of them asks while
// the other still counts the decision.
func TestReaskMonthsAreUTCCalendarMonths(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		at := func(s string) time.Time {
			t.Helper()
			v, err := time.Parse(time.RFC3339, s)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		moveTo := func(s string) { e.clock.Add(at(s).Sub(e.clock.Now())) }
		e.setReask(t, "analytics", 1)

		// 23:30 on 31 January in Helsinki is still 31 January in UTC.
		moveTo("2027-01-31T23:30:00+02:00")
		jan := e.record(t, "", consent.MethodBannerCustom, grant("analytics", 1), grant("social_advertising", 1))
		moveTo("2028-02-29T12:00:00Z")
		leap := e.record(t, "", consent.MethodBannerCustom, grant("social_advertising", 1))
		for _, c := range []struct {
			device, purpose, want string
		}{
			{jan.DeviceID, "analytics", "2027-03-03T21:30:00Z"},
			{jan.DeviceID, "social_advertising", "2028-01-31T21:30:00Z"},
			{leap.DeviceID, "social_advertising", "2029-03-01T12:00:00Z"},
		} {
			s := e.deviceState(t, c.device, c.purpose)
			if s.ExpiresAt == nil || !s.ExpiresAt.Equal(at(c.want)) {
				t.Errorf("%s decided %v: expires %v, want %s", c.purpose, s.DecidedAt, s.ExpiresAt, c.want)
			}
			if got := e.storedExpiry(t, c.device, c.purpose); got != at(c.want).UnixMilli() {
				t.Errorf("%s: stored expiry %v, want %s", c.purpose, time.UnixMilli(got).UTC(), c.want)
			}
		}
		if n, err := e.svc.SweepExpiry(ctx); err != nil || n != 2 {
			t.Fatalf("expiry sweep in 2028: %d %v, want the two of January 2027", n, err)
		}
		moveTo("2029-03-01T11:59:59Z")
		if s := e.deviceState(t, leap.DeviceID, "social_advertising"); s.State != consent.StateGranted {
			t.Fatalf("a second before 1 March 2029: %+v", s)
		}
		moveTo("2029-03-01T12:00:00Z")
		if s := e.deviceState(t, leap.DeviceID, "social_advertising"); s.State != consent.StateExpired {
			t.Fatalf("on 1 March 2029: %+v", s)
		}
	})
}

// Two admins creating the next version of a purpose at once: one draft is made, and the
// other is told a draft exists (409), not a database error.
func TestTwoDraftsAtOnce(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		type marker struct{}
		var once sync.Once
		second := make(chan error, 1)
		create := func(ctx context.Context) error {
			material := true
			_, err := e.svc.CreateVersion(ctx, e.tenant(), "analytics", consent.VersionInput{Material: &material,
				Texts: texts("Analytics v2")}, actor)
			return err
		}
		name := "test:two-drafts"
		cb := e.db.Write.Callback().Query()
		if err := cb.After("gorm:query").Register(name, func(db *gorm.DB) {
			if db.Statement.Context.Value(marker{}) == nil || db.Statement.Table != "purpose_versions" {
				return
			}
			once.Do(func() {
				go func() { second <- create(context.Background()) }()
				select {
				case err := <-second:
					second <- err
				case <-time.After(time.Second):
				}
			})
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cb.Remove(name) })
		first := create(context.WithValue(ctx, marker{}, true))
		errs := []error{first, <-second}
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("two drafts at once: %v, %v; want one made and one refused", errs[0], errs[1])
		}
		for _, err := range errs {
			if err != nil {
				wantCode(t, err, identity.EConflict)
			}
		}
		if vs, err := e.svc.Versions(ctx, e.tenant(), "analytics"); err != nil || len(vs) != 2 {
			t.Fatalf("versions: %d %v", len(vs), err)
		}
	})
}

// A legitimate interest the person accepted never expires, and proves nothing the tenant
// needs: it does not keep a subject's evidence (key and identifiers) past the evidence
// period. An objection does — it must be honoured — and so does a consent in force.
func TestEvidenceEndsDespiteAcceptedLegitimateInterest(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.newPurpose(t, consent.Purpose{Key: "site_measurement", Level: consent.LevelDevice, LegalBasis: consent.BasisLegitimateInterest},
			consent.VersionDetails{DataCategories: []string{"pages visited"}})
		accepted := e.record(t, "", consent.MethodBannerAcceptAll, grant("analytics", 1), grant("site_measurement", 1))
		objected := e.record(t, "", consent.MethodBannerRejectAll, deny("analytics"), object("site_measurement"))
		e.clock.AddDate(1, 0, 1)
		if n, err := e.svc.SweepExpiry(ctx); err != nil || n != 2 {
			t.Fatalf("expiry: %d %v, want both devices' analytics", n, err)
		}
		e.clock.AddDate(3, 0, 1)
		n, err := e.svc.SweepEvidence(ctx)
		if err != nil || n != 1 {
			t.Fatalf("evidence sweep erased %d (err %v), want the device that accepted the legitimate interest", n, err)
		}
		if _, err := e.svc.DeviceState(ctx, e.demo.WebShop, accepted.DeviceID); !identity.IsCode(err, identity.ENotFound) {
			t.Fatalf("the device is still known: %v", err)
		}
		if s := e.deviceState(t, objected.DeviceID, "site_measurement"); s.State != consent.StateObjected {
			t.Fatalf("the objection: %+v", s)
		}
		e.mustVerifyOK(t)
	})
}

// A scope names brands, properties, or both; both narrow it. A property of a brand the
// scope leaves out is refused: the purpose would never be asked there.
func TestScopeOfBrandsAndProperties(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		market, style := e.demo.Brands[0].ID, e.demo.Brands[1].ID
		p := consent.Purpose{TenantID: e.tenant(), Key: "style_offers", Level: consent.LevelDevice, LegalBasis: consent.BasisConsent,
			ScopeBrandIDs: []string{style}, ScopePropertyIDs: []string{e.demo.WebShop.ID}}
		_, err := e.svc.CreatePurpose(ctx, p, actor)
		wantField(t, wantCode(t, err, identity.EUnprocessable), "scope_property_ids", e.demo.WebShop.ID)
		p.ScopeBrandIDs = []string{style, market}
		if _, err := e.svc.CreatePurpose(ctx, p, actor); err != nil {
			t.Fatalf("a property of a brand in scope: %v", err)
		}
		_, err = e.svc.UpdatePurpose(ctx, e.tenant(), "style_offers", consent.PurposePatch{ScopeBrandIDs: &[]string{style}}, actor)
		wantField(t, wantCode(t, err, identity.EUnprocessable), "scope_property_ids", "never be asked there")
		if got, _ := e.svc.Purpose(ctx, e.tenant(), "style_offers"); len(got.ScopeBrandIDs) != 2 {
			t.Fatalf("the refused scope was saved: %+v", got)
		}
	})
}

// Double opt-in confirms a person's consent from their email. A device has no address: its
// grants would wait for ever for a confirmation that never comes, so a device-level purpose
// cannot be double opt-in.
func TestDoubleOptInIsForPersonLevelPurposes(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		_, err := e.svc.CreatePurpose(ctx, consent.Purpose{TenantID: e.tenant(), Key: "newsletter_pixel", Level: consent.LevelDevice,
			LegalBasis: consent.BasisConsent, DoubleOptIn: true}, actor)
		wantField(t, wantCode(t, err, identity.EInvalid), "double_opt_in", "device-level")
		_, err = e.svc.UpdatePurpose(ctx, e.tenant(), "analytics", consent.PurposePatch{DoubleOptIn: ptr(true)}, actor)
		wantField(t, wantCode(t, err, identity.EInvalid), "double_opt_in", "device-level")
		if _, err := e.svc.UpdatePurpose(ctx, e.tenant(), "marketing_email", consent.PurposePatch{DoubleOptIn: ptr(true)}, actor); err != nil {
			t.Fatalf("a person-level purpose: %v", err)
		}
		// Nor can a double opt-in purpose become device-level (before its first version).
		_, err = e.svc.CreatePurpose(ctx, consent.Purpose{TenantID: e.tenant(), Key: "club_news", Level: consent.LevelPerson,
			LegalBasis: consent.BasisConsent, DoubleOptIn: true}, actor)
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.UpdatePurpose(ctx, e.tenant(), "club_news", consent.PurposePatch{Level: ptr(consent.LevelDevice)}, actor)
		wantField(t, wantCode(t, err, identity.EInvalid), "double_opt_in", "device-level")
	})
}
