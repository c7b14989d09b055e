// Package ciam connects Lupa to a tenant's own customer identity and access management
// (CIAM): the issuers whose access tokens apps send to the collection API
// (Authorization: Bearer), the verification of those tokens against the issuer's keys, and
// the identity events (user created, updated, deleted) the CIAM sends, signed as Standard
// Webhooks. The company's CIAM stays the identity source; Lupa keeps the consent.
package ciam

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/safehttp"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// Algorithms lists the signature algorithms an issuer may be allowed: asymmetric only.
// "none" and the HMAC algorithms (HS256 …) are never accepted: a shared secret would let
// anyone holding it — the issuer's every client — mint tokens, and "none" signs nothing.
var Algorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// DefaultAlgorithms are allowed when an issuer names none.
var DefaultAlgorithms = []string{"RS256", "ES256"}

// Defaults and bounds of an issuer's settings.
const (
	DefaultClockSkew = 60  // seconds
	MaxClockSkew     = 300 // seconds
	maxAudiences     = 10
)

// Issuer is an identity provider a tenant trusts: the company's CIAM (Keycloak, Auth0,
// Entra ID, Ory, Zitadel …).
type Issuer struct {
	TenantID string `json:"tenant_id"`
	ID       string `json:"id"`
	Name     string `json:"name"`
	// Issuer is the `iss` of its tokens, exactly (an https URL).
	Issuer string `json:"issuer"`
	// Audiences: a token's `aud` must contain one of them.
	Audiences []string `json:"audiences"`
	// JWKSURL is where its signing keys are; empty means OIDC discovery
	// (Issuer + /.well-known/openid-configuration → jwks_uri).
	JWKSURL          string   `json:"jwks_url"`
	Algorithms       []string `json:"algorithms"`
	ClockSkewSeconds int      `json:"clock_skew_seconds"`
	// TrustedForEmail says the issuer verifies email addresses well enough that a sign-in
	// whose token says email_verified may link to an existing account with that address.
	TrustedForEmail bool `json:"trusted_for_email"`
	// WebhookSecretPrefix is the start of the identity events' signing secret, to tell
	// secrets apart; the secret itself is shown once.
	WebhookSecretPrefix string    `json:"webhook_secret_prefix"`
	CreatedAt           time.Time `json:"created_at"`
	UpdatedAt           time.Time `json:"updated_at"`
}

// ValidURL reports whether s is an issuer or key URL Lupa accepts: https, no query or
// fragment, at most 255 characters; plain http only on localhost or 127.0.0.1 (development
// and tests — the outbound client still refuses loopback unless private addresses are
// allowed).
func ValidURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || len(s) > 255 || strings.TrimSpace(s) != s {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		h := u.Hostname()
		return h == "localhost" || h == "127.0.0.1"
	}
	return false
}

// sameIssuer is an issuer URL reduced to what tells issuers apart: scheme and host in lower
// case, without the default port, and the path without its trailing slashes. Tokens name
// their issuer exactly (iss is compared as a string), but https://id.example/ and
// https://id.example are one identity provider: a tenant has at most one issuer of each
// such URL, so that the people it names have one namespace.
func sameIssuer(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	switch {
	case scheme == "https" && strings.HasSuffix(host, ":443"):
		host = strings.TrimSuffix(host, ":443")
	case scheme == "http" && strings.HasSuffix(host, ":80"):
		host = strings.TrimSuffix(host, ":80")
	}
	return scheme + "://" + host + strings.TrimRight(u.EscapedPath(), "/")
}

// checkSameIssuer refuses, in tx, an issuer URL that another issuer of the tenant has
// already, or has written another way (sameIssuer). It locks the tenant's row first, so
// two concurrent creations cannot both pass.
func (s *Service) checkSameIssuer(tx *gorm.DB, tenantID, id, issuer string) error {
	var locked []string
	if err := tx.Raw("SELECT id FROM tenants WHERE id = ?"+s.db.ForUpdate(), tenantID).Scan(&locked).Error; err != nil {
		return err
	}
	var others []struct{ ID, Issuer string }
	if err := tx.Raw("SELECT id, issuer FROM ciam_issuers WHERE tenant_id = ? AND id <> ?", tenantID, id).Scan(&others).Error; err != nil {
		return err
	}
	for _, o := range others {
		switch {
		case o.Issuer == issuer:
			return errIssuerConfigured()
		case sameIssuer(o.Issuer) == sameIssuer(issuer):
			return identity.Unprocessable("issuer", "another issuer of this tenant is the same URL written another way ("+o.Issuer+
				"): the people an issuer names are kept under its exact URL, so configure each issuer once, with the iss of its tokens")
		}
	}
	return nil
}

func errIssuerConfigured() error {
	return &identity.Error{Code: identity.EConflict, Message: "this issuer is configured already",
		Fields: []identity.FieldError{{Field: "issuer", Message: "is configured already"}}}
}

func printable(s string, max int) bool {
	if s == "" || len(s) > max || strings.TrimSpace(s) != s {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// Validate checks the issuer's invariants. Each rule reads one field, so that the fields a
// patch sends can be checked without the stored issuer (identityweb's DomainCheck).
func (i *Issuer) Validate() error {
	var v identity.Validator
	n := len([]rune(strings.TrimSpace(i.Name)))
	v.Check(n >= 1 && n <= 200, "name", "is required (at most 200 characters)")
	v.Check(ValidURL(i.Issuer), "issuer", "the iss of its tokens: an https URL of at most 255 characters, without query or fragment")
	v.Check(len(i.Audiences) >= 1 && len(i.Audiences) <= maxAudiences, "audiences", "1 to 10 audiences; a token's aud must contain one")
	for _, a := range i.Audiences {
		if !printable(a, 255) {
			v.Check(false, "audiences", "each audience is 1–255 printable characters")
			break
		}
	}
	v.Check(i.JWKSURL == "" || ValidURL(i.JWKSURL), "jwks_url", "an https URL of at most 255 characters, or empty for OIDC discovery")
	v.Check(len(i.Algorithms) >= 1, "algorithms", "at least one of "+strings.Join(Algorithms, ", "))
	for _, a := range i.Algorithms {
		if !slices.Contains(Algorithms, a) {
			v.Check(false, "algorithms", "each must be one of "+strings.Join(Algorithms, ", ")+" (never none or HS*)")
			break
		}
	}
	v.Check(i.ClockSkewSeconds >= 0 && i.ClockSkewSeconds <= MaxClockSkew, "clock_skew_seconds", "between 0 and 300")
	return v.Err()
}

// Withdrawer withdraws every consent a person has given, as one system interaction; the
// consent service fills it (identity cannot import consent).
type Withdrawer interface {
	WithdrawAll(ctx context.Context, tenantID string, id identity.Identifier, method, reason string) (int, error)
}

// Merger joins the person a CIAM merged away into the one that remains (user.merged); the
// consent service fills it, writing the merge to the ledger.
type Merger interface {
	MergePersons(ctx context.Context, tenantID string, merged, survivor identity.Identifier) (subject string, err error)
}

// Options shape the service; zero values take the defaults.
type Options struct {
	// Client fetches discovery documents and keys: a safehttp client (by default one that
	// refuses internal addresses).
	Client *http.Client
	// KeysTTL is how long fetched keys are used before they are fetched again (10 min).
	KeysTTL time.Duration
	// MinRefresh is the least time between two fetches of one tenant's issuer's keys,
	// however many tokens name a key Lupa does not know (30 s).
	MinRefresh time.Duration
	// KeyWait is the longest a request waits for a fetch of keys (3 s); the fetch itself goes
	// on, up to 15 s, for the requests after it.
	KeyWait    time.Duration
	Withdrawer Withdrawer
	Merger     Merger
	Log        *slog.Logger
}

// Service keeps the tenants' issuers, verifies their tokens and applies their events.
type Service struct {
	db   *sqldb.DB
	ids  *identity.Service
	keys *keyring.Keyring
	now  func() time.Time
	log  *slog.Logger
	wd   Withdrawer
	mg   Merger
	jwks *keyCache

	mu       sync.Mutex
	byTenant map[string]cachedIssuers
}

type cachedIssuers struct {
	list    []*Issuer
	expires time.Time
}

// issuerCacheTTL bounds how long another instance's change takes to reach this one.
const issuerCacheTTL = 5 * time.Second

// New returns the CIAM service.
func New(db *sqldb.DB, ids *identity.Service, keys *keyring.Keyring, now func() time.Time, opt Options) *Service {
	if opt.Client == nil {
		opt.Client = safehttp.New(safehttp.Options{})
	}
	if opt.KeysTTL <= 0 {
		opt.KeysTTL = 10 * time.Minute
	}
	if opt.MinRefresh <= 0 {
		opt.MinRefresh = 30 * time.Second
	}
	if opt.KeyWait <= 0 {
		opt.KeyWait = 3 * time.Second
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	// Whatever client is given, a redirect from https to plain http is refused: a key set or
	// discovery document fetched over plain http could be swapped on the way, and whoever
	// swaps it mints tokens.
	client := *opt.Client
	client.CheckRedirect = safehttp.CheckRedirect
	return &Service{db: db, ids: ids, keys: keys, now: now, log: opt.Log, wd: opt.Withdrawer, mg: opt.Merger,
		jwks: &keyCache{client: &client, now: now, ttl: opt.KeysTTL, minRefresh: opt.MinRefresh, wait: opt.KeyWait,
			log: opt.Log, entries: map[string]*jwksEntry{}},
		byTenant: map[string]cachedIssuers{}}
}

// SetWithdrawer sets what withdraws a deleted person's consents (wired after both services
// exist).
func (s *Service) SetWithdrawer(w Withdrawer) { s.wd = w }

// newSecret returns a Standard Webhooks secret: whsec_ and 32 random bytes in base64; the
// HMAC key is the decoded bytes.
func newSecret() (string, []byte) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(key), key
}

func secretAAD(tenantID, id string) []byte {
	return []byte("ciam_webhook_secret|" + tenantID + "|" + id)
}

// IssuerInput creates an issuer; empty fields take their defaults.
type IssuerInput struct {
	Name, Issuer, JWKSURL string
	Audiences, Algorithms []string
	ClockSkewSeconds      *int
	TrustedForEmail       bool
}

func normalizeList(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// issuer is the issuer in makes, its defaults filled in, as Create stores it.
func (in IssuerInput) issuer(tenantID, id string, now time.Time) *Issuer {
	i := &Issuer{TenantID: tenantID, ID: id, Name: strings.TrimSpace(in.Name), Issuer: strings.TrimSpace(in.Issuer),
		Audiences: normalizeList(in.Audiences), JWKSURL: strings.TrimSpace(in.JWKSURL), Algorithms: normalizeList(in.Algorithms),
		ClockSkewSeconds: DefaultClockSkew, TrustedForEmail: in.TrustedForEmail, CreatedAt: now, UpdatedAt: now}
	if len(i.Algorithms) == 0 {
		i.Algorithms = slices.Clone(DefaultAlgorithms)
	}
	if in.ClockSkewSeconds != nil {
		i.ClockSkewSeconds = *in.ClockSkewSeconds
	}
	return i
}

// Validate checks the issuer in makes, as Create does before it asks the database.
func (in IssuerInput) Validate() error { return in.issuer("", "", time.Time{}).Validate() }

// Create adds an issuer with a new webhook secret, which it returns this once.
func (s *Service) Create(ctx context.Context, tenantID string, in IssuerInput, actor identity.Actor) (*Issuer, string, error) {
	now := s.now()
	i := in.issuer(tenantID, identity.NewID(), now)
	if err := i.Validate(); err != nil {
		return nil, "", err
	}
	secret, key := newSecret()
	kid, ct, err := s.keys.Encrypt(key, secretAAD(tenantID, i.ID))
	if err != nil {
		return nil, "", err
	}
	i.WebhookSecretPrefix = secret[:10]
	err = s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := s.checkSameIssuer(tx, tenantID, i.ID, i.Issuer); err != nil {
			return err
		}
		if err := tx.Create(issuerToRow(i, ct, kid)).Error; err != nil {
			if sqldb.IsUniqueViolation(err) {
				return errIssuerConfigured()
			}
			return err
		}
		return identity.WriteAudit(tx, tenantID, actor, "ciam_issuer.create", "ciam_issuer", i.ID, nil, i, now)
	})
	if err != nil {
		return nil, "", err
	}
	s.invalidate(tenantID)
	return i, secret, nil
}

// List returns the tenant's issuers.
func (s *Service) List(ctx context.Context, tenantID string) ([]*Issuer, error) {
	var rows []issuerRow
	if err := s.db.Read.WithContext(ctx).Where("tenant_id = ?", tenantID).Order("name, id").Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]*Issuer, len(rows))
	for i := range rows {
		out[i] = rows[i].domain()
	}
	return out, nil
}

// Get returns one of the tenant's issuers.
func (s *Service) Get(ctx context.Context, tenantID, id string) (*Issuer, error) {
	var rows []issuerRow
	if err := s.db.Read.WithContext(ctx).Where("tenant_id = ? AND id = ?", tenantID, id).Limit(1).Find(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, identity.NotFound("CIAM issuer")
	}
	return rows[0].domain(), nil
}

// IssuerPatch changes some of an issuer's settings; nil fields stay.
type IssuerPatch struct {
	Name, Issuer, JWKSURL *string
	Audiences, Algorithms *[]string
	ClockSkewSeconds      *int
	TrustedForEmail       *bool
	// RotateWebhookSecret replaces the webhook secret at once; the new one is returned.
	RotateWebhookSecret bool
}

// Apply sets the fields the patch has on i (RotateWebhookSecret is Update's to do).
func (p IssuerPatch) Apply(i *Issuer) {
	identity.PatchString(&i.Name, p.Name)
	identity.PatchString(&i.Issuer, p.Issuer)
	identity.PatchString(&i.JWKSURL, p.JWKSURL)
	if p.Audiences != nil {
		i.Audiences = normalizeList(*p.Audiences)
	}
	if p.Algorithms != nil {
		i.Algorithms = normalizeList(*p.Algorithms)
	}
	if p.ClockSkewSeconds != nil {
		i.ClockSkewSeconds = *p.ClockSkewSeconds
	}
	if p.TrustedForEmail != nil {
		i.TrustedForEmail = *p.TrustedForEmail
	}
}

// Update applies a patch; with RotateWebhookSecret it also returns the new secret, once.
func (s *Service) Update(ctx context.Context, tenantID, id string, p IssuerPatch, actor identity.Actor) (*Issuer, string, error) {
	var out *Issuer
	var secret string
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var r issuerRow
		if err := tx.Where("tenant_id = ? AND id = ?", tenantID, id).Take(&r).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return identity.NotFound("CIAM issuer")
			}
			return err
		}
		before := r.domain()
		i := *before
		p.Apply(&i)
		if err := i.Validate(); err != nil {
			return err
		}
		if i.Issuer != before.Issuer {
			if err := s.checkSameIssuer(tx, tenantID, id, i.Issuer); err != nil {
				return err
			}
		}
		i.UpdatedAt = s.now()
		ct, kid := r.WebhookSecret, r.WebhookSecretKID
		if p.RotateWebhookSecret {
			var key []byte
			secret, key = newSecret()
			var err error
			if kid, ct, err = s.keys.Encrypt(key, secretAAD(tenantID, id)); err != nil {
				return err
			}
			i.WebhookSecretPrefix = secret[:10]
		}
		if err := tx.Save(issuerToRow(&i, ct, kid)).Error; err != nil {
			if sqldb.IsUniqueViolation(err) {
				return errIssuerConfigured()
			}
			return err
		}
		out = &i
		return identity.WriteAudit(tx, tenantID, actor, "ciam_issuer.update", "ciam_issuer", id, before, &i, i.UpdatedAt)
	})
	if err != nil {
		return nil, "", err
	}
	s.invalidate(tenantID)
	return out, secret, nil
}

// Delete removes an issuer: its tokens and events are refused from then on (within seconds
// on other instances). The people it named stay, with their identifiers and consents.
func (s *Service) Delete(ctx context.Context, tenantID, id string, actor identity.Actor) error {
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var r issuerRow
		if err := tx.Where("tenant_id = ? AND id = ?", tenantID, id).Take(&r).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return identity.NotFound("CIAM issuer")
			}
			return err
		}
		if err := tx.Exec("DELETE FROM ciam_webhook_ids WHERE tenant_id = ? AND issuer_id = ?", tenantID, id).Error; err != nil {
			return err
		}
		if err := tx.Exec("DELETE FROM ciam_issuers WHERE tenant_id = ? AND id = ?", tenantID, id).Error; err != nil {
			return err
		}
		return identity.WriteAudit(tx, tenantID, actor, "ciam_issuer.delete", "ciam_issuer", id, r.domain(), nil, s.now())
	})
	if err == nil {
		s.invalidate(tenantID)
	}
	return err
}

func (s *Service) invalidate(tenantID string) {
	s.mu.Lock()
	delete(s.byTenant, tenantID)
	s.mu.Unlock()
}

// issuers returns the tenant's issuers, cached for a few seconds: every bearer request
// needs them.
func (s *Service) issuers(ctx context.Context, tenantID string) ([]*Issuer, error) {
	now := s.now()
	s.mu.Lock()
	c, ok := s.byTenant[tenantID]
	s.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.list, nil
	}
	list, err := s.List(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if len(s.byTenant) > 10_000 {
		clear(s.byTenant)
	}
	s.byTenant[tenantID] = cachedIssuers{list: list, expires: now.Add(issuerCacheTTL)}
	s.mu.Unlock()
	return list, nil
}
