package consent

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/lupa-cmp/lupa/identity"
)

// BannerConfig is what the banner of one property needs, in one language, for one widget
// build: the exact bytes served, and the hashes that make them evidence.
type BannerConfig struct {
	Body []byte
	// ConfigHash is the SHA-256 of the tenant content (the served document without its two
	// hashes), kept in shown_configs.
	ConfigHash string
	// UIHash names exactly what a visitor saw: this configuration, the widget build (its
	// interface strings included) and the interface language. Every decision carries it.
	UIHash   string
	Language string
	content  []byte // Body without its hashes: what shown_configs keeps
}

// ETag is the entity tag of the served document.
func (b *BannerConfig) ETag() string { return `"` + b.UIHash + `"` }

type configDoc struct {
	Property   string            `json:"property"`
	Language   string            `json:"language"`
	Languages  []string          `json:"languages"`
	Controller controllerDoc     `json:"controller"`
	Settings   settingsDoc       `json:"settings"`
	Strings    map[string]string `json:"strings"`
	Purposes   []purposeDoc      `json:"purposes"`
	Necessary  []purposeDoc      `json:"necessary"`
	// PersonPurposes are asked only of a signed-in person (lupa.identify with the site's
	// customer token): never of an anonymous device.
	PersonPurposes []purposeDoc `json:"person_purposes"`
}

type controllerDoc struct {
	Name             string `json:"name"`
	ContactEmail     string `json:"contact_email"`
	Phone            string `json:"phone"`
	Address          string `json:"address"`
	PrivacyPolicyURL string `json:"privacy_policy_url"`
}

type settingsDoc struct {
	Position         string            `json:"position"`
	Control          string            `json:"control"`
	Theme            map[string]string `json:"theme"`
	LogoURL          string            `json:"logo_url"`
	PrivacyPolicyURL string            `json:"privacy_policy_url"`
	CookieName       string            `json:"cookie_name"`
	CookieDomain     string            `json:"cookie_domain"`
	CookieDays       int               `json:"cookie_days"`
}

type purposeDoc struct {
	Key             string `json:"key"`
	Version         int    `json:"version,omitempty"`
	MaterialVersion int    `json:"material_version,omitempty"`
	TextHash        string `json:"text_hash,omitempty"`
	LegalBasis      string `json:"legal_basis,omitempty"`
	GPCOptOut       bool   `json:"gpc_opt_out"`
	ReaskMonths     int    `json:"reask_months,omitempty"`
	Title           string `json:"title"`
	Description     string `json:"description"`
	// Lang is the language of Title and Description when the one asked for has no text.
	Lang        string       `json:"lang,omitempty"`
	PolicyURL   string       `json:"policy_url"`
	ConsentMode []string     `json:"consent_mode"`
	Vendors     []Vendor     `json:"vendors"`
	Storage     []storageDoc `json:"storage"`
}

type storageDoc struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Duration string `json:"duration"`
	Domain   string `json:"domain,omitempty"`
}

// configCache keeps built configurations in memory. An entry is good while the catalog
// and the property it was built from are the current ones: a change on this instance
// replaces the catalog at once, on other instances within catalogTTL.
type configCache struct {
	mu      sync.Mutex
	entries map[configKey]*configEntry
	shown   map[string]bool      // tenant + ui hash already kept in shown_interfaces
	builds  map[string]bool      // widget builds known to exist
	unknown map[string]time.Time // builds found missing, and when: asked again after a while
	current string               // the build this binary serves
}

type configKey struct{ property, lang, build string }

type configEntry struct {
	catalog  *Catalog
	property *identity.Property
	config   *BannerConfig
}

// maxConfigEntries bounds the cache: language and build come from the query string.
const maxConfigEntries = 10_000

var buildRe = regexp.MustCompile(`^[0-9a-f]{16}$`)

// BannerConfig returns the banner configuration of a property, served from memory.
// build names the widget build asking ("" for the one this binary serves).
func (s *Service) BannerConfig(ctx context.Context, p *identity.Property, lang, build string) (*BannerConfig, error) {
	if lang != "" && !identity.ValidLanguage(strings.ToLower(lang)) {
		return nil, identity.FieldErrors("validation failed", identity.FieldError{Field: "lang", Message: "must be a language tag such as fi"})
	}
	c, err := s.Catalog(ctx, p.TenantID)
	if err != nil {
		return nil, err
	}
	settings := c.Banners[p.ID]
	if settings == nil {
		settings = DefaultBannerSettings(p.TenantID, p.ID)
	}
	lang = chooseLanguage(settings.Languages, strings.ToLower(lang), p.DefaultLanguage)
	s.configs.mu.Lock()
	if build == "" {
		build = s.configs.current
	}
	key := configKey{p.ID, lang, build}
	e := s.configs.entries[key]
	s.configs.mu.Unlock()
	if e != nil && e.catalog == c && e.property == p {
		return e.config, nil
	}
	if err := s.checkBuild(ctx, build); err != nil {
		return nil, err
	}
	cfg, err := buildConfig(c, p, settings, lang, build)
	if err != nil {
		return nil, err
	}
	if err := s.keepShown(ctx, p, cfg, build); err != nil {
		return nil, err
	}
	s.configs.mu.Lock()
	if len(s.configs.entries) >= maxConfigEntries {
		clear(s.configs.entries)
	}
	s.configs.entries[key] = &configEntry{catalog: c, property: p, config: cfg}
	s.configs.mu.Unlock()
	return cfg, nil
}

// chooseLanguage picks the interface language: the one asked for when the banner offers
// it (or its primary subtag), else the property's default, else English, else the first.
func chooseLanguage(offered []string, asked, propertyDefault string) string {
	primary, _, _ := strings.Cut(asked, "-")
	for _, l := range []string{asked, primary, propertyDefault, "en"} {
		if l != "" && slices.Contains(offered, l) {
			return l
		}
	}
	return offered[0]
}

func buildConfig(c *Catalog, p *identity.Property, b *BannerSettings, lang, build string) (*BannerConfig, error) {
	t := c.Tenant
	policy := b.PrivacyPolicyURL
	if policy == "" {
		policy = t.PrivacyPolicyURL
	}
	strs := b.Strings[lang]
	if strs == nil {
		strs = map[string]string{}
	}
	doc := configDoc{Property: p.PublicKey, Language: lang, Languages: b.Languages,
		Controller: controllerDoc{Name: t.LegalName, ContactEmail: t.ContactEmail, Phone: t.Phone, Address: t.Address,
			PrivacyPolicyURL: t.PrivacyPolicyURL},
		Settings: settingsDoc{Position: b.Position, Control: b.Control, Theme: b.Theme, LogoURL: b.LogoURL,
			PrivacyPolicyURL: policy, CookieName: b.CookieName, CookieDomain: b.CookieDomain, CookieDays: b.CookieDays},
		Strings: strs, Purposes: []purposeDoc{}, Necessary: []purposeDoc{}, PersonPurposes: []purposeDoc{}}
	for _, cp := range askedOnBanner(c, p, b) {
		doc.Purposes = append(doc.Purposes, purposeEntry(cp, b, lang, p.DefaultLanguage, true))
	}
	for _, cp := range c.Asked(p, LevelPerson) {
		doc.PersonPurposes = append(doc.PersonPurposes, purposeEntry(cp, b, lang, p.DefaultLanguage, true))
	}
	for _, cp := range c.Purposes {
		if cp.LegalBasis == BasisNecessary && cp.Latest != nil && cp.InScope(p.ID, p.BrandID) {
			doc.Necessary = append(doc.Necessary, purposeEntry(cp, b, lang, p.DefaultLanguage, false))
		}
	}
	body, err := json.Marshal(&doc)
	if err != nil {
		return nil, err
	}
	cfg := &BannerConfig{ConfigHash: sha256Hex(body), Language: lang, content: body}
	cfg.UIHash = UIHash(cfg.ConfigHash, build, lang)
	// The served document is the stored one with its two hashes in front.
	served := make([]byte, 0, len(body)+160)
	served = append(served, `{"config_hash":"`+cfg.ConfigHash+`","ui_hash":"`+cfg.UIHash+`",`...)
	cfg.Body = append(served, body[1:]...)
	return cfg, nil
}

// UIHash is the hash of what a visitor saw: a configuration, a widget build and an
// interface language.
func UIHash(configHash, build, lang string) string {
	return sha256Hex(Canonical(Obj{"config": configHash, "widget_build": build, "language": lang}))
}

// askedOnBanner returns the device-level purposes the banner asks, in the settings' order
// when the settings name them.
func askedOnBanner(c *Catalog, p *identity.Property, b *BannerSettings) []*CatalogPurpose {
	asked := c.Asked(p, LevelDevice)
	if len(b.Purposes) == 0 {
		return asked
	}
	out := make([]*CatalogPurpose, 0, len(b.Purposes))
	for _, key := range b.Purposes {
		if i := slices.IndexFunc(asked, func(cp *CatalogPurpose) bool { return cp.Key == key }); i >= 0 {
			out = append(out, asked[i])
		}
	}
	return out
}

func purposeEntry(cp *CatalogPurpose, b *BannerSettings, lang, fallback string, asked bool) purposeDoc {
	text, textLang := cp.Latest.TextFor(lang, fallback)
	d := purposeDoc{Key: cp.Key, Title: text.Title, Description: text.Description, PolicyURL: text.PolicyURL,
		ConsentMode: consentModeOf(b, cp.Purpose), Vendors: cp.Inventory.Vendors, Storage: []storageDoc{}}
	if textLang != lang {
		d.Lang = textLang // so that a screen reader reads it in its own language
	}
	for _, it := range cp.Inventory.Storage {
		d.Storage = append(d.Storage, storageDoc{Name: it.Name, Kind: it.Kind, Duration: duration(it, lang), Domain: it.Domain})
	}
	if asked {
		d.Version, d.TextHash = cp.Latest.Number, cp.Latest.TextHashes[textLang]
		d.LegalBasis, d.GPCOptOut = cp.LegalBasis, cp.GPCOptOut
		if cp.LegalBasis == BasisConsent {
			// What the server does (nextState, Effective): a consent's decisions expire after
			// the purpose's own re-ask interval and a material version outdates its grants. An
			// objection to a legitimate interest stands until the person changes it, so the
			// widget gets nothing that would make it ask again.
			d.MaterialVersion, d.ReaskMonths = cp.MaterialVersion, cp.ReaskMonths
		}
	}
	return d
}

// duration says how long a storage item lasts, in the interface language (English for
// languages Lupa has no words for).
func duration(it StorageItem, lang string) string {
	words := map[string][7]string{
		"fi": {"istunto", "päivä", "päivää", "kuukausi", "kuukautta", "vuosi", "vuotta"},
		"sv": {"session", "dag", "dagar", "månad", "månader", "år", "år"},
		"en": {"session", "day", "days", "month", "months", "year", "years"},
	}
	w, ok := words[lang]
	if !ok {
		w = words["en"]
	}
	if it.Kind == StoragePixel && it.MaxAgeDays == 0 {
		return "–"
	}
	n, one, many := it.MaxAgeDays, w[1], w[2]
	switch {
	case n == 0:
		return w[0]
	case n >= 365 && n%365 == 0, n >= 730:
		n, one, many = (n+182)/365, w[5], w[6]
	case n >= 60:
		n, one, many = (n+15)/30, w[3], w[4]
	}
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

type shownConfigRow struct {
	TenantID   string `gorm:"primaryKey"`
	Hash       string `gorm:"primaryKey"`
	PropertyID string
	Body       string
	FirstShown int64
}

func (shownConfigRow) TableName() string { return "shown_configs" }

type shownInterfaceRow struct {
	TenantID    string `gorm:"primaryKey"`
	UIHash      string `gorm:"primaryKey;column:ui_hash"`
	ConfigHash  string
	WidgetBuild string
	Language    string
	FirstShown  int64
}

func (shownInterfaceRow) TableName() string { return "shown_interfaces" }

type widgetBuildRow struct {
	Build     string `gorm:"primaryKey"`
	Files     string
	CreatedAt int64 `gorm:"autoCreateTime:false"`
}

func (widgetBuildRow) TableName() string { return "widget_builds" }

// keepShown stores a configuration and the interface it makes the first time this
// instance serves it; the rows are kept for good as evidence.
func (s *Service) keepShown(ctx context.Context, p *identity.Property, cfg *BannerConfig, build string) error {
	mark := p.TenantID + "/" + cfg.UIHash
	s.configs.mu.Lock()
	done := s.configs.shown[mark]
	s.configs.mu.Unlock()
	if done {
		return nil
	}
	now := s.now().UnixMilli()
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		nothing := clause.OnConflict{DoNothing: true}
		if err := tx.Clauses(nothing).Create(&shownConfigRow{TenantID: p.TenantID, Hash: cfg.ConfigHash, PropertyID: p.ID,
			Body: string(cfg.content), FirstShown: now}).Error; err != nil {
			return err
		}
		return tx.Clauses(nothing).Create(&shownInterfaceRow{TenantID: p.TenantID, UIHash: cfg.UIHash,
			ConfigHash: cfg.ConfigHash, WidgetBuild: build, Language: cfg.Language, FirstShown: now}).Error
	})
	if err != nil {
		return err
	}
	s.configs.mu.Lock()
	if len(s.configs.shown) >= maxConfigEntries {
		clear(s.configs.shown)
	}
	s.configs.shown[mark] = true
	s.configs.mu.Unlock()
	return nil
}

// RegisterWidgetBuild keeps the files of the widget build this binary serves, so that any
// interface hash made with it can be reproduced after later upgrades, and makes it the
// build a configuration is made for when the widget does not name one.
func (s *Service) RegisterWidgetBuild(ctx context.Context, build string, files map[string]string) error {
	if !buildRe.MatchString(build) {
		return errors.New("consent: a widget build id is 16 lower-case hex digits")
	}
	err := s.db.Write.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).
		Create(&widgetBuildRow{Build: build, Files: toJSON(files), CreatedAt: s.now().UnixMilli()}).Error
	if err != nil {
		return err
	}
	s.configs.mu.Lock()
	s.configs.builds[build] = true
	s.configs.current = build
	s.configs.mu.Unlock()
	return nil
}

// checkBuild refuses widget builds no Lupa ever served: their interface could not be
// reproduced, and made-up ones must not fill the evidence tables.
func (s *Service) checkBuild(ctx context.Context, build string) error {
	bad := identity.FieldErrors("validation failed", identity.FieldError{Field: "build", Message: "is not a widget build this Lupa knows"})
	if !buildRe.MatchString(build) {
		return bad
	}
	now := s.now()
	s.configs.mu.Lock()
	known := s.configs.builds[build]
	missing, wasMissing := s.configs.unknown[build]
	s.configs.mu.Unlock()
	if known {
		return nil
	}
	// Another instance of a newer version registers its build before it serves it, so a
	// build missing a while ago may exist now.
	if wasMissing && now.Sub(missing) < 30*time.Second {
		return bad
	}
	var n int64
	if err := s.db.Read.WithContext(ctx).Model(&widgetBuildRow{}).Where("build = ?", build).Count(&n).Error; err != nil {
		return err
	}
	s.configs.mu.Lock()
	defer s.configs.mu.Unlock()
	if n == 0 {
		if len(s.configs.unknown) >= maxConfigEntries {
			clear(s.configs.unknown)
		}
		s.configs.unknown[build] = now
		return bad
	}
	s.configs.builds[build] = true
	return nil
}

// ShownInterface is the evidence behind a ui_hash: the configuration as served, the widget
// build and the language.
type ShownInterface struct {
	UIHash      string            `json:"ui_hash"`
	ConfigHash  string            `json:"config_hash"`
	WidgetBuild string            `json:"widget_build"`
	Language    string            `json:"language"`
	FirstShown  time.Time         `json:"first_shown"`
	Config      json.RawMessage   `json:"config"`
	WidgetFiles map[string]string `json:"widget_files"` // file name → SHA-256 of its content
}

// Interface returns the evidence behind a ui_hash of the tenant.
func (s *Service) Interface(ctx context.Context, tenantID, uiHash string) (*ShownInterface, error) {
	db := s.db.Read.WithContext(ctx)
	var si shownInterfaceRow
	if err := db.Where("tenant_id = ? AND ui_hash = ?", tenantID, uiHash).Take(&si).Error; err != nil {
		return nil, notFoundOr(err, "interface")
	}
	var sc shownConfigRow
	if err := db.Where("tenant_id = ? AND hash = ?", tenantID, si.ConfigHash).Take(&sc).Error; err != nil {
		return nil, err
	}
	out := &ShownInterface{UIHash: si.UIHash, ConfigHash: si.ConfigHash, WidgetBuild: si.WidgetBuild, Language: si.Language,
		FirstShown: msTime(si.FirstShown), Config: json.RawMessage(sc.Body), WidgetFiles: map[string]string{}}
	wb, err := s.WidgetBuild(ctx, si.WidgetBuild)
	if err != nil {
		return nil, err
	}
	for name, content := range wb.Files {
		out.WidgetFiles[name] = sha256Hex([]byte(content))
	}
	return out, nil
}

// WidgetBuildFiles is one widget build with the content of its files.
type WidgetBuildFiles struct {
	Build     string            `json:"build"`
	CreatedAt time.Time         `json:"created_at"`
	Files     map[string]string `json:"files"`
}

// WidgetBuild returns a widget build's files.
func (s *Service) WidgetBuild(ctx context.Context, build string) (*WidgetBuildFiles, error) {
	var r widgetBuildRow
	if err := s.db.Read.WithContext(ctx).Where("build = ?", build).Take(&r).Error; err != nil {
		return nil, notFoundOr(err, "widget build")
	}
	out := &WidgetBuildFiles{Build: r.Build, CreatedAt: msTime(r.CreatedAt), Files: map[string]string{}}
	_ = json.Unmarshal([]byte(r.Files), &out.Files)
	return out, nil
}
