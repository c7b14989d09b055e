package login

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/accounts"
)

// SigningAlgorithms are the ID token signatures accepted: asymmetric only, whatever the
// provider's discovery document offers. "none" and the HMAC algorithms never verify.
var SigningAlgorithms = []string{oidc.RS256, oidc.ES256}

// discovered is what a provider's discovery document said, and the verifier of its ID
// tokens (which fetches and caches the provider's keys).
type discovered struct {
	authURL, tokenURL string
	verifier          *oidc.IDTokenVerifier
	expires           time.Time
}

func discoveryKey(r *providerRow) string {
	return r.TenantID + "|" + r.ID + "|" + strconv.FormatInt(r.UpdatedAt, 10)
}

// forget drops what is cached of a changed or deleted provider.
func (s *Service) forget(tenantID, id string) {
	prefix := tenantID + "|" + id + "|"
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.discovery {
		if strings.HasPrefix(k, prefix) {
			delete(s.discovery, k)
		}
	}
	for k := range s.failed {
		if strings.HasPrefix(k, prefix) {
			delete(s.failed, k)
		}
	}
}

// Refusal is a sign-in that does not go through: a bad or replayed state, a token that
// does not verify, an identity that cannot sign in. Reason is for the log (it holds no
// personal data); people see one generic message.
type Refusal struct {
	Reason string
	Err    error
}

func (r *Refusal) Error() string {
	if r.Err != nil {
		return "sign-in refused: " + r.Reason + ": " + r.Err.Error()
	}
	return "sign-in refused: " + r.Reason
}

func (r *Refusal) Unwrap() error { return r.Err }

func refuse(reason string, err error) error { return &Refusal{Reason: reason, Err: err} }

// unavailable is a provider that cannot be reached or answers nonsense: try again later.
func unavailable(err error) error {
	return &identity.Error{Code: identity.EUnavailable, Message: "the identity provider cannot be reached", Err: err}
}

// discover returns the provider's endpoints and ID token verifier, from its discovery
// document (cached for DiscoveryTTL). The document's issuer must be the configured one.
func (s *Service) discover(ctx context.Context, r *providerRow) (*discovered, error) {
	key, now := discoveryKey(r), s.now()
	s.mu.Lock()
	d := s.discovery[key]
	s.mu.Unlock()
	if d != nil && now.Before(d.expires) {
		return d, nil
	}
	op, err := oidc.NewProvider(oidc.ClientContext(ctx, s.opt.Client), r.Issuer)
	if err != nil {
		s.failedDiscovery(key, now)
		return nil, unavailable(fmt.Errorf("discovery: %w", brief{err}))
	}
	ep := op.Endpoint()
	// The key set verifies every ID token: over plain http, whoever is on the way could
	// swap it and sign tokens of their own.
	var keys struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := op.Claims(&keys); err != nil || !webURL(ep.AuthURL) || !webURL(ep.TokenURL) || !webURL(keys.JWKSURI) {
		s.failedDiscovery(key, now)
		return nil, unavailable(errors.New("discovery: the authorization endpoint, token endpoint or jwks_uri is not an https URL"))
	}
	d = &discovered{authURL: ep.AuthURL, tokenURL: ep.TokenURL, expires: now.Add(s.opt.DiscoveryTTL),
		verifier: op.Verifier(&oidc.Config{ClientID: r.ClientID, SupportedSigningAlgs: SigningAlgorithms, Now: s.now})}
	s.mu.Lock()
	if len(s.discovery) > 10_000 {
		clear(s.discovery)
	}
	s.discovery[key] = d
	delete(s.failed, key)
	s.mu.Unlock()
	return d, nil
}

// failedRetry is how long the pages do without a discovery document that could not be
// fetched (they name the issuer's origin instead) before they try again; a sign-in always
// tries.
const failedRetry = 30 * time.Second

func (s *Service) failedDiscovery(key string, now time.Time) {
	s.mu.Lock()
	if len(s.failed) > 10_000 {
		clear(s.failed)
	}
	s.failed[key] = now.Add(failedRetry)
	s.mu.Unlock()
}

// recentlyFailed reports whether the provider's discovery failed a moment ago.
func (s *Service) recentlyFailed(r *providerRow) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.failed[discoveryKey(r)]
	return ok && s.now().Before(until)
}

// webURL reports whether s is an absolute https URL (http only on localhost).
func webURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Host != "" && u.User == nil && webScheme(u)
}

func origin(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

func authStyle(method string) oauth2.AuthStyle {
	switch method {
	case AuthBasic:
		return oauth2.AuthStyleInHeader
	case AuthPost:
		return oauth2.AuthStyleInParams
	}
	return oauth2.AuthStyleAutoDetect
}

func (s *Service) oauthConfig(r *providerRow, d *discovered, secret, redirect string) *oauth2.Config {
	p := r.domain()
	return &oauth2.Config{ClientID: r.ClientID, ClientSecret: secret, RedirectURL: redirect, Scopes: p.Scopes,
		Endpoint: oauth2.Endpoint{AuthURL: d.authURL, TokenURL: d.tokenURL, AuthStyle: authStyle(r.TokenAuthMethod)}}
}

// boolClaim reads email_verified, which some providers send as the string "true".
type boolClaim bool

func (b *boolClaim) UnmarshalJSON(data []byte) error {
	switch string(data) {
	case "true", `"true"`:
		*b = true
	default:
		*b = false
	}
	return nil
}

// oidcIdentity exchanges the code (with the PKCE verifier), verifies the ID token —
// signature by a key of the provider's set with RS256 or ES256, issuer, audience (the
// client id), expiry — and checks its nonce, which go-oidc leaves to the caller.
func (s *Service) oidcIdentity(ctx context.Context, r *providerRow, secret, code, redirect string, fd flowData) (accounts.External, error) {
	d, err := s.discover(ctx, r)
	if err != nil {
		return accounts.External{}, err
	}
	cfg := s.oauthConfig(r, d, secret, redirect)
	tok, err := cfg.Exchange(context.WithValue(ctx, oauth2.HTTPClient, s.opt.Client), code, oauth2.VerifierOption(fd.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			return accounts.External{}, refuse("the token endpoint refused the code", errors.New(re.ErrorCode))
		}
		if re != nil && re.Response != nil {
			// Not the answer's body, which RetrieveError quotes: a failing endpoint (or a
			// proxy before it) may echo the request, and so the code, the PKCE verifier and
			// the client secret, into the log.
			return accounts.External{}, unavailable(fmt.Errorf("token endpoint: status %d", re.Response.StatusCode))
		}
		return accounts.External{}, unavailable(fmt.Errorf("token endpoint: %w", err))
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return accounts.External{}, refuse("no ID token", nil)
	}
	idt, err := d.verifier.Verify(ctx, raw)
	if err != nil {
		return accounts.External{}, refuse("the ID token does not verify", err)
	}
	if fd.Nonce == "" || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(fd.Nonce)) != 1 {
		return accounts.External{}, refuse("the ID token's nonce is not this flow's", nil)
	}
	var claims struct {
		Email         string    `json:"email"`
		EmailVerified boolClaim `json:"email_verified"`
		Name          string    `json:"name"`
	}
	if err := idt.Claims(&claims); err != nil {
		return accounts.External{}, refuse("the ID token's claims", err)
	}
	return accounts.External{Issuer: r.Issuer, Subject: idt.Subject, Email: claims.Email,
		EmailVerified: r.TrustedForEmail && bool(claims.EmailVerified), Name: claims.Name, Language: fd.Lang}, nil
}

// brief shortens an error's message for the log, keeping it for errors.Is: go-oidc puts a
// failed discovery's whole answer body (up to the client's 1 MiB) into its error.
type brief struct{ err error }

func (b brief) Error() string {
	const most = 300
	if m := b.err.Error(); len(m) > most {
		return strings.ToValidUTF8(m[:most], "") + "…"
	}
	return b.err.Error()
}

func (b brief) Unwrap() error { return b.err }
