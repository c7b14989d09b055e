package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/lupa-cmp/lupa/static"
)

func (s *testServer) config(lang string, headers ...string) *response {
	s.t.Helper()
	return s.request(http.MethodGet, "/v1/properties/"+s.demo.WebShop.PublicKey+"/config?lang="+lang, nil, headers...)
}

// TestHTTPBannerConfigServing: ETag and revalidation, CORS for allowed origins only, the
// same-origin case, and a change showing on the next request.
func TestHTTPBannerConfigServing(t *testing.T) {
	eachServer(t, nil, func(t *testing.T, s *testServer) {
		first := s.config("fi", "Origin", s.Origin)
		if first.Status != http.StatusOK || first.Header.Get("Cache-Control") != "no-cache" ||
			first.Header.Get("Access-Control-Allow-Origin") != s.Origin || !strings.Contains(first.Header.Get("Vary"), "Origin") {
			t.Fatalf("config: %d %v", first.Status, first.Header)
		}
		etag := first.Header.Get("ETag")
		if etag != `"`+first.Map(t)["ui_hash"].(string)+`"` {
			t.Fatalf("ETag %s is not the ui_hash", etag)
		}
		if r := s.config("fi", "Origin", s.Origin, "If-None-Match", etag); r.Status != http.StatusNotModified || len(r.Body) != 0 {
			t.Fatalf("revalidation: %d %s", r.Status, r.Body)
		}
		if r := s.config("sv", "Origin", s.Origin, "If-None-Match", etag); r.Status != http.StatusOK {
			t.Fatalf("another language with the Finnish ETag: %d", r.Status)
		}
		// Not allowed: no CORS grant, a problem the page may still read.
		if r := s.config("fi", "Origin", "https://evil.example"); r.Status != http.StatusForbidden || r.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Fatalf("evil origin: %d %v", r.Status, r.Header)
		}
		// A page on Lupa's own origin: browsers send no Origin on same-origin GETs.
		if r := s.config("fi", "Sec-Fetch-Site", "same-origin"); r.Status != http.StatusForbidden {
			t.Fatalf("Lupa's own origin is not on the test property's list, yet: %d", r.Status)
		}
		// A change shows on the next request, with a new ETag.
		s.admin(http.MethodPut, "/v1/admin/properties/"+s.demo.WebShop.ID+"/banner", map[string]any{"position": "dialog"})
		next := s.config("fi", "Origin", s.Origin, "If-None-Match", etag)
		if next.Status != http.StatusOK || next.Header.Get("ETag") == etag ||
			next.Map(t)["settings"].(map[string]any)["position"] != "dialog" {
			t.Fatalf("after a change: %d %s", next.Status, next.Body)
		}
	})
}

// TestHTTPWidgetFiles: the tag's URL redirects to the content-hashed bundle, which is
// cached for good and gzipped for browsers that take it.
func TestHTTPWidgetFiles(t *testing.T) {
	s := newTestServer(t, "sqlite", nil)
	noFollow := *s.Client()
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	r := send(t, &noFollow, newTestRequest(t, http.MethodGet, s.URL+"/v1/widget.js", nil))
	if r.Status != http.StatusFound || r.Header.Get("Location") != "/v1/static/"+static.WidgetJS || r.Header.Get("Cache-Control") != "public, max-age=300" {
		t.Fatalf("loader: %d %v", r.Status, r.Header)
	}
	req := newTestRequest(t, http.MethodGet, s.URL+"/v1/static/"+static.WidgetJS, nil, "Accept-Encoding", "gzip")
	tr := &http.Transport{DisableCompression: true}
	raw := send(t, &http.Client{Transport: tr}, req)
	if raw.Status != http.StatusOK || raw.Header.Get("Content-Encoding") != "gzip" ||
		!strings.Contains(raw.Header.Get("Cache-Control"), "immutable") || raw.Header.Get("Cross-Origin-Resource-Policy") != "cross-origin" {
		t.Fatalf("bundle: %d %v", raw.Status, raw.Header)
	}
	plain := s.request(http.MethodGet, "/v1/static/"+static.WidgetCSS, nil)
	if plain.Status != http.StatusOK || !strings.HasPrefix(plain.Header.Get("Content-Type"), "text/css") || len(plain.Body) == 0 {
		t.Fatalf("stylesheet: %d %v", plain.Status, plain.Header)
	}
	if r := s.request(http.MethodGet, "/v1/static/..%2Fstatic.go", nil); r.Status != http.StatusNotFound {
		t.Fatalf("a path outside the build: %d", r.Status)
	}
	gpc := s.request(http.MethodGet, "/.well-known/gpc.json", nil).Map(t)
	if gpc["gpc"] != true {
		t.Fatalf("gpc.json: %v", gpc)
	}
	demo := s.request(http.MethodGet, "/demo/fi", nil)
	csp := demo.Header.Get("Content-Security-Policy")
	if demo.Status != http.StatusOK || !strings.Contains(string(demo.Body), `<html lang="fi">`) ||
		!strings.Contains(csp, "script-src 'self' 'nonce-") || strings.Contains(csp, "unsafe-inline") {
		t.Fatalf("demo: %d %s", demo.Status, csp)
	}
}

// TestHTTPServerSetsBannerCookie: with Lupa on a subdomain of the site, the answer to a
// decision sets the banner's cookie on the shared domain, in the widget's format.
func TestHTTPServerSetsBannerCookie(t *testing.T) {
	eachServer(t, nil, func(t *testing.T, s *testServer) {
		post := func(host string) *response {
			req := newTestRequest(t, http.MethodPost, s.URL+"/v1/consents?property="+s.demo.WebShop.PublicKey,
				strings.NewReader(`{"method":"banner_custom","language":"fi","decisions":[`+
					`{"purpose":"analytics","version":1,"decision":"granted"},{"purpose":"social_advertising","decision":"denied"}]}`),
				"Origin", s.Origin)
			req.Host = host
			return send(t, s.Client(), req)
		}
		if r := post("consent.shop.example"); r.Status != http.StatusCreated || r.Header.Get("Set-Cookie") != "" {
			t.Fatalf("without a cookie domain the widget keeps the cookie: %d %v", r.Status, r.Header)
		}
		s.admin(http.MethodPut, "/v1/admin/properties/"+s.demo.WebShop.ID+"/banner", map[string]any{"cookie_domain": ".shop.example",
			"consent_mode": map[string][]string{"analytics": {"analytics_storage"}, "social_advertising": {"ad_storage"}}})
		if r := post("lupa.elsewhere.example"); r.Header.Get("Set-Cookie") != "" {
			t.Fatalf("a host outside the cookie domain set it: %v", r.Header)
		}
		r := post("consent.shop.example")
		if r.Status != http.StatusCreated || r.Header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Fatalf("decision: %d %v", r.Status, r.Header)
		}
		cookies := (&http.Response{Header: r.Header}).Cookies()
		if len(cookies) != 1 || cookies[0].Name != "lupa_consent" || cookies[0].Domain != "shop.example" ||
			cookies[0].MaxAge != 365*86400 || cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteLaxMode {
			t.Fatalf("cookie: %+v", cookies)
		}
		raw, err := url.QueryUnescape(cookies[0].Value)
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			V  int              `json:"v"`
			ID string           `json:"id"`
			P  map[string][]any `json:"p"`
			G  []string         `json:"g"`
			R  string           `json:"r"`
		}
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			t.Fatalf("cookie value %q: %v", raw, err)
		}
		out := r.Map(t)
		if v.V != 1 || v.ID != out["device_id"] || v.R != out["interaction_id"] || v.P["analytics"][0] != "g" ||
			v.P["social_advertising"][0] != "d" || len(v.G) != 1 || v.G[0] != "analytics_storage" {
			t.Fatalf("cookie %s for answer %s", raw, r.Body)
		}
	})
}

// TestHTTPGlobalPrivacyControl: Sec-GPC: 1 makes a grant of a gpc_opt_out purpose need the
// person's confirmation; other values of the header are not the signal.
func TestHTTPGlobalPrivacyControl(t *testing.T) {
	eachServer(t, nil, func(t *testing.T, s *testServer) {
		body := func(confirmed bool) map[string]any {
			return map[string]any{"method": "banner_accept_all", "gpc_confirmed": confirmed, "decisions": []map[string]any{
				{"purpose": "analytics", "version": 1, "decision": "granted"},
				{"purpose": "social_advertising", "version": 1, "decision": "granted"}}}
		}
		r := s.collect(body(false), "Sec-GPC", "1")
		p := wantProblem(t, r, http.StatusUnprocessableEntity)
		if len(p.Errors) != 1 || p.Errors[0].Field != "decisions[1].decision" || !strings.Contains(p.Errors[0].Message, "Global Privacy Control") {
			t.Fatalf("problem: %s", r.Body)
		}
		if r := s.collect(body(false), "Sec-GPC", "true"); r.Status != http.StatusCreated {
			t.Fatalf("only the value 1 is the signal: %d %s", r.Status, r.Body)
		}
		if r := s.collect(body(true), "Sec-GPC", "1"); r.Status != http.StatusCreated {
			t.Fatalf("a confirmed grant: %d %s", r.Status, r.Body)
		}
	})
}
