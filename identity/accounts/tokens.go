package accounts

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Purposes of one-time email links.
const (
	LinkVerify = "verify" // confirms the address and signs in
	LinkSignIn = "signin" // signs in without a password
	LinkReset  = "reset"  // sets a new password
	// LinkEmailChange makes the address it was sent to the account's (email.go).
	LinkEmailChange = "email_change"
)

type tokenRow struct {
	TenantID  string `gorm:"primaryKey"`
	TokenHash []byte `gorm:"primaryKey"`
	Purpose   string
	AccountID string
	Data      string
	CreatedAt int64 `gorm:"autoCreateTime:false"`
	ExpiresAt int64
	UsedAt    *int64
}

func (tokenRow) TableName() string { return "email_tokens" }

// newToken returns 256 random bits, base64url.
func newToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// linkToken is what an email link carries: the tenant, so the token is found under the
// tenant's key, and the token itself (only its hash is stored).
func linkToken(tenantID, token string) string { return tenantID + "." + token }

// SplitToken parses a link or session token into the tenant and the secret part.
func SplitToken(s string) (tenantID, token string, ok bool) {
	tenantID, token, ok = strings.Cut(s, ".")
	if !ok || tenantID == "" || len(tenantID) > 64 || len(token) != 43 {
		return "", "", false
	}
	if _, err := base64.RawURLEncoding.DecodeString(token); err != nil {
		return "", "", false
	}
	return tenantID, token, true
}

// issue stores a new one-time link for the account in tx and returns its token. Earlier
// unused links of the same purpose stop working: only the newest email counts.
func (s *Service) issue(tx *gorm.DB, tenantID, accountID, purpose string, ttl time.Duration) (string, error) {
	return s.issueData(tx, tenantID, accountID, purpose, ttl, "{}")
}

// issueData is issue with data (JSON) kept with the token for whoever uses it.
func (s *Service) issueData(tx *gorm.DB, tenantID, accountID, purpose string, ttl time.Duration, data string) (string, error) {
	now := s.now()
	if err := tx.Model(&tokenRow{}).Where("tenant_id = ? AND account_id = ? AND purpose = ? AND used_at IS NULL",
		tenantID, accountID, purpose).Update("used_at", now.UnixMilli()).Error; err != nil {
		return "", err
	}
	token := newToken()
	err := tx.Create(&tokenRow{TenantID: tenantID, TokenHash: hashToken(token), Purpose: purpose, AccountID: accountID,
		Data: data, CreatedAt: now.UnixMilli(), ExpiresAt: now.Add(ttl).UnixMilli()}).Error
	return linkToken(tenantID, token), err
}

// CheckLink reports whether a one-time link would work now for its purpose (nil) or not
// (ErrLink), without using it. The pages ask before they show the button that uses a
// link, so that a dead link says so at once; the GET that asks must not use the link,
// since mail scanners fetch every link in a message.
func (s *Service) CheckLink(ctx context.Context, link, purpose string) error {
	tenantID, token, ok := SplitToken(link)
	if !ok {
		return ErrLink
	}
	var n int64
	err := s.db.Read.WithContext(ctx).Model(&tokenRow{}).
		Where("tenant_id = ? AND token_hash = ? AND purpose = ? AND used_at IS NULL AND expires_at > ?",
			tenantID, hashToken(token), purpose, s.now().UnixMilli()).Count(&n).Error
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrLink
	}
	return nil
}

// consume uses a one-time link in tx: it works once, before it expires, for its purpose.
func (s *Service) consume(ctx context.Context, tx *gorm.DB, link, purpose string) (*accountRow, error) {
	a, _, err := s.consumeToken(ctx, tx, link, purpose)
	return a, err
}

// consumeToken is consume that returns the token's row too, for its data.
func (s *Service) consumeToken(ctx context.Context, tx *gorm.DB, link, purpose string) (*accountRow, *tokenRow, error) {
	tenantID, token, ok := SplitToken(link)
	if !ok {
		return nil, nil, ErrLink
	}
	now := s.now().UnixMilli()
	res := tx.WithContext(ctx).Model(&tokenRow{}).
		Where("tenant_id = ? AND token_hash = ? AND purpose = ? AND used_at IS NULL AND expires_at > ?", tenantID, hashToken(token), purpose, now).
		Update("used_at", now)
	if res.Error != nil {
		return nil, nil, res.Error
	}
	if res.RowsAffected != 1 {
		return nil, nil, ErrLink
	}
	var t tokenRow
	if err := tx.Where("tenant_id = ? AND token_hash = ?", tenantID, hashToken(token)).Take(&t).Error; err != nil {
		return nil, nil, err
	}
	var a accountRow
	err := tx.Where("tenant_id = ? AND id = ? AND status = ?", tenantID, t.AccountID, "active").Take(&a).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil, ErrLink
	}
	return &a, &t, err
}
