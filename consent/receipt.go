package consent

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/lupa-cmp/lupa/identity"
)

// Receipts follow the Kantara Consent Receipt v1.1 field list (docs/receipt.schema.json is
// Lupa's own schema of it) and add a "lupa" member with the ledger entries, so a person can
// prove what was recorded and anyone can check it against /.well-known/jwks.json.

// ReceiptType is the JWS "typ" of a receipt.
const ReceiptType = "lupa-receipt+jwt"

// Receipt is the signed payload.
type Receipt struct {
	Version          string           `json:"version"`
	Jurisdiction     string           `json:"jurisdiction"`
	ConsentTimestamp int64            `json:"consentTimestamp"`
	CollectionMethod string           `json:"collectionMethod"`
	ConsentReceiptID string           `json:"consentReceiptID"`
	Language         string           `json:"language,omitempty"`
	PIIPrincipalID   string           `json:"piiPrincipalId"`
	PIIControllers   []PIIController  `json:"piiControllers"`
	PolicyURL        string           `json:"policyUrl"`
	Services         []ReceiptService `json:"services"`
	Sensitive        bool             `json:"sensitive"`
	SPICat           []string         `json:"spiCat"`
	IssuedAt         int64            `json:"iat"`
	Issuer           string           `json:"iss"`
	Lupa             ReceiptLedger    `json:"lupa"`
}

// PIIController is a controller as a receipt names it.
type PIIController struct {
	PIIController    string `json:"piiController"`
	OnBehalf         bool   `json:"onBehalf,omitempty"`
	Contact          string `json:"contact"`
	Address          string `json:"address"`
	Email            string `json:"email"`
	Phone            string `json:"phone"`
	PIIControllerURL string `json:"piiControllerUrl,omitempty"`
}

// ReceiptService is the service (the property) the purposes belong to.
type ReceiptService struct {
	Service  string           `json:"service"`
	Purposes []ReceiptPurpose `json:"purposes"`
}

// ReceiptPurpose is one purpose as a receipt names it; Decision is Lupa's addition, since a
// receipt records refusals too.
type ReceiptPurpose struct {
	Purpose              string   `json:"purpose"`
	PurposeCategory      []string `json:"purposeCategory"`
	ConsentType          string   `json:"consentType"`
	PIICategory          []string `json:"piiCategory"`
	PrimaryPurpose       bool     `json:"primaryPurpose"`
	Termination          string   `json:"termination"`
	ThirdPartyDisclosure bool     `json:"thirdPartyDisclosure"`
	ThirdPartyName       string   `json:"thirdPartyName,omitempty"`
	Decision             string   `json:"decision"`
	PurposeKey           string   `json:"purposeKey"`
	PurposeVersion       int      `json:"purposeVersion"`
	TextHash             string   `json:"textHash"`
}

// ReceiptLedger ties the receipt to the ledger.
type ReceiptLedger struct {
	Tenant      string         `json:"tenant"`
	Interaction string         `json:"interaction"`
	Property    string         `json:"property,omitempty"`
	Channel     string         `json:"channel"`
	UIHash      string         `json:"ui_hash,omitempty"`
	Events      []ReceiptEvent `json:"events"`
}

// ReceiptEvent names a ledger event in a receipt; the purposes above say what it decided.
type ReceiptEvent struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

func controllers(c *Catalog, p *identity.Property) []PIIController {
	t := c.Tenant
	tenant := PIIController{PIIController: t.LegalName, Contact: t.Name, Address: t.Address, Email: t.ContactEmail,
		Phone: t.Phone, PIIControllerURL: t.Website}
	if p != nil {
		if b := c.Brands[p.BrandID]; b != nil && b.LegalName != t.LegalName {
			brand := PIIController{PIIController: b.LegalName, Contact: b.Name, Address: b.Address,
				Email: firstNonEmpty(b.ContactEmail, t.ContactEmail), Phone: t.Phone, PIIControllerURL: b.Website}
			return []PIIController{brand, tenant}
		}
	}
	return []PIIController{tenant}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// buildReceipt makes the receipt payload of an interaction whose events are known.
func buildReceipt(in *interaction, events []*Event, decided []*resolved, now int64) ([]byte, error) {
	c := in.catalog
	service := ReceiptService{Service: "api", Purposes: []ReceiptPurpose{}}
	policy := c.Tenant.PrivacyPolicyURL
	if in.property != nil {
		service.Service = in.property.Name
	}
	refs := make([]ReceiptEvent, 0, len(events))
	for i, e := range events {
		refs = append(refs, ReceiptEvent{ID: e.ID, Kind: e.Kind, Seq: e.Seq, Hash: e.Hash})
		if i >= len(decided) {
			continue // system events (expiry, erasure) name no text
		}
		d := decided[i]
		// The title of the text recorded (its hash is in the event), not one picked again.
		text, ok := d.version.Texts[d.textLang]
		if !ok {
			text, _ = d.version.TextFor(in.language, c.Tenant.DefaultLanguage)
		}
		if policy == "" {
			policy = text.PolicyURL
		}
		names := make([]string, len(d.version.Details.Recipients))
		for j, r := range d.version.Details.Recipients {
			names[j] = r.LegalName
		}
		category := []string{d.purpose.Key}
		if d.purpose.DPVPurpose != "" {
			category = []string{d.purpose.DPVPurpose}
		}
		consentType := "EXPLICIT"
		termination := "Withdraw at any time where you gave it; asked again after " + itoa(d.purpose.ReaskMonths) + " months."
		if d.purpose.LegalBasis == BasisLegitimateInterest {
			consentType = "NOT_CONSENT_LEGITIMATE_INTEREST"
			termination = "You may object at any time (GDPR Art. 21)."
		}
		service.Purposes = append(service.Purposes, ReceiptPurpose{
			Purpose: text.Title, PurposeCategory: category, ConsentType: consentType,
			PIICategory: nonNilStrings(d.version.Details.DataCategories), Termination: termination,
			ThirdPartyDisclosure: len(names) > 0, ThirdPartyName: strings.Join(names, ", "),
			Decision: e.Decision, PurposeKey: d.purpose.Key, PurposeVersion: d.version.Number, TextHash: e.TextHash,
		})
	}
	consentAt := now
	if in.method == MethodImport && in.clientTime > 0 {
		consentAt = in.clientTime // when the person decided at the source; iat is when Lupa signed
	}
	r := Receipt{
		Version: "KI-CR-v1.1.0", Jurisdiction: c.Tenant.Jurisdiction, ConsentTimestamp: consentAt / 1000,
		CollectionMethod: in.method, ConsentReceiptID: in.id, Language: in.language, PIIPrincipalID: in.pseudonym,
		PIIControllers: controllers(c, in.property), PolicyURL: policy, Services: []ReceiptService{service},
		SPICat: []string{}, IssuedAt: now / 1000, Issuer: "lupa",
		Lupa: ReceiptLedger{Tenant: in.tenantID, Interaction: in.id, Channel: in.channel, UIHash: in.uiHash, Events: refs},
	}
	if in.property != nil {
		r.Lupa.Property = in.property.ID
	}
	return json.Marshal(r)
}

func eventRef(e *Event) EventRef {
	return EventRef{ID: e.ID, Purpose: e.PurposeKey, Version: e.PurposeVersion, Decision: e.Decision, Kind: e.Kind, Seq: e.Seq, Hash: e.Hash}
}

// ReceiptCheck is the answer to "is this receipt genuine?".
type ReceiptCheck struct {
	Valid bool   `json:"valid"`
	KeyID string `json:"kid,omitempty"`
	// Ledger says whether every event the receipt names is in the ledger with the same hash.
	// An erasure keeps the events (it destroys what links them to a person), so a receipt
	// the person kept still matches after it.
	Ledger  bool            `json:"ledger_match"`
	Reason  string          `json:"reason,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// VerifyReceipt checks a receipt's signature against every signing key ever used, and its
// events against the ledger.
func (s *Service) VerifyReceipt(ctx context.Context, compact string) (*ReceiptCheck, error) {
	payload, kid, err := s.keys.Verify(ctx, strings.TrimSpace(compact), ReceiptType)
	if err != nil {
		return &ReceiptCheck{Valid: false, KeyID: kid, Reason: err.Error()}, nil
	}
	var r Receipt
	if err := json.Unmarshal(payload, &r); err != nil || r.Lupa.Tenant == "" {
		return &ReceiptCheck{Valid: false, KeyID: kid, Reason: "the payload is not a Lupa receipt"}, nil
	}
	out := &ReceiptCheck{Valid: true, KeyID: kid, Payload: payload}
	if len(r.Lupa.Events) == 0 {
		return out, nil
	}
	ids := make([]string, len(r.Lupa.Events))
	for i, e := range r.Lupa.Events {
		ids[i] = e.ID
	}
	var rows []struct{ ID, Hash string }
	if err := s.db.Read.WithContext(ctx).Raw("SELECT id, hash FROM consent_events WHERE tenant_id = ? AND id IN ?",
		r.Lupa.Tenant, ids).Scan(&rows).Error; err != nil {
		return nil, err
	}
	have := map[string]string{}
	for _, row := range rows {
		have[row.ID] = row.Hash
	}
	out.Ledger = true
	for _, e := range r.Lupa.Events {
		if have[e.ID] != e.Hash {
			out.Ledger = false
			out.Reason = "event " + e.ID + " is not in the ledger with this hash"
			break
		}
	}
	return out, nil
}
