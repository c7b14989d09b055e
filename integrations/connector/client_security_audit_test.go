package connector

import (
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity/safehttp/safehttptest"
)

// TestSecurityAuditDefaultClientSafe: a service made without an HTTPClient calls vendors
// through an SSRF-safe client. The default was http.DefaultClient (the environment's proxy,
// any address, no bound on an answer): wiring that forgot the client let a connector's
// base URL reach the internal network. cmd/lupa passes a safehttp client; the default now
// fails closed as well.
func TestSecurityAuditDefaultClientSafe(t *testing.T) {
	url := safehttptest.InternalURL(t)
	s := New(nil, nil, nil, nil, time.Now, Options{})
	res, err := s.opt.HTTPClient.Get(url + "/3.0/lists")
	safehttptest.WantBlocked(t, "GET "+url, res, err)
}
