package consent

import (
	"context"
	"fmt"

	"github.com/lupa-cmp/lupa/identity"
)

// Demo is what SeedDemo created.
type Demo struct {
	Tenant     *identity.Tenant
	AdminKey   string
	Brands     []*identity.Brand
	WebShop    *identity.Property
	App        *identity.Property
	Purposes   map[string]*Purpose
	Recipients map[string]*Recipient
}

// DemoSlug is the demo tenant's slug.
const DemoSlug = "demo-retail"

type demoText struct{ fi, sv, en Text }

func (d demoText) texts() map[string]Text { return map[string]Text{"fi": d.fi, "sv": d.sv, "en": d.en} }

type demoPurpose struct {
	key, level, basis, dpv string
	gpc                    bool
	recipients             []string
	data                   []string
	retention              string
	text                   demoText
}

var demoPurposes = []demoPurpose{
	{key: "necessary", level: LevelDevice, basis: BasisNecessary, dpv: "https://w3id.org/dpv#ServiceProvision",
		data: []string{"session cookie", "basket contents"}, retention: "Until the browser session ends.",
		text: demoText{
			fi: Text{"Välttämättömät", "Istunnon ja ostoskorin evästeet, joita ilman verkkokauppa ei toimi. Niitä ei kysytä eikä niistä voi kieltäytyä.", ""},
			sv: Text{"Nödvändiga", "Cookies för session och varukorg som webbutiken inte fungerar utan. De frågas inte och kan inte avvisas.", ""},
			en: Text{"Strictly necessary", "Session and basket cookies without which the shop does not work. They are not asked and cannot be refused.", ""},
		}},
	{key: "analytics", level: LevelDevice, basis: BasisConsent, dpv: "https://w3id.org/dpv#ServiceUsageAnalytics",
		data: []string{"pages visited", "device type"}, retention: "14 months.",
		text: demoText{
			fi: Text{"Analytiikka", "Mittaamme, miten verkkokauppaa käytetään, jotta voimme parantaa sitä. Tiedot kootaan tilastoiksi.", ""},
			sv: Text{"Analys", "Vi mäter hur webbutiken används för att kunna förbättra den. Uppgifterna sammanställs till statistik.", ""},
			en: Text{"Analytics", "We measure how the shop is used so that we can improve it. The data is compiled into statistics.", ""},
		}},
	{key: "social_advertising", level: LevelDevice, basis: BasisConsent, dpv: "https://w3id.org/dpv#PersonalisedAdvertising",
		gpc: true, recipients: []string{"Meta Platforms Ireland Ltd"}, data: []string{"pages visited", "advertising identifiers"},
		retention: "90 days.", text: demoText{
			fi: Text{"Mainonta sosiaalisessa mediassa", "Meta näyttää sinulle mainoksiamme sosiaalisessa mediassa sen perusteella, mitä katsoit verkkokaupassa.", ""},
			sv: Text{"Annonsering i sociala medier", "Meta visar dig våra annonser i sociala medier utifrån vad du tittade på i webbutiken.", ""},
			en: Text{"Advertising on social media", "Meta shows you our ads on social media based on what you looked at in the shop.", ""},
		}},
	{key: "marketing_email", level: LevelPerson, basis: BasisConsent, dpv: "https://w3id.org/dpv#DirectMarketing",
		data: []string{"email address", "name"}, retention: "Until you withdraw, then 3 years as evidence.",
		text: demoText{
			fi: Text{"Markkinointisähköpostit", "Lähetämme sinulle tarjouksia ja uutisia sähköpostitse. Voit peruuttaa tilauksen milloin tahansa.", ""},
			sv: Text{"Marknadsföring via e-post", "Vi skickar dig erbjudanden och nyheter via e-post. Du kan avsluta prenumerationen när som helst.", ""},
			en: Text{"Marketing email", "We send you offers and news by email. You can unsubscribe at any time.", ""},
		}},
	{key: "personalisation", level: LevelPerson, basis: BasisConsent, dpv: "https://w3id.org/dpv#Personalisation",
		data: []string{"purchase history", "loyalty points"}, retention: "Until you withdraw.",
		text: demoText{
			fi: Text{"Personointi ja profilointi", "Muodostamme ostohistoriastasi profiilin ja näytämme sen perusteella sinulle sopivia tuotteita ja etuja.", ""},
			sv: Text{"Personalisering och profilering", "Vi bildar en profil av din köphistorik och visar dig produkter och förmåner som passar dig.", ""},
			en: Text{"Personalisation and profiling", "We build a profile from your purchase history and show you products and benefits that suit you.", ""},
		}},
	{key: "partner_sharing", level: LevelPerson, basis: BasisConsent, dpv: "https://w3id.org/dpv#SellDataToThirdParties",
		gpc: true, recipients: []string{"Demo Pankki Oyj", "Demo Matkat Oy"}, data: []string{"name", "email address", "purchase categories"},
		retention: "As long as the partner's own terms say.", text: demoText{
			fi: Text{"Tietojen luovutus kumppaneille", "Luovutamme nimesi, sähköpostiosoitteesi ja ostoluokkasi nimetyille kumppaneille heidän omaa markkinointiaan varten.", ""},
			sv: Text{"Utlämnande till partner", "Vi lämnar ut ditt namn, din e-postadress och dina köpkategorier till namngivna partner för deras egen marknadsföring.", ""},
			en: Text{"Sharing with partners", "We share your name, email address and purchase categories with named partners for their own marketing.", ""},
		}},
	{key: "brand_sharing", level: LevelPerson, basis: BasisConsent, dpv: "https://w3id.org/dpv#CustomerRelationshipManagement",
		recipients: []string{"Demo Market Oy", "Demo Style Oy"}, data: []string{"name", "email address", "purchase history"},
		retention: "Until you withdraw.", text: demoText{
			fi: Text{"Tietojen jakaminen konsernin brändien kesken", "Demo Market ja Demo Style näkevät ostoksesi toistensa kaupoissa ja voivat tarjota sinulle yhteisiä etuja.", ""},
			sv: Text{"Delning mellan koncernens varumärken", "Demo Market och Demo Style ser dina köp i varandras butiker och kan erbjuda dig gemensamma förmåner.", ""},
			en: Text{"Sharing between the group's brands", "Demo Market and Demo Style see your purchases in each other's shops and can offer you joint benefits.", ""},
		}},
}

// SeedDemo creates the demo tenant "Demo Retail Oy": two brands (each its own legal
// entity), a web shop and an app, recipients, and purposes with Finnish, Swedish and
// English texts, each with a published first version. origins are the web shop's allowed
// origins.
func (s *Service) SeedDemo(ctx context.Context, origins []string) (*Demo, error) {
	actor := identity.ActorSystem
	t, key, err := s.ids.CreateTenant(ctx, identity.TenantInput{Slug: DemoSlug, Name: "Demo Retail", LegalName: "Demo Retail Oy",
		BusinessID: "1234567-8", ContactEmail: "tietosuoja@demo-retail.example", Phone: "+358 9 123 4567",
		Address: "Esimerkkikatu 1, 00100 Helsinki", Website: "https://demo-retail.example",
		PrivacyPolicyURL: "https://demo-retail.example/tietosuoja", Jurisdiction: "FI", DefaultLanguage: "fi"}, actor)
	if err != nil {
		return nil, err
	}
	d := &Demo{Tenant: t, AdminKey: key, Purposes: map[string]*Purpose{}, Recipients: map[string]*Recipient{}}
	for _, b := range []identity.Brand{
		{Name: "Demo Market", LegalName: "Demo Market Oy", BusinessID: "2345678-9", ContactEmail: "tietosuoja@demo-market.example", Website: "https://demo-market.example"},
		{Name: "Demo Style", LegalName: "Demo Style Oy", BusinessID: "3456789-0", ContactEmail: "tietosuoja@demo-style.example", Website: "https://demo-style.example"},
	} {
		b.TenantID = t.ID
		nb, err := s.ids.CreateBrand(ctx, b, actor)
		if err != nil {
			return nil, err
		}
		d.Brands = append(d.Brands, nb)
	}
	if d.WebShop, err = s.ids.CreateProperty(ctx, identity.Property{TenantID: t.ID, BrandID: d.Brands[0].ID,
		Name: "Demo Market web shop", Kind: identity.PropertyWeb, AllowedOrigins: origins, DefaultLanguage: "fi"}, actor); err != nil {
		return nil, err
	}
	if d.App, err = s.ids.CreateProperty(ctx, identity.Property{TenantID: t.ID, BrandID: d.Brands[0].ID,
		Name: "Demo Market app", Kind: identity.PropertyApp, DefaultLanguage: "fi"}, actor); err != nil {
		return nil, err
	}
	for _, r := range []Recipient{
		{Name: "Meta", LegalName: "Meta Platforms Ireland Ltd", Kind: "partner", Country: "IE", PrivacyPolicyURL: "https://www.facebook.com/privacy/policy/"},
		{Name: "Demo Pankki", LegalName: "Demo Pankki Oyj", Kind: "partner", Country: "FI"},
		{Name: "Demo Matkat", LegalName: "Demo Matkat Oy", Kind: "partner", Country: "FI"},
		{Name: "Demo Market", LegalName: "Demo Market Oy", Kind: "brand", Country: "FI", BrandID: d.Brands[0].ID},
		{Name: "Demo Style", LegalName: "Demo Style Oy", Kind: "brand", Country: "FI", BrandID: d.Brands[1].ID},
	} {
		r.TenantID = t.ID
		nr, err := s.CreateRecipient(ctx, r, actor)
		if err != nil {
			return nil, err
		}
		d.Recipients[nr.LegalName] = nr
	}
	for _, dp := range demoPurposes {
		var rids []string
		for _, name := range dp.recipients {
			rids = append(rids, d.Recipients[name].ID)
		}
		p, err := s.CreatePurpose(ctx, Purpose{TenantID: t.ID, Key: dp.key, Level: dp.level, LegalBasis: dp.basis,
			DPVPurpose: dp.dpv, GPCOptOut: dp.gpc, RecipientIDs: rids, ReaskMonths: 12}, actor)
		if err != nil {
			return nil, fmt.Errorf("demo purpose %s: %w", dp.key, err)
		}
		texts := dp.text.texts()
		for lang, tx := range texts {
			tx.PolicyURL = t.PrivacyPolicyURL
			texts[lang] = tx
		}
		if _, err := s.CreateVersion(ctx, t.ID, p.ID, VersionInput{Texts: texts,
			Details: &VersionDetails{DataCategories: dp.data, Retention: dp.retention}}, actor); err != nil {
			return nil, err
		}
		if _, err := s.PublishVersion(ctx, t.ID, p.ID, 1, actor); err != nil {
			return nil, err
		}
		if p, err = s.Purpose(ctx, t.ID, p.ID); err != nil {
			return nil, err
		}
		d.Purposes[p.Key] = p
	}
	if err := s.seedDemoBanner(ctx, d); err != nil {
		return nil, err
	}
	return d, nil
}

// demoInventory lists what the demo shop's device-level purposes store; the demo page's
// sample scripts set these cookies, so withdrawing shows them deleted.
var demoInventory = map[string]Inventory{
	"necessary": {Vendors: []Vendor{}, Storage: []StorageItem{
		{Name: DefaultCookieName, Kind: StorageCookie, MaxAgeDays: 365},
		{Name: "lupa_queue", Kind: StorageLocalStorage},
		{Name: "basket", Kind: StorageLocalStorage, MaxAgeDays: 30},
	}},
	"analytics": {Vendors: []Vendor{{Name: "Demo Analytics", LegalName: "Demo Analytics Oy", Country: "FI",
		PrivacyPolicyURL: "https://demo-analytics.example/privacy"}},
		Storage: []StorageItem{{Name: "_demo_analytics", Kind: StorageCookie, MaxAgeDays: 395}}},
	"social_advertising": {Vendors: []Vendor{{Name: "Meta", LegalName: "Meta Platforms Ireland Ltd", Country: "IE",
		PrivacyPolicyURL: "https://www.facebook.com/privacy/policy/"}},
		Storage: []StorageItem{{Name: "_fbp", Kind: StorageCookie, MaxAgeDays: 90}, {Name: "tr", Kind: StoragePixel}}},
}

func (s *Service) seedDemoBanner(ctx context.Context, d *Demo) error {
	actor := identity.ActorSystem
	for key, inv := range demoInventory {
		if _, err := s.PutInventory(ctx, d.Tenant.ID, key, inv, actor); err != nil {
			return fmt.Errorf("demo inventory %s: %w", key, err)
		}
	}
	b := DefaultBannerSettings(d.Tenant.ID, d.WebShop.ID)
	b.ConsentMode = map[string][]string{
		"necessary":          {CMFunctionalityStorage, CMSecurityStorage},
		"analytics":          {CMAnalyticsStorage},
		"social_advertising": {CMAdStorage, CMAdUserData, CMAdPersonalization},
	}
	_, err := s.PutBannerSettings(ctx, *b, actor)
	return err
}
