package webhook

import (
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity/safehttp/safehttptest"
)

// TestSecurityAuditDefaultClientSafe: a service made without a Client sends webhooks through
// an SSRF-safe client. The default was a plain http.Client (the environment's proxy, any
// address): wiring that forgot the client let an endpoint URL reach the cloud's metadata
// service or the internal network. cmd/lupa passes a safehttp client; the default now fails
// closed as well.
func TestSecurityAuditDefaultClientSafe(t *testing.T) {
	url := safehttptest.InternalURL(t)
	s := New(nil, nil, nil, time.Now, Options{})
	res, err := s.client.Post(url+"/hook", "application/json", nil)
	safehttptest.WantBlocked(t, "POST "+url, res, err)
}
