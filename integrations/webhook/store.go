package webhook

import (
	"encoding/json"
	"time"
)

type endpointRow struct {
	TenantID          string `gorm:"primaryKey"`
	ID                string `gorm:"primaryKey"`
	URL               string `gorm:"column:url"`
	Description       string
	EventTypes        string
	Purposes          string
	RecipientKind     string
	RecipientID       string
	Status            string
	DisabledReason    string
	Secret            []byte
	SecretKID         string  `gorm:"column:secret_kid"`
	PreviousSecret    []byte  `gorm:"column:previous_secret"`
	PreviousSecretKID *string `gorm:"column:previous_secret_kid"`
	PreviousExpiresAt *int64  `gorm:"column:previous_expires_at"`
	CreatedAt         int64   `gorm:"autoCreateTime:false"`
	UpdatedAt         int64   `gorm:"autoUpdateTime:false"`
}

func (endpointRow) TableName() string { return "webhook_endpoints" }

func (r *endpointRow) domain() *Endpoint {
	e := &Endpoint{TenantID: r.TenantID, ID: r.ID, URL: r.URL, Description: r.Description, RecipientKind: r.RecipientKind,
		RecipientID: r.RecipientID, Status: r.Status, DisabledReason: r.DisabledReason,
		CreatedAt: time.UnixMilli(r.CreatedAt).UTC(), UpdatedAt: time.UnixMilli(r.UpdatedAt).UTC()}
	_ = json.Unmarshal([]byte(r.EventTypes), &e.EventTypes)
	_ = json.Unmarshal([]byte(r.Purposes), &e.Purposes)
	if e.EventTypes == nil {
		e.EventTypes = []string{}
	}
	if e.Purposes == nil {
		e.Purposes = []string{}
	}
	if r.PreviousExpiresAt != nil && r.PreviousSecret != nil {
		t := time.UnixMilli(*r.PreviousExpiresAt).UTC()
		e.PreviousSecretExpiresAt = &t
	}
	return e
}

func endpointToRow(e *Endpoint, secret []byte, kid string) *endpointRow {
	et, _ := json.Marshal(nonNil(e.EventTypes))
	ps, _ := json.Marshal(nonNil(e.Purposes))
	return &endpointRow{TenantID: e.TenantID, ID: e.ID, URL: e.URL, Description: e.Description, EventTypes: string(et),
		Purposes: string(ps), RecipientKind: e.RecipientKind, RecipientID: e.RecipientID, Status: e.Status,
		DisabledReason: e.DisabledReason, Secret: secret, SecretKID: kid,
		CreatedAt: e.CreatedAt.UnixMilli(), UpdatedAt: e.UpdatedAt.UnixMilli()}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
