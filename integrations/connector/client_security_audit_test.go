package connector

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lupa-cmp/lupa/identity/safehttp"
)

// TestSecurityAuditDefaultClientSafe: a service made without an HTTPClient calls vendors
// through an SSRF-safe client. The default was http.DefaultClient (the environment's proxy,
// any address, no bound on an answer): wiring that forgot the client let a connector's
// base URL reach the internal network. cmd/lupa passes a safehttp client; the default now
// fails closed as well.
func TestSecurityAuditDefaultClientSafe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("an internal address was reached: %s", r.URL)
	}))
	defer srv.Close()
	s := New(nil, nil, nil, nil, time.Now, Options{})
	res, err := s.opt.HTTPClient.Get(srv.URL + "/3.0/lists")
	if err == nil {
		res.Body.Close()
	}
	if !errors.Is(err, safehttp.ErrBlocked) {
		t.Fatalf("GET %s: %v, want safehttp.ErrBlocked", srv.URL, err)
	}
}
