package ciam

import (
	"encoding/json"
	"time"
)

type issuerRow struct {
	TenantID            string `gorm:"primaryKey"`
	ID                  string `gorm:"primaryKey"`
	Name                string
	Issuer              string
	Audiences           string
	JWKSURL             string `gorm:"column:jwks_url"`
	Algorithms          string
	ClockSkewSeconds    int
	TrustedForEmail     bool
	WebhookSecret       []byte
	WebhookSecretKID    string `gorm:"column:webhook_secret_kid"`
	WebhookSecretPrefix string
	CreatedAt           int64 `gorm:"autoCreateTime:false"`
	UpdatedAt           int64 `gorm:"autoUpdateTime:false"`
}

func (issuerRow) TableName() string { return "ciam_issuers" }

func (r *issuerRow) domain() *Issuer {
	i := &Issuer{TenantID: r.TenantID, ID: r.ID, Name: r.Name, Issuer: r.Issuer, JWKSURL: r.JWKSURL,
		ClockSkewSeconds: r.ClockSkewSeconds, TrustedForEmail: r.TrustedForEmail, WebhookSecretPrefix: r.WebhookSecretPrefix,
		CreatedAt: time.UnixMilli(r.CreatedAt).UTC(), UpdatedAt: time.UnixMilli(r.UpdatedAt).UTC()}
	_ = json.Unmarshal([]byte(r.Audiences), &i.Audiences)
	_ = json.Unmarshal([]byte(r.Algorithms), &i.Algorithms)
	if i.Audiences == nil {
		i.Audiences = []string{}
	}
	if i.Algorithms == nil {
		i.Algorithms = []string{}
	}
	return i
}

func issuerToRow(i *Issuer, secret []byte, kid string) *issuerRow {
	aud, _ := json.Marshal(i.Audiences)
	algs, _ := json.Marshal(i.Algorithms)
	return &issuerRow{TenantID: i.TenantID, ID: i.ID, Name: i.Name, Issuer: i.Issuer, Audiences: string(aud), JWKSURL: i.JWKSURL,
		Algorithms: string(algs), ClockSkewSeconds: i.ClockSkewSeconds, TrustedForEmail: i.TrustedForEmail,
		WebhookSecret: secret, WebhookSecretKID: kid, WebhookSecretPrefix: i.WebhookSecretPrefix,
		CreatedAt: i.CreatedAt.UnixMilli(), UpdatedAt: i.UpdatedAt.UnixMilli()}
}
