package login

// Findings of the security audit: what a sign-in with an OpenID Connect provider fetches,
// and what its failures put in the log.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity/safehttp"
)

// fakeIssuer serves a discovery document whose jwks_uri is jwks (its own /jwks when
// empty) and a token endpoint that fails with 502, echoing the request's form in its body,
// as some failing servers and proxies do.
func fakeIssuer(t *testing.T, jwks string) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			u := jwks
			if u == "" {
				u = srv.URL + "/jwks"
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"issuer": srv.URL, "authorization_endpoint": srv.URL + "/authorize",
				"token_endpoint": srv.URL + "/token", "jwks_uri": u, "response_types_supported": []string{"code"},
				"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"RS256"}})
		case "/token":
			_ = r.ParseForm()
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("upstream failed for request: " + r.Form.Encode()))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestSecurityAuditJWKSOverHTTP: the key set that verifies ID tokens comes over https. The
// discovery document's authorization and token endpoints were checked, its jwks_uri was
// not: a document naming an http:// key set let whoever was on the way swap the keys and
// sign ID tokens of their own, so sign in as anyone. (Plain http stays allowed on
// localhost, for tests.)
func TestSecurityAuditJWKSOverHTTP(t *testing.T) {
	s := New(nil, nil, nil, nil, time.Now, Options{Client: &http.Client{Timeout: 5 * time.Second}})
	for _, tc := range []struct {
		jwks string
		ok   bool
	}{
		{"http://keys.idp.example/jwks", false},
		{"ftp://keys.idp.example/jwks", false},
		{"", true}, // the fake's own http://127.0.0.1 key set: a test's provider
		{"https://keys.idp.example/jwks", true},
	} {
		srv := fakeIssuer(t, tc.jwks)
		_, err := s.discover(context.Background(), &providerRow{TenantID: "t1", ID: "lp_" + tc.jwks, Issuer: srv.URL, ClientID: "lupa"})
		if (err == nil) != tc.ok {
			t.Errorf("jwks_uri %q: discovery error %v, want accepted %v", tc.jwks, err, tc.ok)
		}
	}
}

// TestSecurityAuditTokenErrorKeepsSecrets: a token endpoint that fails (5xx) makes the
// provider "unavailable", and the pages log the error. The error quoted the answer's body
// (oauth2.RetrieveError does), so an endpoint or proxy that echoed the request put the
// client secret, the code and the PKCE verifier in the log.
func TestSecurityAuditTokenErrorKeepsSecrets(t *testing.T) {
	srv := fakeIssuer(t, "")
	s := New(nil, nil, nil, nil, time.Now, Options{Client: &http.Client{Timeout: 5 * time.Second}})
	const secret, code, verifier = "client-secret-0123456789abcdef", "code-from-the-provider-0123", "verifier-0123456789abcdefghijklmnopqrstuvwxyz"
	r := &providerRow{TenantID: "t1", ID: "lp_1", Issuer: srv.URL, ClientID: "lupa", Scopes: `["openid","email"]`, TokenAuthMethod: AuthPost}
	_, err := s.oidcIdentity(context.Background(), r, secret, code, "https://lupa.example/t/kauppa/login/lp_1/callback",
		flowData{Verifier: verifier, Nonce: "n"})
	if err == nil {
		t.Fatal("a failing token endpoint answered")
	}
	for _, leaked := range []string{secret, code, verifier} {
		if strings.Contains(err.Error(), leaked) {
			t.Fatalf("the error names %q: %v", leaked, err)
		}
	}
	if !strings.Contains(err.Error(), "token endpoint") || !strings.Contains(err.Error(), "502") {
		t.Fatalf("the error no longer says what failed: %v", err)
	}
}

// TestSecurityAuditDefaultClientSafe: a service made without a Client reaches providers
// through an SSRF-safe client. The default was a plain http.Client (the environment's
// proxy, any address): wiring that forgot the client let a tenant's issuer URL reach the
// cloud's metadata service or the internal network. cmd/lupa passes a safehttp client;
// the default now fails closed as well.
func TestSecurityAuditDefaultClientSafe(t *testing.T) {
	srv := fakeIssuer(t, "")
	s := New(nil, nil, nil, nil, time.Now, Options{})
	_, err := s.discover(context.Background(), &providerRow{TenantID: "t1", ID: "lp_1", Issuer: srv.URL, ClientID: "lupa"})
	if !errors.Is(err, safehttp.ErrBlocked) {
		t.Fatalf("discovery at %s: %v, want safehttp.ErrBlocked", srv.URL, err)
	}
}

// TestDiscoveryErrorIsBrief: a provider whose discovery fails with a long page (up to the
// client's 1 MiB) does not put that page into the log line of the error; the error still
// says what failed and keeps its cause for errors.Is.
func TestDiscoveryErrorIsBrief(t *testing.T) {
	page := strings.Repeat("<p>maintenance</p>", 20_000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, page, http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	s := New(nil, nil, nil, nil, time.Now, Options{Client: &http.Client{Timeout: 5 * time.Second}})
	_, err := s.discover(context.Background(), &providerRow{TenantID: "t1", ID: "lp_1", Issuer: srv.URL, ClientID: "lupa"})
	if err == nil {
		t.Fatal("a failing discovery answered")
	}
	if len(err.Error()) > 400 || !strings.Contains(err.Error(), "discovery") || !strings.Contains(err.Error(), "503") {
		t.Fatalf("the error (%d bytes) is not a brief one of the discovery: %.120s", len(err.Error()), err)
	}
}
