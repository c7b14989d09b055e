// Package login lets customers sign in to their Lupa account through an identity provider
// the tenant configures: any OpenID Connect provider (Keycloak, Auth0, Entra ID, Google,
// Ory, Zitadel …) by the authorization code flow with PKCE, or Facebook by OAuth 2.0 and
// the Graph API. It keeps the providers (admin objects, their secrets encrypted), runs the
// flows (state, nonce and PKCE verifier kept server-side, bound to the browser by a cookie,
// each usable once) and hands the identity it verified to the accounts service, which
// decides whose account it is (see accounts.SignInExternal for the linking rule).
package login

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"gorm.io/gorm"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/accounts"
	"github.com/lupa-cmp/lupa/identity/keyring"
	"github.com/lupa-cmp/lupa/identity/safehttp"
	"github.com/lupa-cmp/lupa/identity/sqldb"
)

// Kinds of login provider.
const (
	KindOIDC     = "oidc"
	KindFacebook = "facebook"
)

// FacebookIssuer is the namespace of Facebook identities: (https://www.facebook.com, id).
const FacebookIssuer = "https://www.facebook.com"

// Production Facebook endpoints; Options can point them elsewhere (a newer Graph API
// version, or a test server).
const (
	FacebookDialogURL = "https://www.facebook.com/v19.0/dialog/oauth"
	FacebookGraphURL  = "https://graph.facebook.com/v19.0"
)

// Token endpoint authentication of an OIDC provider's client.
const (
	AuthAuto  = "auto"                // try HTTP Basic, then the form (and remember which worked)
	AuthBasic = "client_secret_basic" // HTTP Basic
	AuthPost  = "client_secret_post"  // client_id and client_secret in the form
)

// Languages a button label may be given in.
var Languages = []string{"fi", "sv", "en"}

// DefaultScopes are asked when a provider names none.
var DefaultScopes = map[string][]string{
	KindOIDC:     {"openid", "email", "profile"},
	KindFacebook: {"public_profile", "email"},
}

// Provider is a login provider of a tenant: a button on the sign-in and registration
// pages. Its client secret is never shown.
type Provider struct {
	TenantID string `json:"tenant_id"`
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	// Label names the provider on its button ("Continue with <Label>"); Labels, by
	// language, replace it in that language.
	Label  string            `json:"label"`
	Labels map[string]string `json:"labels"`
	// Issuer is the OpenID Connect issuer (discovery at Issuer +
	// /.well-known/openid-configuration, and the `iss` of its ID tokens); for Facebook
	// always https://www.facebook.com. It is the namespace of the identities it vouches for.
	Issuer   string   `json:"issuer"`
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes"`
	// TrustedForEmail lets a sign-in whose ID token says email_verified enter an existing
	// account with that address. Never for Facebook, which does not say.
	TrustedForEmail bool   `json:"trusted_for_email"`
	TokenAuthMethod string `json:"token_auth_method"`
	// RedirectURI is the callback to register at the provider.
	RedirectURI string    `json:"redirect_uri"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// LabelIn is the provider's name in a language.
func (p *Provider) LabelIn(lang string) string {
	if l := p.Labels[lang]; l != "" {
		return l
	}
	return p.Label
}

// ValidURL reports whether s is an issuer URL Lupa accepts: https, no query, fragment or
// credentials, at most 255 characters; plain http only on localhost or 127.0.0.1
// (development and tests — the outbound client still refuses loopback unless private
// addresses are allowed).
func ValidURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || len(s) > 255 || strings.TrimSpace(s) != s {
		return false
	}
	return webScheme(u)
}

func webScheme(u *url.URL) bool {
	switch u.Scheme {
	case "https":
		return true
	case "http":
		h := u.Hostname()
		return h == "localhost" || h == "127.0.0.1"
	}
	return false
}

func printable(s string, max int) bool {
	if s == "" || len([]rune(s)) > max || strings.TrimSpace(s) != s {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// scopeRe is an OAuth scope token (RFC 6749 §3.3).
var scopeRe = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]{1,100}$`)

// Validate checks the provider's invariants. Each rule reads one field, but the kind's
// rules (of the issuer, the scopes and the token endpoint's authentication), which wait for
// a valid kind: so the fields a patch sends (never the kind) can be checked without the
// stored provider (identityweb's DomainCheck).
func (p *Provider) Validate() error {
	var v identity.Validator
	p.check(&v)
	return v.Err()
}

func (p *Provider) check(v *identity.Validator) {
	v.Check(p.Kind == KindOIDC || p.Kind == KindFacebook, "kind", "must be oidc or facebook")
	v.Check(printable(p.Label, 60), "label", "is required: 1–60 printable characters")
	for lang, l := range p.Labels {
		if !slices.Contains(Languages, lang) {
			v.Check(false, "labels", "languages are fi, sv and en")
			break
		}
		if !printable(l, 60) {
			v.Check(false, "labels["+lang+"]", "1–60 printable characters")
		}
	}
	v.Check(printable(p.ClientID, 255), "client_id", "is required: 1–255 printable characters")
	v.Check(len(p.Scopes) >= 1 && len(p.Scopes) <= 20, "scopes", "1 to 20 scopes")
	for _, s := range p.Scopes {
		if !scopeRe.MatchString(s) {
			v.Check(false, "scopes", "each scope is 1–100 characters without spaces, quotes or backslashes")
			break
		}
	}
	switch p.Kind {
	case KindOIDC:
		v.Check(ValidURL(p.Issuer), "issuer", "an https URL of at most 255 characters, without query or fragment")
		v.Check(slices.Contains(p.Scopes, "openid"), "scopes", "must include openid")
		v.Check(slices.Contains([]string{AuthAuto, AuthBasic, AuthPost}, p.TokenAuthMethod), "token_auth_method",
			"must be auto, client_secret_basic or client_secret_post")
	case KindFacebook:
		v.Check(p.Issuer == FacebookIssuer, "issuer", "is always "+FacebookIssuer+" for Facebook: leave it out")
		v.Check(!p.TrustedForEmail, "trusted_for_email", "Facebook does not say whether an address is verified: it cannot be trusted for email")
		v.Check(p.TokenAuthMethod == AuthAuto, "token_auth_method", "only for OpenID Connect providers")
	}
}

// Options shape the service; zero values take the defaults.
type Options struct {
	// Client makes every request to the providers (discovery, keys, tokens, the Graph
	// API): a safehttp client (by default one that refuses internal addresses).
	Client *http.Client
	// PublicURL is Lupa's own origin, the base of the callback URL.
	PublicURL string
	// FacebookDialogURL and FacebookGraphURL default to the production endpoints.
	FacebookDialogURL, FacebookGraphURL string
	// DiscoveryTTL is how long a provider's discovery document is used (1 hour).
	DiscoveryTTL time.Duration
	Log          *slog.Logger
}

// Service keeps the tenants' login providers and runs their flows.
type Service struct {
	db   *sqldb.DB
	ids  *identity.Service
	keys *keyring.Keyring
	acc  *accounts.Service
	now  func() time.Time
	opt  Options
	log  *slog.Logger

	mu        sync.Mutex
	discovery map[string]*discovered
	failed    map[string]time.Time // discovery that failed, until when the pages skip it
}

// New returns the login service.
func New(db *sqldb.DB, ids *identity.Service, keys *keyring.Keyring, acc *accounts.Service, now func() time.Time, opt Options) *Service {
	if opt.Client == nil {
		opt.Client = safehttp.New(safehttp.Options{})
	}
	if opt.FacebookDialogURL == "" {
		opt.FacebookDialogURL = FacebookDialogURL
	}
	if opt.FacebookGraphURL == "" {
		opt.FacebookGraphURL = FacebookGraphURL
	}
	opt.FacebookGraphURL = strings.TrimSuffix(opt.FacebookGraphURL, "/")
	opt.PublicURL = strings.TrimSuffix(opt.PublicURL, "/")
	if opt.DiscoveryTTL <= 0 {
		opt.DiscoveryTTL = time.Hour
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{db: db, ids: ids, keys: keys, acc: acc, now: now, opt: opt, log: opt.Log, discovery: map[string]*discovered{},
		failed: map[string]time.Time{}}
}

func secretAAD(tenantID, id string) []byte {
	return []byte("login_provider_secret|" + tenantID + "|" + id)
}

// redirectURI is the callback of a provider: the URL registered at the provider.
func (s *Service) redirectURI(slug, providerID string) string {
	return s.opt.PublicURL + "/t/" + url.PathEscape(slug) + "/login/" + url.PathEscape(providerID) + "/callback"
}

// ProviderInput creates a provider; empty fields take their defaults.
type ProviderInput struct {
	Kind, Label, Issuer, ClientID, ClientSecret, TokenAuthMethod string
	Labels                                                       map[string]string
	Scopes                                                       []string
	TrustedForEmail                                              bool
}

func normalizeScopes(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func trimLabels(in map[string]string) map[string]string {
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = strings.TrimSpace(v)
	}
	return out
}

func checkSecret(v *identity.Validator, secret string) {
	v.Check(printable(secret, 1024), "client_secret", "is required: 1–1024 printable characters")
}

// provider is the provider in makes, its defaults filled in, as Create stores it.
func (in ProviderInput) provider(tenantID, id string, now time.Time) *Provider {
	p := &Provider{TenantID: tenantID, ID: id, Kind: in.Kind, Label: strings.TrimSpace(in.Label),
		Labels: trimLabels(in.Labels), Issuer: strings.TrimSpace(in.Issuer), ClientID: strings.TrimSpace(in.ClientID),
		Scopes: normalizeScopes(in.Scopes), TrustedForEmail: in.TrustedForEmail, TokenAuthMethod: in.TokenAuthMethod,
		CreatedAt: now, UpdatedAt: now}
	if p.Kind == KindFacebook && p.Issuer == "" {
		p.Issuer = FacebookIssuer
	}
	if len(p.Scopes) == 0 {
		p.Scopes = slices.Clone(DefaultScopes[p.Kind])
	}
	if p.TokenAuthMethod == "" {
		p.TokenAuthMethod = AuthAuto
	}
	return p
}

// Validate checks the provider in makes and its client secret, as Create does before it
// asks the database.
func (in ProviderInput) Validate() error { return in.validate(in.provider("", "", time.Time{})) }

func (in ProviderInput) validate(p *Provider) error {
	var v identity.Validator
	p.check(&v)
	checkSecret(&v, in.ClientSecret)
	return v.Err()
}

var errDuplicate = &identity.Error{Code: identity.EConflict, Message: "a login provider with this issuer is configured already",
	Fields: []identity.FieldError{{Field: "issuer", Message: "is configured already"}}}

// Create adds a login provider. Its client secret is stored encrypted and never shown.
func (s *Service) Create(ctx context.Context, tenant *identity.Tenant, in ProviderInput, actor identity.Actor) (*Provider, error) {
	now := s.now()
	p := in.provider(tenant.ID, identity.NewID(), now)
	if err := in.validate(p); err != nil {
		return nil, err
	}
	kid, ct, err := s.keys.Encrypt([]byte(in.ClientSecret), secretAAD(tenant.ID, p.ID))
	if err != nil {
		return nil, err
	}
	err = s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(providerToRow(p, ct, kid)).Error; err != nil {
			if sqldb.IsUniqueViolation(err) {
				return errDuplicate
			}
			return err
		}
		return identity.WriteAudit(tx, tenant.ID, actor, "login_provider.create", "login_provider", p.ID, nil, p, now)
	})
	if err != nil {
		return nil, err
	}
	p.RedirectURI = s.redirectURI(tenant.Slug, p.ID)
	return p, nil
}

// List returns the tenant's login providers in the order their buttons appear.
func (s *Service) List(ctx context.Context, tenant *identity.Tenant) ([]*Provider, error) {
	var rows []providerRow
	if err := s.db.Read.WithContext(ctx).Where("tenant_id = ?", tenant.ID).Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]*Provider, len(rows))
	for i := range rows {
		out[i] = rows[i].domain()
		out[i].RedirectURI = s.redirectURI(tenant.Slug, out[i].ID)
	}
	return out, nil
}

func (s *Service) row(ctx context.Context, db *gorm.DB, tenantID, id string) (*providerRow, error) {
	var rows []providerRow
	if err := db.WithContext(ctx).Where("tenant_id = ? AND id = ?", tenantID, id).Limit(1).Find(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, identity.NotFound("login provider")
	}
	return &rows[0], nil
}

// Get returns one of the tenant's login providers.
func (s *Service) Get(ctx context.Context, tenant *identity.Tenant, id string) (*Provider, error) {
	r, err := s.row(ctx, s.db.Read, tenant.ID, id)
	if err != nil {
		return nil, err
	}
	p := r.domain()
	p.RedirectURI = s.redirectURI(tenant.Slug, p.ID)
	return p, nil
}

// ProviderPatch changes some of a provider's settings; nil fields stay. The kind never
// changes.
type ProviderPatch struct {
	Label, Issuer, ClientID, ClientSecret, TokenAuthMethod *string
	Labels                                                 *map[string]string
	Scopes                                                 *[]string
	TrustedForEmail                                        *bool
}

// Apply sets the fields the patch has on p; a new client secret is Update's to store.
func (patch ProviderPatch) Apply(p *Provider) {
	identity.PatchString(&p.Label, patch.Label)
	identity.PatchString(&p.Issuer, patch.Issuer)
	identity.PatchString(&p.ClientID, patch.ClientID)
	identity.PatchString(&p.TokenAuthMethod, patch.TokenAuthMethod)
	if patch.Labels != nil {
		p.Labels = trimLabels(*patch.Labels)
	}
	if patch.Scopes != nil {
		p.Scopes = normalizeScopes(*patch.Scopes)
	}
	if patch.TrustedForEmail != nil {
		p.TrustedForEmail = *patch.TrustedForEmail
	}
}

// Validate checks p, a provider the patch was applied to, and the new client secret the
// patch sends.
func (patch ProviderPatch) Validate(p *Provider) error {
	var v identity.Validator
	p.check(&v)
	if patch.ClientSecret != nil {
		checkSecret(&v, *patch.ClientSecret)
	}
	return v.Err()
}

// Update applies a patch; a new client secret replaces the old one at once.
func (s *Service) Update(ctx context.Context, tenant *identity.Tenant, id string, patch ProviderPatch, actor identity.Actor) (*Provider, error) {
	var out *Provider
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		r, err := s.row(ctx, tx, tenant.ID, id)
		if err != nil {
			return err
		}
		before := r.domain()
		p := *before
		patch.Apply(&p)
		if err := patch.Validate(&p); err != nil {
			return err
		}
		ct, kid := r.ClientSecret, r.ClientSecretKID
		if patch.ClientSecret != nil {
			if kid, ct, err = s.keys.Encrypt([]byte(*patch.ClientSecret), secretAAD(tenant.ID, id)); err != nil {
				return err
			}
		}
		p.UpdatedAt = s.now()
		if err := tx.Save(providerToRow(&p, ct, kid)).Error; err != nil {
			if sqldb.IsUniqueViolation(err) {
				return errDuplicate
			}
			return err
		}
		out = &p
		return identity.WriteAudit(tx, tenant.ID, actor, "login_provider.update", "login_provider", id, before, &p, p.UpdatedAt)
	})
	if err != nil {
		return nil, err
	}
	s.forget(tenant.ID, id)
	out.RedirectURI = s.redirectURI(tenant.Slug, out.ID)
	return out, nil
}

// Delete removes a provider: its button goes, flows under way with it fail. The people
// who signed in with it keep their accounts and its identities (another provider of the
// same issuer would find them again).
func (s *Service) Delete(ctx context.Context, tenant *identity.Tenant, id string, actor identity.Actor) error {
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		r, err := s.row(ctx, tx, tenant.ID, id)
		if err != nil {
			return err
		}
		if err := tx.Exec("DELETE FROM login_flows WHERE tenant_id = ? AND provider_id = ?", tenant.ID, id).Error; err != nil {
			return err
		}
		if err := tx.Exec("DELETE FROM login_providers WHERE tenant_id = ? AND id = ?", tenant.ID, id).Error; err != nil {
			return err
		}
		return identity.WriteAudit(tx, tenant.ID, actor, "login_provider.delete", "login_provider", id, r.domain(), nil, s.now())
	})
	if err == nil {
		s.forget(tenant.ID, id)
	}
	return err
}

// secret decrypts a provider's client secret.
func (s *Service) secret(ctx context.Context, r *providerRow) (string, error) {
	b, err := s.keys.Decrypt(ctx, r.ClientSecretKID, r.ClientSecret, secretAAD(r.TenantID, r.ID))
	if err != nil {
		return "", errors.Join(errors.New("login: decrypt the client secret"), err)
	}
	return string(b), nil
}
