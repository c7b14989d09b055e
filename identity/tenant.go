package identity

import (
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Tenant is an organisation using Lupa: the controller named to people in banners and
// receipts. A group of brands that are separate legal entities is one tenant with brands.
type Tenant struct {
	ID               string `json:"id"`
	Slug             string `json:"slug"`
	Name             string `json:"name"`
	LegalName        string `json:"legal_name"`
	BusinessID       string `json:"business_id"`
	ContactEmail     string `json:"contact_email"`
	Phone            string `json:"phone"`
	Address          string `json:"address"`
	Website          string `json:"website"`
	PrivacyPolicyURL string `json:"privacy_policy_url"`
	Jurisdiction     string `json:"jurisdiction"` // ISO 3166-1 alpha-2, e.g. FI
	DefaultLanguage  string `json:"default_language"`
	// EvidenceYears is how long consent evidence outlives the consent itself (default 3,
	// the general limitation period of the Finnish Act 728/2003).
	EvidenceYears int `json:"evidence_years"`
	// KeepClientContext turns on keeping a truncated IP address and the user agent beside
	// each interaction, for at most 90 days. Off by default.
	KeepClientContext bool `json:"keep_client_context"`
	// AgeOfConsent turns the minimum age rule on (0 is off): registration asks the year of
	// birth, and below this age (the age of digital consent: 13 in Finland) no consent-based
	// purpose is accepted.
	AgeOfConsent int `json:"age_of_consent"`
	// MarketingAge is the age below which marketing purposes are not offered (with the rule on).
	MarketingAge int       `json:"marketing_age"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// Brand is a brand of the tenant, with its own legal entity.
type Brand struct {
	TenantID     string    `json:"tenant_id"`
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	LegalName    string    `json:"legal_name"`
	BusinessID   string    `json:"business_id"`
	ContactEmail string    `json:"contact_email"`
	Address      string    `json:"address"`
	Website      string    `json:"website"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// Property kinds: each is a channel through which consent is collected.
const (
	PropertyWeb        = "web"
	PropertyApp        = "app"
	PropertyStore      = "store"
	PropertyCallCentre = "call_centre"
	PropertyKiosk      = "kiosk"
)

// PropertyKinds lists the property kinds.
var PropertyKinds = []string{PropertyWeb, PropertyApp, PropertyStore, PropertyCallCentre, PropertyKiosk}

// Property is one place where people meet the tenant: a web site, an app, a store, a call
// centre or a kiosk. Widgets and apps name it by its public key.
type Property struct {
	TenantID        string    `json:"tenant_id"`
	ID              string    `json:"id"`
	BrandID         string    `json:"brand_id"`
	Name            string    `json:"name"`
	Kind            string    `json:"kind"`
	PublicKey       string    `json:"public_key"`
	AllowedOrigins  []string  `json:"allowed_origins"`
	DefaultLanguage string    `json:"default_language"`
	Status          string    `json:"status"` // active or archived
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// Channel is the consent channel of the property: its kind.
func (p *Property) Channel() string { return p.Kind }

// AllowsOrigin reports whether a browser origin may use this property.
func (p *Property) AllowsOrigin(origin string) bool {
	return slices.Contains(p.AllowedOrigins, strings.ToLower(origin))
}

// Languages Lupa ships interface strings for; tenants' own texts may add more.
var Languages = []string{"fi", "sv", "en"}

var (
	langRe         = regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$`)
	jurisdictionRe = regexp.MustCompile(`^[A-Z]{2}$`)
	slugRe         = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
)

// ValidLanguage reports whether s looks like a BCP 47 language tag Lupa accepts (fi, sv, en, se-FI …).
func ValidLanguage(s string) bool { return langRe.MatchString(s) }

func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && len(s) <= 254
}

// ValidHTTPURL reports whether s is an absolute http(s) URL.
func ValidHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && len(s) <= 2048
}

func validLen(s string, min, max int) bool {
	n := len([]rune(strings.TrimSpace(s)))
	return n >= min && n <= max
}

// Validate checks the tenant's invariants. Each rule reads one field, so that the fields a
// patch sends can be checked without the stored tenant (identityweb's DomainCheck).
func (t *Tenant) Validate() error {
	var v Validator
	v.Check(slugRe.MatchString(t.Slug), "slug", "must be 1–63 lower-case letters, digits or hyphens")
	v.Check(validLen(t.Name, 1, 200), "name", "is required (at most 200 characters)")
	v.Check(validLen(t.LegalName, 1, 200), "legal_name", "is required (at most 200 characters)")
	v.Check(t.ContactEmail == "" || validEmail(t.ContactEmail), "contact_email", "must be an email address")
	v.Check(validLen(t.BusinessID, 0, 50), "business_id", "is at most 50 characters")
	v.Check(validLen(t.Phone, 0, 50), "phone", "is at most 50 characters")
	v.Check(validLen(t.Address, 0, 500), "address", "is at most 500 characters")
	v.Check(t.Website == "" || ValidHTTPURL(t.Website), "website", "must be an http(s) URL")
	v.Check(t.PrivacyPolicyURL == "" || ValidHTTPURL(t.PrivacyPolicyURL), "privacy_policy_url", "must be an http(s) URL")
	v.Check(jurisdictionRe.MatchString(t.Jurisdiction), "jurisdiction", "must be an ISO 3166-1 alpha-2 country code such as FI")
	v.Check(ValidLanguage(t.DefaultLanguage), "default_language", "must be a language tag such as fi")
	v.Check(t.EvidenceYears >= 1 && t.EvidenceYears <= 30, "evidence_years", "must be between 1 and 30")
	v.Check(t.AgeOfConsent == 0 || (t.AgeOfConsent >= 13 && t.AgeOfConsent <= 16), "age_of_consent",
		"0 (off) or the age of digital consent, 13 to 16 (GDPR Art. 8)")
	v.Check(t.MarketingAge >= 0 && t.MarketingAge <= 18, "marketing_age", "must be between 0 and 18")
	return v.Err()
}

// Validate checks the brand's invariants. Each rule reads one field, as the tenant's do.
func (b *Brand) Validate() error {
	var v Validator
	v.Check(validLen(b.Name, 1, 200), "name", "is required (at most 200 characters)")
	v.Check(validLen(b.LegalName, 1, 200), "legal_name", "is required (at most 200 characters)")
	v.Check(validLen(b.BusinessID, 0, 50), "business_id", "is at most 50 characters")
	v.Check(b.ContactEmail == "" || validEmail(b.ContactEmail), "contact_email", "must be an email address")
	v.Check(validLen(b.Address, 0, 500), "address", "is at most 500 characters")
	v.Check(b.Website == "" || ValidHTTPURL(b.Website), "website", "must be an http(s) URL")
	return v.Err()
}

// NormalizeOrigin returns the canonical form of a browser origin (scheme://host[:port],
// lower-case, no default port) or "" when s is not an origin.
func NormalizeOrigin(s string) string {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return ""
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	if u.Scheme == "http" && host != "localhost" && host != "127.0.0.1" && host != "[::1]" && host != "::1" {
		return "" // plain http only for local development
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		return u.Scheme + "://" + host + ":" + port
	}
	return u.Scheme + "://" + host
}

// Property statuses.
const (
	PropertyActive   = "active"
	PropertyArchived = "archived"
)

// Validate checks the property's invariants. Each rule reads one field, but the kind's rule
// of the origins, which waits for a valid kind: so the fields a patch sends (never the
// kind) can be checked without the stored property (identityweb's DomainCheck).
func (p *Property) Validate() error {
	var v Validator
	v.Check(validLen(p.Name, 1, 200), "name", "is required (at most 200 characters)")
	v.Check(slices.Contains(PropertyKinds, p.Kind), "kind", "must be one of web, app, store, call_centre, kiosk")
	v.Check(p.BrandID != "", "brand_id", "is required")
	v.Check(ValidLanguage(p.DefaultLanguage), "default_language", "must be a language tag such as fi")
	v.Check(len(p.AllowedOrigins) <= 50, "allowed_origins", "at most 50 origins")
	for _, o := range p.AllowedOrigins {
		if NormalizeOrigin(o) != o {
			v.Check(false, "allowed_origins", "each must be an origin such as https://shop.example (https, no path); http only for localhost")
			break
		}
	}
	switch {
	case p.Kind == PropertyWeb:
		v.Check(len(p.AllowedOrigins) > 0, "allowed_origins", "a web property needs at least one allowed origin")
	case slices.Contains(PropertyKinds, p.Kind):
		v.Check(len(p.AllowedOrigins) == 0, "allowed_origins", "only web properties have origins")
	}
	v.Check(p.Status == PropertyActive || p.Status == PropertyArchived, "status", "must be active or archived")
	return v.Err()
}
