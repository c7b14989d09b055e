// Package ciamtest is an identity provider for tests: an httptest server that serves an
// OpenID Connect discovery document and a key set, and signs access tokens with keys made
// in the test; and the signing side of Standard Webhooks, written apart from Lupa's
// verifier so that each checks the other.
package ciamtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// Key is a signing key of the provider.
type Key struct {
	ID      string
	Alg     string
	private jwk.Key
	public  jwk.Key
}

// Provider is an OIDC-like issuer: GET /.well-known/openid-configuration and GET /jwks.
type Provider struct {
	*httptest.Server
	t testing.TB

	mu        sync.Mutex
	published []*Key // in the key set
	// JWKSHits and DiscoveryHits count fetches, to see caching and refresh.
	JWKSHits, DiscoveryHits atomic.Int64
	// Down makes every request fail with 503.
	Down atomic.Bool
	hold chan struct{} // while not nil, requests wait for it to close (Hold)
}

// Hold makes the provider slow: its requests wait until release is called (at the latest
// when the test ends).
func (p *Provider) Hold() (release func()) {
	ch := make(chan struct{})
	p.mu.Lock()
	p.hold = ch
	p.mu.Unlock()
	var once sync.Once
	release = func() {
		once.Do(func() {
			p.mu.Lock()
			if p.hold == ch {
				p.hold = nil
			}
			p.mu.Unlock()
			close(ch)
		})
	}
	p.t.Cleanup(release)
	return release
}

func (p *Provider) wait(r *http.Request) {
	p.mu.Lock()
	ch := p.hold
	p.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-r.Context().Done():
		}
	}
}

// New starts a provider with one RS256 key; its issuer is its URL.
func New(t testing.TB) *Provider {
	t.Helper()
	p := &Provider{t: t}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		p.DiscoveryHits.Add(1)
		p.wait(r)
		if p.Down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": p.Issuer(), "jwks_uri": p.URL + "/jwks",
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		p.JWKSHits.Add(1)
		p.wait(r)
		if p.Down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		set := jwk.NewSet()
		p.mu.Lock()
		for _, k := range p.published {
			_ = set.AddKey(k.public)
		}
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	})
	p.Server = httptest.NewServer(mux)
	t.Cleanup(p.Close)
	p.Publish(p.NewKey("RS256"))
	return p
}

// Issuer is the provider's issuer identifier: its URL.
func (p *Provider) Issuer() string { return p.URL }

// NewKey makes a key for alg (RS256, PS256, ES256) that is not published yet.
func (p *Provider) NewKey(alg string) *Key {
	p.t.Helper()
	var raw any
	var err error
	switch alg {
	case "ES256":
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		raw, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	priv, err := jwk.Import(raw)
	if err != nil {
		p.t.Fatal(err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	kid := alg + "-" + base64.RawURLEncoding.EncodeToString(b)
	_ = priv.Set(jwk.KeyIDKey, kid)
	pub, err := priv.PublicKey()
	if err != nil {
		p.t.Fatal(err)
	}
	_ = pub.Set(jwk.KeyUsageKey, "sig")
	return &Key{ID: kid, Alg: alg, private: priv, public: pub}
}

// Publish adds keys to the key set.
func (p *Provider) Publish(keys ...*Key) {
	p.mu.Lock()
	p.published = append(p.published, keys...)
	p.mu.Unlock()
}

// Rotate replaces the published keys with a new key of alg and returns it.
func (p *Provider) Rotate(alg string) *Key {
	k := p.NewKey(alg)
	p.mu.Lock()
	p.published = []*Key{k}
	p.mu.Unlock()
	return k
}

// Current returns the newest published key.
func (p *Provider) Current() *Key {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.published[len(p.published)-1]
}

// PublicJSON is the key's public JWK, as published.
func (k *Key) PublicJSON() []byte {
	b, _ := json.Marshal(k.public)
	return b
}

// Claims returns the claims of a good token for sub and audience, issued now, valid an hour.
func (p *Provider) Claims(sub, audience string, now time.Time) map[string]any {
	return map[string]any{"iss": p.Issuer(), "sub": sub, "aud": audience, "iat": now.Unix(),
		"nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(), "scope": "openid consent"}
}

// Sign signs claims with key (its own algorithm and kid) as an access token (typ at+jwt).
func (p *Provider) Sign(key *Key, claims map[string]any) string {
	p.t.Helper()
	return p.SignTyp(key, "at+jwt", claims)
}

// SignTyp signs claims with key with the typ header typ (none when empty).
func (p *Provider) SignTyp(key *Key, typ string, claims map[string]any) string {
	p.t.Helper()
	tok := jwt.New()
	for k, v := range claims {
		if err := tok.Set(k, v); err != nil { // the claims must make a JWT
			p.t.Fatal(err)
		}
	}
	payload, err := json.Marshal(tok)
	if err != nil {
		p.t.Fatal(err)
	}
	alg, _ := jwa.LookupSignatureAlgorithm(key.Alg)
	hdr := jws.NewHeaders()
	if typ != "" {
		_ = hdr.Set(jws.TypeKey, typ)
	}
	// jws, not jwt.Sign, which would set typ JWT when there is none.
	b, err := jws.Sign(payload, jws.WithKey(alg, key.private, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		p.t.Fatal(err)
	}
	return string(b)
}

// Token signs a good token for sub and audience with the current key.
func (p *Provider) Token(sub, audience string) string {
	return p.Sign(p.Current(), p.Claims(sub, audience, time.Now()))
}

func segment(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Unsigned returns a token with alg none: header and claims, and an empty signature.
func Unsigned(claims map[string]any) string {
	return segment(map[string]any{"alg": "none", "typ": "JWT"}) + "." + segment(claims) + "."
}

// HMACWithPublicKey returns the classic confusion attack: an HS256 token whose HMAC key is
// the bytes of the issuer's public key (which anyone can fetch), naming that key's kid.
func HMACWithPublicKey(key *Key, claims map[string]any) string {
	input := segment(map[string]any{"alg": "HS256", "typ": "JWT", "kid": key.ID}) + "." + segment(claims)
	m := hmac.New(sha256.New, key.PublicJSON())
	m.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// WebhookHeaders signs an identity event as a Standard Webhooks sender does: secret is the
// whsec_… string; the headers come back as name, value pairs.
func WebhookHeaders(secret, id string, at time.Time, body []byte) []string {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		panic(err)
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	sig := base64.StdEncoding.EncodeToString(m.Sum(nil))
	return []string{"webhook-id", id, "webhook-timestamp", ts, "webhook-signature", "v1," + sig}
}

// Impostor makes a key of the same algorithm that claims another key's kid: its signatures
// must not verify.
func (p *Provider) Impostor(of *Key) *Key {
	k := p.NewKey(of.Alg)
	_ = k.private.Set(jwk.KeyIDKey, of.ID)
	_ = k.public.Set(jwk.KeyIDKey, of.ID)
	k.ID = of.ID
	return k
}
