package consent_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
)

const testBuild = "0123456789abcdef"

// bannerDoc is the part of the served configuration the tests read.
type bannerDoc struct {
	ConfigHash string `json:"config_hash"`
	UIHash     string `json:"ui_hash"`
	Property   string `json:"property"`
	Language   string `json:"language"`
	Controller struct {
		Name string `json:"name"`
	} `json:"controller"`
	Settings struct {
		Position   string `json:"position"`
		CookieName string `json:"cookie_name"`
	} `json:"settings"`
	Strings   map[string]string `json:"strings"`
	Purposes  []bannerPurpose   `json:"purposes"`
	Necessary []bannerPurpose   `json:"necessary"`
}

type bannerPurpose struct {
	Key             string   `json:"key"`
	Version         int      `json:"version"`
	MaterialVersion int      `json:"material_version"`
	TextHash        string   `json:"text_hash"`
	LegalBasis      string   `json:"legal_basis"`
	ReaskMonths     int      `json:"reask_months"`
	Title           string   `json:"title"`
	Lang            string   `json:"lang"`
	GPCOptOut       bool     `json:"gpc_opt_out"`
	ConsentMode     []string `json:"consent_mode"`
	Vendors         []struct {
		LegalName string `json:"legal_name"`
	} `json:"vendors"`
	Storage []struct {
		Name     string `json:"name"`
		Kind     string `json:"kind"`
		Duration string `json:"duration"`
	} `json:"storage"`
}

func (e *env) bannerConfig(t *testing.T, svc *consent.Service, lang string) (*consent.BannerConfig, bannerDoc) {
	t.Helper()
	if err := svc.RegisterWidgetBuild(context.Background(), testBuild, map[string]string{"widget.js": "/* test */"}); err != nil {
		t.Fatal(err)
	}
	p, err := e.ids.PropertyByKey(context.Background(), e.demo.WebShop.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := svc.BannerConfig(context.Background(), p, lang, "")
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	var doc bannerDoc
	if err := json.Unmarshal(cfg.Body, &doc); err != nil {
		t.Fatalf("config is not JSON: %v\n%s", err, cfg.Body)
	}
	return cfg, doc
}

func purposeKeys(ps []bannerPurpose) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.Key)
	}
	return out
}

func TestBannerConfigShowsDeviceLevelPurposesWithInventory(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		cfg, doc := e.bannerConfig(t, e.svc, "fi")
		if doc.Controller.Name != "Demo Retail Oy" || doc.Language != "fi" || doc.Property != e.demo.WebShop.PublicKey {
			t.Fatalf("controller/language/property: %+v", doc)
		}
		// Person-level purposes are asked where the person is identified, never on the banner;
		// strictly necessary storage is listed, never asked.
		if got := purposeKeys(doc.Purposes); !slices.Equal(got, []string{"analytics", "social_advertising"}) {
			t.Fatalf("asked purposes %v", got)
		}
		if got := purposeKeys(doc.Necessary); !slices.Equal(got, []string{"necessary"}) {
			t.Fatalf("necessary %v", got)
		}
		analytics := doc.Purposes[0]
		ver := e.demo.Purposes["analytics"]
		want := consent.TextHash("analytics", 1, "fi", consent.Text{Title: "Analytiikka",
			Description: "Mittaamme, miten verkkokauppaa käytetään, jotta voimme parantaa sitä. Tiedot kootaan tilastoiksi.",
			PolicyURL:   e.demo.Tenant.PrivacyPolicyURL})
		if analytics.Title != "Analytiikka" || analytics.Version != ver.LatestVersion || analytics.TextHash != want {
			t.Fatalf("analytics: %+v, want text hash %s", analytics, want)
		}
		if !slices.Equal(analytics.ConsentMode, []string{"analytics_storage"}) {
			t.Fatalf("consent mode %v", analytics.ConsentMode)
		}
		if len(analytics.Storage) != 1 || analytics.Storage[0].Name != "_demo_analytics" || analytics.Storage[0].Duration != "13 kuukautta" {
			t.Fatalf("analytics storage %+v", analytics.Storage)
		}
		ads := doc.Purposes[1]
		if !ads.GPCOptOut || len(ads.Vendors) != 1 || ads.Vendors[0].LegalName != "Meta Platforms Ireland Ltd" {
			t.Fatalf("advertising %+v", ads)
		}
		if len(doc.Necessary[0].Storage) != 3 || doc.Necessary[0].Storage[0].Name != "lupa_consent" || doc.Necessary[0].Storage[0].Duration != "1 vuosi" {
			t.Fatalf("necessary storage %+v", doc.Necessary[0].Storage)
		}
		if doc.UIHash != cfg.UIHash || cfg.ETag() != `"`+cfg.UIHash+`"` || doc.UIHash != consent.UIHash(doc.ConfigHash, testBuild, "fi") {
			t.Fatalf("hashes: doc %s/%s cfg %s", doc.ConfigHash, doc.UIHash, cfg.UIHash)
		}
	})
}

func TestBannerConfigLanguageFallback(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		for _, tc := range []struct{ ask, lang, title string }{
			{"sv", "sv", "Analys"}, {"sv-FI", "sv", "Analys"}, {"EN", "en", "Analytics"},
			{"de", "fi", "Analytiikka"}, // not offered: the property's default
			{"", "fi", "Analytiikka"},
		} {
			_, doc := e.bannerConfig(t, e.svc, tc.ask)
			if doc.Language != tc.lang || doc.Purposes[0].Title != tc.title {
				t.Errorf("lang %q: got %s %q, want %s %q", tc.ask, doc.Language, doc.Purposes[0].Title, tc.lang, tc.title)
			}
		}
		p, _ := e.ids.PropertyByKey(context.Background(), e.demo.WebShop.PublicKey)
		_, err := e.svc.BannerConfig(context.Background(), p, "<script>", "")
		wantField(t, wantCode(t, err, identity.EInvalid), "lang", "language tag")
	})
}

// TestPurposeTextLanguage: a purpose without a text in the language asked for is shown in
// a fallback, and says which, so that the banner and the registration form can mark it
// (lang) and a screen reader reads it in its own language (WCAG 3.1.2). The others say
// nothing: they are in the page's language.
func TestPurposeTextLanguage(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.newPurpose(t, consent.Purpose{Key: "store_wifi", Level: consent.LevelDevice, LegalBasis: consent.BasisConsent}, consent.VersionDetails{})
		e.newPurpose(t, consent.Purpose{Key: "club_news", Level: consent.LevelPerson, LegalBasis: consent.BasisConsent}, consent.VersionDetails{})
		for _, lang := range []string{"sv", "en"} {
			_, doc := e.bannerConfig(t, e.svc, lang)
			for _, p := range doc.Purposes {
				want := ""
				if p.Key == "store_wifi" && lang == "sv" {
					want = "fi" // the property's default language; it has no Swedish text
				}
				if p.Lang != want {
					t.Errorf("%s in %s: lang %q, want %q (title %q)", p.Key, lang, p.Lang, want, p.Title)
				}
			}
		}
		form, err := e.svc.RegistrationForm(context.Background(), e.demo.WebShop, "sv")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range form.Purposes {
			if want := map[bool]string{true: "fi"}[p.Key == "club_news"]; p.Lang != want {
				t.Errorf("registration form, %s: lang %q, want %q", p.Key, p.Lang, want)
			}
		}
	})
}

// TestBannerConfigKeptAsEvidence: what was served is kept by hash, and shows again as it was
// after the configuration changed.
func TestBannerConfigKeptAsEvidence(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		cfg, doc := e.bannerConfig(t, e.svc, "sv")
		again, _ := e.bannerConfig(t, e.svc, "sv")
		if again != cfg {
			t.Fatal("an unchanged configuration is built again instead of served from memory")
		}
		si, err := e.svc.Interface(ctx, e.tenant(), cfg.UIHash)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(si.Config)
		if hex.EncodeToString(sum[:]) != doc.ConfigHash || si.WidgetBuild != testBuild || si.Language != "sv" {
			t.Fatalf("evidence %+v does not match config hash %s", si, doc.ConfigHash)
		}
		if !strings.HasSuffix(string(cfg.Body), string(si.Config[1:])) {
			t.Fatalf("stored config differs from served:\n%s\n%s", si.Config, cfg.Body)
		}
		if si.WidgetFiles["widget.js"] == "" {
			t.Fatalf("widget files %v", si.WidgetFiles)
		}

		// A change gives a new configuration and keeps the old one.
		b, _ := e.svc.BannerSettings(ctx, e.tenant(), e.demo.WebShop.ID)
		b.Position = consent.PositionDialog
		if _, err := e.svc.PutBannerSettings(ctx, *b, identity.ActorSystem); err != nil {
			t.Fatal(err)
		}
		changed, cdoc := e.bannerConfig(t, e.svc, "sv")
		if changed.UIHash == cfg.UIHash || cdoc.Settings.Position != "dialog" {
			t.Fatalf("after a change: %s", changed.Body)
		}
		old, err := e.svc.Interface(ctx, e.tenant(), cfg.UIHash)
		if err != nil || !strings.Contains(string(old.Config), `"position":"bar"`) {
			t.Fatalf("the old configuration is gone: %v %s", err, old.Config)
		}
		if _, err := e.svc.Interface(ctx, "another-tenant", cfg.UIHash); !identity.IsCode(err, identity.ENotFound) {
			t.Fatalf("another tenant reads the interface: %v", err)
		}
		// Evidence is append-only.
		if err := e.db.Write.Exec("UPDATE shown_configs SET body = '{}'").Error; err == nil {
			t.Fatal("shown_configs can be changed")
		}
	})
}

// TestBannerConfigRefreshOnPublish: a published version reaches the banner at once on this
// instance and within the catalog's lifetime on another.
func TestBannerConfigRefreshOnPublish(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		other := e.secondInstance(t)
		_, before := e.bannerConfig(t, other, "en")
		material := true
		if _, err := e.svc.CreateVersion(ctx, e.tenant(), "analytics", consent.VersionInput{Material: &material,
			Texts: map[string]consent.Text{"en": {Title: "Analytics and heatmaps", Description: "We record clicks too."}}}, identity.ActorSystem); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.PublishVersion(ctx, e.tenant(), "analytics", 2, identity.ActorSystem); err != nil {
			t.Fatal(err)
		}
		_, here := e.bannerConfig(t, e.svc, "en")
		if here.Purposes[0].Version != 2 || here.Purposes[0].MaterialVersion != 2 || here.Purposes[0].Title != "Analytics and heatmaps" {
			t.Fatalf("this instance: %+v", here.Purposes[0])
		}
		_, stale := e.bannerConfig(t, other, "en")
		if stale.Purposes[0].Version != before.Purposes[0].Version {
			t.Fatalf("the other instance changed before its catalog expired: %+v", stale.Purposes[0])
		}
		e.clock.Add(3 * time.Second)
		_, there := e.bannerConfig(t, other, "en")
		if there.Purposes[0].Version != 2 || there.UIHash != here.UIHash {
			t.Fatalf("the other instance still serves %+v", there.Purposes[0])
		}
	})
}

func TestBannerSettingsRules(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		base := func() consent.BannerSettings {
			b, err := e.svc.BannerSettings(ctx, e.tenant(), e.demo.WebShop.ID)
			if err != nil {
				t.Fatal(err)
			}
			return *b
		}
		for _, tc := range []struct {
			name, code, field, msg string
			change                 func(b *consent.BannerSettings)
		}{
			{"necessary as advertising", identity.EUnprocessable, "consent_mode.necessary", "never ad_storage",
				func(b *consent.BannerSettings) { b.ConsentMode["necessary"] = []string{"ad_storage"} }},
			{"security_storage on analytics", identity.EUnprocessable, "consent_mode.analytics", "strictly necessary",
				func(b *consent.BannerSettings) { b.ConsentMode["analytics"] = []string{"security_storage"} }},
			{"person-level purpose asked", identity.EUnprocessable, "purposes[0]", "device-level",
				func(b *consent.BannerSettings) { b.Purposes = []string{"marketing_email"} }},
			{"necessary asked", identity.EUnprocessable, "purposes[0]", "never asked",
				func(b *consent.BannerSettings) { b.Purposes = []string{"necessary"} }},
			{"unknown purpose", identity.EUnprocessable, "consent_mode.nope", "unknown purpose",
				func(b *consent.BannerSettings) { b.ConsentMode["nope"] = []string{"ad_storage"} }},
			{"unknown consent mode type", identity.EInvalid, "consent_mode.analytics[0]", "must be one of",
				func(b *consent.BannerSettings) { b.ConsentMode["analytics"] = []string{"tracking_storage"} }},
			{"theme loads a URL", identity.EInvalid, "theme.--lupa-bg", "no url()",
				func(b *consent.BannerSettings) {
					b.Theme = map[string]string{"--lupa-bg": "url(https://evil.example/x)"}
				}},
			{"theme breaks out", identity.EInvalid, "theme.--lupa-bg", "plain CSS value",
				func(b *consent.BannerSettings) { b.Theme = map[string]string{"--lupa-bg": "red;}</style>"} }},
			{"theme names another property", identity.EInvalid, "theme.color", "--lupa-",
				func(b *consent.BannerSettings) { b.Theme = map[string]string{"color": "red"} }},
			{"cookie domain", identity.EInvalid, "cookie_domain", "domain",
				func(b *consent.BannerSettings) { b.CookieDomain = "shop example" }},
			{"cookie too long", identity.EInvalid, "cookie_days", "395",
				func(b *consent.BannerSettings) { b.CookieDays = 800 }},
			{"position", identity.EInvalid, "position", "bar or dialog",
				func(b *consent.BannerSettings) { b.Position = "top" }},
			{"language twice", identity.EInvalid, "languages[1]", "twice",
				func(b *consent.BannerSettings) { b.Languages = []string{"fi", "fi"} }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				b := base()
				tc.change(&b)
				_, err := e.svc.PutBannerSettings(ctx, b, identity.ActorSystem)
				wantField(t, wantCode(t, err, tc.code), tc.field, tc.msg)
				if now := base(); now.Position != "bar" || len(now.ConsentMode["necessary"]) != 2 {
					t.Fatalf("a refused change altered the settings: %+v", now)
				}
			})
		}
		// Another tenant's property does not exist for this one.
		b := base()
		b.TenantID = "another-tenant"
		if _, err := e.svc.PutBannerSettings(ctx, b, identity.ActorSystem); !identity.IsCode(err, identity.ENotFound) {
			t.Fatalf("another tenant's property: %v", err)
		}
		// Tenant languages: a new one with its own strings is offered.
		b = base()
		b.Languages = append(b.Languages, "de")
		b.Strings = map[string]map[string]string{"de": {"accept_all": "Alle akzeptieren"}}
		if _, err := e.svc.PutBannerSettings(ctx, b, identity.ActorSystem); err != nil {
			t.Fatal(err)
		}
		_, doc := e.bannerConfig(t, e.svc, "de")
		if doc.Language != "de" || doc.Strings["accept_all"] != "Alle akzeptieren" || doc.Purposes[0].Title != "Analytiikka" {
			t.Fatalf("German banner: %+v", doc)
		}
	})
}

func TestInventoryRules(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		_, err := e.svc.PutInventory(ctx, e.tenant(), "marketing_email", consent.Inventory{
			Storage: []consent.StorageItem{{Name: "x", Kind: consent.StorageCookie}}}, identity.ActorSystem)
		wantField(t, wantCode(t, err, identity.EUnprocessable), "storage", "device-level")
		_, err = e.svc.PutInventory(ctx, e.tenant(), "analytics", consent.Inventory{
			Storage: []consent.StorageItem{{Name: "a b", Kind: "cookie"}, {Name: "ok", Kind: "flash", MaxAgeDays: -1}},
			Vendors: []consent.Vendor{{Name: "V", LegalName: "V Oy", PrivacyPolicyURL: "javascript:alert(1)"}}}, identity.ActorSystem)
		ie := wantCode(t, err, identity.EInvalid)
		wantField(t, ie, "storage[0].name", "without spaces")
		wantField(t, ie, "storage[1].kind", "cookie")
		wantField(t, ie, "storage[1].max_age_days", "between")
		wantField(t, ie, "vendors[0].privacy_policy_url", "http(s) URL")
		inv, err := e.svc.Inventory(ctx, e.tenant(), "analytics")
		if err != nil || len(inv.Storage) != 1 || inv.Storage[0].Name != "_demo_analytics" {
			t.Fatalf("a refused inventory changed the stored one: %+v %v", inv, err)
		}
		if _, err := e.svc.Inventory(ctx, "another-tenant", "analytics"); !identity.IsCode(err, identity.ENotFound) {
			t.Fatalf("another tenant's purpose: %v", err)
		}
	})
}

// TestBannerConfigUnknownBuild: a build no Lupa served is refused, so made-up builds leave
// no evidence rows.
func TestBannerConfigUnknownBuild(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.bannerConfig(t, e.svc, "fi")
		p, _ := e.ids.PropertyByKey(context.Background(), e.demo.WebShop.PublicKey)
		before := e.count(t, "shown_interfaces", "")
		for _, build := range []string{"ffffffffffffffff", "not-hex", strings.Repeat("a", 200)} {
			_, err := e.svc.BannerConfig(context.Background(), p, "fi", build)
			wantField(t, wantCode(t, err, identity.EInvalid), "build", "widget build")
		}
		if n := e.count(t, "shown_interfaces", ""); n != before {
			t.Fatalf("unknown builds wrote %d evidence rows", n-before)
		}
	})
}

// TestGPCRules: with Global Privacy Control on, a grant of a gpc_opt_out purpose needs the
// person's confirmation, and the signal itself only refuses.
func TestGPCRules(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		req := e.deviceRequest("", consent.MethodBannerAcceptAll, grant("analytics", 1), grant("social_advertising", 1))
		req.GPC = true
		_, err := e.svc.Record(ctx, req)
		wantField(t, wantCode(t, err, identity.EUnprocessable), "decisions[1].decision", "Global Privacy Control")
		req.GPCConfirmed = true
		if _, err := e.svc.Record(ctx, req); err != nil {
			t.Fatalf("a confirmed grant: %v", err)
		}

		signal := e.deviceRequest("", consent.MethodGPCSignal, deny("social_advertising"))
		signal.GPC = true
		out, err := e.svc.Record(ctx, signal)
		if err != nil || stateOf(out.State, "social_advertising").Method != consent.MethodGPCSignal {
			t.Fatalf("the signal's refusal: %v %+v", err, out)
		}
		for _, d := range []consent.DecisionInput{grant("social_advertising", 1), deny("analytics")} {
			bad := e.deviceRequest("", consent.MethodGPCSignal, d)
			_, err := e.svc.Record(ctx, bad)
			wantField(t, wantCode(t, err, identity.EUnprocessable), "decisions[0].decision", "only refuses")
		}
	})
}

// TestBannerConfigReaskIsThePurposes: the re-ask interval the widget applies is the
// purpose's own, the one the server sets expires_at from; a banner-level interval stored by
// an older version is ignored, and such settings still load.
func TestBannerConfigReaskIsThePurposes(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		var raw string
		e.db.Write.Raw("SELECT settings FROM banner_settings WHERE tenant_id = ? AND property_id = ?", e.tenant(), e.demo.WebShop.ID).Scan(&raw)
		var stored map[string]any
		if err := json.Unmarshal([]byte(raw), &stored); err != nil {
			t.Fatalf("stored settings %q: %v", raw, err)
		}
		stored["reask_months"] = 3
		old, _ := json.Marshal(stored)
		e.exec(t, "UPDATE banner_settings SET settings = ? WHERE tenant_id = ? AND property_id = ?", string(old), e.tenant(), e.demo.WebShop.ID)
		// Changing the purpose also makes this instance read the catalog again.
		if _, err := e.svc.UpdatePurpose(ctx, e.tenant(), "analytics", consent.PurposePatch{ReaskMonths: ptr(7)}, actor); err != nil {
			t.Fatal(err)
		}
		if b, err := e.svc.BannerSettings(ctx, e.tenant(), e.demo.WebShop.ID); err != nil || len(b.ConsentMode["analytics"]) != 1 {
			t.Fatalf("settings stored with reask_months: %+v %v", b, err)
		}
		_, doc := e.bannerConfig(t, e.svc, "fi")
		want := map[string]int{"analytics": 7, "social_advertising": 12}
		out := e.record(t, "", consent.MethodBannerRejectAll, deny("analytics"), deny("social_advertising"))
		seen := map[string]bool{}
		for _, p := range doc.Purposes {
			seen[p.Key] = true
			if p.ReaskMonths != want[p.Key] {
				t.Errorf("%s: the banner re-asks after %d months, the purpose after %d", p.Key, p.ReaskMonths, want[p.Key])
			}
			st := stateOf(out.State, p.Key)
			if st.ExpiresAt == nil || !st.ExpiresAt.Equal(st.DecidedAt.AddDate(0, p.ReaskMonths, 0)) {
				t.Errorf("%s: decided %v, expires %v; the banner asks again %d months after the decision", p.Key, st.DecidedAt, st.ExpiresAt, p.ReaskMonths)
			}
		}
		for key := range want {
			if !seen[key] {
				t.Errorf("%s is missing from the banner configuration", key)
			}
		}
	})
}

// TestBannerConfigObjectionNotReasked: only consent purposes carry a re-ask interval and a
// material version in the configuration. The server keeps an objection to a legitimate
// interest until the person changes it, so the widget must have nothing to expire it with.
func TestBannerConfigObjectionNotReasked(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.newPurpose(t, consent.Purpose{Key: "site_improvement", Level: consent.LevelDevice, LegalBasis: consent.BasisLegitimateInterest},
			consent.VersionDetails{DataCategories: []string{"pages visited"}})
		_, doc := e.bannerConfig(t, e.svc, "fi")
		seen := 0
		for _, p := range doc.Purposes {
			consentBasis := p.LegalBasis == consent.BasisConsent
			if consentBasis != (p.ReaskMonths == 12 && p.MaterialVersion == 1) || (!consentBasis && (p.ReaskMonths != 0 || p.MaterialVersion != 0)) {
				t.Errorf("%s (%s): reask_months %d, material_version %d", p.Key, p.LegalBasis, p.ReaskMonths, p.MaterialVersion)
			}
			if p.Key == "site_improvement" {
				seen++
			}
		}
		if seen != 1 {
			t.Fatalf("the legitimate-interest purpose is not asked: %v", purposeKeys(doc.Purposes))
		}
		out := e.record(t, "", consent.MethodBannerRejectAll, object("site_improvement"))
		if st := stateOf(out.State, "site_improvement"); st.State != consent.StateObjected || st.ExpiresAt != nil {
			t.Fatalf("the server keeps the objection: %+v", st)
		}
	})
}

// TestNecessaryPurposeNeverStandsForAdvertising: a purpose a banner maps to a Consent Mode
// type that strictly necessary storage may not stand for cannot become necessary (the
// widget grants a necessary purpose's types to everyone, unasked); and should such a
// mapping be stored anyway (by an older version), neither the configuration nor the
// server's cookie grants it.
func TestNecessaryPurposeNeverStandsForAdvertising(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		if _, err := e.svc.CreatePurpose(ctx, consent.Purpose{TenantID: e.tenant(), Key: "pixels", Level: consent.LevelDevice,
			LegalBasis: consent.BasisConsent}, actor); err != nil {
			t.Fatal(err)
		}
		b, err := e.svc.BannerSettings(ctx, e.tenant(), e.demo.WebShop.ID)
		if err != nil {
			t.Fatal(err)
		}
		b.ConsentMode["pixels"] = []string{consent.CMPersonalizationStorage}
		b.CookieDomain = ".shop.example"
		if _, err := e.svc.PutBannerSettings(ctx, *b, actor); err != nil {
			t.Fatal(err)
		}
		necessary := consent.BasisNecessary
		_, err = e.svc.UpdatePurpose(ctx, e.tenant(), "pixels", consent.PurposePatch{LegalBasis: &necessary}, actor)
		wantField(t, wantCode(t, err, identity.EUnprocessable), "legal_basis", `property "Demo Market web shop"`)
		wantField(t, wantCode(t, err, identity.EUnprocessable), "legal_basis", "personalization_storage")
		if p, _ := e.svc.Purpose(ctx, e.tenant(), "pixels"); p.LegalBasis != consent.BasisConsent {
			t.Fatalf("the refused change was made: %+v", p)
		}
		// A level change the banner does not allow is refused the same way.
		person := consent.LevelPerson
		_, err = e.svc.UpdatePurpose(ctx, e.tenant(), "pixels", consent.PurposePatch{Level: &person}, actor)
		wantField(t, wantCode(t, err, identity.EUnprocessable), "level", "device-level")

		// Stored anyway: the purpose became necessary before this check existed.
		e.exec(t, "UPDATE purposes SET legal_basis = 'necessary' WHERE tenant_id = ? AND key = 'pixels'", e.tenant())
		if _, err := e.svc.CreateVersion(ctx, e.tenant(), "pixels", consent.VersionInput{Texts: texts("Pixels")}, actor); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.PublishVersion(ctx, e.tenant(), "pixels", 1, actor); err != nil {
			t.Fatal(err)
		}
		_, doc := e.bannerConfig(t, e.svc, "en")
		for _, p := range doc.Necessary {
			for _, typ := range p.ConsentMode {
				if typ != consent.CMFunctionalityStorage && typ != consent.CMSecurityStorage {
					t.Errorf("the configuration maps necessary %s to %s: granted to every visitor", p.Key, typ)
				}
			}
		}
		out := e.record(t, "", consent.MethodBannerRejectAll, deny("analytics"), deny("social_advertising"))
		c, err := e.svc.BannerCookie(ctx, e.demo.WebShop, "lupa.shop.example", out)
		if err != nil || c == nil {
			t.Fatalf("cookie: %+v %v", c, err)
		}
		var v struct {
			G []string `json:"g"`
		}
		if err := json.Unmarshal([]byte(c.Value), &v); err != nil || !slices.Equal(v.G, []string{consent.CMFunctionalityStorage}) {
			t.Fatalf("the server's cookie grants %v after a refusal of everything (%v)", v.G, err)
		}
	})
}
