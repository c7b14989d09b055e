package identity

import (
	"encoding/json"
	"strings"
	"time"
)

// Row structs: the database shape of the domain types, unexported and kept here.

type tenantRow struct {
	ID                string
	Slug              string
	Name              string
	LegalName         string
	BusinessID        string
	ContactEmail      string
	Phone             string
	Address           string
	Website           string
	PrivacyPolicyURL  string
	Jurisdiction      string
	DefaultLanguage   string
	EvidenceYears     int
	KeepClientContext bool
	AgeOfConsent      int
	MarketingAge      int
	CreatedAt         int64 `gorm:"autoCreateTime:false"`
	UpdatedAt         int64 `gorm:"autoUpdateTime:false"`
}

func (tenantRow) TableName() string { return "tenants" }

func (r *tenantRow) domain() *Tenant {
	return &Tenant{ID: r.ID, Slug: r.Slug, Name: r.Name, LegalName: r.LegalName, BusinessID: r.BusinessID,
		ContactEmail: r.ContactEmail, Phone: r.Phone, Address: r.Address, Website: r.Website,
		PrivacyPolicyURL: r.PrivacyPolicyURL, Jurisdiction: r.Jurisdiction, DefaultLanguage: r.DefaultLanguage,
		EvidenceYears: r.EvidenceYears, KeepClientContext: r.KeepClientContext, AgeOfConsent: r.AgeOfConsent,
		MarketingAge: r.MarketingAge, CreatedAt: ms(r.CreatedAt), UpdatedAt: ms(r.UpdatedAt)}
}

func tenantToRow(t *Tenant) *tenantRow {
	return &tenantRow{ID: t.ID, Slug: t.Slug, Name: t.Name, LegalName: t.LegalName, BusinessID: t.BusinessID,
		ContactEmail: t.ContactEmail, Phone: t.Phone, Address: t.Address, Website: t.Website,
		PrivacyPolicyURL: t.PrivacyPolicyURL, Jurisdiction: t.Jurisdiction, DefaultLanguage: t.DefaultLanguage,
		EvidenceYears: t.EvidenceYears, KeepClientContext: t.KeepClientContext, AgeOfConsent: t.AgeOfConsent,
		MarketingAge: t.MarketingAge, CreatedAt: t.CreatedAt.UnixMilli(), UpdatedAt: t.UpdatedAt.UnixMilli()}
}

type brandRow struct {
	TenantID     string `gorm:"primaryKey"`
	ID           string `gorm:"primaryKey"`
	Name         string
	LegalName    string
	BusinessID   string
	ContactEmail string
	Address      string
	Website      string
	CreatedAt    int64 `gorm:"autoCreateTime:false"`
	UpdatedAt    int64 `gorm:"autoUpdateTime:false"`
}

func (brandRow) TableName() string { return "brands" }

func (r *brandRow) domain() *Brand {
	return &Brand{TenantID: r.TenantID, ID: r.ID, Name: r.Name, LegalName: r.LegalName, BusinessID: r.BusinessID,
		ContactEmail: r.ContactEmail, Address: r.Address, Website: r.Website,
		CreatedAt: ms(r.CreatedAt), UpdatedAt: ms(r.UpdatedAt)}
}

func brandToRow(b *Brand) *brandRow {
	return &brandRow{TenantID: b.TenantID, ID: b.ID, Name: b.Name, LegalName: b.LegalName, BusinessID: b.BusinessID,
		ContactEmail: b.ContactEmail, Address: b.Address, Website: b.Website,
		CreatedAt: b.CreatedAt.UnixMilli(), UpdatedAt: b.UpdatedAt.UnixMilli()}
}

type propertyRow struct {
	TenantID        string `gorm:"primaryKey"`
	ID              string `gorm:"primaryKey"`
	BrandID         string
	Name            string
	Kind            string
	PublicKey       string
	AllowedOrigins  string
	DefaultLanguage string
	Status          string
	CreatedAt       int64 `gorm:"autoCreateTime:false"`
	UpdatedAt       int64 `gorm:"autoUpdateTime:false"`
}

func (propertyRow) TableName() string { return "properties" }

func (r *propertyRow) domain() *Property {
	p := &Property{TenantID: r.TenantID, ID: r.ID, BrandID: r.BrandID, Name: r.Name, Kind: r.Kind,
		PublicKey: r.PublicKey, DefaultLanguage: r.DefaultLanguage, Status: r.Status,
		CreatedAt: ms(r.CreatedAt), UpdatedAt: ms(r.UpdatedAt)}
	_ = json.Unmarshal([]byte(r.AllowedOrigins), &p.AllowedOrigins)
	if p.AllowedOrigins == nil {
		p.AllowedOrigins = []string{}
	}
	return p
}

func propertyToRow(p *Property) *propertyRow {
	origins, _ := json.Marshal(nonNil(p.AllowedOrigins))
	return &propertyRow{TenantID: p.TenantID, ID: p.ID, BrandID: p.BrandID, Name: p.Name, Kind: p.Kind,
		PublicKey: p.PublicKey, AllowedOrigins: string(origins), DefaultLanguage: p.DefaultLanguage,
		Status: p.Status, CreatedAt: p.CreatedAt.UnixMilli(), UpdatedAt: p.UpdatedAt.UnixMilli()}
}

type apiKeyRow struct {
	TenantID  string `gorm:"primaryKey"`
	ID        string `gorm:"primaryKey"`
	Name      string
	Prefix    string
	KeyHash   []byte
	Scopes    string
	CreatedBy string
	CreatedAt int64 `gorm:"autoCreateTime:false"`
	RevokedAt *int64
}

func (apiKeyRow) TableName() string { return "api_keys" }

func (r *apiKeyRow) domain() *APIKey {
	k := &APIKey{TenantID: r.TenantID, ID: r.ID, Name: r.Name, Prefix: r.Prefix,
		Scopes: strings.Fields(r.Scopes), CreatedBy: r.CreatedBy, CreatedAt: ms(r.CreatedAt)}
	if r.RevokedAt != nil {
		t := ms(*r.RevokedAt)
		k.RevokedAt = &t
	}
	return k
}

type auditRow struct {
	TenantID   string `gorm:"primaryKey"`
	ID         string `gorm:"primaryKey"`
	At         int64
	Actor      string
	Action     string
	ObjectType string
	ObjectID   string
	BeforeJSON *string
	AfterJSON  *string
}

func (auditRow) TableName() string { return "audit_log" }

func (r *auditRow) domain() *AuditEntry {
	e := &AuditEntry{TenantID: r.TenantID, ID: r.ID, At: ms(r.At), Actor: r.Actor, Action: r.Action,
		ObjectType: r.ObjectType, ObjectID: r.ObjectID}
	if r.BeforeJSON != nil {
		e.Before = json.RawMessage(*r.BeforeJSON)
	}
	if r.AfterJSON != nil {
		e.After = json.RawMessage(*r.AfterJSON)
	}
	return e
}

func ms(v int64) time.Time { return time.UnixMilli(v).UTC() }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
