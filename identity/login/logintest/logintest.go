// Package logintest holds identity providers for tests, written apart from Lupa's login
// code so that each checks the other: an OpenID Connect provider that signs whatever ID
// token a test asks for (bad ones included), and a server that answers like Facebook's
// login dialog and Graph API, appsecret_proof checked.
package logintest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// User is a person at a test provider.
type User struct {
	Sub, Email, Name string
	EmailVerified    bool
}

func randomString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// grant is an authorization code the provider issued.
type grant struct {
	user                     User
	nonce, challenge, method string
	redirect                 string
	used                     bool
}

// Signing modes of the Provider's ID tokens.
const (
	SignRS256      = ""            // its published RSA key
	SignES256      = "ES256"       // its published EC key
	SignNone       = "none"        // alg none, no signature
	SignHS256      = "HS256"       // HMAC with the client secret (algorithm confusion)
	SignUnknownKey = "unknown-key" // RS256 with a key it does not publish
)

// Provider is an OpenID Connect provider: discovery, JWKS, an authorization endpoint that
// signs the next queued user in at once, and a token endpoint that checks client
// credentials (HTTP Basic or form), the code (once), the redirect URI and the PKCE
// verifier, and returns an ID token its test shaped.
type Provider struct {
	*httptest.Server
	t                      testing.TB
	ClientID, ClientSecret string

	rsaKey *rsa.PrivateKey
	ecKey  *ecdsa.PrivateKey

	mu    sync.Mutex
	queue []User
	codes map[string]*grant
	// Sign chooses how the next ID tokens are signed (Sign… constants).
	sign string
	// tamper changes the claims of the next ID tokens.
	tamper func(claims map[string]any)
	// discoveryIssuer, when set, is the issuer the discovery document claims.
	discoveryIssuer string

	// TokenRequests counts calls of the token endpoint; Refused those it refused.
	TokenRequests, Refused atomic.Int64
}

// NewProvider starts a provider on 127.0.0.1; its issuer is its URL.
func NewProvider(t testing.TB) *Provider {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &Provider{t: t, ClientID: "lupa-" + randomString()[:8], ClientSecret: randomString() + randomString(),
		rsaKey: rk, ecKey: ek, codes: map[string]*grant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /jwks", p.jwks)
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	p.Server = httptest.NewServer(mux)
	t.Cleanup(p.Close)
	return p
}

// Issuer is the provider's issuer: its URL.
func (p *Provider) Issuer() string { return p.URL }

// Queue adds users that the next authorizations sign in, in order.
func (p *Provider) Queue(users ...User) {
	p.mu.Lock()
	p.queue = append(p.queue, users...)
	p.mu.Unlock()
}

// Shape makes the next ID tokens signed as sign says, with claims changed by tamper
// (nil: unchanged). Shape("", nil) goes back to good tokens.
func (p *Provider) Shape(sign string, tamper func(claims map[string]any)) {
	p.mu.Lock()
	p.sign, p.tamper = sign, tamper
	p.mu.Unlock()
}

// ClaimIssuer makes the discovery document claim another issuer ("" for its own).
func (p *Provider) ClaimIssuer(issuer string) {
	p.mu.Lock()
	p.discoveryIssuer = issuer
	p.mu.Unlock()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (p *Provider) discovery(w http.ResponseWriter, _ *http.Request) {
	p.mu.Lock()
	issuer := p.discoveryIssuer
	p.mu.Unlock()
	if issuer == "" {
		issuer = p.Issuer()
	}
	writeJSON(w, http.StatusOK, map[string]any{"issuer": issuer, "authorization_endpoint": p.URL + "/authorize",
		"token_endpoint": p.URL + "/token", "jwks_uri": p.URL + "/jwks", "response_types_supported": []string{"code"},
		"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"RS256", "ES256", "HS256", "none"},
		"code_challenge_methods_supported": []string{"S256"}, "token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"}})
}

func (p *Provider) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &p.rsaKey.PublicKey, KeyID: "rsa-1", Algorithm: "RS256", Use: "sig"},
		{Key: &p.ecKey.PublicKey, KeyID: "ec-1", Algorithm: "ES256", Use: "sig"},
	}})
}

func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != p.ClientID || q.Get("response_type") != "code" || q.Get("redirect_uri") == "" || q.Get("state") == "" {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	u := User{Sub: "default-user"}
	if len(p.queue) > 0 {
		u, p.queue = p.queue[0], p.queue[1:]
	}
	code := randomString()
	p.codes[code] = &grant{user: u, nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), method: q.Get("code_challenge_method"),
		redirect: q.Get("redirect_uri")}
	p.mu.Unlock()
	back, err := url.Parse(q.Get("redirect_uri"))
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	bq := back.Query()
	bq.Set("code", code)
	bq.Set("state", q.Get("state"))
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (p *Provider) refuse(w http.ResponseWriter, status int, code string) {
	p.Refused.Add(1)
	writeJSON(w, status, map[string]string{"error": code})
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	p.TokenRequests.Add(1)
	if err := r.ParseForm(); err != nil {
		p.refuse(w, http.StatusBadRequest, "invalid_request")
		return
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != p.ClientID || subtle.ConstantTimeCompare([]byte(secret), []byte(p.ClientSecret)) != 1 {
		p.refuse(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	p.mu.Lock()
	g := p.codes[r.PostForm.Get("code")]
	ok := g != nil && !g.used && r.PostForm.Get("grant_type") == "authorization_code" && r.PostForm.Get("redirect_uri") == g.redirect &&
		g.method == "S256" && challenge(r.PostForm.Get("code_verifier")) == g.challenge
	if g != nil {
		g.used = true // a code is tried once, right or wrong
	}
	sign, tamper := p.sign, p.tamper
	p.mu.Unlock()
	if !ok {
		p.refuse(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	now := time.Now()
	claims := map[string]any{"iss": p.Issuer(), "sub": g.user.Sub, "aud": p.ClientID, "exp": now.Add(5 * time.Minute).Unix(),
		"iat": now.Unix(), "nonce": g.nonce}
	if g.user.Email != "" {
		claims["email"], claims["email_verified"] = g.user.Email, g.user.EmailVerified
	}
	if g.user.Name != "" {
		claims["name"] = g.user.Name
	}
	if tamper != nil {
		tamper(claims)
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": randomString(), "token_type": "Bearer", "expires_in": 300,
		"id_token": p.signToken(sign, claims)})
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// signToken signs claims as the mode says.
func (p *Provider) signToken(mode string, claims map[string]any) string {
	payload, _ := json.Marshal(claims)
	switch mode {
	case SignNone:
		return b64(map[string]string{"alg": "none", "typ": "JWT"}) + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
	case SignHS256:
		in := b64(map[string]string{"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}) + "." + base64.RawURLEncoding.EncodeToString(payload)
		m := hmac.New(sha256.New, []byte(p.ClientSecret))
		m.Write([]byte(in))
		return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	key := jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: p.rsaKey, KeyID: "rsa-1"}}
	switch mode {
	case SignES256:
		key = jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: p.ecKey, KeyID: "ec-1"}}
	case SignUnknownKey:
		other, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			p.t.Error(err)
		}
		key = jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: other, KeyID: "rsa-1"}}
	}
	signer, err := jose.NewSigner(key, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		p.t.Error(err)
		return ""
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		p.t.Error(err)
		return ""
	}
	s, _ := obj.CompactSerialize()
	return s
}

// FacebookUser is a person at the Graph-like server.
type FacebookUser struct{ ID, Name, Email string }

// Graph answers like Facebook: GET /dialog/oauth signs the next queued user in at once and
// redirects back with a code; GET /oauth/access_token exchanges the code (app id, app
// secret, redirect URI and PKCE verifier checked, once); GET /me?fields=…&appsecret_proof=…
// answers only with the token in Authorization: Bearer and the right proof.
type Graph struct {
	*httptest.Server
	AppID, AppSecret string

	mu     sync.Mutex
	queue  []FacebookUser
	codes  map[string]*fbGrant
	tokens map[string]FacebookUser
	// Me counts good /me calls; BadProof those refused for their appsecret_proof.
	Me, BadProof atomic.Int64
}

type fbGrant struct {
	user                FacebookUser
	redirect, challenge string
	used                bool
}

// NewGraph starts the server on 127.0.0.1.
func NewGraph(t testing.TB) *Graph {
	t.Helper()
	g := &Graph{AppID: "1234567890", AppSecret: hex.EncodeToString([]byte(randomString())), codes: map[string]*fbGrant{},
		tokens: map[string]FacebookUser{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /dialog/oauth", g.dialog)
	mux.HandleFunc("GET /oauth/access_token", g.accessToken)
	mux.HandleFunc("GET /me", g.me)
	g.Server = httptest.NewServer(mux)
	t.Cleanup(g.Close)
	return g
}

// DialogURL and GraphURL are what Lupa's LUPA_FACEBOOK_* settings point at.
func (g *Graph) DialogURL() string { return g.URL + "/dialog/oauth" }

// GraphURL is the Graph API base.
func (g *Graph) GraphURL() string { return g.URL }

// Queue adds users that the next dialogs sign in.
func (g *Graph) Queue(users ...FacebookUser) {
	g.mu.Lock()
	g.queue = append(g.queue, users...)
	g.mu.Unlock()
}

func graphError(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"message": msg, "type": "OAuthException", "code": 100}})
}

func (g *Graph) dialog(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != g.AppID || q.Get("state") == "" || q.Get("redirect_uri") == "" || q.Get("code_challenge_method") != "S256" {
		http.Error(w, "bad dialog request", http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	u := FacebookUser{ID: "100000000000001", Name: "Test User"}
	if len(g.queue) > 0 {
		u, g.queue = g.queue[0], g.queue[1:]
	}
	code := randomString()
	g.codes[code] = &fbGrant{user: u, redirect: q.Get("redirect_uri"), challenge: q.Get("code_challenge")}
	g.mu.Unlock()
	back, _ := url.Parse(q.Get("redirect_uri"))
	bq := back.Query()
	bq.Set("code", code)
	bq.Set("state", q.Get("state"))
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (g *Graph) accessToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	g.mu.Lock()
	gr := g.codes[q.Get("code")]
	ok := gr != nil && !gr.used && q.Get("client_id") == g.AppID && q.Get("client_secret") == g.AppSecret &&
		q.Get("redirect_uri") == gr.redirect && challenge(q.Get("code_verifier")) == gr.challenge
	if gr != nil {
		gr.used = true
	}
	var token string
	if ok {
		token = "EAA" + randomString()
		g.tokens[token] = gr.user
	}
	g.mu.Unlock()
	if !ok {
		graphError(w, "Invalid verification code format.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": token, "token_type": "bearer", "expires_in": 5183944})
}

func (g *Graph) me(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	g.mu.Lock()
	u, known := g.tokens[token]
	g.mu.Unlock()
	if !ok || !known {
		graphError(w, "Invalid OAuth access token.")
		return
	}
	m := hmac.New(sha256.New, []byte(g.AppSecret))
	m.Write([]byte(token))
	want := hex.EncodeToString(m.Sum(nil))
	if subtle.ConstantTimeCompare([]byte(r.URL.Query().Get("appsecret_proof")), []byte(want)) != 1 {
		g.BadProof.Add(1)
		graphError(w, "Invalid appsecret_proof provided in the API argument")
		return
	}
	out := map[string]any{"id": u.ID}
	for _, f := range strings.Split(r.URL.Query().Get("fields"), ",") {
		switch f {
		case "name":
			out["name"] = u.Name
		case "email":
			if u.Email != "" {
				out["email"] = u.Email
			}
		}
	}
	g.Me.Add(1)
	writeJSON(w, http.StatusOK, out)
}
