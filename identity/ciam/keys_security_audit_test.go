package ciam

import (
	"context"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity/safehttp/safehttptest"
)

// TestSecurityAuditDefaultClientSafe: a service made without a Client fetches keys through
// an SSRF-safe client. The default was a plain http.Client (the environment's proxy, any
// address): wiring that forgot the client let a tenant's issuer URL reach the cloud's
// metadata service or the internal network. cmd/lupa passes a safehttp client; the
// default now fails closed as well.
func TestSecurityAuditDefaultClientSafe(t *testing.T) {
	url := safehttptest.InternalURL(t)
	s := New(nil, nil, nil, time.Now, Options{})
	_, err := s.jwks.fetch(context.Background(), &Issuer{TenantID: "t1", ID: "ci_1", Issuer: url, JWKSURL: url + "/jwks"})
	safehttptest.WantBlocked(t, "fetching keys from "+url, nil, err)
}
