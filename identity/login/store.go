package login

import (
	"encoding/json"
	"time"
)

type providerRow struct {
	TenantID        string `gorm:"primaryKey"`
	ID              string `gorm:"primaryKey"`
	Kind            string
	Label           string
	Labels          string
	Issuer          string
	ClientID        string
	ClientSecret    []byte
	ClientSecretKID string `gorm:"column:client_secret_kid"`
	Scopes          string
	TrustedForEmail bool
	TokenAuthMethod string
	CreatedAt       int64 `gorm:"autoCreateTime:false"`
	UpdatedAt       int64 `gorm:"autoUpdateTime:false"`
}

func (providerRow) TableName() string { return "login_providers" }

func (r *providerRow) domain() *Provider {
	p := &Provider{TenantID: r.TenantID, ID: r.ID, Kind: r.Kind, Label: r.Label, Issuer: r.Issuer, ClientID: r.ClientID,
		TrustedForEmail: r.TrustedForEmail, TokenAuthMethod: r.TokenAuthMethod,
		CreatedAt: time.UnixMilli(r.CreatedAt).UTC(), UpdatedAt: time.UnixMilli(r.UpdatedAt).UTC()}
	_ = json.Unmarshal([]byte(r.Labels), &p.Labels)
	_ = json.Unmarshal([]byte(r.Scopes), &p.Scopes)
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	if p.Scopes == nil {
		p.Scopes = []string{}
	}
	return p
}

func providerToRow(p *Provider, secret []byte, kid string) *providerRow {
	labels := p.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	lb, _ := json.Marshal(labels)
	sc, _ := json.Marshal(p.Scopes)
	return &providerRow{TenantID: p.TenantID, ID: p.ID, Kind: p.Kind, Label: p.Label, Labels: string(lb), Issuer: p.Issuer,
		ClientID: p.ClientID, ClientSecret: secret, ClientSecretKID: kid, Scopes: string(sc), TrustedForEmail: p.TrustedForEmail,
		TokenAuthMethod: p.TokenAuthMethod, CreatedAt: p.CreatedAt.UnixMilli(), UpdatedAt: p.UpdatedAt.UnixMilli()}
}

// flowRow is one sign-in under way in one browser. The cookie holds a random value whose
// hash is the key; state is stored as a hash; nonce, PKCE verifier and, once a sign-in
// found the identity's address on another account, the identity waiting to be connected,
// are sealed in data.
type flowRow struct {
	TenantID    string `gorm:"primaryKey"`
	BindingHash []byte `gorm:"primaryKey"`
	ProviderID  string
	StateHash   []byte
	Status      string
	Data        []byte
	DataKID     string `gorm:"column:data_kid"`
	PendingAt   *int64
	CreatedAt   int64 `gorm:"autoCreateTime:false"`
	ExpiresAt   int64
}

func (flowRow) TableName() string { return "login_flows" }

// Flow statuses: started (waiting for the callback), used (the callback came), pending
// (the identity waits to be connected to the account its address names), connected.
const (
	flowStarted   = "started"
	flowUsed      = "used"
	flowPending   = "pending"
	flowConnected = "connected"
)

// flowData is the sealed part of a flow.
type flowData struct {
	Nonce    string `json:"nonce,omitempty"`
	Verifier string `json:"verifier"`
	Lang     string `json:"lang"`
	// The identity waiting to be connected, and the person whose account may take it.
	Issuer  string `json:"issuer,omitempty"`
	Subject string `json:"sub,omitempty"`
	Person  string `json:"person,omitempty"`
	// Extra is what the page that began the flow needs to finish it (the registration
	// widget's boxes), sealed with the rest and handed back with the outcome.
	Extra []byte `json:"extra,omitempty"`
}
