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

// invalidToken is the one error a client sees for every bad token; why stays in Err, for
// the logs at debug level and for tests, never in the answer.
func invalidToken(why string) error {
	return &identity.Error{Code: identity.EUnauthorized, Message: "the bearer token is not valid", Err: errors.New(why)}
}

func keysUnavailable(err error) error {
	return &identity.Error{Code: identity.EUnavailable, Message: "the identity provider's keys cannot be fetched; retry", Err: err}
}

// VerifyToken checks a bearer token against the tenant's issuers: a compact JWS whose
// algorithm the issuer allows (never none, never HMAC), signed by a key of the issuer's key
// set, whose iss is the issuer's exactly, whose aud holds one of its audiences, with exp
// (required), nbf and iat checked with the issuer's clock skew, and a sub. It returns the
// person the token names.
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
	}
	var claims struct {
		Iss string `json:"iss"`
	}
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return nil, invalidToken("header: " + err.Error())
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return nil, invalidToken("payload: " + err.Error())
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
		jwt.WithRequiredClaim("exp"), jwt.WithRequiredClaim("sub"))
	if err != nil {
		return nil, invalidToken(err.Error())
	}
	aud, _ := tok.Audience()
	if !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(iss.Audiences, a) }) {
		return nil, invalidToken("audience")
	}
	sub, _ := tok.Subject()
	id := identity.Identifier{Kind: identity.IDIdP, Namespace: iss.Issuer, Value: sub}.Normalized()
	if err := id.Validate("sub"); err != nil {
		return nil, invalidToken("sub is not 1–255 printable characters")
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

// keyCache keeps each issuer's key set. Keys are fetched when first needed and again after
// the TTL; a token naming an unknown key id fetches them again at once — key rotation —
// but at most once per minRefresh per issuer, so a flood of made-up key ids cannot hammer
// the identity provider. Concurrent fetches of one set are merged into one.
type keyCache struct {
	client     *http.Client
	now        func() time.Time
	ttl        time.Duration
	minRefresh time.Duration
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

var errTooSoon = errors.New("keys were fetched a moment ago")

func (k *keyCache) entry(ck string) *jwksEntry {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.entries[ck]
}

// key returns the issuer's key for kid usable with alg.
func (k *keyCache) key(ctx context.Context, iss *Issuer, kid, alg string) (jwk.Key, error) {
	ck := iss.Issuer + "\x00" + iss.JWKSURL
	e := k.entry(ck)
	if e == nil || e.set == nil || k.now().Sub(e.fetched) > k.ttl {
		fresh, err := k.refresh(ctx, ck, iss)
		switch {
		case err == nil:
			e = fresh
		case e != nil && e.set != nil:
			// The provider is down: keep using the keys it gave last.
			if !errors.Is(err, errTooSoon) {
				k.log.Warn("refresh CIAM keys", "issuer_id", iss.ID, "err", err)
			}
		default:
			k.log.Warn("fetch CIAM keys", "issuer_id", iss.ID, "err", err)
			return nil, keysUnavailable(err)
		}
	}
	if key := pick(e.set, kid, alg); key != nil {
		return key, nil
	}
	fresh, err := k.refresh(ctx, ck, iss)
	if err != nil {
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

// refresh fetches the issuer's keys unless they were fetched (or tried) less than
// minRefresh ago; then it answers errTooSoon with the entry as it is.
func (k *keyCache) refresh(ctx context.Context, ck string, iss *Issuer) (*jwksEntry, error) {
	v, err, _ := k.flight.Do(ck, func() (any, error) {
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
		// One fetch serves every waiting request: it must not end with the first one's.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
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
	})
	e, _ := v.(*jwksEntry)
	if err == nil && (e == nil || e.set == nil) {
		err = errors.New("no keys")
	}
	return e, err
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

// noDowngrade returns a copy of c that refuses a redirect from https to plain http: a key
// set or discovery document fetched over plain http could be swapped on the way, and whoever
// swaps it mints tokens. c's own redirect rules (safehttp's limit) still apply.
func noDowngrade(c *http.Client) *http.Client {
	out := *c
	next := c.CheckRedirect
	out.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
			return fmt.Errorf("redirect from %s to %s refused: keys come over https only", via[0].URL.Redacted(), req.URL.Redacted())
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 { // net/http's default limit
			return errors.New("too many redirects")
		}
		return nil
	}
	return &out
}

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
