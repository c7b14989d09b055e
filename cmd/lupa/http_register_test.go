package main

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestHTTPRegistrationForm: the registration form may be framed only by the property's
// own origins; bad input is answered on the form and stores nothing.
func TestHTTPRegistrationForm(t *testing.T) {
	eachServer(t, nil, func(t *testing.T, s *testServer) {
		pk := s.demo.WebShop.PublicKey
		form := s.request(http.MethodGet, "/register?property="+pk+"&lang=sv&origin="+url.QueryEscape(s.Origin), nil)
		csp := form.Header.Get("Content-Security-Policy")
		if form.Status != http.StatusOK || !strings.Contains(csp, "frame-ancestors "+s.Origin) || form.Header.Get("X-Frame-Options") != "" ||
			!strings.Contains(string(form.Body), "Skapa konto") || strings.Contains(string(form.Body), "checked") {
			t.Fatalf("form: %d %s %v", form.Status, csp, form.Header)
		}
		if r := s.request(http.MethodGet, "/register?property="+pk+"&origin=https://evil.example", nil); r.Status != http.StatusForbidden ||
			!strings.Contains(r.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Fatalf("another origin: %d %v", r.Status, r.Header)
		}
		if r := s.request(http.MethodGet, "/register?property=pk_nope&origin="+url.QueryEscape(s.Origin), nil); r.Status != http.StatusNotFound {
			t.Fatalf("unknown property: %d", r.Status)
		}
		ui := regexp.MustCompile(`name="ui" value="([0-9a-f]{64})"`).FindStringSubmatch(string(form.Body))
		if ui == nil {
			t.Fatal("no ui hash in the form")
		}
		post := func(v url.Values, headers ...string) *response {
			return s.request(http.MethodPost, "/register", v.Encode(), append([]string{"Content-Type", "application/x-www-form-urlencoded"}, headers...)...)
		}
		base := url.Values{"property": {pk}, "origin": {s.Origin}, "lang": {"sv"}, "ui": {ui[1]}}
		with := func(kv ...string) url.Values { return withForm(base, kv...) }
		// The form says what is wrong in its own language, not in the services' English.
		if r := post(with("email", "not an address", "password", "short")); r.Status != http.StatusUnprocessableEntity ||
			!strings.Contains(string(r.Body), `aria-invalid="true"`) ||
			!strings.Contains(string(r.Body), "Skriv e-postadressen i formen namn@exempel.fi.") {
			t.Fatalf("bad input: %d %s", r.Status, r.Body)
		}
		if r := post(with("email", "x@esimerkki.fi", "password", "short")); r.Status != http.StatusUnprocessableEntity ||
			!strings.Contains(string(r.Body), "Lösenordet ska ha minst 12 tecken.") {
			t.Fatalf("a short password: %d %s", r.Status, r.Body)
		}
		if r := post(with("email", "x@esimerkki.fi", "password", "a fine long password", "ui", strings.Repeat("0", 64))); r.Status != http.StatusConflict ||
			!strings.Contains(string(r.Body), "Formuläret ändrades medan det var öppet.") {
			t.Fatalf("a changed form: %d %s", r.Status, r.Body)
		}
		if r := post(with("email", "x@esimerkki.fi", "password", "a fine long password"), "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"); r.Status != http.StatusForbidden {
			t.Fatalf("a cross-site post: %d", r.Status)
		}
		if r := post(with("email", "x@esimerkki.fi", "password", strings.Repeat("p", 20<<10))); r.Status != http.StatusRequestEntityTooLarge {
			t.Fatalf("an oversized form: %d", r.Status)
		}
		var n int64
		s.app.db.Read.Raw("SELECT count(*) FROM accounts").Scan(&n)
		if n != 0 {
			t.Fatalf("%d accounts after refused forms", n)
		}
		if r := post(with("email", "x@esimerkki.fi", "password", "a fine long password", "purpose_personalisation", "on")); r.Status != http.StatusOK ||
			!strings.Contains(string(r.Body), "Kolla din e-post") {
			t.Fatalf("register: %d %s", r.Status, r.Body)
		}
		// The same address again: the same answer, and no second account.
		if r := post(with("email", "X@esimerkki.fi", "password", "another long password")); r.Status != http.StatusOK || !strings.Contains(string(r.Body), "Kolla din e-post") {
			t.Fatalf("again: %d", r.Status)
		}
		s.app.db.Read.Raw("SELECT count(*) FROM accounts").Scan(&n)
		if n != 1 {
			t.Fatalf("%d accounts", n)
		}
	})
}
