package ciam

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity/safehttp"
)

// TestSecurityAuditDefaultClientSafe: a service made without a Client fetches keys through
// an SSRF-safe client. The default was a plain http.Client (the environment's proxy, any
// address): wiring that forgot the client let a tenant's issuer URL reach the cloud's
// metadata service or the internal network. cmd/lupa passes a safehttp client; the
// default now fails closed as well.
func TestSecurityAuditDefaultClientSafe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("an internal address was reached: %s", r.URL)
	}))
	defer srv.Close()
	s := New(nil, nil, nil, time.Now, Options{})
	_, err := s.jwks.fetch(context.Background(), &Issuer{TenantID: "t1", ID: "ci_1", Issuer: srv.URL, JWKSURL: srv.URL + "/jwks"})
	if !errors.Is(err, safehttp.ErrBlocked) {
		t.Fatalf("fetching keys from %s: %v, want safehttp.ErrBlocked", srv.URL, err)
	}
}
