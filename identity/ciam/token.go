package ciam

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"golang.org/x/sync/singleflight"

	"github.com/lupa-cmp/lupa/identity"
)

// Person is who a verified access token names: the person (issuer, sub).
type Person struct {
	Issuer     *Issuer
	Identifier identity.Identifier // kind idp: namespace the issuer, value the sub
}

// Actor names the token's issuer as the actor of what the person records.
func (p *Person) Actor() identity.Actor { return identity.Actor("ciam:" + p.Issuer.ID) }

// maxTokenBytes bounds a token before any parsing.
const maxTokenBytes = 16 << 10

// MaxTokenLifetime bounds an access token's lifetime, exp - iat. Access tokens live minutes
// to an hour at every CIAM Lupa knows; a token that claims a day or more was made for
// something else (a long-lived ID or service token) or by a misconfigured issuer, and a
// stolen one would stay usable for that long. The bound also bounds how long a deleted
// user's tokens must be remembered (DeletedUserRetention is far longer).
const MaxTokenLifetime = 24 * time.Hour

// invalidToken is the one error a client sees for every bad token; why stays in Err, for
// the logs at debug level and for tests, never in the answer.
func invalidToken(why string) error {
	return &identity.Error{Code: identity.EUnauthorized, Message: "the bearer token is not valid", Err: errors.New(why)}
}

func keysUnavailable(err error) error {
	return &identity.Error{Code: identity.EUnavailable, Message: "the identity provider's keys cannot be fetched; retry", Err: err}
}

// accessTokenTyp says whether a JWS typ header may be an access token's: none, at+jwt
// (RFC 9068) or JWT (what most CIAMs put on every token), compared as media types are —
// case-insensitively, "application/" optional (RFC 7515 §4.1.9). Anything else (an ID
// token's "id_token+jwt" at some providers, logout+jwt, secevent+jwt, dpop+jwt …) is a token
// of another kind, whoever signed it.
func accessTokenTyp(typ string) bool {
	t := strings.TrimPrefix(strings.ToLower(typ), "application/")
	return t == "" || t == "at+jwt" || t == "jwt"
}

// tokenClaims are the claims read before and after the signature check: iss to find the
// issuer; the others tell an access token from an ID or refresh token.
type tokenClaims struct {
	Iss string `json:"iss"`
	// TokenUse is Amazon Cognito's token kind: "access" or "id".
	TokenUse json.RawMessage `json:"token_use"`
	// Typ is Keycloak's (and its forks') token kind: "Bearer" for access tokens, "ID",
	// "Refresh", "Logout" … for others.
	Typ json.RawMessage `json:"typ"`
	// AtHash, CHash and SHash are defined for ID tokens only (OpenID Connect Core 3.1.3.6,
	// 3.3.2.11; FAPI): hashes of the access token, code and state the ID token came with.
	AtHash json.RawMessage `json:"at_hash"`
	CHash  json.RawMessage `json:"c_hash"`
	SHash  json.RawMessage `json:"s_hash"`
}

// notAccessToken names why the claims are those of another kind of token, or "".
func (c *tokenClaims) notAccessToken() string {
	str := func(raw json.RawMessage) (string, bool) {
		var s string
		if len(raw) == 0 || string(raw) == "null" {
			return "", false
		}
		if json.Unmarshal(raw, &s) != nil {
			return "\x00", true // present but not a string: not a kind Lupa knows
		}
		return s, true
	}
	if v, ok := str(c.TokenUse); ok && v != "access" {
		return "token_use is not access"
	}
	if v, ok := str(c.Typ); ok && !strings.EqualFold(v, "Bearer") && !accessTokenTyp(v) {
		return "typ claim is not Bearer"
	}
	for _, h := range []json.RawMessage{c.AtHash, c.CHash, c.SHash} {
		if len(h) > 0 && string(h) != "null" {
			return "an ID token's hash claim"
		}
	}
	return ""
}

// VerifyToken checks a bearer token against the tenant's issuers: a compact JWS whose
// algorithm the issuer allows (never none, never HMAC), whose typ header (when set) is an
// access token's, signed by a key of the issuer's key set, whose iss is the issuer's
// exactly, whose aud holds one of its audiences, with exp and iat (both required; at most
// MaxTokenLifetime apart), nbf and iat checked with the issuer's clock skew, none of the
// claims that mark an ID or refresh token, and a sub. A token of a user the CIAM deleted,
// issued at or before the deletion, is refused too. It returns the person the token names.
func (s *Service) VerifyToken(ctx context.Context, tenantID, raw string) (*Person, error) {
	if len(raw) > maxTokenBytes {
		return nil, invalidToken("too long")
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, invalidToken("not a compact JWS")
	}
	var hdr struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}
	var claims tokenClaims
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return nil, invalidToken("header: " + err.Error())
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return nil, invalidToken("payload: " + err.Error())
	}
	// An ID token, a logout token or a DPoP proof is not an access token, even when its aud
	// is a configured audience (a client id configured as one): refused before any key.
	if !accessTokenTyp(hdr.Typ) {
		return nil, invalidToken("typ is not an access token's")
	}
	list, err := s.issuers(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	var iss *Issuer
	for _, i := range list {
		if i.Issuer == claims.Iss {
			iss = i
			break
		}
	}
	if iss == nil {
		return nil, invalidToken("unknown issuer")
	}
	// The algorithm is checked against the issuer's list before any key is looked at: the
	// token's header never chooses how it is verified.
	if !slices.Contains(iss.Algorithms, hdr.Alg) || !slices.Contains(Algorithms, hdr.Alg) {
		return nil, invalidToken("algorithm not allowed")
	}
	alg, ok := jwa.LookupSignatureAlgorithm(hdr.Alg)
	if !ok {
		return nil, invalidToken("unknown algorithm")
	}
	key, err := s.jwks.key(ctx, iss, hdr.Kid, hdr.Alg)
	if err != nil {
		return nil, err
	}
	skew := time.Duration(iss.ClockSkewSeconds) * time.Second
	tok, err := jwt.Parse([]byte(raw), jwt.WithKey(alg, key), jwt.WithIssuer(iss.Issuer),
		jwt.WithAcceptableSkew(skew), jwt.WithClock(jwt.ClockFunc(s.now)),
		jwt.WithRequiredClaim("exp"), jwt.WithRequiredClaim("iat"), jwt.WithRequiredClaim("sub"))
	if err != nil {
		return nil, invalidToken(err.Error())
	}
	aud, _ := tok.Audience()
	if !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(iss.Audiences, a) }) {
		return nil, invalidToken("audience")
	}
	iat, _ := tok.IssuedAt()
	exp, _ := tok.Expiration()
	if exp.Sub(iat) > MaxTokenLifetime {
		return nil, invalidToken("lifetime longer than 24 hours")
	}
	if why := claims.notAccessToken(); why != "" {
		return nil, invalidToken(why)
	}
	sub, _ := tok.Subject()
	id := identity.Identifier{Kind: identity.IDIdP, Namespace: iss.Issuer, Value: sub}.Normalized()
	if err := id.Validate("sub"); err != nil {
		return nil, invalidToken("sub is not 1–255 printable characters")
	}
	deleted, ok, err := s.deletedAt(ctx, s.db.Read, tenantID, id)
	if err != nil {
		return nil, err
	}
	if ok && iat.Unix() <= deleted.Unix() {
		return nil, invalidToken("the CIAM deleted the user after the token was issued")
	}
	return &Person{Issuer: iss, Identifier: id}, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// keyCache keeps each issuer's key set, per tenant: two tenants that trust one CIAM each
// have their own entry, their own fetches and their own limit, so nothing one tenant's
// traffic does (a flood of made-up key ids through its public property keys) delays
// another's key rotation. Keys are fetched when first needed and again after the TTL — in
// the background, the request verifying with the keys it has meanwhile; a token naming an
// unknown key id fetches them again at once — key rotation — but at most once per
// minRefresh per tenant and issuer, so a flood of made-up key ids cannot hammer the identity
// provider. Concurrent fetches of one set are merged into one, and no request waits for a
// fetch longer than wait: the fetch goes on and serves the requests after it.
type keyCache struct {
	client     *http.Client
	now        func() time.Time
	ttl        time.Duration
	minRefresh time.Duration
	wait       time.Duration
	log        *slog.Logger

	mu      sync.Mutex
	entries map[string]*jwksEntry
	flight  singleflight.Group
}

type jwksEntry struct {
	set       jwk.Set // nil until a fetch succeeded
	fetched   time.Time
	attempted time.Time
}

var (
	errTooSoon = errors.New("keys were fetched a moment ago")
	errSlow    = errors.New("the keys are still being fetched")
)

// fetchTimeout bounds one fetch of a key set (discovery document and keys), however many
// requests wait for it.
const fetchTimeout = 15 * time.Second

func (k *keyCache) entry(ck string) *jwksEntry {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.entries[ck]
}

// cacheKey names the entry of the tenant's issuer: its tenant and id, and the URLs the
// keys come from (a changed jwks_url or issuer is a new entry).
func cacheKey(iss *Issuer) string {
	return iss.TenantID + "\x00" + iss.ID + "\x00" + iss.Issuer + "\x00" + iss.JWKSURL
}

// key returns the issuer's key for kid usable with alg.
func (k *keyCache) key(ctx context.Context, iss *Issuer, kid, alg string) (jwk.Key, error) {
	ck := cacheKey(iss)
	e := k.entry(ck)
	switch {
	case e == nil || e.set == nil:
		fresh, err := k.refreshWait(ctx, ck, iss)
		if err != nil {
			if !errors.Is(err, errTooSoon) && !errors.Is(err, errSlow) {
				k.log.Warn("fetch CIAM keys", "issuer_id", iss.ID, "err", err)
			}
			return nil, keysUnavailable(err)
		}
		e = fresh
	case k.now().Sub(e.fetched) > k.ttl:
		// Past the TTL: fetch again in the background and verify with the keys there are
		// (while the provider is down, the keys it gave last keep working).
		k.refreshAsync(ctx, ck, iss)
	}
	if key := pick(e.set, kid, alg); key != nil {
		return key, nil
	}
	fresh, err := k.refreshWait(ctx, ck, iss)
	switch {
	case errors.Is(err, errSlow):
		return nil, keysUnavailable(err)
	case err != nil:
		if !errors.Is(err, errTooSoon) {
			k.log.Warn("refresh CIAM keys for an unknown key id", "issuer_id", iss.ID, "err", err)
		}
		return nil, invalidToken("unknown key")
	}
	if key := pick(fresh.set, kid, alg); key != nil {
		return key, nil
	}
	return nil, invalidToken("unknown key")
}

// refreshWait refreshes the entry (see refresh), waiting for the fetch at most k.wait (or
// until ctx ends): then it answers errSlow, and the fetch goes on for the requests after.
func (k *keyCache) refreshWait(ctx context.Context, ck string, iss *Issuer) (*jwksEntry, error) {
	ch := k.flight.DoChan(ck, func() (any, error) { return k.refresh(ctx, ck, iss) })
	t := time.NewTimer(k.wait)
	defer t.Stop()
	select {
	case r := <-ch:
		e, _ := r.Val.(*jwksEntry)
		err := r.Err
		if err == nil && (e == nil || e.set == nil) {
			err = errors.New("no keys")
		}
		return e, err
	case <-t.C:
		return nil, errSlow
	case <-ctx.Done():
		return nil, errSlow
	}
}

// refreshAsync refreshes the entry in the background (see refresh).
func (k *keyCache) refreshAsync(ctx context.Context, ck string, iss *Issuer) {
	k.mu.Lock()
	e := k.entries[ck]
	due := e == nil || k.now().Sub(e.attempted) >= k.minRefresh
	k.mu.Unlock()
	if !due { // being fetched, or tried a moment ago
		return
	}
	ch := k.flight.DoChan(ck, func() (any, error) { return k.refresh(ctx, ck, iss) })
	go func() {
		if r := <-ch; r.Err != nil && !errors.Is(r.Err, errTooSoon) {
			k.log.Warn("refresh CIAM keys", "issuer_id", iss.ID, "err", r.Err)
		}
	}()
}

// refresh fetches the issuer's keys unless they were fetched (or tried) less than
// minRefresh ago; then it answers errTooSoon with the entry as it is. It runs once for all
// the requests that join it (singleflight), so it does not end with the first one's
// context.
func (k *keyCache) refresh(ctx context.Context, ck string, iss *Issuer) (*jwksEntry, error) {
	now := k.now()
	k.mu.Lock()
	old := k.entries[ck]
	if old != nil && now.Sub(old.attempted) < k.minRefresh {
		k.mu.Unlock()
		return old, errTooSoon
	}
	next := &jwksEntry{attempted: now}
	if old != nil {
		next.set, next.fetched = old.set, old.fetched
	}
	if len(k.entries) > 10_000 {
		clear(k.entries)
	}
	k.entries[ck] = next
	k.mu.Unlock()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	set, err := k.fetch(fctx, iss)
	if err != nil {
		return next, err
	}
	done := &jwksEntry{set: set, fetched: now, attempted: now}
	k.mu.Lock()
	k.entries[ck] = done
	k.mu.Unlock()
	return done, nil
}

// pick returns the key of the set named kid (or, when the token names none, the set's only
// signing key) if its type fits alg and nothing in it forbids signatures with alg.
func pick(set jwk.Set, kid, alg string) jwk.Key {
	if set == nil {
		return nil
	}
	var candidates []jwk.Key
	if kid != "" {
		if key, ok := set.LookupKeyID(kid); ok {
			candidates = append(candidates, key)
		}
	} else {
		for i := range set.Len() {
			if key, ok := set.Key(i); ok && fits(key, alg) {
				candidates = append(candidates, key)
			}
		}
		if len(candidates) != 1 {
			return nil
		}
	}
	if len(candidates) == 0 || !fits(candidates[0], alg) {
		return nil
	}
	return candidates[0]
}

// fits says whether key may verify a signature made with alg: an RSA key for RS* and PS*,
// an EC key for ES*, an OKP key for EdDSA — never a symmetric key — with use sig (or no
// use) and the same alg (or none).
func fits(key jwk.Key, alg string) bool {
	if use, ok := key.KeyUsage(); ok && use != "sig" {
		return false
	}
	if ka, ok := key.Algorithm(); ok && ka.String() != alg {
		return false
	}
	kty := key.KeyType()
	switch {
	case strings.HasPrefix(alg, "RS"), strings.HasPrefix(alg, "PS"):
		return kty == jwa.RSA()
	case strings.HasPrefix(alg, "ES"):
		return kty == jwa.EC()
	case alg == "EdDSA":
		return kty == jwa.OKP()
	}
	return false
}

const maxDocumentBytes = 512 << 10

// fetch reads the issuer's key set: from its jwks_url, or the jwks_uri of its OIDC
// discovery document, whose issuer must be the configured one.
func (k *keyCache) fetch(ctx context.Context, iss *Issuer) (jwk.Set, error) {
	u := iss.JWKSURL
	if u == "" {
		var d struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		body, err := k.get(ctx, strings.TrimSuffix(iss.Issuer, "/")+"/.well-known/openid-configuration")
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(body, &d); err != nil {
			return nil, fmt.Errorf("discovery document: %w", err)
		}
		if d.Issuer != iss.Issuer {
			return nil, errors.New("the discovery document names another issuer")
		}
		if !ValidURL(d.JWKSURI) {
			return nil, errors.New("the discovery document's jwks_uri is not an https URL")
		}
		u = d.JWKSURI
	}
	body, err := k.get(ctx, u)
	if err != nil {
		return nil, err
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("key set: %w", err)
	}
	return set, nil
}

func (k *keyCache) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	res, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", u, res.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxDocumentBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxDocumentBytes {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", u, maxDocumentBytes)
	}
	return body, nil
}
