package consent

import (
	"errors"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lupa-cmp/lupa/identity"
)

// Banner positions and positions of the persistent "privacy settings" control.
const (
	PositionBar    = "bar"    // a bar at the bottom of the page
	PositionDialog = "dialog" // a centred dialog

	ControlLeft   = "left"
	ControlRight  = "right"
	ControlHidden = "hidden" // the site opens the settings from its own link with lupa.open()
)

// Google Consent Mode v2 types.
const (
	CMAdStorage              = "ad_storage"
	CMAdUserData             = "ad_user_data"
	CMAdPersonalization      = "ad_personalization"
	CMAnalyticsStorage       = "analytics_storage"
	CMFunctionalityStorage   = "functionality_storage"
	CMPersonalizationStorage = "personalization_storage"
	CMSecurityStorage        = "security_storage"
)

// ConsentModeTypes are the types a purpose may be mapped to.
var ConsentModeTypes = []string{CMAdStorage, CMAdUserData, CMAdPersonalization, CMAnalyticsStorage,
	CMFunctionalityStorage, CMPersonalizationStorage, CMSecurityStorage}

// necessaryConsentModeTypes are the only types strictly necessary storage may stand for:
// advertising, analytics and personalisation are never strictly necessary.
var necessaryConsentModeTypes = []string{CMFunctionalityStorage, CMSecurityStorage}

// DefaultLanguages are the interface languages the widget ships with.
var DefaultLanguages = []string{"fi", "sv", "en"}

// DefaultCookieName is the first-party cookie that holds a browser's decisions.
const DefaultCookieName = "lupa_consent"

// BannerSettings are how a property's banner looks and behaves. Texts of purposes live in
// their versions; these are the tenant's choices around them.
type BannerSettings struct {
	TenantID   string `json:"-"`
	PropertyID string `json:"property_id"`
	Position   string `json:"position"`
	Control    string `json:"control"`
	// Theme sets CSS custom properties of the banner (--lupa-bg, --lupa-fg, --lupa-accent,
	// --lupa-radius, --lupa-font …).
	Theme            map[string]string `json:"theme"`
	LogoURL          string            `json:"logo_url"`
	PrivacyPolicyURL string            `json:"privacy_policy_url"`
	Languages        []string          `json:"languages"`
	// Purposes restricts and orders the device-level purposes the banner asks; empty means
	// every published device-level purpose in the property's scope.
	Purposes []string `json:"purposes"`
	// ConsentMode maps purpose keys to Google Consent Mode types.
	ConsentMode  map[string][]string `json:"consent_mode"`
	CookieName   string              `json:"cookie_name"`
	CookieDomain string              `json:"cookie_domain"`
	CookieDays   int                 `json:"cookie_days"`
	// Strings are the tenant's interface strings per language: overrides of the widget's
	// own, or whole sets for languages beyond Finnish, Swedish and English.
	Strings   map[string]map[string]string `json:"strings"`
	UpdatedAt *time.Time                   `json:"updated_at,omitempty"`
}

// DefaultBannerSettings are a property's settings until the tenant changes them.
func DefaultBannerSettings(tenantID, propertyID string) *BannerSettings {
	return &BannerSettings{TenantID: tenantID, PropertyID: propertyID, Position: PositionBar, Control: ControlLeft,
		Theme: map[string]string{}, Languages: slices.Clone(DefaultLanguages), Purposes: []string{},
		ConsentMode: map[string][]string{}, CookieName: DefaultCookieName, CookieDays: 365,
		Strings: map[string]map[string]string{}}
}

var (
	themeKeyRe     = regexp.MustCompile(`^--lupa-[a-z0-9-]{1,30}$`)
	themeValueRe   = regexp.MustCompile(`^[#%(),./0-9A-Za-z \-'"]{1,100}$`)
	cookieNameRe   = regexp.MustCompile(`^[A-Za-z0-9_\-]{1,64}$`)
	cookieDomainRe = regexp.MustCompile(`^\.?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)
	stringKeyRe    = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)
)

// Validate checks the settings' own invariants; the purposes they name are checked against
// the catalog by checkAgainst.
func (b *BannerSettings) Validate() error {
	var v identity.Validator
	v.Check(b.Position == PositionBar || b.Position == PositionDialog, "position", "must be bar or dialog")
	v.Check(slices.Contains([]string{ControlLeft, ControlRight, ControlHidden}, b.Control), "control", "must be left, right or hidden")
	v.Check(len(b.Theme) <= 30, "theme", "at most 30 custom properties")
	for _, k := range sortedKeys(b.Theme) {
		val := b.Theme[k]
		v.Check(themeKeyRe.MatchString(k), "theme."+k, "must be a CSS custom property named --lupa-…")
		v.Check(themeValueRe.MatchString(val) && !strings.Contains(strings.ToLower(val), "url("), "theme."+k,
			"must be a plain CSS value (colour, length, font names): at most 100 characters, no url()")
	}
	v.Check(b.LogoURL == "" || identity.ValidHTTPURL(b.LogoURL), "logo_url", "must be an http(s) URL")
	v.Check(b.PrivacyPolicyURL == "" || identity.ValidHTTPURL(b.PrivacyPolicyURL), "privacy_policy_url", "must be an http(s) URL")
	v.Check(len(b.Languages) >= 1 && len(b.Languages) <= 30, "languages", "between 1 and 30 languages")
	for i, l := range b.Languages {
		v.Check(identity.ValidLanguage(l), "languages["+strconv.Itoa(i)+"]", "must be a language tag such as fi")
		v.Check(!slices.Contains(b.Languages[:i], l), "languages["+strconv.Itoa(i)+"]", "is listed twice")
	}
	v.Check(len(b.Purposes) <= 50, "purposes", "at most 50 purposes")
	for i, p := range b.Purposes {
		v.Check(!slices.Contains(b.Purposes[:i], p), "purposes["+strconv.Itoa(i)+"]", "is listed twice")
	}
	v.Check(len(b.ConsentMode) <= 50, "consent_mode", "at most 50 purposes")
	for _, k := range sortedKeys(b.ConsentMode) {
		types := b.ConsentMode[k]
		v.Check(len(types) >= 1 && len(types) <= len(ConsentModeTypes), "consent_mode."+k, "maps a purpose to one or more Consent Mode types")
		for i, t := range types {
			v.Check(slices.Contains(ConsentModeTypes, t), "consent_mode."+k+"["+strconv.Itoa(i)+"]",
				"must be one of "+strings.Join(ConsentModeTypes, ", "))
		}
	}
	v.Check(cookieNameRe.MatchString(b.CookieName), "cookie_name", "must be 1–64 letters, digits, _ or -")
	v.Check(b.CookieDomain == "" || cookieDomainRe.MatchString(b.CookieDomain), "cookie_domain",
		"must be a lower-case domain such as .shop.example, or empty for the page's own host")
	v.Check(b.CookieDays >= 1 && b.CookieDays <= 395, "cookie_days", "must be between 1 and 395 (13 months)")
	v.Check(len(b.Strings) <= 30, "strings", "at most 30 languages")
	for _, lang := range sortedKeys(b.Strings) {
		set := b.Strings[lang]
		f := "strings." + lang
		v.Check(identity.ValidLanguage(lang), f, "must be keyed by a language tag such as de")
		v.Check(len(set) <= 100, f, "at most 100 strings")
		for _, k := range sortedKeys(set) {
			v.Check(stringKeyRe.MatchString(k), f+"."+k, "must be a lower-case key such as accept_all")
			v.Check(strings.TrimSpace(set[k]) != "" && len([]rune(set[k])) <= 1000, f+"."+k, "must be 1–1000 characters")
		}
	}
	return v.Err()
}

// checkAgainst checks the purposes the settings name against the tenant's purposes.
func (b *BannerSettings) checkAgainst(purposes map[string]*Purpose) error {
	var v identity.Validator
	for i, key := range b.Purposes {
		p, ok := purposes[key]
		f := "purposes[" + strconv.Itoa(i) + "]"
		v.Check(ok, f, "unknown purpose "+strconv.Quote(key))
		if ok {
			for _, why := range askProblems(p) {
				v.Check(false, f, why)
			}
		}
	}
	for _, key := range sortedKeys(b.ConsentMode) {
		p, ok := purposes[key]
		f := "consent_mode." + key
		v.Check(ok, f, "unknown purpose "+strconv.Quote(key))
		if !ok {
			continue
		}
		for _, why := range consentModeProblems(p, b.ConsentMode[key]) {
			v.Check(false, f, why)
		}
	}
	return unprocessable(v.Err())
}

// consentModeAllowed reports whether a purpose of this legal basis may stand for Consent
// Mode type t: strictly necessary storage is granted without asking, so it may stand only
// for functionality and security, and security only for it.
func consentModeAllowed(basis, t string) bool {
	if basis == BasisNecessary {
		return slices.Contains(necessaryConsentModeTypes, t)
	}
	return t != CMSecurityStorage
}

// consentModeOf is the Consent Mode types purpose p stands for on banner b: its mapping
// without the types its legal basis may not stand for. Saving settings and changing a
// purpose refuse such a mapping; this keeps one stored by older versions from ever being
// served, where a necessary purpose's types are granted to everyone.
func consentModeOf(b *BannerSettings, p *Purpose) []string {
	out := []string{}
	for _, t := range b.ConsentMode[p.Key] {
		if consentModeAllowed(p.LegalBasis, t) {
			out = append(out, t)
		}
	}
	return out
}

// unprocessable turns a validation error about references into a 422: the request was
// well formed, but names things that cannot be used this way.
func unprocessable(err error) error {
	var ie *identity.Error
	if errors.As(err, &ie) {
		ie.Code = identity.EUnprocessable
	}
	return err
}

// normalize fills defaults and sorts what has no order of its own, so equal settings
// serialise equally.
func (b *BannerSettings) normalize() {
	d := DefaultBannerSettings(b.TenantID, b.PropertyID)
	if b.Position == "" {
		b.Position = d.Position
	}
	if b.Control == "" {
		b.Control = d.Control
	}
	if b.Theme == nil {
		b.Theme = d.Theme
	}
	if len(b.Languages) == 0 {
		b.Languages = d.Languages
	}
	if b.Purposes == nil {
		b.Purposes = []string{}
	}
	if b.ConsentMode == nil {
		b.ConsentMode = d.ConsentMode
	}
	for k, types := range b.ConsentMode {
		b.ConsentMode[k] = uniq(types)
	}
	if b.CookieName == "" {
		b.CookieName = d.CookieName
	}
	if b.CookieDays == 0 {
		b.CookieDays = d.CookieDays
	}
	if b.Strings == nil {
		b.Strings = d.Strings
	}
	b.CookieDomain = strings.ToLower(b.CookieDomain)
}

// Storage item kinds.
const (
	StorageCookie         = "cookie"
	StorageLocalStorage   = "local_storage"
	StorageSessionStorage = "session_storage"
	StoragePixel          = "pixel"
)

// Inventory is what a purpose puts on people's devices and who receives it: listed in the
// banner's second layer so people know what they decide about.
type Inventory struct {
	PurposeKey string        `json:"purpose"`
	Vendors    []Vendor      `json:"vendors"`
	Storage    []StorageItem `json:"storage"`
	UpdatedAt  *time.Time    `json:"updated_at,omitempty"`
}

// Vendor is a company whose code or pixel runs for a purpose.
type Vendor struct {
	Name             string `json:"name"`
	LegalName        string `json:"legal_name"`
	Country          string `json:"country,omitempty"`
	PrivacyPolicyURL string `json:"privacy_policy_url"`
}

// StorageItem is one cookie, storage key or pixel. MaxAgeDays 0 means it lasts the
// browser session.
type StorageItem struct {
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	MaxAgeDays int    `json:"max_age_days"`
	Domain     string `json:"domain,omitempty"`
}

var storageNameRe = regexp.MustCompile(`^[!#$%&'*+\-.^_` + "`" + `|~0-9A-Za-z]{1,200}$`)

// Validate checks the inventory.
func (inv *Inventory) Validate() error {
	var v identity.Validator
	v.Check(len(inv.Vendors) <= 100, "vendors", "at most 100 vendors")
	v.Check(len(inv.Storage) <= 200, "storage", "at most 200 storage items")
	for i, vd := range inv.Vendors {
		f := "vendors[" + strconv.Itoa(i) + "]"
		v.Check(strings.TrimSpace(vd.Name) != "" && len(vd.Name) <= 200, f+".name", "is required (at most 200 characters)")
		v.Check(strings.TrimSpace(vd.LegalName) != "" && len(vd.LegalName) <= 200, f+".legal_name", "is required (at most 200 characters)")
		v.Check(vd.Country == "" || countryRe.MatchString(vd.Country), f+".country", "must be an ISO 3166-1 alpha-2 code such as IE")
		v.Check(identity.ValidHTTPURL(vd.PrivacyPolicyURL), f+".privacy_policy_url", "is required: an http(s) URL")
	}
	for i, s := range inv.Storage {
		f := "storage[" + strconv.Itoa(i) + "]"
		// Cookie names are RFC 6265 tokens; the widget deletes them by name on withdrawal.
		v.Check(storageNameRe.MatchString(s.Name), f+".name", "must be 1–200 characters without spaces, quotes, ;, = or ,")
		v.Check(slices.Contains([]string{StorageCookie, StorageLocalStorage, StorageSessionStorage, StoragePixel}, s.Kind),
			f+".kind", "must be cookie, local_storage, session_storage or pixel")
		v.Check(s.MaxAgeDays >= 0 && s.MaxAgeDays <= 3650, f+".max_age_days", "must be between 0 (the browser session) and 3650")
		v.Check(s.Domain == "" || cookieDomainRe.MatchString(strings.ToLower(s.Domain)), f+".domain", "must be a domain such as .shop.example")
	}
	return v.Err()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
