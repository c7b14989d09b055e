// Package datamap is the tenant's data map: every system that holds its customers' data —
// connected ones (a connector or a webhook endpoint Lupa delivers to) and unconnected ones
// (the accounting system, the tills, a loyalty database) — with what each holds, why,
// under which legal basis, who receives it, where it lives, how long it is kept, and how a
// data-subject request reaches it. It is the tenant's record of processing (GDPR Art. 30)
// as far as customers are concerned, and the list the data-subject-request work walks.
package datamap

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lupa-cmp/lupa/identity"
)

// System is one place that holds the tenant's customers' data.
type System struct {
	TenantID    string `json:"tenant_id"`
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	// Connection is the connector or webhook endpoint Lupa delivers to for this system;
	// nil for a system Lupa does not talk to.
	Connection *Connection `json:"connection"`
	// DataCategories come from DataCategoryKeys; OtherDataCategories says the rest in words.
	DataCategories      []string `json:"data_categories"`
	OtherDataCategories []string `json:"other_data_categories"`
	// Purposes are keys of the tenant's purposes; OtherPurposes are purposes that are not
	// asked of people (bookkeeping, fraud prevention) in words.
	Purposes      []string `json:"purposes"`
	OtherPurposes []string `json:"other_purposes"`
	// LegalBases come from LegalBasisKeys: GDPR Art. 6(1)(a)–(f).
	LegalBases []string    `json:"legal_bases"`
	Recipients []Recipient `json:"recipients"`
	// Locations are the countries (ISO 3166-1 alpha-2) where the data is stored.
	Locations []string   `json:"locations"`
	Transfers []Transfer `json:"transfers"`
	Retention Retention  `json:"retention"`
	DSR       DSRRoute   `json:"dsr"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// Connection names the connector or webhook endpoint of a connected system. Kind and id are
// kept as text (the tables belong to the delivery engine and the connectors); the service
// checks that a new or changed connection names an endpoint (kind webhook) or a connector of
// that vendor of the system's own tenant.
type Connection struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

// Connection kinds.
const (
	ConnectionWebhook   = "webhook"
	ConnectionMailchimp = "mailchimp"
	ConnectionHubSpot   = "hubspot"
	ConnectionKlaviyo   = "klaviyo"
)

// ConnectionKinds lists the kinds a connection may have; ConnectorKinds those that are
// connectors (a vendor's API Lupa calls), as opposed to a webhook endpoint.
var (
	ConnectionKinds = []string{ConnectionWebhook, ConnectionMailchimp, ConnectionHubSpot, ConnectionKlaviyo}
	ConnectorKinds  = []string{ConnectionMailchimp, ConnectionHubSpot, ConnectionKlaviyo}
)

// Recipient is someone the system's data is disclosed to, or who processes it for the
// tenant.
type Recipient struct {
	Name    string `json:"name"`
	Role    string `json:"role"`
	Country string `json:"country"` // ISO 3166-1 alpha-2; empty when not known
}

// Recipient roles.
const (
	RoleProcessor       = "processor"        // processes for the tenant (Art. 28): the email platform's vendor
	RoleSubProcessor    = "sub_processor"    // a processor's processor (Art. 28(2), (4)): its hosting provider
	RoleJointController = "joint_controller" // decides purposes and means together with the tenant (Art. 26)
	RoleController      = "controller"       // an independent controller the data is disclosed to: a partner
	RolePublicAuthority = "public_authority" // an authority that receives data by law: the tax administration
)

// RecipientRoles lists the roles a recipient may have.
var RecipientRoles = []string{RoleProcessor, RoleSubProcessor, RoleJointController, RoleController, RolePublicAuthority}

// Transfer is a transfer of the system's data to a country outside the EEA (GDPR
// Chapter V) and the safeguard it rests on.
type Transfer struct {
	Country   string `json:"country"`
	Mechanism string `json:"mechanism"`
	Recipient string `json:"recipient"` // who receives it there, in words
	Notes     string `json:"notes"`
}

// Transfer mechanisms (GDPR Chapter V).
const (
	MechanismAdequacy      = "adequacy"        // Art. 45: an adequacy decision (the EU–US Data Privacy Framework for certified US organisations)
	MechanismSCCs          = "sccs"            // Art. 46(2)(c): the Commission's standard contractual clauses
	MechanismBCRs          = "bcrs"            // Art. 47: binding corporate rules
	MechanismCodeOfConduct = "code_of_conduct" // Art. 46(2)(e)
	MechanismCertification = "certification"   // Art. 46(2)(f)
	MechanismAdHocClauses  = "ad_hoc_clauses"  // Art. 46(3)(a): clauses the supervisory authority authorised
	MechanismDerogation    = "derogation"      // Art. 49: explicit consent, a contract's performance …
)

// TransferMechanisms lists the mechanisms a transfer may rest on.
var TransferMechanisms = []string{MechanismAdequacy, MechanismSCCs, MechanismBCRs, MechanismCodeOfConduct,
	MechanismCertification, MechanismAdHocClauses, MechanismDerogation}

// DSRRoute is how a data-subject request (access, rectification, erasure, restriction,
// objection) reaches the system.
type DSRRoute struct {
	Method string `json:"method"`
	// Owner is who carries out a manual task (required for manual) or who answers for the
	// system otherwise. Staff, not a data subject: see docs/data-map.md.
	Owner        *Owner `json:"owner"`
	Instructions string `json:"instructions"`
}

// Owner is a member of staff (or a team) who answers for a system.
type Owner struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

// DSR methods.
const (
	DSRConnector = "connector" // Lupa calls the vendor's API through the system's connector
	DSRWebhook   = "webhook"   // Lupa sends an event to the system's webhook endpoint
	DSRManual    = "manual"    // a person does it: Lupa gives the owner a task
)

// DSRMethods lists how a request may reach a system.
var DSRMethods = []string{DSRConnector, DSRWebhook, DSRManual}

// Legal bases, GDPR Art. 6(1).
const (
	BasisConsent            = "consent"             // (a)
	BasisContract           = "contract"            // (b)
	BasisLegalObligation    = "legal_obligation"    // (c)
	BasisVitalInterest      = "vital_interest"      // (d)
	BasisPublicTask         = "public_task"         // (e)
	BasisLegitimateInterest = "legitimate_interest" // (f)
)

// LegalBasisKeys lists the legal bases in the order of Art. 6(1).
var LegalBasisKeys = []string{BasisConsent, BasisContract, BasisLegalObligation, BasisVitalInterest,
	BasisPublicTask, BasisLegitimateInterest}

// LegalBasisArticle names the point of Art. 6(1) of each basis.
var LegalBasisArticle = map[string]string{BasisConsent: "GDPR Art. 6(1)(a)", BasisContract: "GDPR Art. 6(1)(b)",
	BasisLegalObligation: "GDPR Art. 6(1)(c)", BasisVitalInterest: "GDPR Art. 6(1)(d)",
	BasisPublicTask: "GDPR Art. 6(1)(e)", BasisLegitimateInterest: "GDPR Art. 6(1)(f)"}

// DataCategory is one entry of the fixed vocabulary of customer data.
type DataCategory struct {
	Key         string `json:"key"`
	Description string `json:"description"`
}

// DataCategories is the fixed vocabulary of data categories; docs/data-map.md lists it.
var DataCategories = []DataCategory{
	{"contact", "name, email address, phone number, postal address"},
	{"identifiers", "customer number, account id, device ids, ids in other systems"},
	{"account", "sign-in credentials and history, account settings"},
	{"demographics", "year of birth, age, gender, language"},
	{"purchases", "orders, receipts, returns, purchase history"},
	{"payment", "payment method, card or bank account details"},
	{"accounting", "invoices, vouchers and bookkeeping entries that name the customer"},
	{"loyalty", "membership, points, tier, benefits used"},
	{"communications", "messages to and from customer service, correspondence"},
	{"preferences", "consents, marketing preferences, stated interests"},
	{"behaviour", "pages and screens visited, clicks, email opens"},
	{"device", "IP address, user agent, cookies and similar storage"},
	{"location", "store visited, delivery address region, precise location"},
	{"profile", "segments, scores and other inferences (profiling)"},
	{"special_category", "data of GDPR Art. 9 (health, religion …) or Art. 10 (offences)"},
}

// DataCategoryKeys lists the keys of DataCategories.
var DataCategoryKeys = func() []string {
	out := make([]string, len(DataCategories))
	for i, c := range DataCategories {
		out[i] = c.Key
	}
	return out
}()

// Limits of a system's lists and texts.
const (
	MaxNameLen      = 200
	MaxTextLen      = 2000
	MaxItemLen      = 200
	MaxFreeItems    = 20
	MaxPurposes     = 50
	MaxRecipients   = 50
	MaxLocations    = 50
	MaxTransfers    = 50
	MaxConnIDLen    = 200
	MaxSystems      = 500 // per tenant
	MaxReferenceLen = 500
	MaxNotesLen     = 1000
)

func runes(s string) int { return utf8.RuneCountInString(s) }

// printable reports whether s is 1–max printable ASCII characters without spaces.
func printable(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func oneOf(list []string) string { return "must be one of " + strings.Join(list, ", ") }

func idx(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }

// checkFree checks a list of free-text items: each 1–MaxItemLen characters, at most
// MaxFreeItems, no duplicates.
func checkFree(v *identity.Validator, field string, items []string) {
	v.Check(len(items) <= MaxFreeItems, field, "at most "+strconv.Itoa(MaxFreeItems)+" items")
	for i, s := range items {
		v.Check(s != "" && runes(s) <= MaxItemLen, idx(field, i), "1–"+strconv.Itoa(MaxItemLen)+" characters")
		v.Check(!slices.Contains(items[:i], s), idx(field, i), "is listed twice")
	}
}

// checkKeys checks a list of vocabulary keys: each in vocab, no duplicates.
func checkKeys(v *identity.Validator, field string, items, vocab []string) {
	for i, s := range items {
		v.Check(slices.Contains(vocab, s), idx(field, i), oneOf(vocab))
		v.Check(!slices.Contains(items[:i], s), idx(field, i), "is listed twice")
	}
}

// Normalize trims the system's texts and gives its lists their empty value.
func (s *System) Normalize() {
	trim := func(p *string) { *p = strings.TrimSpace(*p) }
	trimAll := func(l []string) []string {
		out := make([]string, len(l))
		for i, x := range l {
			out[i] = strings.TrimSpace(x)
		}
		return out
	}
	trim(&s.Name)
	trim(&s.Description)
	s.DataCategories = trimAll(s.DataCategories)
	s.OtherDataCategories = trimAll(s.OtherDataCategories)
	s.Purposes = trimAll(s.Purposes)
	s.OtherPurposes = trimAll(s.OtherPurposes)
	s.LegalBases = trimAll(s.LegalBases)
	s.Locations = trimAll(s.Locations)
	// Copies: the caller's slices and pointers stay as they were.
	s.Recipients = append([]Recipient{}, s.Recipients...)
	for i := range s.Recipients {
		r := &s.Recipients[i]
		trim(&r.Name)
		trim(&r.Role)
		trim(&r.Country)
	}
	s.Transfers = append([]Transfer{}, s.Transfers...)
	for i := range s.Transfers {
		t := &s.Transfers[i]
		trim(&t.Country)
		trim(&t.Mechanism)
		trim(&t.Recipient)
		trim(&t.Notes)
	}
	if s.Connection != nil {
		c := *s.Connection
		s.Connection = &c
		trim(&s.Connection.Kind)
		trim(&s.Connection.ID)
	}
	s.Retention.normalize()
	trim(&s.DSR.Method)
	trim(&s.DSR.Instructions)
	if s.DSR.Owner != nil {
		o := &Owner{Name: s.DSR.Owner.Name, Email: s.DSR.Owner.Email}
		s.DSR.Owner = o
		trim(&o.Name)
		trim(&o.Email)
		if o.Name == "" && o.Email == "" {
			s.DSR.Owner = nil
		}
	}
}

// Validate checks the system's invariants. Purposes are checked against the tenant's by
// the service.
func (s *System) Validate() error {
	var v identity.Validator
	s.check(&v, true)
	s.Retention.check(&v, "retention")
	return v.Err()
}

// Prepare normalises s, expands its retention preset and checks it: what Create and Update
// check before they ask the database (for the tenant's purposes). An unknown preset, or one
// given a period of its own, is named with the other fields at fault.
func (s *System) Prepare() error { return s.prepare(true) }

// PrepareFields is Prepare by the rules that each read one field (a list, the retention
// rule or the DSR route counting as one): so the fields a patch sends can be checked on an
// empty system, without the stored one (integrationsweb's DomainCheck). The rules between
// fields wait for the stored system: a category or a purpose named in one of two lists, a
// location outside the EEA and its transfer, a DSR method and the connection it needs.
func (s *System) PrepareFields() error { return s.prepare(false) }

func (s *System) prepare(between bool) error {
	s.Normalize()
	var v identity.Validator
	s.check(&v, between)
	r, err := s.Retention.ExpandPreset("retention")
	var e *identity.Error
	switch {
	case err == nil:
		s.Retention = r
		s.Retention.normalize()
		s.Retention.check(&v, "retention")
	case errors.As(err, &e) && e.Code == identity.EInvalid:
		// The preset's complaint is the rule's: its other checks would read a rule that is not there.
		for _, f := range e.Fields {
			v.Check(false, f.Field, f.Message)
		}
	default:
		return err
	}
	return v.Err()
}

// check records in v what is wrong with s but its retention rule; without between, only by
// the rules that each read one field.
func (s *System) check(v *identity.Validator, between bool) {
	v.Check(s.Name != "" && runes(s.Name) <= MaxNameLen, "name", "is required (at most 200 characters)")
	v.Check(runes(s.Description) <= MaxTextLen, "description", "at most 2000 characters")
	if c := s.Connection; c != nil {
		v.Check(slices.Contains(ConnectionKinds, c.Kind), "connection.kind", oneOf(ConnectionKinds))
		v.Check(printable(c.ID, MaxConnIDLen), "connection.id", "the endpoint's or connector's id: 1–200 printable characters without spaces")
	}

	if between {
		v.Check(len(s.DataCategories)+len(s.OtherDataCategories) > 0, "data_categories",
			"name at least one category of data the system holds (or describe it in other_data_categories)")
	}
	checkKeys(v, "data_categories", s.DataCategories, DataCategoryKeys)
	checkFree(v, "other_data_categories", s.OtherDataCategories)

	if between {
		v.Check(len(s.Purposes)+len(s.OtherPurposes) > 0, "purposes",
			"name at least one of the tenant's purposes (or describe the purpose in other_purposes)")
	}
	v.Check(len(s.Purposes) <= MaxPurposes, "purposes", "at most 50 items")
	for i, p := range s.Purposes {
		v.Check(!slices.Contains(s.Purposes[:i], p), idx("purposes", i), "is listed twice")
	}
	checkFree(v, "other_purposes", s.OtherPurposes)

	v.Check(len(s.LegalBases) > 0, "legal_bases", "name at least one legal basis (GDPR Art. 6(1))")
	checkKeys(v, "legal_bases", s.LegalBases, LegalBasisKeys)

	v.Check(len(s.Recipients) <= MaxRecipients, "recipients", "at most 50 items")
	for i, r := range s.Recipients {
		f := idx("recipients", i)
		v.Check(r.Name != "" && runes(r.Name) <= MaxItemLen, f+".name", "is required (at most 200 characters)")
		v.Check(slices.Contains(RecipientRoles, r.Role), f+".role", oneOf(RecipientRoles))
		if r.Country != "" {
			checkCountry(v, f+".country", r.Country)
		}
	}

	v.Check(len(s.Locations) > 0, "locations", "name at least one country where the data is stored")
	v.Check(len(s.Locations) <= MaxLocations, "locations", "at most 50 items")
	for i, c := range s.Locations {
		checkCountry(v, idx("locations", i), c)
		v.Check(!slices.Contains(s.Locations[:i], c), idx("locations", i), "is listed twice")
	}
	v.Check(len(s.Transfers) <= MaxTransfers, "transfers", "at most 50 items")
	covered := map[string]bool{}
	for i, t := range s.Transfers {
		f := idx("transfers", i)
		if checkCountry(v, f+".country", t.Country) {
			v.Check(!InEEA(t.Country), f+".country", t.Country+" is in the EEA: that is not a transfer (GDPR Chapter V); list it under locations")
		}
		v.Check(slices.Contains(TransferMechanisms, t.Mechanism), f+".mechanism", oneOf(TransferMechanisms))
		v.Check(runes(t.Recipient) <= MaxItemLen, f+".recipient", "at most 200 characters")
		v.Check(runes(t.Notes) <= MaxReferenceLen, f+".notes", "at most 500 characters")
		covered[t.Country] = true
	}
	for i, c := range s.Locations {
		if between && ValidCountry(c) && !InEEA(c) && !covered[c] {
			v.Check(false, idx("locations", i), "data stored in "+c+" (outside the EEA) is a transfer: add it to transfers with its mechanism")
		}
	}

	v.Check(slices.Contains(DSRMethods, s.DSR.Method), "dsr.method", oneOf(DSRMethods))
	switch s.DSR.Method {
	case DSRConnector:
		v.Check(!between || s.Connection != nil && slices.Contains(ConnectorKinds, s.Connection.Kind), "dsr.method",
			"connector needs a connection of kind "+strings.Join(ConnectorKinds, ", "))
	case DSRWebhook:
		v.Check(!between || s.Connection != nil && s.Connection.Kind == ConnectionWebhook, "dsr.method",
			"webhook needs a connection of kind webhook")
	case DSRManual:
		v.Check(s.DSR.Owner != nil, "dsr.owner", "a manual task needs an owner: name and email")
	}
	if o := s.DSR.Owner; o != nil {
		v.Check(o.Name != "" && runes(o.Name) <= MaxItemLen, "dsr.owner.name", "is required (at most 200 characters)")
		v.Check(identity.ValidEmail(o.Email), "dsr.owner.email", "must be an email address")
	}
	v.Check(runes(s.DSR.Instructions) <= MaxTextLen, "dsr.instructions", "at most 2000 characters")
}

func checkCountry(v *identity.Validator, field, c string) bool {
	ok := ValidCountry(c)
	msg := "must be an ISO 3166-1 alpha-2 country code in capitals, such as FI"
	if hint := countryHints[c]; hint != "" {
		msg += " (" + hint + ")"
	}
	v.Check(ok, field, msg)
	return ok
}

// Connected reports whether Lupa delivers to the system.
func (s *System) Connected() bool { return s.Connection != nil }

// Patch changes some of a system's fields; nil leaves a field as it is. A list replaces
// the whole list; Retention and DSR replace the whole object. ClearConnection removes the
// connection.
type Patch struct {
	Name, Description                              *string
	Connection                                     *Connection
	ClearConnection                                bool
	DataCategories, OtherDataCategories            *[]string
	Purposes, OtherPurposes, LegalBases, Locations *[]string
	Recipients                                     *[]Recipient
	Transfers                                      *[]Transfer
	Retention                                      *Retention
	DSR                                            *DSRRoute
}

// Apply sets the fields the patch has on s.
func (p *Patch) Apply(s *System) {
	setS := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	setL := func(dst *[]string, v *[]string) {
		if v != nil {
			*dst = slices.Clone(*v)
		}
	}
	setS(&s.Name, p.Name)
	setS(&s.Description, p.Description)
	if p.ClearConnection {
		s.Connection = nil
	} else if p.Connection != nil {
		c := *p.Connection
		s.Connection = &c
	}
	setL(&s.DataCategories, p.DataCategories)
	setL(&s.OtherDataCategories, p.OtherDataCategories)
	setL(&s.Purposes, p.Purposes)
	setL(&s.OtherPurposes, p.OtherPurposes)
	setL(&s.LegalBases, p.LegalBases)
	setL(&s.Locations, p.Locations)
	if p.Recipients != nil {
		s.Recipients = slices.Clone(*p.Recipients)
	}
	if p.Transfers != nil {
		s.Transfers = slices.Clone(*p.Transfers)
	}
	if p.Retention != nil {
		s.Retention = *p.Retention
	}
	if p.DSR != nil {
		d := *p.DSR
		if d.Owner != nil {
			o := *d.Owner
			d.Owner = &o
		}
		s.DSR = d
	}
}

// Map is the tenant's whole data map.
type Map struct {
	TenantID string    `json:"tenant_id"`
	Systems  []*System `json:"systems"`
	// Purposes maps each purpose key named by a system to the ids of the systems that hold
	// data for it: where a withdrawal or an objection must reach.
	Purposes map[string][]string `json:"purposes"`
	// ThirdCountries lists every country outside the EEA the tenant's customer data goes to.
	ThirdCountries []string `json:"third_countries"`
}
