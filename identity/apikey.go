package identity

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
)

// API key scopes.
const (
	ScopeAdmin        = "admin"
	ScopeConsentRead  = "consent:read"
	ScopeConsentWrite = "consent:write"
)

// Scopes lists every scope.
var Scopes = []string{ScopeAdmin, ScopeConsentRead, ScopeConsentWrite}

// APIKey is a tenant's server credential. Its secret (sk_…) is shown once at creation and
// stored only as a hash.
type APIKey struct {
	TenantID  string     `json:"tenant_id"`
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	Scopes    []string   `json:"scopes"`
	CreatedBy string     `json:"created_by"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Allows reports whether the key grants scope. admin grants everything.
func (k *APIKey) Allows(scope string) bool {
	return slices.Contains(k.Scopes, ScopeAdmin) || slices.Contains(k.Scopes, scope) ||
		(scope == ScopeConsentRead && slices.Contains(k.Scopes, ScopeConsentWrite))
}

// ValidateAPIKey checks the name and scopes of a new key.
func ValidateAPIKey(name string, scopes []string) error {
	var v Validator
	v.Check(validLen(name, 1, 100), "name", "is required (at most 100 characters)")
	v.Check(len(scopes) > 0, "scopes", "at least one of admin, consent:read, consent:write")
	for _, sc := range scopes {
		if !slices.Contains(Scopes, sc) {
			v.Check(false, "scopes", "unknown scope "+sc+"; use admin, consent:read or consent:write")
			break
		}
	}
	return v.Err()
}

func hashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

func (s *Service) createAPIKey(tx *gorm.DB, tenantID, name string, scopes []string, actor Actor, now time.Time) (*APIKey, string, error) {
	if err := ValidateAPIKey(name, scopes); err != nil {
		return nil, "", err
	}
	// The secret is 256 random bits, so a fast hash is enough: there is nothing to guess.
	secret := "sk_" + randomToken(32)
	row := apiKeyRow{TenantID: tenantID, ID: NewID(), Name: strings.TrimSpace(name), Prefix: secret[:10],
		KeyHash: hashSecret(secret), Scopes: strings.Join(scopes, " "), CreatedBy: string(actor),
		CreatedAt: now.UnixMilli()}
	if err := tx.Create(&row).Error; err != nil {
		return nil, "", err
	}
	k := row.domain()
	if err := WriteAudit(tx, tenantID, actor, "api_key.create", "api_key", k.ID, nil, k, now); err != nil {
		return nil, "", err
	}
	return k, secret, nil
}

// CreateAPIKey creates a key and returns it with its secret, which is never shown again.
func (s *Service) CreateAPIKey(ctx context.Context, tenantID, name string, scopes []string, actor Actor) (*APIKey, string, error) {
	var k *APIKey
	var secret string
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		k, secret, err = s.createAPIKey(tx, tenantID, name, scopes, actor, s.now())
		return err
	})
	return k, secret, err
}

// APIKeys lists the tenant's keys, revoked ones included.
func (s *Service) APIKeys(ctx context.Context, tenantID string) ([]*APIKey, error) {
	var rows []apiKeyRow
	if err := s.db.Read.WithContext(ctx).Where("tenant_id = ?", tenantID).Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]*APIKey, len(rows))
	for i := range rows {
		out[i] = rows[i].domain()
	}
	return out, nil
}

// RevokeAPIKey revokes a key. Revoking a revoked key changes nothing.
func (s *Service) RevokeAPIKey(ctx context.Context, tenantID, id string, actor Actor) (*APIKey, error) {
	var out *APIKey
	var hash []byte
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var r apiKeyRow
		if err := tx.Where("tenant_id = ? AND id = ?", tenantID, id).Take(&r).Error; err != nil {
			return notFoundOr(err, "api key")
		}
		hash = r.KeyHash
		if r.RevokedAt != nil {
			out = r.domain()
			return nil
		}
		before := r.domain()
		now := s.now()
		at := now.UnixMilli()
		r.RevokedAt = &at
		if err := tx.Model(&apiKeyRow{}).Where("tenant_id = ? AND id = ?", tenantID, id).
			Update("revoked_at", at).Error; err != nil {
			return err
		}
		out = r.domain()
		return WriteAudit(tx, tenantID, actor, "api_key.revoke", "api_key", id, before, out, now)
	})
	if err == nil {
		s.mu.Lock()
		delete(s.apiKeys, string(hash))
		s.mu.Unlock()
	}
	return out, err
}

// Authenticate returns the active key whose secret this is, or EUnauthorized.
func (s *Service) Authenticate(ctx context.Context, secret string) (*APIKey, error) {
	if !strings.HasPrefix(secret, "sk_") || len(secret) > 100 {
		return nil, Errorf(EUnauthorized, "invalid API key")
	}
	hash := hashSecret(secret)
	now := s.now()
	s.mu.Lock()
	c, ok := s.apiKeys[string(hash)]
	s.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.value, c.err
	}
	var rows []apiKeyRow
	if err := s.db.Read.WithContext(ctx).Where("key_hash = ?", hash).Limit(1).Find(&rows).Error; err != nil {
		return nil, err
	}
	var key *APIKey
	var err error
	if len(rows) == 1 && subtle.ConstantTimeCompare(rows[0].KeyHash, hash) == 1 && rows[0].RevokedAt == nil {
		key = rows[0].domain()
	} else {
		err = Errorf(EUnauthorized, "invalid API key")
	}
	s.mu.Lock()
	if len(s.apiKeys) > 100_000 {
		clear(s.apiKeys)
	}
	s.apiKeys[string(hash)] = cached[*APIKey]{value: key, err: err, expires: now.Add(s.cacheTTL)}
	s.mu.Unlock()
	return key, err
}
