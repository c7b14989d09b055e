package consent

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// ChannelRegistration is the channel of decisions made on a registration form.
const ChannelRegistration = "registration"

// Registration is a person registering an account on a property: the boxes of the
// person-level purposes the form showed (each ticked or not), and the account's rows.
type Registration struct {
	Property *identity.Property
	Email    string // normalised
	Language string
	UIHash   string
	// Boxes are one decision per box shown: granted when ticked, denied when not. Every box
	// is a decision: a refusal is kept as long as a grant.
	Boxes []DecisionInput
	// Account returns the statements that create the account for the person, written in the
	// same transaction as the decisions (identity/accounts' PrepareRegistration).
	Account func(subjectID string) ([]sqldb.Statement, error)
	// BirthYear is asked when the tenant has the minimum age rule on (0 when not asked).
	BirthYear int
}

// Register writes an account and the registration form's decisions in one transaction:
// both or neither. The person is the one the email address names (created when new). When
// the address already names a person, the boxes decide only what that person has not
// decided: until the address is verified the registrant may not be its owner.
func (s *Service) Register(ctx context.Context, r Registration) (*Outcome, error) {
	if r.Property == nil || r.Account == nil {
		return nil, identity.Errorf(identity.EInternal, "a registration names its property and account")
	}
	c, err := s.Catalog(ctx, r.Property.TenantID)
	if err != nil {
		return nil, err
	}
	if r.Boxes, err = ageRule(c, r.BirthYear, r.Boxes, s.now()); err != nil {
		return nil, err
	}
	email := identity.Identifier{Kind: identity.IDEmail, Value: r.Email}
	req := &RecordRequest{TenantID: r.Property.TenantID, Property: r.Property, Identifier: &email, Method: MethodCheckbox,
		Language: r.Language, UIHash: r.UIHash, Actor: "subject", Decisions: r.Boxes, Channel: ChannelRegistration,
		OnlyUndecided: true}
	if len(req.Decisions) == 0 {
		// An account without boxes still goes through the writer, so that it is created in
		// one place with the person; it records no decision.
		return s.registerWithoutBoxes(ctx, req, r.Account)
	}
	if err := req.validate(); err != nil {
		return nil, err
	}
	in, err := s.prepare(ctx, req, c)
	if err != nil {
		return nil, err
	}
	in.also = r.Account
	out, err := s.writer.Submit(ctx, in)
	if err != nil {
		return nil, err
	}
	s.SendOptInConfirmation(ctx, req, out)
	return out, nil
}

func (s *Service) registerWithoutBoxes(ctx context.Context, req *RecordRequest, account func(string) ([]sqldb.Statement, error)) (*Outcome, error) {
	if err := req.Identifier.Validate("email"); err != nil {
		return nil, err
	}
	c, err := s.Catalog(ctx, req.TenantID)
	if err != nil {
		return nil, err
	}
	in := &interaction{tenantID: req.TenantID, id: identity.NewID(), catalog: c, property: req.Property,
		channel: ChannelRegistration, method: MethodCheckbox, actor: string(req.Actor), identifier: req.Identifier,
		view: c.Asked(req.Property, "")}
	if _, err := s.resolveSubject(ctx, req, in, s.now()); err != nil {
		return nil, err
	}
	in.also = account
	return s.writer.Submit(ctx, in)
}

// SignedInRegistration is the registration widget's form sent through an identity
// provider's "Continue with …" button: the person is the provider's identity, signed in
// (and given an account) by identity/login, so only the boxes are recorded here.
type SignedInRegistration struct {
	Property  *identity.Property
	Person    identity.Identifier // (issuer, sub)
	Language  string
	UIHash    string
	Boxes     []DecisionInput
	BirthYear int
}

// CheckRegistration applies the tenant's age rule to a form's boxes, so that a form whose
// boxes could not be recorded says so before the person leaves for a provider.
func (s *Service) CheckRegistration(ctx context.Context, tenantID string, birthYear int, boxes []DecisionInput) error {
	c, err := s.Catalog(ctx, tenantID)
	if err != nil {
		return err
	}
	_, err = ageRule(c, birthYear, boxes, s.now())
	return err
}

// RegisterSignedIn records the boxes of a registration form for a person who signed in
// with an identity provider. As in Register, the boxes decide only what the person has not
// decided: the form shows every box unticked whatever the person chose before, so an
// unticked box of a returning customer is no refusal of what they granted elsewhere.
func (s *Service) RegisterSignedIn(ctx context.Context, r SignedInRegistration) (*Outcome, error) {
	c, err := s.Catalog(ctx, r.Property.TenantID)
	if err != nil {
		return nil, err
	}
	boxes, err := ageRule(c, r.BirthYear, r.Boxes, s.now())
	if err != nil || len(boxes) == 0 {
		return nil, err
	}
	person := r.Person
	req := &RecordRequest{TenantID: r.Property.TenantID, Property: r.Property, Identifier: &person, Method: MethodCheckbox,
		Language: r.Language, UIHash: r.UIHash, Actor: "subject", Decisions: boxes, Channel: ChannelRegistration,
		OnlyUndecided: true}
	out, err := s.Record(ctx, req)
	if err != nil {
		return nil, err
	}
	s.SendOptInConfirmation(ctx, req, out)
	return out, nil
}

// RegistrationForm is what a property's registration form shows: the person-level purposes
// asked when people register, each with its current text, recipients and policy, and the
// hash of the form as shown (its ui_hash).
type RegistrationForm struct {
	Controller string
	PolicyURL  string
	Language   string
	Purposes   []FormPurpose
	UIHash     string
	// AskBirthYear is true when the tenant's minimum age rule is on.
	AskBirthYear bool
}

// FormPurpose is one box of the registration form.
type FormPurpose struct {
	Key, Title, Description, PolicyURL string
	Lang                               string // of Title and Description, when not the form's
	Version                            int
	TextHash                           string
	Recipients                         []string
	DoubleOptIn                        bool
}

// RegistrationForm returns the form of a property in a language (falling back as banner
// texts do). It offers the published person-level purposes with a consent basis in the
// property's scope: legitimate interests are not asked, and strictly necessary processing
// is never device- or person-level consent.
func (s *Service) RegistrationForm(ctx context.Context, p *identity.Property, lang string) (*RegistrationForm, error) {
	c, err := s.Catalog(ctx, p.TenantID)
	if err != nil {
		return nil, err
	}
	f := &RegistrationForm{Controller: c.Tenant.LegalName, PolicyURL: c.Tenant.PrivacyPolicyURL, Language: lang,
		AskBirthYear: c.Tenant.AgeOfConsent > 0}
	var shown []Obj
	for _, cp := range c.Asked(p, LevelPerson) {
		if cp.LegalBasis != BasisConsent {
			continue
		}
		text, textLang := cp.Latest.TextFor(lang, p.DefaultLanguage)
		fp := FormPurpose{Key: cp.Key, Title: text.Title, Description: text.Description, PolicyURL: text.PolicyURL,
			Version: cp.Latest.Number, TextHash: cp.Latest.TextHashes[textLang], DoubleOptIn: cp.DoubleOptIn, Recipients: []string{}}
		if textLang != lang {
			fp.Lang = textLang
		}
		for _, r := range cp.Latest.Details.Recipients {
			fp.Recipients = append(fp.Recipients, r.LegalName)
		}
		f.Purposes = append(f.Purposes, fp)
		shown = append(shown, Obj{"purpose": fp.Key, "version": fp.Version, "text_hash": fp.TextHash, "recipients": fp.Recipients})
	}
	if shown == nil {
		shown = []Obj{}
	}
	f.UIHash = sha256Hex(Canonical(Obj{"form": "registration/1", "language": lang, "controller": f.Controller,
		"policy": f.PolicyURL, "purposes": shown}))
	return f, nil
}

// Marketing says whether a purpose is marketing (by its DPV purpose or its key): with the
// minimum age rule on, it is not offered to the youngest.
func (p *Purpose) Marketing() bool {
	lower := strings.ToLower(p.DPVPurpose + " " + p.Key)
	return strings.Contains(lower, "marketing") || strings.Contains(lower, "advertising")
}

// ageRule applies the tenant's minimum age rule to a registration's boxes. The age is the
// youngest the year of birth allows (a child born late in the year may not have had the
// birthday yet). Below the age of digital consent no consent-based purpose is accepted;
// below the marketing age, marketing is not offered: a ticked box of such a purpose is
// refused (422), an unticked one is not recorded, since it was not the child's to decide.
func ageRule(c *Catalog, birthYear int, boxes []DecisionInput, now time.Time) ([]DecisionInput, error) {
	t := c.Tenant
	if t.AgeOfConsent == 0 {
		return boxes, nil
	}
	if birthYear < now.Year()-120 || birthYear > now.Year() {
		return nil, identity.FieldErrors("validation failed", identity.FieldError{Field: "birth_year", Message: "is required: the year you were born"})
	}
	age := now.Year() - birthYear - 1
	var out []DecisionInput
	var fields []identity.FieldError
	for _, b := range boxes {
		cp, ok := c.Purpose(b.Purpose)
		if !ok {
			out = append(out, b)
			continue
		}
		min := 0
		if cp.LegalBasis == BasisConsent {
			min = t.AgeOfConsent
		}
		if cp.Marketing() && t.MarketingAge > min {
			min = t.MarketingAge
		}
		if age >= min {
			out = append(out, b)
			continue
		}
		if b.Decision == Granted {
			fields = append(fields, identity.FieldError{Field: "purpose_" + b.Purpose,
				Message: "is not offered below the age of " + strconv.Itoa(min) + ": a guardian decides for a younger child"})
		}
	}
	if len(fields) > 0 {
		return nil, &identity.Error{Code: identity.EUnprocessable, Message: "the decisions cannot be recorded", Fields: fields}
	}
	return out, nil
}
