// Package safehttptest helps tests show that a service's HTTP client refuses internal
// addresses: the default clients of the services that call tenants' URLs must fail closed.
package safehttptest

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/lupa-cmp/lupa/identity/safehttp"
)

// InternalURL starts a server on the loopback address, which a safehttp client must never
// reach, and returns its URL. The test fails if a request gets there.
func InternalURL(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("an internal address was reached: %s", r.URL)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// WantBlocked fails the test unless err says the connection was refused as internal. A
// response that came back anyway is closed.
func WantBlocked(t testing.TB, what string, res *http.Response, err error) {
	t.Helper()
	if res != nil {
		res.Body.Close()
	}
	if !errors.Is(err, safehttp.ErrBlocked) {
		t.Fatalf("%s: %v, want safehttp.ErrBlocked", what, err)
	}
}
