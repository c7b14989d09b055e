package main

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// A bucket of three that refills once in 100 s: the fourth request inside a test is always
// over the limit, however slow the machine.
func rateEnv(trusted string) map[string]string {
	env := map[string]string{"LUPA_RATE_LIMIT": "0.01", "LUPA_RATE_BURST": "3"}
	if trusted != "" {
		env["LUPA_TRUSTED_PROXIES"] = trusted
	}
	return env
}

// publicAs sends a cheap public request (a state read) as the client at addr, given by the
// proxy's X-Forwarded-For header when addr is not empty.
func (s *testServer) publicAs(addr string) *response {
	s.t.Helper()
	h := []string{"Origin", s.Origin, "Lupa-Device-Id", "AAAAAAAAAAAAAAAAAAAAAA"}
	if addr != "" {
		h = append(h, "X-Forwarded-For", addr)
	}
	return s.request(http.MethodGet, "/v1/consents?property="+s.demo.WebShop.PublicKey, nil, h...)
}

func wantLimited(t *testing.T, r *response) {
	t.Helper()
	wantProblem(t, r, http.StatusTooManyRequests)
	secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || secs < 1 || secs > 101 {
		t.Fatalf("429 with Retry-After %q, want whole seconds until a token is back", r.Header.Get("Retry-After"))
	}
}

func wantAllowed(t *testing.T, r *response) {
	t.Helper()
	if r.Status == http.StatusTooManyRequests {
		t.Fatalf("limited too early: %s", r.Body)
	}
}

// TestHTTPRateLimit: the public API limits each client address, answering 429 with
// Retry-After.
func TestHTTPRateLimit(t *testing.T) {
	eachServer(t, rateEnv(""), func(t *testing.T, s *testServer) {
		for range 3 {
			wantAllowed(t, s.publicAs(""))
		}
		wantLimited(t, s.publicAs(""))
		// Writes and receipt checks share the limit.
		wantLimited(t, s.collect(grantAnalytics()))
		wantLimited(t, s.request(http.MethodPost, "/v1/receipts/verify", map[string]any{"receipt": "x.y.z"}))
		// Without a trusted proxy, X-Forwarded-For is the client's own claim and is ignored.
		wantLimited(t, s.publicAs("198.51.100.7"))
		wantLimited(t, s.request(http.MethodGet, "/v1/consents?property="+s.demo.WebShop.PublicKey, nil,
			"Origin", s.Origin, "Lupa-Device-Id", "AAAAAAAAAAAAAAAAAAAAAA", "X-Real-IP", "198.51.100.8"))
		// The server and admin APIs are not the collection API's limit.
		if r := s.admin(http.MethodGet, "/v1/admin/tenant", nil); r.Status != http.StatusOK {
			t.Fatalf("admin API limited with the public one: %d", r.Status)
		}
	})
}

// TestHTTPRateLimitUntrustedProxy: X-Forwarded-For counts only from a trusted proxy; a list
// that does not name the connecting address changes nothing.
func TestHTTPRateLimitUntrustedProxy(t *testing.T) {
	eachServer(t, rateEnv("10.0.0.0/8"), func(t *testing.T, s *testServer) {
		for i := range 3 {
			wantAllowed(t, s.publicAs("198.51.100."+strconv.Itoa(i+1)))
		}
		wantLimited(t, s.publicAs("198.51.100.99"))
	})
}

// TestHTTPRateLimitBehindProxy: behind a trusted proxy each client address has its own
// limit.
func TestHTTPRateLimitBehindProxy(t *testing.T) {
	eachServer(t, rateEnv("127.0.0.1/32"), func(t *testing.T, s *testServer) {
		for range 3 {
			wantAllowed(t, s.publicAs("198.51.100.1"))
		}
		wantLimited(t, s.publicAs("198.51.100.1"))
		// Another client behind the same proxy is not limited by the first.
		for range 3 {
			wantAllowed(t, s.publicAs("198.51.100.2"))
		}
		wantLimited(t, s.publicAs("198.51.100.2"))
		// A client cannot escape its limit by prepending addresses: the proxy appends the
		// real one, and that is the one that counts.
		wantLimited(t, s.publicAs("203.0.113.5, 198.51.100.1"))
		// IPv6 clients too.
		for range 3 {
			wantAllowed(t, s.publicAs("2001:db8::1"))
		}
		wantLimited(t, s.publicAs("2001:db8::1"))
		// One IPv6 subscriber holds a whole /64: another address in it shares the bucket,
		// an address of another /64 does not.
		wantLimited(t, s.publicAs("2001:db8::dead:beef"))
		wantAllowed(t, s.publicAs("2001:db8:0:1::1"))
	})
}

// TestHTTPRateLimitReadableByWidget: a browser widget can read the 429 and its Retry-After
// (the answer carries CORS headers for the page's origin).
func TestHTTPRateLimitReadableByWidget(t *testing.T) {
	eachServer(t, rateEnv(""), func(t *testing.T, s *testServer) {
		for range 3 {
			wantAllowed(t, s.publicAs(""))
		}
		r := s.publicAs("")
		wantLimited(t, r)
		if got := r.Header.Get("Access-Control-Allow-Origin"); got != s.Origin {
			t.Fatalf("429 Access-Control-Allow-Origin = %q, want %q", got, s.Origin)
		}
		if exp := r.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(exp, "Retry-After") {
			t.Fatalf("429 exposes %q, want Retry-After among them", exp)
		}
		// The widget sends credentials: without this the browser hides the whole answer.
		if got := r.Header.Get("Access-Control-Allow-Credentials"); got != "true" {
			t.Fatalf("429 Access-Control-Allow-Credentials = %q, want true", got)
		}
	})
}

// TestHTTPPublicErrorsReadableByWidget: every answer of the collection routes to a page the
// widget may run on carries the CORS headers of a success, so that a credentialed fetch
// can read the problem: a missing or unknown property key, a bad body, a bad device id.
func TestHTTPPublicErrorsReadableByWidget(t *testing.T) {
	eachServer(t, roomy, func(t *testing.T, s *testServer) {
		device := []string{"Origin", s.Origin, "Lupa-Device-Id", "AAAAAAAAAAAAAAAAAAAAAA"}
		for _, c := range []struct {
			name   string
			r      *response
			status int
		}{
			{"unknown key", s.request(http.MethodGet, "/v1/consents?property=pk_unknown", nil, device...), http.StatusNotFound},
			{"unknown key, config", s.request(http.MethodGet, "/v1/properties/pk_unknown/config", nil, "Origin", s.Origin), http.StatusNotFound},
			{"no key", s.request(http.MethodPost, "/v1/consents", grantAnalytics(), "Origin", s.Origin), http.StatusUnauthorized},
			{"bad body", s.request(http.MethodPost, "/v1/consents?property="+s.demo.WebShop.PublicKey, "{not json", "Origin", s.Origin), http.StatusBadRequest},
			{"bad device id", s.request(http.MethodGet, "/v1/consents?property="+s.demo.WebShop.PublicKey, nil, "Origin", s.Origin, "Lupa-Device-Id", "short"), http.StatusBadRequest},
		} {
			wantProblem(t, c.r, c.status)
			if got := c.r.Header.Get("Access-Control-Allow-Origin"); got != s.Origin {
				t.Errorf("%s: Access-Control-Allow-Origin = %q, want %q", c.name, got, s.Origin)
			}
			if got := c.r.Header.Get("Access-Control-Allow-Credentials"); got != "true" {
				t.Errorf("%s: Access-Control-Allow-Credentials = %q, want true", c.name, got)
			}
			if exp := c.r.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(exp, "X-Request-Id") {
				t.Errorf("%s: exposes %q, want X-Request-Id among them", c.name, exp)
			}
		}
	})
}
