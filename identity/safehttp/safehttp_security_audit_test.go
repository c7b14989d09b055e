package safehttp

// Findings of the security audit: outbound requests to URLs that tenants configure.

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

// TestSecurityAuditBodyBounded: a response body is read only up to a bound
// (DefaultMaxBodyBytes unless Options.MaxBodyBytes says more). go-oidc reads an identity
// provider's discovery document and key set with io.ReadAll, so a provider (any https URL
// a tenant admin names) that answered with an endless body filled Lupa's memory until the
// request's timeout: the client put no bound on it.
func TestSecurityAuditBodyBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int64(DefaultMaxBodyBytes)
		if r.URL.Path == "/long" {
			n = 4 * DefaultMaxBodyBytes
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.Copy(w, io.LimitReader(zeros{}, n))
	}))
	defer srv.Close()
	c := New(Options{AllowPrivate: true})

	res, err := c.Get(srv.URL + "/exact")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err != nil || n != DefaultMaxBodyBytes {
		t.Fatalf("a body of exactly the bound: %d bytes, %v", n, err)
	}

	res, err = c.Get(srv.URL + "/long")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: the status of a long answer still counts", res.StatusCode)
	}
	n, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if !errors.Is(err, ErrTooLarge) || n > DefaultMaxBodyBytes {
		t.Fatalf("read %d bytes (%v), the bound is %d", n, err, DefaultMaxBodyBytes)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestSecurityAuditNoDowngrade: a redirect from https to plain http is refused. It was
// followed: a login provider's discovery document and key set (which verify ID tokens) could
// come over plain http, and a vendor API's redirect to http on the same host would carry
// the API key in Authorization in clear (net/http keeps it for the same host).
func TestSecurityAuditNoDowngrade(t *testing.T) {
	c := New(Options{})
	req := func(u string) *http.Request {
		r, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, tc := range []struct {
		via  []string
		to   string
		fail bool
	}{
		{[]string{"https://idp.example/.well-known/openid-configuration"}, "http://idp.example/keys", true},
		{[]string{"https://idp.example/a", "https://idp.example/b"}, "http://idp.example/c", true},
		{[]string{"https://idp.example/a"}, "https://keys.idp.example/", false},
		{[]string{"http://localhost:8080/a"}, "http://localhost:8080/b", false},
		{[]string{"http://idp.example/a"}, "https://idp.example/b", false},
		// http→https→http: the downgrade is at the second hop, not against the first URL.
		{[]string{"http://idp.example/a", "https://idp.example/b"}, "http://idp.example/c", true},
		{[]string{"https://a.example/1", "https://a.example/2", "https://a.example/3"}, "https://a.example/4", true},
	} {
		var via []*http.Request
		for _, u := range tc.via {
			via = append(via, req(u))
		}
		err := c.CheckRedirect(req(tc.to), via)
		if (err != nil) != tc.fail {
			t.Errorf("%v → %s: %v, want refused %v", tc.via, tc.to, err, tc.fail)
		}
		if tc.fail && len(tc.via) < 3 && !errors.Is(err, ErrDowngrade) {
			t.Errorf("%v → %s: %v, want ErrDowngrade", tc.via, tc.to, err)
		}
	}
}

// TestSecurityAuditTunnelPrefixes: IPv6 addresses that carry an IPv4 address inside them
// (6to4's 2002::/16, Teredo's 2001::/32) are not public: on a host with such a tunnel, a
// connection to 2002:a9fe:a9fe:: goes to 169.254.169.254, the cloud's metadata service.
// NAT64 was refused already; these two were not.
func TestSecurityAuditTunnelPrefixes(t *testing.T) {
	for _, s := range []string{"2002:a9fe:a9fe::1", "2002:7f00:1::", "2002:a00:1::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2"} {
		if Public(netip.MustParseAddr(s)) {
			t.Errorf("%s counts as public", s)
		}
	}
	// Ordinary global addresses next to them still are.
	for _, s := range []string{"2001:4860:4860::8888", "2003:de::1", "2a00:1450:4001:81b::200e"} {
		if !Public(netip.MustParseAddr(s)) {
			t.Errorf("%s counts as internal", s)
		}
	}
}
