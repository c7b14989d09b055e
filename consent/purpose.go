package consent

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lupa-cmp/lupa/identity"
)

// Purpose levels.
const (
	// LevelDevice purposes store or read information on the visitor's device (ePrivacy
	// Art. 5(3)): analytics, advertising and personalisation cookies.
	LevelDevice = "device"
	// LevelPerson purposes process data about a known person: marketing email, profiling,
	// sharing with partners or between the group's brands.
	LevelPerson = "person"
)

// Legal bases.
const (
	BasisConsent = "consent"
	// BasisLegitimateInterest purposes need no consent, but the person may object (Art. 21).
	BasisLegitimateInterest = "legitimate_interest"
	// BasisNecessary is strictly necessary storage: listed so people can read about it,
	// never asked, never recorded as a consent.
	BasisNecessary = "necessary"
)

// Version statuses.
const (
	VersionDraft     = "draft"
	VersionPublished = "published"
)

// Purpose is something the tenant does with data or on devices, that people decide about.
type Purpose struct {
	TenantID   string `json:"tenant_id"`
	ID         string `json:"id"`
	Key        string `json:"key"`
	Level      string `json:"level"`
	LegalBasis string `json:"legal_basis"`
	// DPVPurpose is an optional W3C DPV purpose IRI, e.g. https://w3id.org/dpv#DirectMarketing.
	DPVPurpose       string   `json:"dpv_purpose"`
	RecipientIDs     []string `json:"recipient_ids"`
	ReaskMonths      int      `json:"reask_months"`
	ScopeBrandIDs    []string `json:"scope_brand_ids"`
	ScopePropertyIDs []string `json:"scope_property_ids"`
	GPCOptOut        bool     `json:"gpc_opt_out"`
	// DoubleOptIn makes a grant pending until the person confirms it by email (marketing
	// email, where a mistyped or someone else's address must not be subscribed).
	DoubleOptIn     bool `json:"double_opt_in"`
	LatestVersion   int  `json:"latest_version"`
	MaterialVersion int  `json:"material_version"`
	// OutdatedSwept is the material version whose outdated grants the sweep has finished.
	OutdatedSwept int `json:"-"`
	// ReaskApplied is the re-ask interval the stored expires_at of the purpose's states
	// follow; 0 while the sweeper rewrites them after a change (RewriteExpiries).
	ReaskApplied int       `json:"-"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

var purposeKeyRe = regexp.MustCompile(`^[a-z][a-z0-9_]{1,62}$`)

// notNecessaryWords are DPV purposes that strictly necessary storage can never be.
var notNecessaryWords = []string{"advertis", "analytic", "personalis", "personaliz", "marketing", "profiling", "tracking"}

// Validate checks the purpose's invariants. A rule that reads two fields never fails for
// the other one being empty: so the fields a patch sends can be checked on an empty
// purpose, without the stored one (consentweb's DomainCheck).
func (p *Purpose) Validate() error {
	var v identity.Validator
	v.Check(purposeKeyRe.MatchString(p.Key), "key", "must be 2–63 lower-case letters, digits or underscores, starting with a letter")
	v.Check(p.Level == LevelDevice || p.Level == LevelPerson, "level", "must be device or person")
	v.Check(slices.Contains([]string{BasisConsent, BasisLegitimateInterest, BasisNecessary}, p.LegalBasis),
		"legal_basis", "must be consent, legitimate_interest or necessary")
	v.Check(p.DPVPurpose == "" || identity.ValidHTTPURL(p.DPVPurpose), "dpv_purpose", "must be an IRI such as https://w3id.org/dpv#DirectMarketing")
	v.Check(p.ReaskMonths >= 1 && p.ReaskMonths <= 60, "reask_months", "must be between 1 and 60")
	v.Check(len(p.RecipientIDs) <= 100, "recipient_ids", "at most 100 recipients")
	if p.LegalBasis == BasisNecessary {
		v.Check(p.Level == LevelDevice, "level", "strictly necessary storage is device-level")
		v.Check(!p.GPCOptOut, "gpc_opt_out", "strictly necessary storage is not subject to opt-out")
		v.Check(!p.DoubleOptIn, "double_opt_in", "strictly necessary storage is never asked")
		lower := strings.ToLower(p.DPVPurpose + " " + p.Key)
		for _, w := range notNecessaryWords {
			if strings.Contains(lower, w) {
				v.Check(false, "legal_basis", "advertising, analytics, personalisation and marketing are never strictly necessary")
				break
			}
		}
	}
	v.Check(!p.DoubleOptIn || p.LegalBasis != BasisLegitimateInterest, "double_opt_in",
		"double opt-in confirms a consent; a legitimate interest is not asked")
	// A device decides on the device, and has no address to confirm from: its grants would
	// wait for a confirmation that never comes.
	v.Check(!p.DoubleOptIn || p.Level != LevelDevice || p.LegalBasis == BasisNecessary, "double_opt_in",
		"double opt-in confirms a person's consent by email; a device-level purpose is decided on the device")
	return v.Err()
}

// InScope reports whether the purpose is offered on a property of the given brand.
func (p *Purpose) InScope(propertyID, brandID string) bool {
	if len(p.ScopePropertyIDs) > 0 && !slices.Contains(p.ScopePropertyIDs, propertyID) {
		return false
	}
	if len(p.ScopeBrandIDs) > 0 && !slices.Contains(p.ScopeBrandIDs, brandID) {
		return false
	}
	return true
}

// Recipient is a legal entity that receives data for a purpose: a partner, one of the
// group's brands, or a processor.
type Recipient struct {
	TenantID         string    `json:"tenant_id"`
	ID               string    `json:"id"`
	Name             string    `json:"name"`
	LegalName        string    `json:"legal_name"`
	Kind             string    `json:"kind"` // partner, brand, processor
	Country          string    `json:"country"`
	PrivacyPolicyURL string    `json:"privacy_policy_url"`
	BrandID          string    `json:"brand_id"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
}

var countryRe = regexp.MustCompile(`^[A-Z]{2}$`)

// Validate checks the recipient's invariants. As the purpose's, a rule that reads two
// fields never fails for the other one being empty.
func (r *Recipient) Validate() error {
	var v identity.Validator
	v.Check(strings.TrimSpace(r.Name) != "" && len(r.Name) <= 200, "name", "is required (at most 200 characters)")
	v.Check(strings.TrimSpace(r.LegalName) != "" && len(r.LegalName) <= 200, "legal_name", "is required (at most 200 characters)")
	v.Check(slices.Contains([]string{"partner", "brand", "processor"}, r.Kind), "kind", "must be partner, brand or processor")
	v.Check(r.Country == "" || countryRe.MatchString(r.Country), "country", "must be an ISO 3166-1 alpha-2 code such as FI")
	v.Check(r.PrivacyPolicyURL == "" || identity.ValidHTTPURL(r.PrivacyPolicyURL), "privacy_policy_url", "must be an http(s) URL")
	v.Check(r.Kind != "brand" || r.BrandID != "", "brand_id", "a brand recipient names the brand")
	return v.Err()
}

// Text is what people read about a purpose in one language.
type Text struct {
	Title       string `json:"title"`
	Description string `json:"description"`
	PolicyURL   string `json:"policy_url,omitempty"`
}

// RecipientRef is a recipient as named in a published version.
type RecipientRef struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	LegalName string `json:"legal_name"`
	Kind      string `json:"kind"`
	Country   string `json:"country,omitempty"`
}

// VersionDetails are the facts of a version besides its texts; changing them is material.
type VersionDetails struct {
	DataCategories []string       `json:"data_categories"`
	Retention      string         `json:"retention"`
	Transfers      string         `json:"transfers"`
	Recipients     []RecipientRef `json:"recipients"` // fixed when published
	// Controllers are the legal entities that decide about the data, fixed when published
	// like the recipients. Versions published before Lupa recorded them have none (nil).
	Controllers []ControllerRef `json:"controllers,omitempty"`
}

// ControllerRef is a controller as a published version names it: the tenant, or one of
// its brands that is a legal entity of its own.
type ControllerRef struct {
	BrandID    string `json:"brand_id,omitempty"` // empty for the tenant
	LegalName  string `json:"legal_name"`
	BusinessID string `json:"business_id,omitempty"`
}

// entity is what makes a controller the same legal entity: its business id, or its legal
// name when it has none. A new name for the same company is not a new controller.
func (c ControllerRef) entity() string {
	if c.BusinessID != "" {
		return "id:" + c.BusinessID
	}
	return "name:" + c.LegalName
}

// Version is one version of a purpose's texts and facts. Drafts can change; a published
// version never does. A material version (what is done, the data, recipients, controller,
// retention, transfers changed) makes earlier grants stop counting until people decide
// again; a non-material one (a typo, a new language) carries them over.
type Version struct {
	TenantID    string          `json:"tenant_id"`
	PurposeID   string          `json:"purpose_id"`
	PurposeKey  string          `json:"purpose_key"`
	Number      int             `json:"number"`
	Status      string          `json:"status"`
	Material    bool            `json:"material"`
	Texts       map[string]Text `json:"texts"`
	Details     VersionDetails  `json:"details"`
	ContentHash string          `json:"content_hash"`
	// TextHashes holds, per language, the hash of exactly the text shown in that language;
	// a decision records the one the person saw.
	TextHashes  map[string]string `json:"text_hashes"`
	CreatedAt   time.Time         `json:"created_at"`
	PublishedAt *time.Time        `json:"published_at,omitempty"`
}

// Validate checks the version's invariants.
func (ver *Version) Validate() error {
	var v identity.Validator
	v.Check(len(ver.Texts) > 0, "texts", "at least one language")
	v.Check(len(ver.Texts) <= 30, "texts", "at most 30 languages")
	langs := make([]string, 0, len(ver.Texts))
	for l := range ver.Texts {
		langs = append(langs, l)
	}
	sort.Strings(langs)
	for _, lang := range langs {
		t := ver.Texts[lang]
		f := "texts[" + lang + "]"
		v.Check(identity.ValidLanguage(lang), f, "must be keyed by a language tag such as fi")
		v.Check(strings.TrimSpace(t.Title) != "" && len([]rune(t.Title)) <= 200, f+".title", "is required (at most 200 characters)")
		v.Check(strings.TrimSpace(t.Description) != "" && len([]rune(t.Description)) <= 5000, f+".description", "is required (at most 5000 characters)")
		v.Check(t.PolicyURL == "" || identity.ValidHTTPURL(t.PolicyURL), f+".policy_url", "must be an http(s) URL")
	}
	v.Check(len(ver.Details.DataCategories) <= 50, "details.data_categories", "at most 50")
	v.Check(len([]rune(ver.Details.Retention)) <= 1000, "details.retention", "at most 1000 characters")
	v.Check(len([]rune(ver.Details.Transfers)) <= 1000, "details.transfers", "at most 1000 characters")
	return v.Err()
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TextHash is the hash of exactly what a person reads in one language.
func TextHash(purposeKey string, number int, lang string, t Text) string {
	return sha256Hex(Canonical(Obj{"purpose": purposeKey, "version": number, "language": lang,
		"title": t.Title, "description": t.Description, "policy_url": t.PolicyURL}))
}

// Seal computes the version's text hashes and content hash.
func (ver *Version) Seal(p *Purpose) {
	ver.TextHashes = make(map[string]string, len(ver.Texts))
	texts := Obj{}
	for lang, t := range ver.Texts {
		ver.TextHashes[lang] = TextHash(p.Key, ver.Number, lang, t)
		texts[lang] = Obj{"title": t.Title, "description": t.Description, "policy_url": t.PolicyURL}
	}
	recipients := make([]Obj, len(ver.Details.Recipients))
	for i, r := range ver.Details.Recipients {
		recipients[i] = Obj{"id": r.ID, "name": r.Name, "legal_name": r.LegalName, "kind": r.Kind, "country": r.Country}
	}
	details := Obj{"data_categories": nonNilStrings(ver.Details.DataCategories), "retention": ver.Details.Retention,
		"transfers": ver.Details.Transfers, "recipients": recipients}
	if ver.Details.Controllers != nil {
		controllers := make([]Obj, len(ver.Details.Controllers))
		for i, c := range ver.Details.Controllers {
			controllers[i] = Obj{"brand_id": c.BrandID, "legal_name": c.LegalName, "business_id": c.BusinessID}
		}
		details["controllers"] = controllers
	}
	ver.ContentHash = sha256Hex(Canonical(Obj{
		"purpose": p.Key, "version": ver.Number, "level": p.Level, "legal_basis": p.LegalBasis,
		"material": ver.Material, "texts": texts, "details": details,
	}))
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// textLanguage returns the language of the version's text whose hash is hash, or "".
func (ver *Version) textLanguage(hash string) string {
	for l, h := range ver.TextHashes {
		if h == hash && hash != "" {
			return l
		}
	}
	return ""
}

// textShown returns the version's text in lang when it has one, else the text whose hash is
// shown (the one the person saw when they decided), else TextFor(lang, fallback).
func (ver *Version) textShown(lang, shown, fallback string) Text {
	if t, ok := ver.Texts[lang]; ok {
		return t
	}
	if t, ok := ver.Texts[ver.textLanguage(shown)]; ok {
		return t
	}
	t, _ := ver.TextFor(lang, fallback)
	return t
}

// TextFor returns the version's text in lang, falling back to fallback, then English, then
// any language; and the language chosen.
func (ver *Version) TextFor(lang, fallback string) (Text, string) {
	for _, l := range []string{lang, fallback, "en"} {
		if t, ok := ver.Texts[l]; ok {
			return t, l
		}
	}
	langs := make([]string, 0, len(ver.Texts))
	for l := range ver.Texts {
		langs = append(langs, l)
	}
	sort.Strings(langs)
	if len(langs) == 0 {
		return Text{}, ""
	}
	return ver.Texts[langs[0]], langs[0]
}
